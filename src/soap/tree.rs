//! The borrowed element tree a request is parsed into: one vector of nodes for the whole
//! document, whose names, namespaces and texts are byte ranges of the decoded body.
//!
//! Why: the owned tree (a `Vec` of children per element, a copy of the body, a string per
//! header, quick-xml's namespace buffers and attribute checks) cost 25 allocations per
//! request; here a request costs the node vector, the namespace bindings in scope and what
//! quick-xml's reader keeps (the names of open elements), whatever its shape. A text only
//! becomes a string of its own when it has to be put together (references, CDATA next to
//! text, line ends to normalise), and then inline up to 24 bytes.

use std::borrow::Cow;
use std::ops::Range;

use compact_str::CompactString;
use quick_xml::XmlVersion;
use quick_xml::events::BytesStart;
use quick_xml::events::attributes::Attribute;
use quick_xml::name::{NamespaceError, PrefixDeclaration};

use super::fault::Fault;
use super::parse::{ParseLimits, SOAP11_ENV, XSI};

/// The namespace the `xml` prefix is bound to without a declaration.
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of `xmlns` declarations themselves.
const XMLNS_NAMESPACE: &str = "http://www.w3.org/2000/xmlns/";

/// Most namespace bindings in scope at once, as quick-xml's own resolver allows
/// (`quick_xml::name::DEFAULT_MAX_NAMESPACE_BINDINGS`): a hostile document cannot make
/// every prefix lookup scan an unbounded list.
const MAX_NAMESPACE_BINDINGS: usize = quick_xml::name::DEFAULT_MAX_NAMESPACE_BINDINGS;

/// Up to this many attributes in one start tag are checked for duplicates against a list
/// on the stack; a tag with more is checked by quick-xml's own (allocating) check.
const INLINE_ATTRIBUTE_KEYS: usize = 32;

/// A string of the document: a range of the decoded body, or (when it had to be put
/// together) its own string.
#[derive(Debug, Clone, Default)]
pub(super) enum Text {
    #[default]
    Empty,
    Source(Range<usize>),
    Owned(CompactString),
}

impl Text {
    fn get<'s>(&'s self, source: &'s str) -> &'s str {
        match self {
            Text::Empty => "",
            Text::Source(range) => &source[range.clone()],
            Text::Owned(text) => text,
        }
    }

    fn len(&self) -> usize {
        match self {
            Text::Empty => 0,
            Text::Source(range) => range.len(),
            Text::Owned(text) => text.len(),
        }
    }

    /// Appends a piece of character data; the first piece of an element is kept as a
    /// range when it is a slice of the source.
    fn push(&mut self, source: &str, piece: Cow<'_, str>) {
        if piece.is_empty() {
            return;
        }
        match self {
            Text::Empty => {
                *self = match span_of(source, &piece) {
                    Some(range) => Text::Source(range),
                    None => Text::Owned(CompactString::from(piece)),
                }
            }
            Text::Source(range) => {
                let mut text = CompactString::with_capacity(range.len() + piece.len());
                text.push_str(&source[range.clone()]);
                text.push_str(&piece);
                *self = Text::Owned(text);
            }
            Text::Owned(text) => text.push_str(&piece),
        }
    }
}

/// Where `part` lies in `source`, when it is a slice of it.
fn span_of(source: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
    let end = start + part.len();
    (end <= source.len()).then_some(start..end)
}

/// An element's namespace.
#[derive(Debug, Clone, Default)]
enum Ns {
    #[default]
    None,
    Static(&'static str),
    Source(Range<usize>),
}

/// One element of the document. Children are linked (first child, next sibling) in
/// document order, so the whole tree is one vector.
#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    name: Range<usize>,
    namespace: Ns,
    text: Text,
    parent: Option<usize>,
    first_child: Option<usize>,
    last_child: Option<usize>,
    next_sibling: Option<usize>,
    nil: bool,
    must_understand: bool,
    inner: Range<usize>,
}

/// An element of a parsed document, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct ElementRef<'r> {
    source: &'r str,
    nodes: &'r [Node],
    index: usize,
}

impl<'r> ElementRef<'r> {
    pub(super) fn new(source: &'r str, nodes: &'r [Node], index: usize) -> Self {
        ElementRef {
            source,
            nodes,
            index,
        }
    }

    pub(super) fn index(&self) -> usize {
        self.index
    }

