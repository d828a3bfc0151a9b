//! Characters XML 1.0 does not allow (most C0 controls, U+FFFE, U+FFFF) through the real
//! server: refused on input with a Client fault that changes nothing, never written out,
//! also when the switch hands them over in a call's attributes.

use crate::common;

use common::fake_sap::FakeSap;
use common::server::{SoapAnswer, TestServer, envelope_as, params, text_of};
use ici_connector::soap::parse_request;
use serde_json::json;

const BASE: &str = r#"
[switch.sim]
extensions = ["2001"]
remote_answer_after = "off"
"#;

const AGENT: &str = "A1";
const GOOD: &str =
    r#"<ItemAttachedData><Application id="IVR"><pin>1234</pin></Application></ItemAttachedData>"#;

/// Whether `text` has a character XML 1.0 does not allow.
fn has_invalid_xml_char(text: &str) -> bool {
    text.chars().any(|c| {
        !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            && c < '\u{10000}'
    })
}

fn assert_client_fault(answer: &SoapAnswer, what: &str) {
    let (code, _) = answer.fault();
    assert_eq!(code, "SOAP-ENV:Client", "{what}: {}", answer.body);
}

/// A1 logged in at 2001 with a call alerting there; returns the call id.
async fn agent_with_a_call(server: &TestServer, sap: &mut FakeSap) -> String {
    server.log_in(AGENT, "2001", &sap.url, "app", 2).await;
    assert_eq!(sap.next_event().await.name, "workmodeChanged");
    let (status, value) = server
        .sim(
            "POST",
            "/calls",
            json!({"from": "+4930123456", "to": "2001"}),
        )
        .await;
    assert_eq!(status, 201, "{value}");
    let call = value["callId"].as_str().unwrap().to_string();
    assert_eq!(
        sap.next_event().await.field("state").as_deref(),
        Some("alerting")
    );
    call
}

async fn get_attached(server: &TestServer, call: &str) -> String {
    let answer = server
        .post(envelope_as(
            AGENT,
            "Item",
            "getAttachedData",
            &params(&[("itemId", call)]),
        ))
        .await;
    assert!(!has_invalid_xml_char(&answer.body), "{:?}", answer.body);
    answer.ret().text.to_string()
}

#[tokio::test]
async fn control_characters_in_attached_data_are_a_client_fault_and_change_nothing() {
    let server = TestServer::start(BASE).await;
    let mut sap = FakeSap::start().await;
    let call = agent_with_a_call(&server, &mut sap).await;
    let set = |inner_xml: String| {
        envelope_as(
            AGENT,
            "Item",
            "setAttachedData",
            &format!("<itemId>{call}</itemId><attachedData>{inner_xml}</attachedData>"),
        )
    };
    // The document travels as escaped text; a control character can sit in the request
    // itself (raw or as a character reference) or in the escaped document (`&amp;#1;`).
    let escaped = |pin: &str| {
        quick_xml::escape::escape(format!(
            r#"<ItemAttachedData><Application id="IVR"><pin>{pin}</pin></Application></ItemAttachedData>"#
        ))
        .into_owned()
    };
    let reference = |r: &str| escaped("1@2").replace('@', r);
    server.post(set(escaped("1234"))).await.ok();
    assert_eq!(get_attached(&server, &call).await, GOOD);

    let attempts = [
        ("raw U+0001", escaped("12\u{1}34")),
        ("raw ESC", escaped("\u{1b}[2J")),
        ("raw NUL", escaped("12\u{0}34")),
        ("raw U+FFFF", escaped("12\u{ffff}34")),
        ("reference &#1;", reference("&#1;")),
        ("reference &#x1b;", reference("&#x1b;")),
        ("reference &#0;", reference("&#0;")),
        ("escaped reference &#1;", escaped("1&#1;2")),
        ("escaped reference &#x1B;", escaped("1&#x1B;2")),
        (
            "escaped reference in an attribute",
            quick_xml::escape::escape(
                r#"<ItemAttachedData><Application id="I&#x1;"/></ItemAttachedData>"#,
            )
            .into_owned(),
        ),
    ];
    for (what, inner) in attempts {
        assert_client_fault(&server.post(set(inner)).await, what);
        assert_eq!(get_attached(&server, &call).await, GOOD, "{what}");
    }
    // The same characters as child elements instead of escaped text.
    assert_client_fault(
        &server
            .post(set(
                r#"<ItemAttachedData><Application id="IVR"><pin>1&#1;2</pin></Application></ItemAttachedData>"#
                    .to_string(),
            ))
            .await,
        "reference in embedded elements",
    );
    assert_eq!(get_attached(&server, &call).await, GOOD);
    // Anywhere in the request: a header, a parameter.
    assert_client_fault(
        &server
            .post(envelope_as(
                "A\u{1}1",
                "Item",
                "getAttachedData",
                &params(&[("itemId", &call)]),
            ))
            .await,
        "raw in the user header",
    );
    server.stop().await;
}

#[tokio::test]
async fn control_characters_from_the_switch_never_reach_sap_raw() {
    let server = TestServer::start(BASE).await;
    let mut sap = FakeSap::start().await;
    server.log_in(AGENT, "2001", &sap.url, "app", 2).await;
    assert_eq!(sap.next_event().await.name, "workmodeChanged");
    let (status, value) = server
        .sim(
            "POST",
            "/calls",
            json!({
                "from": "sip:55\u{1}5@example.com",
                "to": "2001",
                "attributes": {
                    "ani": "+49\u{1b}[31m30\u{0}1",
                    "Sap_Cad": "<ItemAttachedData><Application id=\"IVR\">a\u{1}b</Application></ItemAttachedData>",
                },
            }),
        )
        .await;
    assert_eq!(status, 201, "{value}");
    let call = value["callId"].as_str().unwrap().to_string();

    let event = sap.next_event().await;
    assert!(!has_invalid_xml_char(&event.body), "{:?}", event.body);
    let request = parse_request(event.body.as_bytes())
        .unwrap_or_else(|f| panic!("the event is not well-formed ({f}): {:?}", event.body));
    let pc = request.operation.child("phoneCall").expect("phoneCall");
    assert_eq!(text_of(pc, "state"), "alerting");
    let raw = text_of(pc, "remoteAddressRaw");
    assert!(
        raw.starts_with("+49") && raw.ends_with("30\u{fffd}1"),
        "{raw:?}"
    );
    // Data the switch sends that is not XML 1.0 is not attached data.
    assert!(
        pc.child("attachedData").is_none_or(|e| e.nil),
        "{:?}",
        event.body
    );

    // The answers about the call are well-formed too.
    let answer = server
        .post(envelope_as(
            AGENT,
            "PhoneCall",
            "getPhoneCallAttributes",
            &params(&[("callId", &call)]),
        ))
        .await;
    assert!(!has_invalid_xml_char(&answer.body), "{:?}", answer.body);
    assert_eq!(text_of(answer.ret(), "remoteAddressRaw"), raw);
    server.stop().await;
}
