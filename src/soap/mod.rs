//! The SOAP 1.1 wire layer: pure functions, no I/O, no state.
//!
//! [`parse_envelope`] turns request bytes into headers and an operation element borrowed
//! from them (or a [`Fault`]), [`parse_request`] into an owned tree; [`write_response`],
//! [`write_call`] and [`write_fault`] produce envelopes.
//! What the operation means is the `ici` module's business.

pub mod chars;
mod fault;
#[cfg(test)]
mod oracle;
mod parse;
#[cfg(test)]
mod proptests;
mod tree;
mod write;

pub use fault::{Fault, FaultCode};
pub use parse::{
    Element, Envelope, Headers, INTERNED_NAMESPACES, ParseLimits, Request, SOAP11_ENV, SOAP12_ENV,
    XSI, parse_envelope, parse_envelope_with, parse_request, parse_request_with,
};
pub use tree::ElementRef;
pub use write::{Value, XML_CHARS_REPLACED, write_call, write_fault, write_response};

#[cfg(test)]
mod tests {
    use super::*;

    const VENDOR_TRACE: &str = include_str!("../../tests/fixtures/soap/vendor-trace.http");

    fn vendor_body() -> &'static str {
        VENDOR_TRACE.split_once("\r\n\r\n").unwrap().1
    }

    fn user_param(req: &Request) -> &str {
        &req.operation.child("userId").unwrap().text
    }

    #[test]
    fn vendor_trace_parses() {
        let req = parse_request(vendor_body().as_bytes()).unwrap();
        assert_eq!(req.operation_name(), "getAttributes");
        assert_eq!(req.namespace(), Some("urn:IciUserInterface"));
        assert_eq!(req.headers.user.as_deref(), Some("CRMFOSOUT"));
        assert_eq!(req.headers.language.as_deref(), Some("EN"));
        assert_eq!(user_param(&req), "CRMFOSOUT");
    }

    #[test]
    fn toolkit_shapes_parse() {
        let shapes = [
            // zeep: unqualified headers, literal
            r#"<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Header><user>U1</user><language>EN</language></soap-env:Header><soap-env:Body><ns0:getAttributes xmlns:ns0="urn:IciUserInterface"><userId>U1</userId></ns0:getAttributes></soap-env:Body></soap-env:Envelope>"#,
            // suds: the envelope namespace bound to two prefixes
            r#"<SOAP-ENV:Envelope xmlns:ns0="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns2="urn:IciUserInterface" xmlns:ns1="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><SOAP-ENV:Header><user xsi:type="ns1:string">U1</user></SOAP-ENV:Header><ns0:Body><ns2:getAttributes><userId xsi:type="ns1:string">U1</userId></ns2:getAttributes></ns0:Body></SOAP-ENV:Envelope>"#,
            // SOAP::Lite: default namespace on the operation
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" soap:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><soap:Header><namesp1:user soap:mustUnderstand="0" xmlns:namesp1="urn:IciUserInterface" xsi:type="xsd:string">U1</namesp1:user></soap:Header><soap:Body><getAttributes xmlns="urn:IciUserInterface"><userId xsi:type="xsd:string">U1</userId></getAttributes></soap:Body></soap:Envelope>"#,
            // gSOAP: mustUnderstand="1" on a header we understand
            r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns1="urn:IciUserInterface"><SOAP-ENV:Header><ns1:user SOAP-ENV:mustUnderstand="1">U1</ns1:user><ns1:language SOAP-ENV:mustUnderstand="1">EN</ns1:language></SOAP-ENV:Header><SOAP-ENV:Body SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><ns1:getAttributes><userId>U1</userId></ns1:getAttributes></SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
        ];
        for shape in shapes {
            let req = parse_request(shape.as_bytes()).unwrap_or_else(|f| panic!("{f}: {shape}"));
            assert_eq!(req.operation_name(), "getAttributes");
            assert_eq!(req.namespace(), Some("urn:IciUserInterface"));
            assert_eq!(user_param(&req), "U1");
            assert_eq!(req.headers.user.as_deref(), Some("U1"));
        }
    }

    #[test]
    fn bom_crlf_and_latin1_are_read() {
        let crlf = vendor_body().replace("><", ">\r\n<");
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(crlf.as_bytes());
        assert_eq!(user_param(&parse_request(&bom).unwrap()), "CRMFOSOUT");

        let latin1 = vendor_body()
            .replace("UTF-8", "ISO-8859-1")
            .replace(">CRMFOSOUT</userId>", ">M\u{fc}LLER</userId>");
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&latin1);
        assert!(
            bytes.contains(&0xFC),
            "the test must send a real Latin-1 byte"
        );
        assert_eq!(user_param(&parse_request(&bytes).unwrap()), "M\u{fc}LLER");
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let mut bytes = vendor_body().as_bytes().to_vec();
        let at = vendor_body().find("CRMFOSOUT</userId>").unwrap();
        bytes[at] = 0xFF;
        let fault = parse_request(&bytes).unwrap_err();
        assert_eq!(
            (fault.code, fault.string.as_ref()),
            (FaultCode::Client, "malformed XML")
        );
    }

    #[test]
    fn entities_and_cdata_in_text() {
        let body = vendor_body().replace(
            ">CRMFOSOUT</userId>",
            "><![CDATA[<a>]]>&amp;&#65;&#x42;&lt;</userId>",
        );
        assert_eq!(
            user_param(&parse_request(body.as_bytes()).unwrap()),
            "<a>&AB<"
        );
    }

    fn fault_of(xml: &str) -> Fault {
        parse_request(xml.as_bytes()).expect_err(xml)
    }

    #[test]
    fn hostile_and_broken_input_is_a_client_fault() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><getAttributes xmlns="urn:IciUserInterface"><userId>&lol2;</userId></getAttributes></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        let cases = [
            ("not xml at all", "malformed XML"),
            ("", "malformed XML"),
            (&vendor_body()[..300], "malformed XML"),
            (laughs, "DOCTYPE is not allowed"),
            (
                &vendor_body().replace(">CRMFOSOUT</userId>", ">&ext;</userId>"),
                "undefined entity",
            ),
            (
                r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"></SOAP-ENV:Envelope>"#,
                "no SOAP Body",
            ),
            (
                r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body> </SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
                "empty SOAP Body",
            ),
            ("<html><body>hi</body></html>", "not a SOAP envelope"),
            (
                &vendor_body().replace("</SOAP-ENV:Body>", "</SOAP-ENV:Bdy>"),
                "malformed XML",
            ),
            (
                &vendor_body().replace("<ns0:getAttributes", "<nsX:getAttributes"),
                "malformed XML",
            ),
        ];
        for (xml, expected) in cases {
            let fault = fault_of(xml);
            assert_eq!(fault.code, FaultCode::Client, "{xml}");
            assert_eq!(fault.string, expected, "{xml}: {fault}");
        }
    }

    #[test]
    fn characters_xml_forbids_are_refused_raw_or_referenced_anywhere() {
        let in_text =
            |t: &str| vendor_body().replace(">CRMFOSOUT</userId>", &format!(">{t}</userId>"));
        let cases = [
            in_text("A\u{1}B"),
            in_text("\u{1b}[2J"),
            in_text("\u{0}"),
            in_text("\u{FFFF}"),
            in_text("A&#1;B"),
            in_text("A&#x1b;B"),
            in_text("A&#xFFFE;B"),
            in_text("<![CDATA[\u{8}]]>"),
            vendor_body().replace("EN</pre:language>", "E\u{2}N</pre:language>"),
            vendor_body().replace("<ns0:getAttributes ", "<ns0:getAttributes x=\"\u{1}\" "),
            vendor_body().replace("<SOAP-ENV:Body>", "<!-- \u{7} --><SOAP-ENV:Body>"),
        ];
        for xml in &cases {
            let fault = fault_of(xml);
            assert_eq!(
                (fault.code, fault.string.as_ref()),
                (FaultCode::Client, "invalid XML character"),
                "{xml:?}"
            );
        }
        // Tab, line feed, carriage return and everything from U+0020 on are characters.
        let fine = in_text("A\tB\n&#9;&#xA;&#13;\u{7f}\u{85}\u{FFFD}&#x10FFFF;");
        assert!(parse_request(fine.as_bytes()).is_ok());
    }

    #[test]
    fn the_writer_never_writes_what_xml_forbids() {
        let nasty = "a\u{1}b\u{1b}[31m\u{0}\u{FFFE}c";
        let xml = write_call(
            "urn:IciEventInterface",
            "phoneCallChanged",
            &[("remoteAddressRaw", Value::text(nasty))],
        );
        let req = parse_request(xml.as_bytes()).expect("what we write is well-formed");
        assert_eq!(
            req.operation.child("remoteAddressRaw").unwrap().text,
            "a\u{FFFD}b\u{FFFD}[31m\u{FFFD}\u{FFFD}c"
        );
        let fault = write_fault(&Fault::client(nasty).with_detail(nasty));
        assert_eq!(chars::first_invalid(&fault), None);
    }

    #[test]
    fn soap12_is_version_mismatch() {
        let body = vendor_body().replace(SOAP11_ENV, SOAP12_ENV);
        assert_eq!(fault_of(&body).code, FaultCode::VersionMismatch);
    }

    #[test]
    fn unknown_must_understand_header_is_refused_and_others_ignored() {
        let ignored = vendor_body().replace(
            "<SOAP-ENV:Header>",
            r#"<SOAP-ENV:Header><x:trace xmlns:x="urn:other" SOAP-ENV:mustUnderstand="0">1</x:trace>"#,
        );
        assert!(parse_request(ignored.as_bytes()).is_ok());
        let refused = ignored.replace(r#"mustUnderstand="0">1"#, r#"mustUnderstand="1">1"#);
        assert_eq!(fault_of(&refused).code, FaultCode::MustUnderstand);
    }

    #[test]
    fn limits_bound_depth_and_element_count() {
        let deep = vendor_body().replace(
            ">CRMFOSOUT</userId>",
            &format!(">{}{}</userId>", "<a>".repeat(40), "</a>".repeat(40)),
        );
        assert_eq!(fault_of(&deep).string, "XML too deep");
        let wide = vendor_body().replace(
            ">CRMFOSOUT</userId>",
            &format!(">{}</userId>", "<a/>".repeat(20_000)),
        );
        assert_eq!(fault_of(&wide).string, "too many XML elements");
    }

    #[test]
    fn inner_xml_keeps_embedded_documents() {
        let body = vendor_body().replace(
            ">CRMFOSOUT</userId>",
            r#"><ItemAttachedData><Application id="IVR">x</Application></ItemAttachedData></userId>"#,
        );
        let req = parse_request(body.as_bytes()).unwrap();
        let param = req.operation.child("userId").unwrap();
        assert_eq!(
            req.inner_xml(param),
            r#"<ItemAttachedData><Application id="IVR">x</Application></ItemAttachedData>"#
        );
    }

    #[test]
    fn written_messages_parse_back() {
        let value = Value::Struct(vec![
            ("userId", Value::text("A&B <x>")),
            ("channels", Value::text_list(["phone", "chat"])),
            ("workmode", Value::Int(2)),
            ("free", Value::Bool(false)),
            ("none", Value::Nil),
        ]);
        let xml = write_call("urn:IciUserInterface", "getAttributes", &[("v", value)]);
        let req = parse_request(xml.as_bytes()).unwrap();
        let v = req.operation.child("v").unwrap();
        assert_eq!(v.child("userId").unwrap().text, "A&B <x>");
        let channels: Vec<_> = v
            .child("channels")
            .unwrap()
            .children
            .iter()
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(channels, ["phone", "chat"]);
        assert!(v.child("none").unwrap().nil);

        let resp = write_response(
            "urn:IciUserInterface",
            "getAttributes",
            Some(&Value::text("x")),
        );
        let req = parse_request(resp.as_bytes()).unwrap();
        assert_eq!(req.operation_name(), "getAttributesResponse");
        assert_eq!(req.operation.child("return").unwrap().text, "x");

        let fault = Fault::client("unknown operation").with_detail("<foo>");
        let xml = write_fault(&fault);
        assert!(xml.contains("<faultcode>SOAP-ENV:Client</faultcode>"));
        assert!(xml.contains("&lt;foo&gt;"));
    }
}