    fn node(&self) -> &'r Node {
        &self.nodes[self.index]
    }

    /// Local name; prefixes are never significant.
    pub fn name(&self) -> &'r str {
        &self.source[self.node().name.clone()]
    }

    /// Namespace URI, if the element is bound to one.
    pub fn namespace(&self) -> Option<&'r str> {
        match &self.node().namespace {
            Ns::None => None,
            Ns::Static(ns) => Some(ns),
            Ns::Source(range) => Some(&self.source[range.clone()]),
        }
    }

    /// Character data directly inside the element (entities resolved, CDATA included).
    pub fn text(&self) -> &'r str {
        self.node().text.get(self.source)
    }

    /// `xsi:nil="true"`.
    pub fn nil(&self) -> bool {
        self.node().nil
    }

    /// `mustUnderstand="1"` in the envelope namespace (only meaningful on header entries).
    pub fn must_understand(&self) -> bool {
        self.node().must_understand
    }

    /// Byte range of the element's content in the decoded document.
    pub fn inner(&self) -> Range<usize> {
        self.node().inner.clone()
    }

    /// The raw XML inside the element, for parameters that carry XML documents (attached
    /// data) as child elements instead of escaped text.
    pub fn inner_xml(&self) -> &'r str {
        self.source.get(self.inner()).unwrap_or("")
    }

    /// Child elements in document order.
    pub fn children(&self) -> impl Iterator<Item = ElementRef<'r>> + use<'r> {
        let (source, nodes) = (self.source, self.nodes);
        std::iter::successors(self.node().first_child, move |i| nodes[*i].next_sibling)
            .map(move |index| ElementRef::new(source, nodes, index))
    }

    /// First child with this local name.
    pub fn child(&self, name: &str) -> Option<ElementRef<'r>> {
        self.children().find(|c| c.name() == name)
    }

    /// Whether the element has element children (a structure or an array).
    pub fn is_compound(&self) -> bool {
        self.node().first_child.is_some()
    }
}

/// A namespace declaration in scope: prefix (empty for the default namespace) and URI as
/// ranges of the source, and the depth of the element that declared it.
struct Binding {
    prefix: Range<usize>,
    uri: Range<usize>,
    level: usize,
}

/// Builds the node vector while the reader walks the document.
pub(super) struct Builder<'s> {
    source: &'s str,
    limits: &'s ParseLimits,
    pub(super) nodes: Vec<Node>,
    bindings: Vec<Binding>,
    /// The innermost open element.
    open: Option<usize>,
    depth: usize,
    root_closed: bool,
}

/// The namespace bindings an element of an ICI request declares at most, in practice
/// (the envelope's three or four): room for them up front.
const EXPECTED_BINDINGS: usize = 8;

impl<'s> Builder<'s> {
    pub(super) fn new(source: &'s str, limits: &'s ParseLimits) -> Self {
        // Every element has a `<`: an upper bound on the node count, so the vector is
        // allocated once (and never more than the element limit allows).
        let tags = memchr::memchr_iter(b'<', source.as_bytes())
            .count()
            .min(limits.max_elements)
            + 1;
        Builder {
            source,
            limits,
            nodes: Vec::with_capacity(tags),
            bindings: Vec::with_capacity(EXPECTED_BINDINGS),
            open: None,
            depth: 0,
            root_closed: false,
        }
    }

    pub(super) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    pub(super) fn root(&self) -> Option<usize> {
        (self.root_closed && !self.nodes.is_empty()).then_some(0)
    }

    /// A start tag (`empty` for `<a/>`); `content_at` is where its content begins.
    pub(super) fn start(
        &mut self,
        start: &BytesStart<'_>,
        empty: bool,
        content_at: usize,
    ) -> Result<(), Fault> {
        let level = self.depth + 1;
        self.declare(start, level)?;
        let namespace = self.resolve(start.name().as_ref())?;
        if self.root_closed {
            return Err(Fault::malformed("more than one root element"));
        }
        let limits = self.limits;
        if self.depth >= limits.max_depth {
            return Err(Fault::client("XML too deep")
                .with_detail(format!("more than {} levels", limits.max_depth)));
        }
        if self.nodes.len() >= limits.max_elements {
            return Err(Fault::client("too many XML elements")
                .with_detail(format!("more than {}", limits.max_elements)));
        }
        let name = span_of(self.source, start.local_name().into_inner())
            .ok_or_else(|| Fault::malformed("element name outside the document"))?;
        let mut node = Node {
            name,
            namespace,
            parent: self.open,
            inner: content_at..content_at,
            ..Node::default()
        };
        self.read_attributes(start, &mut node)?;
        let index = self.nodes.len();
        if let Some(parent) = self.open {
            match self.nodes[parent].last_child.replace(index) {
                Some(last) => self.nodes[last].next_sibling = Some(index),
                None => self.nodes[parent].first_child = Some(index),
            }
        }
        self.nodes.push(node);
        self.open = Some(index);
        self.depth = level;
        if empty {
            self.end(content_at);
        }
        Ok(())
    }

