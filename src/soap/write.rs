//! Writing SOAP 1.1 messages: responses and faults for SAP's requests, and the requests
//! that carry our events to SAP. RPC/literal shape: everything below the operation element
//! is unqualified, lists are `<item>` children (what zeep, suds and SOAP::Lite all read).
//! Never a character XML 1.0 does not allow: see [`escape`].

use std::borrow::Cow;
use std::fmt::Write as _;

use compact_str::CompactString;

use super::chars;
use super::fault::Fault;
use super::parse::SOAP11_ENV;

/// A value in a message we write. Texts are `CompactString`s: the ids, names, states and
/// numbers of an answer fit inline (24 bytes), so building one costs no allocation per
/// text (BENCHMARKS.md, benchmark 1: `read_allocs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(CompactString),
    Int(i64),
    Bool(bool),
    /// A structure: named fields in WSDL order.
    Struct(Vec<(&'static str, Value)>),
    /// An array: one `<item>` per element.
    List(Vec<Value>),
    /// `xsi:nil="true"`: an absent optional value.
    Nil,
}

impl Value {
    /// Text value from anything string-like.
    pub fn text(s: impl Into<CompactString>) -> Value {
        Value::Text(s.into())
    }

    /// Optional text: `Nil` when absent.
    pub fn opt_text(s: Option<impl Into<CompactString>>) -> Value {
        s.map_or(Value::Nil, |s| Value::Text(s.into()))
    }

    /// A list of text values.
    pub fn text_list<I, S>(items: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: Into<CompactString>,
    {
        Value::List(items.into_iter().map(|s| Value::Text(s.into())).collect())
    }
}

/// The counter of characters replaced while writing (through the `metrics` facade; the
/// connector's metrics module describes it).
pub const XML_CHARS_REPLACED: &str = "ici_xml_chars_replaced_total";

const ENVELOPE_OPEN: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" "#,
    r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><SOAP-ENV:Body>"#
);
const ENVELOPE_CLOSE: &str = "</SOAP-ENV:Body></SOAP-ENV:Envelope>";

/// The response to `operation` in `namespace`: `<operationResponse>` with the result in
/// `<return>` (nothing inside for operations without a result).
pub fn write_response(namespace: &str, operation: &str, result: Option<&Value>) -> String {
    let body = result.map_or(0, |value| written_len("return", value));
    let mut out = String::with_capacity(envelope_len(namespace, operation) + body);
    out.push_str(ENVELOPE_OPEN);
    open_operation(&mut out, operation, "Response", namespace);
    if let Some(result) = result {
        write_element(&mut out, "return", result);
    }
    close_operation(&mut out, operation, "Response");
    out.push_str(ENVELOPE_CLOSE);
    out
}

/// A request (our events to SAP): `<operation>` in `namespace` with the parameters in order.
pub fn write_call(namespace: &str, operation: &str, params: &[(&str, Value)]) -> String {
    let body: usize = params.iter().map(|(name, v)| written_len(name, v)).sum();
    let mut out = String::with_capacity(envelope_len(namespace, operation) + body);
    out.push_str(ENVELOPE_OPEN);
    open_operation(&mut out, operation, "", namespace);
    for (name, value) in params {
        write_element(&mut out, name, value);
    }
    close_operation(&mut out, operation, "");
    out.push_str(ENVELOPE_CLOSE);
    out
}

/// What an envelope around an operation takes, without its parameters: the buffer is
/// sized once from this and [`written_len`], so writing a message never grows it (unless
/// escaping lengthens a text).
pub(super) fn envelope_len(namespace: &str, operation: &str) -> usize {
    const TAGS: usize = "<ns:Response xmlns:ns=\"\"></ns:Response>".len();
    ENVELOPE_OPEN.len() + ENVELOPE_CLOSE.len() + TAGS + 2 * operation.len() + namespace.len()
}

/// The length of `<name>value</name>` as [`write_element`] writes it, texts unescaped.
pub(super) fn written_len(name: &str, value: &Value) -> usize {
    /// The longest `i64` in decimal.
    const INT_DIGITS: usize = 20;
    let tags = 2 * name.len() + "<></>".len();
    tags + match value {
        Value::Nil => r#" xsi:nil="true"/>"#.len(),
        Value::Text(text) => text.len(),
        Value::Int(_) => INT_DIGITS,
        Value::Bool(_) => "false".len(),
        Value::Struct(fields) => fields.iter().map(|(f, v)| written_len(f, v)).sum(),
        Value::List(items) => items.iter().map(|v| written_len("item", v)).sum(),
    }
}

/// A SOAP 1.1 fault envelope.
pub fn write_fault(fault: &Fault) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(ENVELOPE_OPEN);
    out.push_str("<SOAP-ENV:Fault><faultcode>SOAP-ENV:");
    out.push_str(fault.code.as_str());
    out.push_str("</faultcode><faultstring>");
    out.push_str(&escape(fault.string.as_ref()));
    out.push_str("</faultstring>");
    if let Some(detail) = &fault.detail {
        out.push_str("<detail><message>");
        out.push_str(&escape(detail.as_str()));
        out.push_str("</message></detail>");
    }
    out.push_str("</SOAP-ENV:Fault>");
    out.push_str(ENVELOPE_CLOSE);
    debug_assert!(out.contains(SOAP11_ENV));
    out
}

/// Escapes text for XML, with every character XML 1.0 does not allow replaced by
/// [`chars::REPLACEMENT`]. Requests with such characters are refused, so only values from
/// the switch (call attributes, AMI variables) can bring one; each replacement is counted
/// ([`XML_CHARS_REPLACED`]), so the one write path that may change a value shows.
fn escape(text: &str) -> Cow<'_, str> {
    let (clean, replaced) = chars::replace_invalid(text);
    if replaced > 0 {
        ::metrics::counter!(XML_CHARS_REPLACED).increment(replaced as u64);
        tracing::debug!(
            count = replaced,
            "characters XML 1.0 does not allow replaced in a message"
        );
    }
    match clean {
        Cow::Borrowed(text) => quick_xml::escape::escape(text),
        Cow::Owned(text) => Cow::Owned(quick_xml::escape::escape(&text).into_owned()),
    }
}

// Plain `push_str` rather than `write!`: these run for every response and event, and the
// formatting machinery cost more than the copying (BENCHMARKS.md, benchmark 1).

fn open_operation(out: &mut String, operation: &str, suffix: &str, namespace: &str) {
    out.push_str("<ns:");
    out.push_str(operation);
    out.push_str(suffix);
    out.push_str(" xmlns:ns=\"");
    out.push_str(&escape(namespace));
    out.push_str("\">");
}

fn close_operation(out: &mut String, operation: &str, suffix: &str) {
    out.push_str("</ns:");
    out.push_str(operation);
    out.push_str(suffix);
    out.push('>');
}

fn open_tag(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close_tag(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn write_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Nil => {
            out.push('<');
            out.push_str(name);
            out.push_str(r#" xsi:nil="true"/>"#);
            return;
        }
        Value::Text(text) => {
            open_tag(out, name);
            out.push_str(&escape(text.as_str()));
        }
        Value::Int(n) => {
            open_tag(out, name);
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => {
            open_tag(out, name);
            out.push_str(if *b { "true" } else { "false" });
        }
        Value::Struct(fields) => {
            open_tag(out, name);
            for (field, value) in fields {
                write_element(out, field, value);
            }
        }
        Value::List(items) => {
            open_tag(out, name);
            for item in items {
                write_element(out, "item", item);
            }
        }
    }
    close_tag(out, name);
}
