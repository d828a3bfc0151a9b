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

use quick_xml::Reader;
use quick_xml::events::Event;

use super::chars;
use super::fault::{Fault, FaultCode};
use super::tree::{Builder, ElementRef, Node};

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

/// One XML element, owned: what [`parse_request`] returns, for tools and tests that keep
/// or build element trees. The server reads requests as an [`Envelope`] instead, which
/// borrows everything from the body.
///
/// Names and texts are `CompactString`s (up to 24 bytes inline) and the namespaces ICI uses
/// are borrowed from static strings.
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

/// A parsed SOAP request, borrowed from its body: headers and the operation element
/// (the first child of Body), whose names and texts are slices of the body (of its
/// decoded copy when it was not UTF-8). This is what the server reads.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    source: Cow<'a, str>,
    nodes: Vec<Node>,
    operation: usize,
    user: Option<usize>,
    language: Option<usize>,
}

impl<'a> Envelope<'a> {
    fn element(&self, index: usize) -> ElementRef<'_> {
        ElementRef::new(&self.source, &self.nodes, index)
    }

    /// The operation element; its children are the parameters.
    pub fn operation(&self) -> ElementRef<'_> {
        self.element(self.operation)
    }

    /// The operation's local name, e.g. `getAttributes`.
    pub fn operation_name(&self) -> &str {
        self.operation().name()
    }

    /// The operation's namespace, e.g. `urn:IciUserInterface`.
    pub fn namespace(&self) -> Option<&str> {
        self.operation().namespace()
    }

    /// The SAP user the request is made for (`user` header), trimmed.
    pub fn user(&self) -> Option<&str> {
        self.user.map(|i| self.element(i).text().trim())
    }

    /// Logon language (`language` header), e.g. `EN`, trimmed.
    pub fn language(&self) -> Option<&str> {
        self.language.map(|i| self.element(i).text().trim())
    }

    /// The decoded document.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The owned form of this request.
    pub fn to_request(&self) -> Request {
        Request {
            source: self.source.to_string(),
            headers: Headers {
                user: self.user().map(str::to_string),
                language: self.language().map(str::to_string),
            },
            operation: owned(self.operation()),
        }
    }
}

fn owned(element: ElementRef<'_>) -> Element {
    Element {
        name: CompactString::from(element.name()),
        namespace: element.namespace().map(intern_namespace),
        text: CompactString::from(element.text()),
        children: element.children().map(owned).collect(),
        nil: element.nil(),
        must_understand: element.must_understand(),
        inner: element.inner(),
    }
}

/// Parses a SOAP 1.1 request into an owned tree, with the default limits
/// ([`ParseLimits::DEFAULT`]).
pub fn parse_request(bytes: &[u8]) -> Result<Request, Fault> {
    parse_request_with(bytes, &ParseLimits::DEFAULT)
}

/// Parses a SOAP 1.1 request into an owned tree.
pub fn parse_request_with(bytes: &[u8], limits: &ParseLimits) -> Result<Request, Fault> {
    parse_envelope_with(bytes, limits).map(|envelope| envelope.to_request())
}

/// Parses a SOAP 1.1 request, borrowing from `bytes`, with the default limits.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, Fault> {
    parse_envelope_with(bytes, &ParseLimits::DEFAULT)
}

/// Parses a SOAP 1.1 request, borrowing from `bytes`.
pub fn parse_envelope_with<'a>(
    bytes: &'a [u8],
    limits: &ParseLimits,
) -> Result<Envelope<'a>, Fault> {
    let source = decode(bytes)?;
    if let Some(c) = chars::first_invalid(&source) {
        return Err(invalid_char(c));
    }
    let (nodes, root) = parse_tree(&source, limits)?;
    let (operation, user, language) = read_envelope(ElementRef::new(&source, &nodes, root))?;
    Ok(Envelope {
        source,
        nodes,
        operation,
        user,
        language,
    })
}

/// Turns the body into UTF-8 text: BOM first, then the XML declaration's encoding; bytes
/// that are invalid in that encoding are a malformed request, never replaced silently.
/// UTF-8 (nearly every request) is borrowed, not copied.
fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, Fault> {
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

fn decode_with<'b>(
    encoding: &'static encoding_rs::Encoding,
    bytes: &'b [u8],
) -> Result<Cow<'b, str>, Fault> {
    if encoding == encoding_rs::UTF_8 {
        return std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|e| Fault::malformed(format!("invalid UTF-8: {e}")));
    }
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or_else(|| Fault::malformed(format!("bytes not valid in {}", encoding.name())))
}

