//! Reading a SOAP 1.1 request envelope: bytes in, a small element tree of the operation out.
//!
//! Tolerant where real SOAP stacks differ (prefixes, qualified or unqualified parameters,
//! `xsi:type`, encodingStyle, SOAP-encoded arrays, unknown headers, BOMs, ISO-8859-1) and
//! strict where tolerance would be dangerous: no DOCTYPE, no entity other than the five
//! predefined ones and character references, no character XML 1.0 does not allow (raw or
//! referenced, see [`super::chars`]), bounded depth and element count.

use std::borrow::Cow;
use std::ops::Range;

use compact_str::CompactString;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;

use super::chars;
use super::fault::{Fault, FaultCode};

/// SOAP 1.1 envelope namespace.
pub const SOAP11_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace: recognised only to answer `VersionMismatch`.
pub const SOAP12_ENV: &str = "http://www.w3.org/2003/05/soap-envelope";
/// XML Schema instance namespace (`xsi:nil`, `xsi:type`).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Bounds on the shape of a request, so a hostile document costs little. The body size is
/// bounded earlier, by the HTTP layer. [`ParseLimits::DEFAULT`] holds the defaults; the
/// configuration's `[limits]` takes its own from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Longest character data of one element, after references are resolved.
    pub max_text_bytes: usize,
    /// Longest raw value of one attribute.
    pub max_attribute_bytes: usize,
}

impl ParseLimits {
    /// The limits [`parse_request`] applies, and the defaults of `[limits] max_xml_*`:
    /// 32 levels (an ICI request needs about 6), 10 000 elements, 256 KiB of text in one
    /// element (attached data is the largest text ICI sends) and 4096 bytes in one
    /// attribute (ICI attributes are namespace URIs and `xsi:type` names).
    pub const DEFAULT: ParseLimits = ParseLimits {
        max_depth: 32,
        max_elements: 10_000,
        max_text_bytes: 256 * 1024,
        max_attribute_bytes: 4096,
    };
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits::DEFAULT
    }
}

/// A character XML 1.0 does not allow, raw or as a character reference: the document is
/// not well-formed, and relaying it would make SAP refuse what we send.
fn invalid_char(c: char) -> Fault {
    Fault::client("invalid XML character").with_detail(chars::InvalidChar(c.into()).to_string())
}

fn text_too_long(limits: &ParseLimits) -> Fault {
    Fault::client("XML text too long").with_detail(format!(
        "an element's text is over {} bytes",
        limits.max_text_bytes
    ))
}

/// One XML element below the operation, reduced to what ICI needs.
///
/// Names and texts are `CompactString`s (up to 24 bytes inline) and the namespaces ICI uses
/// are borrowed from static strings: an ICI request's names, ids and namespaces then cost
/// no allocation, which was most of the parser's time (BENCHMARKS.md, benchmark 4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Local name; prefixes are never significant.
    pub name: CompactString,
    /// Namespace URI, if the element is bound to one.
    pub namespace: Option<Cow<'static, str>>,
    /// Character data directly inside the element (entities resolved, CDATA included).
    pub text: CompactString,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// `xsi:nil="true"`.
    pub nil: bool,
    /// `mustUnderstand="1"` in the envelope namespace (only meaningful on header entries).
    pub must_understand: bool,
    /// Byte range of the element's content inside [`Request::source`], for parameters that
    /// carry XML documents (attached data) as child elements instead of escaped text.
    pub inner: Range<usize>,
}

impl Element {
    /// First child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Whether the element has element children (a structure or an array).
    pub fn is_compound(&self) -> bool {
        !self.children.is_empty()
    }
}

/// SOAP headers we understand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    /// The SAP user the request is made for (`user` header).
    pub user: Option<String>,
    /// Logon language (`language` header), e.g. `EN`.
    pub language: Option<String>,
}

/// A parsed SOAP request: headers and the operation element (the first child of Body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The decoded document (UTF-8), which [`Element::inner`] ranges point into.
    pub source: String,
    pub headers: Headers,
    /// The operation element; its children are the parameters.
    pub operation: Element,
}

impl Request {
    /// The operation's local name, e.g. `getAttributes`.
    pub fn operation_name(&self) -> &str {
        &self.operation.name
    }

    /// The operation's namespace, e.g. `urn:IciUserInterface`.
    pub fn namespace(&self) -> Option<&str> {
        self.operation.namespace.as_deref()
    }

    /// The raw XML inside an element of this request.
    pub fn inner_xml(&self, element: &Element) -> &str {
        self.source.get(element.inner.clone()).unwrap_or("")
    }
}

/// Parses a SOAP 1.1 request with the default limits ([`ParseLimits::DEFAULT`]).
pub fn parse_request(bytes: &[u8]) -> Result<Request, Fault> {
    parse_request_with(bytes, &ParseLimits::DEFAULT)
}

