//! Numbers with a home dial plan: a German trunk's national and local caller numbers reach
//! SAP in E.164 (remote address and parties), the raw values beside them.

use crate::common;

use common::fake_sap::FakeSap;
use common::server::{TestServer, text_of};
use ici_connector::soap::{Element, parse_request};
use serde_json::json;

const BERLIN: &str = r#"
[switch.sim]
extensions = ["2001", "2002"]
remote_answer_after = "off"

[numbers]
home_country = "DE"
area_code = "30"
"#;

fn list(call: &Element, name: &str) -> Vec<String> {
    call.child(name)
        .map(|p| p.children.iter().map(|c| c.text.to_string()).collect())
        .unwrap_or_default()
}

/// The next `phoneCallChanged` (login may have sent a `workmodeChanged` first).
async fn next_call_event(sap: &mut FakeSap) -> common::fake_sap::Received {
    loop {
        let event = sap.next_event().await;
        if event.name == "phoneCallChanged" {
            return event;
        }
    }
}

/// Rings 2001 from `from` and returns the `phoneCall` of the alerting event.
async fn alerting_from(server: &TestServer, sap: &mut FakeSap, from: &str) -> Element {
    let (status, body) = server
        .sim("POST", "/calls", json!({"from": from, "to": "2001"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let event = next_call_event(sap).await;
    let request = parse_request(event.body.as_bytes()).unwrap();
    let call = request.operation.child("phoneCall").unwrap().clone();
    assert_eq!(text_of(&call, "state"), "alerting", "{}", event.body);
    let (status, _) = server
        .sim(
            "POST",
            &format!("/calls/{}/hangup", text_of(&call, "callId")),
            json!(null),
        )
        .await;
    assert_eq!(status, 200);
    let dropped = next_call_event(sap).await;
    assert!(dropped.body.contains("dropped"), "{}", dropped.body);
    call
}

#[tokio::test]
async fn national_and_local_callers_reach_sap_in_e164_with_the_raw_beside() {
    let server = TestServer::start(BERLIN).await;
    let mut sap = FakeSap::start().await;
    server.log_in("A1", "2001", &sap.url, "app", 2).await;

    let national = alerting_from(&server, &mut sap, "030 1234567").await;
    assert_eq!(text_of(&national, "remoteAddress"), "+49301234567");
    assert_eq!(text_of(&national, "remoteAddressRaw"), "030 1234567");
    assert_eq!(list(&national, "parties"), ["+49301234567"]);
    assert_eq!(list(&national, "partiesRaw"), ["030 1234567"]);

    let local = alerting_from(&server, &mut sap, "1234567").await;
    assert_eq!(text_of(&local, "remoteAddress"), "+49301234567");
    assert_eq!(text_of(&local, "remoteAddressRaw"), "1234567");

    let mobile = alerting_from(&server, &mut sap, "sip:01711234567@trunk").await;
    assert_eq!(text_of(&mobile, "remoteAddress"), "+491711234567");
    assert_eq!(list(&mobile, "partiesRaw"), ["sip:01711234567@trunk"]);

    // An internal caller keeps the vendor's rules: an extension, not a Berlin number.
    let internal = alerting_from(&server, &mut sap, "2002").await;
    assert_eq!(text_of(&internal, "remoteAddress"), "+2002");
    server.stop().await;
}

#[test]
fn check_config_names_the_home_dial_plan_keys() {
    let bad = ici_connector::config::Config::from_toml_str(
        "[numbers]\nhome_country = \"Germany\"\nextension_max_digits = 20\n",
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("numbers.home_country"), "{bad}");
    let orphan = ici_connector::config::Config::from_toml_str("[numbers]\narea_code = \"30\"\n")
        .unwrap_err()
        .to_string();
    assert!(orphan.contains("numbers.area_code"), "{orphan}");
    let letters = ici_connector::config::Config::from_toml_str(
        "[numbers]\nhome_country = \"DE\"\narea_code = \"thirty\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(letters.contains("numbers.area_code"), "{letters}");
}