    /// The end of the innermost open element, whose content ended at `content_end`
    /// (quick-xml has already checked that the names match).
    pub(super) fn end(&mut self, content_end: usize) -> bool {
        let Some(index) = self.open else {
            return false;
        };
        let node = &mut self.nodes[index];
        node.inner.end = content_end;
        self.open = node.parent;
        let level = self.depth;
        while self.bindings.last().is_some_and(|b| b.level >= level) {
            self.bindings.pop();
        }
        self.depth -= 1;
        if self.open.is_none() {
            self.root_closed = true;
        }
        true
    }

    /// Character data: outside the root element only white space is allowed.
    pub(super) fn text(&mut self, piece: Cow<'_, str>) -> Result<(), Fault> {
        match self.open {
            Some(index) => self.append(index, piece),
            None if piece.trim().is_empty() => Ok(()),
            None => Err(Fault::malformed("text outside the root element")),
        }
    }

    /// A CDATA section: inside the root element only.
    pub(super) fn cdata(&mut self, piece: Cow<'_, str>) -> Result<(), Fault> {
        match self.open {
            Some(index) => self.append(index, piece),
            None => Err(Fault::malformed("CDATA outside the root element")),
        }
    }

    fn append(&mut self, index: usize, piece: Cow<'_, str>) -> Result<(), Fault> {
        let text = &mut self.nodes[index].text;
        if text.len() + piece.len() > self.limits.max_text_bytes {
            return Err(text_too_long(self.limits));
        }
        text.push(self.source, piece);
        Ok(())
    }

    /// A referenced character, inside the root element only.
    pub(super) fn char(&mut self, c: char) -> Result<(), Fault> {
        let Some(index) = self.open else {
            return Err(Fault::malformed("reference outside the root element"));
        };
        let mut buf = [0u8; 4];
        // Not a slice of the source: the element's text becomes a string of its own.
        self.append(index, Cow::Borrowed(c.encode_utf8(&mut buf)))
    }

    /// Takes the element's namespace declarations into scope, with the rules (and the
    /// errors) of quick-xml's `NamespaceResolver`, which this replaces.
    fn declare(&mut self, start: &BytesStart<'_>, level: usize) -> Result<(), Fault> {
        for attr in start.attributes().with_checks(false) {
            let Ok(attr) = attr else { break };
            let Some(declaration) = attr.key.as_namespace_binding() else {
                continue;
            };
            let uri: &str = &attr.value;
            let refused = match declaration {
                PrefixDeclaration::Named("xml") if uri == XML_NAMESPACE => continue,
                PrefixDeclaration::Named("xml") => {
                    Some(NamespaceError::InvalidXmlPrefixBind(uri.to_string()))
                }
                PrefixDeclaration::Named("xmlns") => {
                    Some(NamespaceError::InvalidXmlnsPrefixBind(uri.to_string()))
                }
                PrefixDeclaration::Named(prefix) if uri == XML_NAMESPACE => {
                    Some(NamespaceError::InvalidPrefixForXml(prefix.to_string()))
                }
                PrefixDeclaration::Named(prefix) if uri == XMLNS_NAMESPACE => {
                    Some(NamespaceError::InvalidPrefixForXmlns(prefix.to_string()))
                }
                _ if self.bindings.len() >= MAX_NAMESPACE_BINDINGS => {
                    Some(NamespaceError::TooManyBindings(MAX_NAMESPACE_BINDINGS))
                }
                _ => None,
            };
            if let Some(error) = refused {
                return Err(Fault::malformed(
                    quick_xml::Error::Namespace(error).to_string(),
                ));
            }
            let prefix = match declaration {
                PrefixDeclaration::Default => Some(0..0),
                PrefixDeclaration::Named(prefix) => span_of(self.source, prefix),
            };
            let uri = if uri.is_empty() {
                Some(0..0)
            } else {
                span_of(self.source, uri)
            };
            let (Some(prefix), Some(uri)) = (prefix, uri) else {
                return Err(Fault::malformed(
                    "namespace declaration outside the document",
                ));
            };
            self.bindings.push(Binding { prefix, uri, level });
        }
        Ok(())
    }

