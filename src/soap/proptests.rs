//! Property tests of the wire layer: whatever we write, we read back unchanged
//! (write_call / write_response / write_fault → parse_request), and no input makes the
//! parser panic.

use proptest::prelude::*;

use super::*;

/// Field names a structure may use (the writer takes `&'static str`).
const FIELDS: &[&str] = &[
    "callId",
    "state",
    "userId",
    "address",
    "queue",
    "attachedData",
];

/// Text of any XML 1.0 character except `\r` (XML normalises line ends to `\n`).
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            8 => proptest::char::range(' ', '~'),
            1 => Just('\t'),
            1 => Just('\n'),
            1 => Just('&'),
            1 => Just('<'),
            1 => Just(']'),
            2 => proptest::char::range('\u{a0}', '\u{d7ff}'),
            1 => proptest::char::range('\u{10000}', '\u{10ffff}'),
        ],
        0..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(Value::text),
        any::<i64>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Nil),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec((proptest::sample::select(FIELDS), inner), 0..6)
                .prop_map(Value::Struct),
        ]
    })
}

/// Asserts that `element` is what `value` was written as.
fn same(value: &Value, element: &Element) -> Result<(), TestCaseError> {
    match value {
        Value::Text(t) => {
            prop_assert_eq!(&element.text, t);
            prop_assert!(element.children.is_empty() && !element.nil);
        }
        Value::Int(n) => prop_assert_eq!(&element.text, &n.to_string()),
        Value::Bool(b) => prop_assert_eq!(&element.text, &b.to_string()),
        Value::Nil => prop_assert!(element.nil && element.children.is_empty()),
        Value::List(items) => {
            prop_assert_eq!(items.len(), element.children.len());
            for (item, child) in items.iter().zip(&element.children) {
                prop_assert_eq!(&child.name, "item");
                same(item, child)?;
            }
        }
        Value::Struct(fields) => {
            prop_assert_eq!(fields.len(), element.children.len());
            for ((name, field), child) in fields.iter().zip(&element.children) {
                prop_assert_eq!(&child.name, name);
                same(field, child)?;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn call_round_trips(
        params in proptest::collection::vec((proptest::sample::select(FIELDS), value()), 0..5),
        operation in "[a-z][A-Za-z]{0,20}",
    ) {
        let xml = write_call("urn:IciEventInterface", &operation, &params);
        let request = parse_request(xml.as_bytes()).map_err(|f| TestCaseError::fail(format!("{f}: {xml}")))?;
        prop_assert_eq!(request.operation_name(), operation.as_str());
        prop_assert_eq!(request.namespace(), Some("urn:IciEventInterface"));
        prop_assert_eq!(request.operation.children.len(), params.len());
        for ((name, value), child) in params.iter().zip(&request.operation.children) {
            prop_assert_eq!(&child.name, name);
            same(value, child)?;
        }
    }

    #[test]
    fn response_round_trips(result in proptest::option::of(value())) {
        let xml = write_response("urn:IciUserInterface", "getAttributes", result.as_ref());
        let request = parse_request(xml.as_bytes()).map_err(|f| TestCaseError::fail(format!("{f}: {xml}")))?;
        prop_assert_eq!(request.operation_name(), "getAttributesResponse");
        match &result {
            None => prop_assert!(request.operation.children.is_empty()),
            Some(value) => same(value, request.operation.child("return").unwrap())?,
        }
    }

    /// Responses and calls are written into a buffer sized once: it never grows while
    /// writing unless escaping lengthens a text.
    #[test]
    fn messages_are_written_into_one_buffer(result in value()) {
        fn escapes(v: &Value) -> bool {
            match v {
                Value::Text(t) => t.contains(['&', '<', '>', '"', '\'']),
                Value::Struct(fields) => fields.iter().any(|(_, v)| escapes(v)),
                Value::List(items) => items.iter().any(escapes),
                _ => false,
            }
        }
        prop_assume!(!escapes(&result));
        // A buffer that grew has a capacity other than the one it was sized with.
        let (ns, op) = ("urn:IciUserInterface", "getAttributes");
        let response = write_response(ns, op, Some(&result));
        let sized = write::envelope_len(ns, op) + write::written_len("return", &result);
        prop_assert_eq!(response.capacity(), sized);
        let (ns, op) = ("urn:IciEventInterface", "phoneCallChanged");
        let call = write_call(ns, op, &[("v", result.clone())]);
        prop_assert_eq!(call.capacity(), write::envelope_len(ns, op) + write::written_len("v", &result));
    }

    #[test]
    fn fault_round_trips(string in text(), detail in proptest::option::of(text())) {
        let fault = Fault::client(string.clone()).with_detail(detail.clone().unwrap_or_default());
        let xml = write_fault(&fault);
        let request = parse_request(xml.as_bytes()).map_err(|f| TestCaseError::fail(format!("{f}: {xml}")))?;
        prop_assert_eq!(request.operation_name(), "Fault");
        prop_assert_eq!(&request.operation.child("faultstring").unwrap().text, &string);
    }

    #[test]
    fn any_string_is_written_well_formed(raw in any::<String>()) {
        // Values from the switch may hold anything: what we write still parses, and reads
        // back with only the characters XML 1.0 forbids replaced.
        let xml = write_call("urn:IciEventInterface", "e", &[("v", Value::text(raw.clone()))]);
        prop_assert_eq!(chars::first_invalid(&xml), None);
        let request = parse_request(xml.as_bytes()).map_err(|f| TestCaseError::fail(format!("{f}: {xml:?}")))?;
        let expected: String = raw
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .chars()
            .map(|c| if chars::is_xml_char(c) { c } else { chars::REPLACEMENT })
            .collect();
        prop_assert_eq!(&request.operation.child("v").unwrap().text, &expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = parse_request(&bytes) {
            // Whatever is accepted holds only characters XML 1.0 allows.
            fn clean(e: &Element) -> bool {
                chars::first_invalid(&e.text).is_none() && e.children.iter().all(clean)
            }
            prop_assert!(clean(&request.operation), "{:?}", bytes);
        }
    }

    #[test]
    fn forbidden_characters_are_refused_raw_or_referenced(
        code in prop_oneof![0u32..0x20, Just(0xFFFE), Just(0xFFFF)],
        referenced in any::<bool>(),
        hex in any::<bool>(),
    ) {
        prop_assume!(!matches!(code, 0x9 | 0xA | 0xD));
        let c = match (referenced, hex) {
            (false, _) => char::from_u32(code).unwrap().to_string(),
            (true, true) => format!("&#x{code:x};"),
            (true, false) => format!("&#{code};"),
        };
        let xml = write_call("urn:IciUserInterface", "getAttributes", &[("userId", Value::text("U@1"))])
            .replace('@', &c);
        let fault = parse_request(xml.as_bytes()).expect_err(&xml);
        prop_assert_eq!(fault.code, FaultCode::Client);
    }

    #[test]
    fn mutated_envelopes_never_panic(
        cut in 0usize..600,
        insert in proptest::collection::vec(any::<u8>(), 0..8),
        at in 0usize..600,
    ) {
        let mut bytes = write_call(
            "urn:IciUserInterface",
            "getAttributes",
            &[("userId", Value::text("U1")), ("list", Value::text_list(["a", "b"]))],
        )
        .into_bytes();
        bytes.truncate(cut.max(1).min(bytes.len()));
        let at = at.min(bytes.len());
        bytes.splice(at..at, insert);
        let _ = parse_request(&bytes);
    }
}

/// Real envelopes the differential test mutates.
const BASES: &[&str] = &[
    include_str!("../../tests/fixtures/soap/examples/01-getAttributes.xml"),
    include_str!("../../tests/fixtures/soap/examples/09-setAttachedData.xml"),
    include_str!("../../tests/fixtures/soap/examples/11-dial.xml"),
    include_str!("../../tests/fixtures/soap/examples/12-getCalls.xml"),
    r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><SOAP-ENV:Header><pre:user xmlns:pre="urn:IciUserInterface" SOAP-ENV:mustUnderstand="0" xsi:type="xsd:string">CRMFOSOUT</pre:user><pre:language xmlns:pre="urn:IciUserInterface" SOAP-ENV:mustUnderstand="0" xsi:type="xsd:string">EN</pre:language></SOAP-ENV:Header><SOAP-ENV:Body><ns0:getAttributes xmlns:ns0="urn:IciUserInterface"><userId xmlns="urn:IciUserInterface">CRMFOSOUT</userId></ns0:getAttributes></SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
];

/// Pieces inserted into them: the shapes where the borrowed parser does work of its own
/// (namespace scopes and their errors, empty elements, attribute checks, texts put
/// together from references, CDATA and line ends).
const PIECES: &[&str] = &[
    "<a/>",
    "<a></a>",
    "<p:a xmlns:p=\"urn:x\"/>",
    "<q:a/>",
    "<xml:a/>",
    "<xmlns:a/>",
    " xmlns=\"\"",
    " xmlns=\"urn:d\"",
    " xmlns:p=\"\"",
    " xmlns:=\"urn:e\"",
    " xmlns:xml=\"urn:x\"",
    " xmlns:xml=\"http://www.w3.org/XML/1998/namespace\"",
    " xmlns:xmlns=\"u\"",
    " xmlns:p=\"http://www.w3.org/XML/1998/namespace\"",
    " xmlns:p=\"http://www.w3.org/2000/xmlns/\"",
    " a=\"1\" a=\"2\"",
    " b=\"1\"",
    " xsi:nil=\"true\"",
    " xsi:nil=\" 1 \"",
    " SOAP-ENV:mustUnderstand=\"1\"",
    "&amp;",
    "&#65;",
    "&#x1;",
    "&bogus;",
    "<![CDATA[x\r\ny]]>",
    "\r\n",
    "\r",
    "  ",
    "<!-- c -->",
    "<?pi x?>",
    "<!DOCTYPE a>",
    "</a>",
    "<",
    ">",
    "\"",
    "=",
    ":",
    "é",
];

/// Where a piece goes: anywhere, into the attributes of a start tag (before its `>` or
/// `/>`), or into an element's content (after a `>`).
#[derive(Debug, Clone, Copy)]
enum At {
    Byte(usize),
    InTag(usize),
    InContent(usize),
}

fn position(bytes: &[u8], at: At) -> usize {
    let tag_ends: Vec<usize> = (0..bytes.len()).filter(|i| bytes[*i] == b'>').collect();
    let nth = |k: usize| tag_ends.get(k % tag_ends.len().max(1)).copied();
    match at {
        At::Byte(i) => i % (bytes.len() + 1),
        At::InTag(k) => match nth(k) {
            Some(i) if i > 0 && bytes[i - 1] == b'/' => i - 1,
            Some(i) => i,
            None => 0,
        },
        At::InContent(k) => nth(k).map_or(0, |i| i + 1),
    }
}

fn mutation() -> impl Strategy<Value = (At, Vec<u8>)> {
    (
        prop_oneof![
            any::<usize>().prop_map(At::Byte),
            any::<usize>().prop_map(At::InTag),
            any::<usize>().prop_map(At::InContent),
        ],
        prop_oneof![
            4 => proptest::sample::select(PIECES).prop_map(|p| p.as_bytes().to_vec()),
            1 => proptest::collection::vec(any::<u8>(), 0..4),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The borrowed parser reads every input as the owned parser it replaced did: the
    /// same tree, or the same fault (code, string and detail), with default and with
    /// tight limits.
    #[test]
    fn borrowed_parser_agrees_with_the_one_it_replaced(
        base in proptest::sample::select(BASES),
        mutations in proptest::collection::vec(mutation(), 0..4),
        cut in proptest::option::weighted(0.2, any::<usize>()),
        tight in any::<bool>(),
    ) {
        let mut bytes = base.as_bytes().to_vec();
        for (at, piece) in mutations {
            let at = position(&bytes, at);
            bytes.splice(at..at, piece);
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let limits = if tight {
            ParseLimits { max_depth: 5, max_elements: 12, max_text_bytes: 16, max_attribute_bytes: 24 }
        } else {
            ParseLimits::DEFAULT
        };
        let new = parse_request_with(&bytes, &limits);
        let old = super::oracle::parse_request_with(&bytes, &limits);
        prop_assert_eq!(new, old, "{}", String::from_utf8_lossy(&bytes));
    }
}
