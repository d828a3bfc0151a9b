//! Reading an operation's parameters by their catalog names and aliases (ICI.md 3.2):
//! matched by local name, prefixes and `xsi:type` ignored, unknown elements skipped.

use crate::soap::{ElementRef, Envelope};

use super::catalog::{OpKind, Param};
use super::error::IciError;

/// The parameters of one request. Each is read by the catalog constant that describes it
/// (name and aliases), so there is nothing to look up and nothing to get wrong at run time.
pub struct Args<'a> {
    request: &'a Envelope<'a>,
    operation: OpKind,
}

impl<'a> Args<'a> {
    pub fn new(request: &'a Envelope<'a>, operation: OpKind) -> Self {
        Args { request, operation }
    }

    /// The operation being read, for errors.
    pub fn operation(&self) -> OpKind {
        self.operation
    }

    /// Every element that carries the parameter (lists may arrive as repeated elements).
    fn elements(&self, param: &'static Param) -> impl Iterator<Item = ElementRef<'a>> + use<'a> {
        self.request.operation().children().filter(move |e| {
            let name = e.name();
            name == param.name || param.aliases.contains(&name)
        })
    }

    /// The error for a required parameter that is absent.
    pub fn missing(&self, param: &Param) -> IciError {
        IciError::MissingParameter {
            operation: self.operation,
            parameter: param.name,
        }
    }

    /// A text parameter, trimmed; `None` when absent, nil or empty.
    pub fn opt_text(&self, param: &'static Param) -> Option<&'a str> {
        self.elements(param)
            .find(|e| !e.nil())
            .map(|e| e.text().trim())
            .filter(|t| !t.is_empty())
    }

    /// A required text parameter.
    pub fn text(&self, param: &'static Param) -> Result<&'a str, IciError> {
        self.opt_text(param).ok_or_else(|| self.missing(param))
    }

    /// A parameter that carries an XML document: escaped text (the usual case) or, from
    /// clients that embed it, child elements taken verbatim.
    pub fn opt_document(&self, param: &'static Param) -> Option<String> {
        let element = self.elements(param).find(|e| !e.nil())?;
        let doc = if element.is_compound() {
            element.inner_xml().trim().to_string()
        } else {
            element.text().trim().to_string()
        };
        (!doc.is_empty()).then_some(doc)
    }

    /// An integer parameter; `None` when absent.
    pub fn opt_int(&self, param: &'static Param) -> Result<Option<i64>, IciError> {
        match self.opt_text(param) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| IciError::NotAnInteger {
                operation: self.operation,
                parameter: param.name,
                value: text.to_string(),
            }),
        }
    }

    /// A required integer parameter.
    pub fn int(&self, param: &'static Param) -> Result<i64, IciError> {
        self.opt_int(param)?.ok_or_else(|| self.missing(param))
    }

    /// A list of strings: SOAP-encoded (`<item>` children, whatever their name), repeated
    /// elements, or a single value. Empty items are dropped.
    pub fn list(&self, param: &'static Param) -> Vec<String> {
        let mut out = Vec::new();
        for element in self.elements(param).filter(|e| !e.nil()) {
            if element.is_compound() {
                out.extend(element.children().map(|c| c.text().trim().to_string()));
            } else {
                out.push(element.text().trim().to_string());
            }
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ici::catalog::{lookup, param};
    use crate::soap::parse_envelope;

    fn request(body: &str) -> (Envelope<'static>, OpKind) {
        let xml = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>{body}</e:Body></e:Envelope>"#
        );
        let xml: &'static str = Box::leak(xml.into_boxed_str());
        let req = parse_envelope(xml.as_bytes()).unwrap();
        let (kind, _) = lookup(req.namespace(), req.operation_name()).unwrap();
        (req, kind)
    }

    #[test]
    fn aliases_and_lists_in_every_shape() {
        let shapes = [
            r#"<u:setCurrentChannels xmlns:u="urn:IciUserInterface"><user>A</user><channels><item>phone</item><item>chat</item></channels></u:setCurrentChannels>"#,
            r#"<setCurrentChannels xmlns="urn:IciUserInterface"><userId>A</userId><channels>phone</channels><channels>chat</channels></setCurrentChannels>"#,
            r#"<u:setCurrentChannels xmlns:u="urn:IciUserInterface" xmlns:enc="http://schemas.xmlsoap.org/soap/encoding/"><userId> A </userId><extra>x</extra><channels enc:arrayType="xsd:string[2]"><string>phone</string><string>chat</string><string/></channels></u:setCurrentChannels>"#,
        ];
        for shape in shapes {
            let (req, spec) = request(shape);
            let args = Args::new(&req, spec);
            assert_eq!(args.text(&param::USER_ID).unwrap(), "A");
            assert_eq!(args.list(&param::CHANNELS), ["phone", "chat"]);
        }
    }

    #[test]
    fn missing_and_wrong_types_are_client_faults() {
        let (req, spec) = request(
            r#"<u:setCurrentWorkmode xmlns:u="urn:IciUserInterface"><workmode>two</workmode></u:setCurrentWorkmode>"#,
        );
        let args = Args::new(&req, spec);
        assert_eq!(
            args.text(&param::USER_ID).unwrap_err().fault().string,
            "missing parameter"
        );
        assert_eq!(
            args.int(&param::WORKMODE).unwrap_err().fault().string,
            "wrong parameter type"
        );
    }

    #[test]
    fn documents_as_text_or_elements() {
        let (req, spec) = request(
            r#"<i:setAttachedData xmlns:i="urn:IciItemInterface"><itemId>1</itemId><attachedData>&lt;ItemAttachedData/&gt;</attachedData></i:setAttachedData>"#,
        );
        assert_eq!(
            Args::new(&req, spec)
                .opt_document(&param::ATTACHED_DATA)
                .unwrap(),
            "<ItemAttachedData/>"
        );
        let (req, spec) = request(
            r#"<i:setAttachedData xmlns:i="urn:IciItemInterface"><itemId>1</itemId><attachedData><ItemAttachedData><Application id="A">x</Application></ItemAttachedData></attachedData></i:setAttachedData>"#,
        );
        assert_eq!(
            Args::new(&req, spec)
                .opt_document(&param::ATTACHED_DATA)
                .unwrap(),
            r#"<ItemAttachedData><Application id="A">x</Application></ItemAttachedData>"#
        );
    }
}
