//! The parser as it was before the borrowed tree (`tree.rs`), built on quick-xml's
//! `NsReader` and an owned element tree: kept for tests only, as the oracle the property
//! tests compare the borrowed parser against (same tree, same faults, on any input).

use std::borrow::Cow;

use compact_str::CompactString;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;

use super::chars;
use super::fault::{Fault, FaultCode};
use super::parse::{Element, Headers, INTERNED_NAMESPACES, ParseLimits, Request, SOAP11_ENV, XSI};

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

/// Parses a SOAP 1.1 request.
pub(super) fn parse_request_with(bytes: &[u8], limits: &ParseLimits) -> Result<Request, Fault> {
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