/// How far into the document the `<?xml ...?>` declaration is looked for: a declaration
/// with version, encoding and standalone, after some leading white space, fits easily.
const DECLARATION_WINDOW: usize = 200;

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>` declaration (ASCII-compatible
/// encodings only; UTF-16 documents carry a BOM).
fn declared_encoding(bytes: &[u8]) -> Option<&str> {
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
    Some(&value[..value.find(quote)?])
}

/// Builds the element tree of the whole document: its nodes and the root's index.
fn parse_tree(source: &str, limits: &ParseLimits) -> Result<(Vec<Node>, usize), Fault> {
    let mut reader = Reader::from_str(source);
    let config = reader.config_mut();
    // `<a/>` arrives as one event: expanding it would copy its name for the end event.
    config.expand_empty_elements = false;
    config.check_end_names = true;
    config.trim_text(false);

    let mut tree = Builder::new(source, limits);
    let mut last_pos = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| Fault::malformed(e.to_string()))?;
        let pos = reader.buffer_position() as usize;
        match event {
            Event::Start(start) => tree.start(&start, false, pos)?,
            Event::Empty(start) => tree.start(&start, true, pos)?,
            Event::End(_) => {
                if !tree.end(last_pos) {
                    return Err(Fault::malformed("unexpected end tag"));
                }
            }
            Event::Text(text) => tree.text(text.xml10_content())?,
            Event::CData(data) => tree.cdata(data.xml10_content())?,
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
                tree.char(ch)?;
            }
            Event::DocType(_) => {
                return Err(Fault::client("DOCTYPE is not allowed")
                    .with_detail("SOAP messages must not contain a document type declaration"));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
        last_pos = pos;
    }
    if tree.is_open() {
        return Err(Fault::malformed("unexpected end of document"));
    }
    let root = tree
        .root()
        .ok_or_else(|| Fault::malformed("no root element"))?;
    Ok((tree.nodes, root))
}

/// Namespaces the owned tree ([`Element`]) borrows from static strings: the envelope's,
/// XSI's and the ICI interfaces'. Any other namespace is copied, which costs an
/// allocation but is otherwise the same; the ICI catalog checks that its namespaces are
/// all here.
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

/// Checks the envelope and returns the indices of the operation element and of the
/// `user` and `language` headers.
fn read_envelope(root: ElementRef<'_>) -> Result<(usize, Option<usize>, Option<usize>), Fault> {
    let ns = root.namespace();
    if root.name() != "Envelope" {
        return Err(Fault::client("not a SOAP envelope")
            .with_detail(format!("root element is {:?}", root.name())));
    }
    if ns != Some(SOAP11_ENV) {
        return Err(Fault {
            code: FaultCode::VersionMismatch,
            string: "SOAP 1.1 envelope expected".into(),
            detail: Some(format!("envelope namespace {:?}", ns.unwrap_or(""))),
        });
    }
    let (mut user, mut language) = (None, None);
    let mut body = None;
    for child in root.children() {
        if child.namespace() != Some(SOAP11_ENV) {
            continue;
        }
        match child.name() {
            "Header" if body.is_none() => read_headers(child, &mut user, &mut language)?,
            "Body" => {
                body = Some(child);
                break;
            }
            _ => {}
        }
    }
    let body = body.ok_or_else(|| Fault::client("no SOAP Body"))?;
    let operation = body
        .children()
        .next()
        .ok_or_else(|| Fault::client("empty SOAP Body"))?;
    Ok((operation.index(), user, language))
}

fn read_headers(
    header: ElementRef<'_>,
    user: &mut Option<usize>,
    language: &mut Option<usize>,
) -> Result<(), Fault> {
    for entry in header.children() {
        match entry.name() {
            "user" => *user = Some(entry.index()),
            "language" => *language = Some(entry.index()),
            _ if entry.must_understand() => {
                return Err(Fault {
                    code: FaultCode::MustUnderstand,
                    string: "header not understood".into(),
                    detail: Some(format!(
                        "{{{}}}{}",
                        entry.namespace().unwrap_or(""),
                        entry.name()
                    )),
                });
            }
            _ => {}
        }
    }
    Ok(())
}