/// Parses a SOAP 1.1 request.
pub fn parse_request_with(bytes: &[u8], limits: &ParseLimits) -> Result<Request, Fault> {
    let source = decode(bytes)?;
    if let Some(c) = chars::first_invalid(&source) {
        return Err(invalid_char(c));
    }
    let root = parse_tree(&source, limits)?;
    let (headers, operation) = read_envelope(root)?;
    Ok(Request {
        source,
        headers,
        operation,
    })
}

/// Turns the body into UTF-8 text: BOM first, then the XML declaration's encoding; bytes
/// that are invalid in that encoding are a malformed request, never replaced silently.
fn decode(bytes: &[u8]) -> Result<String, Fault> {
    if let Some((encoding, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        return decode_with(encoding, &bytes[bom_len..]);
    }
    let encoding = match declared_encoding(bytes) {
        None => encoding_rs::UTF_8,
        Some(label) => encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
            Fault::client("unsupported encoding").with_detail(format!("encoding {label:?}"))
        })?,
    };
    decode_with(encoding, bytes)
}

fn decode_with(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Result<String, Fault> {
    if encoding == encoding_rs::UTF_8 {
        return String::from_utf8(bytes.to_vec())
            .map_err(|e| Fault::malformed(format!("invalid UTF-8: {e}")));
    }
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or_else(|| Fault::malformed(format!("bytes not valid in {}", encoding.name())))
}

/// How far into the document the `<?xml ...?>` declaration is looked for: a declaration
/// with version, encoding and standalone, after some leading white space, fits easily.
const DECLARATION_WINDOW: usize = 200;

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>` declaration (ASCII-compatible
/// encodings only; UTF-16 documents carry a BOM).
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(DECLARATION_WINDOW)];
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = &head[start..];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let rest = &decl[decl.find("encoding")? + "encoding".len()..];
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_string())
}

/// Builds the element tree of the whole document.
fn parse_tree(source: &str, limits: &ParseLimits) -> Result<Element, Fault> {
    let mut reader = NsReader::from_str(source);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = true;
    config.trim_text(false);

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut last_pos = 0usize;
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| Fault::malformed(e.to_string()))?;
        match event {
            Event::Start(start) => {
                let ns = namespace_of(&resolved)?;
                elements += 1;
                if root.is_some() {
                    return Err(Fault::malformed("more than one root element"));
                }
                if stack.len() >= limits.max_depth {
                    return Err(Fault::client("XML too deep")
                        .with_detail(format!("more than {} levels", limits.max_depth)));
                }
                if elements > limits.max_elements {
                    return Err(Fault::client("too many XML elements")
                        .with_detail(format!("more than {}", limits.max_elements)));
                }
                let mut element = Element {
                    name: local_name(&start),
                    namespace: ns,
                    ..Element::default()
                };
                read_attributes(&reader, &start, &mut element, limits)?;
                let pos = reader.buffer_position() as usize;
                element.inner = pos..pos;
                stack.push(element);
            }
            Event::End(_) => {
                let mut element = stack
                    .pop()
                    .ok_or_else(|| Fault::malformed("unexpected end tag"))?;
                element.inner.end = last_pos;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(text) => {
                let text = text.xml10_content();
                match stack.last_mut() {
                    Some(element) if element.text.len() + text.len() > limits.max_text_bytes => {
                        return Err(text_too_long(limits));
                    }
                    Some(element) => element.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(Fault::malformed("text outside the root element")),
                }
            }
            Event::CData(data) => {
                let data = data.xml10_content();
                match stack.last_mut() {
                    Some(element) if element.text.len() + data.len() > limits.max_text_bytes => {
                        return Err(text_too_long(limits));
                    }
                    Some(element) => element.text.push_str(&data),
                    None => return Err(Fault::malformed("CDATA outside the root element")),
                }
            }
            Event::GeneralRef(reference) => {
                let ch = match reference.resolve_char_ref() {
                    Ok(Some(ch)) if !chars::is_xml_char(ch) => return Err(invalid_char(ch)),
                    Ok(Some(ch)) => ch,
                    Ok(None) => predefined_entity(&reference.xml10_content()).ok_or_else(|| {
                        Fault::client("undefined entity")
                            .with_detail(format!("&{};", reference.xml10_content()))
                    })?,
                    Err(e) => return Err(Fault::malformed(e.to_string())),
                };
                match stack.last_mut() {
                    Some(element) if element.text.len() + ch.len_utf8() > limits.max_text_bytes => {
                        return Err(text_too_long(limits));
                    }
                    Some(element) => element.text.push(ch),
                    None => return Err(Fault::malformed("reference outside the root element")),
                }
            }
            Event::DocType(_) => {
                return Err(Fault::client("DOCTYPE is not allowed")
                    .with_detail("SOAP messages must not contain a document type declaration"));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            // Not produced (`expand_empty_elements` is set); refused rather than trusted.
            Event::Empty(_) => return Err(Fault::malformed("unexpected empty element")),
            Event::Eof => break,
        }
        last_pos = reader.buffer_position() as usize;
    }
    if !stack.is_empty() {
        return Err(Fault::malformed("unexpected end of document"));
    }
    root.ok_or_else(|| Fault::malformed("no root element"))
}

fn namespace_of(resolved: &ResolveResult<'_>) -> Result<Option<Cow<'static, str>>, Fault> {
    match resolved {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(Namespace(ns)) => Ok(Some(intern_namespace(ns))),
        ResolveResult::Unknown(prefix) => Err(Fault::malformed(format!(
            "undeclared namespace prefix {prefix:?}"
        ))),
    }
}

/// Namespaces read without a copy: the envelope's, XSI's and the ICI interfaces'. Any
/// other namespace is copied, which costs an allocation but is otherwise the same; the ICI
/// catalog checks that its namespaces are all here.
pub const INTERNED_NAMESPACES: [&str; 10] = [
    SOAP11_ENV,
    XSI,
    "urn:IciSystemInterface",
    "urn:IciUserInterface",
    "urn:IciContainerInterface",
    "urn:IciItemInterface",
    "urn:IciLineInterface",
    "urn:IciPhoneCallInterface",
    "urn:IciFolderInterface",
    "urn:IciEventInterface",
];

/// The namespaces of every ICI request are static strings: borrowed, not copied.
fn intern_namespace(ns: &str) -> Cow<'static, str> {
    INTERNED_NAMESPACES
        .into_iter()
        .find(|known| *known == ns)
        .map_or_else(|| Cow::Owned(ns.to_string()), Cow::Borrowed)
}

fn local_name(start: &BytesStart<'_>) -> CompactString {
    CompactString::from(start.local_name().into_inner())
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// Reads the two attributes that change meaning (`xsi:nil`, `mustUnderstand`); checks that
/// all attributes are well-formed. `xsi:type`, `encodingStyle` and the rest are ignored.
fn read_attributes(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    element: &mut Element,
    limits: &ParseLimits,
) -> Result<(), Fault> {
    for attr in start.attributes() {
        let attr = attr.map_err(|e| Fault::malformed(e.to_string()))?;
        if attr.value.len() > limits.max_attribute_bytes {
            return Err(Fault::client("XML attribute too long").with_detail(format!(
                "an attribute value is over {} bytes",
                limits.max_attribute_bytes
            )));
        }
        // Only two attributes mean anything; resolving every attribute's prefix (the
        // envelope's namespace declarations among them) was a tenth of the parse.
        if !matches!(attr.key.local_name().as_ref(), "nil" | "mustUnderstand") {
            continue;
        }
        let (resolved, local) = reader.resolver().resolve_attribute(attr.key);
        let ns = match resolved {
            ResolveResult::Bound(Namespace(ns)) => Some(ns),
            _ => None,
        };
        let local = local.into_inner();
        let is_true = || {
            attr.normalized_value(XmlVersion::Implicit1_0)
                .map(|v| matches!(v.trim(), "1" | "true"))
                .unwrap_or(false)
        };
        match (ns, local) {
            (Some(XSI), "nil") => element.nil = is_true(),
            (Some(SOAP11_ENV), "mustUnderstand") => element.must_understand = is_true(),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the envelope and returns its headers and the operation element.
fn read_envelope(root: Element) -> Result<(Headers, Element), Fault> {
    let ns = root.namespace.as_deref();
    if root.name != "Envelope" {
        return Err(Fault::client("not a SOAP envelope")
            .with_detail(format!("root element is {:?}", root.name)));
    }
    if ns != Some(SOAP11_ENV) {
        return Err(Fault {
            code: FaultCode::VersionMismatch,
            string: "SOAP 1.1 envelope expected".into(),
            detail: Some(format!("envelope namespace {:?}", ns.unwrap_or(""))),
        });
    }
    let mut headers = Headers::default();
    let mut body = None;
    for child in root.children {
        if child.namespace.as_deref() != Some(SOAP11_ENV) {
            continue;
        }
        match child.name.as_str() {
            "Header" if body.is_none() => read_headers(child, &mut headers)?,
            "Body" => {
                body = Some(child);
                break;
            }
            _ => {}
        }
    }
    let body = body.ok_or_else(|| Fault::client("no SOAP Body"))?;
    let operation = body
        .children
        .into_iter()
        .next()
        .ok_or_else(|| Fault::client("empty SOAP Body"))?;
    Ok((headers, operation))
}

fn read_headers(header: Element, headers: &mut Headers) -> Result<(), Fault> {
    for entry in header.children {
        match entry.name.as_str() {
            "user" => headers.user = Some(entry.text.trim().to_string()),
            "language" => headers.language = Some(entry.text.trim().to_string()),
            _ if entry.must_understand => {
                return Err(Fault {
                    code: FaultCode::MustUnderstand,
                    string: "header not understood".into(),
                    detail: Some(format!(
                        "{{{}}}{}",
                        entry.namespace.as_deref().unwrap_or(""),
                        entry.name
                    )),
                });
            }
            _ => {}
        }
    }
    Ok(())
}