    /// The namespace of a (qualified) element name.
    fn resolve(&self, qname: &str) -> Result<Ns, Fault> {
        let source = self.source;
        let (prefix, is_default) = match qname.split_once(':') {
            Some((prefix, _)) => (prefix, false),
            None => ("", true),
        };
        let binding = self.bindings.iter().rev().find(|b| {
            if is_default {
                b.prefix.is_empty()
            } else {
                !b.prefix.is_empty() && &source[b.prefix.clone()] == prefix
            }
        });
        match binding {
            Some(b) if b.uri.is_empty() && is_default => Ok(Ns::None),
            Some(b) if !b.uri.is_empty() => Ok(Ns::Source(b.uri.clone())),
            None if is_default => Ok(Ns::None),
            None if prefix == "xml" => Ok(Ns::Static(XML_NAMESPACE)),
            None if prefix == "xmlns" => Ok(Ns::Static(XMLNS_NAMESPACE)),
            _ => Err(Fault::malformed(format!(
                "undeclared namespace prefix {prefix:?}"
            ))),
        }
    }

    /// Checks that every attribute is well-formed and unique, and reads the two that
    /// change meaning (`xsi:nil`, `mustUnderstand`); `xsi:type`, `encodingStyle` and the
    /// rest are ignored.
    fn read_attributes(&self, start: &BytesStart<'_>, node: &mut Node) -> Result<(), Fault> {
        let mut keys = [""; INLINE_ATTRIBUTE_KEYS];
        for (count, attr) in start.attributes().with_checks(false).enumerate() {
            let attr = attr.map_err(|e| Fault::malformed(e.to_string()))?;
            let key = attr.key.into_inner();
            if count == INLINE_ATTRIBUTE_KEYS || keys[..count].contains(&key) {
                // Many attributes, or a duplicate: quick-xml's own check, from the start,
                // finds it (and words the error) as before.
                node.nil = false;
                node.must_understand = false;
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| Fault::malformed(e.to_string()))?;
                    self.read_attribute(&attr, node)?;
                }
                return Ok(());
            }
            keys[count] = key;
            self.read_attribute(&attr, node)?;
        }
        Ok(())
    }

    fn read_attribute(&self, attr: &Attribute<'_>, node: &mut Node) -> Result<(), Fault> {
        let limits = self.limits;
        if attr.value.len() > limits.max_attribute_bytes {
            return Err(Fault::client("XML attribute too long").with_detail(format!(
                "an attribute value is over {} bytes",
                limits.max_attribute_bytes
            )));
        }
        // Only two attributes mean anything, and only their prefixes are resolved.
        let key = attr.key.into_inner();
        if !(key.ends_with(":nil") || key.ends_with(":mustUnderstand")) {
            return Ok(());
        }
        let (prefix, local) = match key.split_once(':') {
            Some((prefix, local @ ("nil" | "mustUnderstand"))) => (prefix, local),
            _ => return Ok(()),
        };
        let ns = self
            .bindings
            .iter()
            .rev()
            .find(|b| !b.prefix.is_empty() && &self.source[b.prefix.clone()] == prefix)
            .filter(|b| !b.uri.is_empty())
            .map(|b| &self.source[b.uri.clone()]);
        let is_true = || {
            attr.normalized_value(XmlVersion::Implicit1_0)
                .map(|v| matches!(v.trim(), "1" | "true"))
                .unwrap_or(false)
        };
        match (ns, local) {
            (Some(XSI), "nil") => node.nil = is_true(),
            (Some(SOAP11_ENV), "mustUnderstand") => node.must_understand = is_true(),
            _ => {}
        }
        Ok(())
    }
}

fn text_too_long(limits: &ParseLimits) -> Fault {
    Fault::client("XML text too long").with_detail(format!(
        "an element's text is over {} bytes",
        limits.max_text_bytes
    ))
}
