//! The SOAP request parser on arbitrary bytes, with the default and with tight limits:
//! it must answer `Ok` or a fault, never panic, stay within its limits, and let no
//! character XML 1.0 forbids into what it accepts.
#![no_main]

use ici_connector::soap::{ParseLimits, parse_request, parse_request_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_request(data);
    let tight = ParseLimits {
        max_depth: 6,
        max_elements: 64,
        max_text_bytes: 256,
        max_attribute_bytes: 64,
    };
    if let Ok(request) = parse_request_with(data, &tight) {
        // What passed the limits obeys them.
        fn check(e: &ici_connector::soap::Element, depth: usize) {
            assert!(depth <= 6 && e.text.len() <= 256);
            assert_eq!(ici_connector::soap::chars::first_invalid(&e.text), None);
            for child in &e.children {
                check(child, depth + 1);
            }
        }
        check(&request.operation, 3);
    }
    // The borrowed parse the server does, and what the ICI layer makes of it.
    if let Ok(envelope) = ici_connector::soap::parse_envelope_with(data, &tight) {
        let _ = ici_connector::ici::resolve(&envelope);
    }
});
