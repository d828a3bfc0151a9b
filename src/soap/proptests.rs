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
        text().prop_map(Value::Text),
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
