//! Call operations act only on the calls of the agent SAP's `user` header names: another
//! agent's call answers exactly as a call id that does not exist, and changes nothing. A
//! supervisor's `listen` / `listenEnd` is the exception. Without the header (a client that
//! is not an agent's IC session) the connector still finds the call at any agent.

use crate::common;

use common::fake_sap::FakeSap;
use common::server::{SoapAnswer, TestServer, envelope_as, params, text_of};
use serde_json::json;

const BASE: &str = r#"
[switch.sim]
extensions = ["2001", "2002", "2003"]
remote_answer_after = "off"
"#;

const CAD: &str =
    r#"<ItemAttachedData><Application id="IVR"><pin>4711</pin></Application></ItemAttachedData>"#;
const OTHER_CAD: &str =
    r#"<ItemAttachedData><Application id="IVR"><pin>0000</pin></Application></ItemAttachedData>"#;

/// An operation on AGENT1's call: interface, name, parameters besides the call id.
type Operation = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

async fn as_user(
    server: &TestServer,
    user: &str,
    interface: &str,
    op: &str,
    pairs: &[(&str, &str)],
) -> SoapAnswer {
    server
        .post(envelope_as(user, interface, op, &params(pairs)))
        .await
}

/// The `(faultcode, faultstring, detail)` of a fault answer.
fn fault_of(answer: &SoapAnswer) -> (String, String, String) {
    let (code, string) = answer.fault();
    let detail = answer
        .element
        .child("detail")
        .and_then(|d| d.child("message"))
        .map(|m| m.text.to_string())
        .unwrap_or_default();
    (code, string, detail)
}

async fn log_in(server: &TestServer, user: &str, extension: &str) -> FakeSap {
    let mut sap = FakeSap::start().await;
    server
        .log_in(user, extension, &sap.url, &format!("app-{user}"), 2)
        .await;
    assert_eq!(sap.next_event().await.name, "workmodeChanged");
    sap
}

async fn state_event(sap: &mut FakeSap) -> String {
    sap.next_event().await.field("state").unwrap_or_default()
}

#[tokio::test]
async fn another_agents_call_is_an_unknown_call() {
    let server = TestServer::start(BASE).await;
    let mut a1 = log_in(&server, "AGENT1", "2001").await;
    let mut a2 = log_in(&server, "AGENT2", "2002").await;

    let (status, value) = server
        .sim(
            "POST",
            "/calls",
            json!({"from": "+4930123456", "to": "2001"}),
        )
        .await;
    assert_eq!(status, 201, "{value}");
    let call = value["callId"].as_str().unwrap().to_string();
    assert_eq!(state_event(&mut a1).await, "alerting");
    as_user(&server, "AGENT1", "Item", "accept", &[("itemId", &call)])
        .await
        .ok();
    assert_eq!(state_event(&mut a1).await, "connected");
    as_user(
        &server,
        "AGENT1",
        "Item",
        "setAttachedData",
        &[("itemId", &call), ("attachedData", CAD)],
    )
    .await
    .ok();

    // Every call operation of AGENT2 on AGENT1's call answers what an unknown id gets.
    let operations: [Operation; 14] = [
        ("PhoneCall", "hold", &[]),
        ("PhoneCall", "unhold", &[]),
        ("PhoneCall", "drop", &[]),
        ("PhoneCall", "transfer", &[("address", "2003")]),
        ("PhoneCall", "consult", &[("address", "2003")]),
        ("PhoneCall", "dropParty", &[("address", "+4930123456")]),
        ("PhoneCall", "conference", &[("consultCallId", "sim-999")]),
        ("PhoneCall", "getPhoneCallAttributes", &[]),
        ("Item", "accept", &[]),
        ("Item", "reroute", &[]),
        ("Item", "getAttachedData", &[]),
        ("Item", "setAttachedData", &[("attachedData", OTHER_CAD)]),
        ("Item", "deleteAttachedData", &[]),
        ("PhoneCall", "alternate", &[("consultCallId", "sim-999")]),
    ];
    for (interface, op, extra) in &operations {
        let id_param = if *interface == "Item" {
            "itemId"
        } else {
            "callId"
        };
        let ask = async |id: &str| {
            let mut pairs = vec![(id_param, id)];
            pairs.extend(extra.iter().copied());
            as_user(&server, "AGENT2", interface, op, &pairs).await
        };
        let got = ask(&call).await;
        let expected = ask("sim-999").await;
        let (code, string, detail) = fault_of(&got);
        let (e_code, e_string, e_detail) = fault_of(&expected);
        assert_eq!((&code, &string), (&e_code, &e_string), "{op}: {}", got.body);
        assert!(string.starts_with("unknown"), "{op}: {}", got.body);
        // The detail names the id asked for, as for an id that does not exist.
        assert_eq!(detail.replace(&call, "sim-999"), e_detail, "{op}");
    }
    // Operations that name AGENT1's container or user: as if it did not exist.
    for (op, pairs) in [
        ("getCalls", vec![("containerId", "2001")]),
        ("dropCalls", vec![("containerId", "2001")]),
    ] {
        let got = as_user(&server, "AGENT2", "Line", op, &pairs).await;
        let expected = as_user(&server, "AGENT2", "Line", op, &[("containerId", "2999")]).await;
        assert_eq!(
            fault_of(&got).1,
            fault_of(&expected).1,
            "{op}: {}",
            got.body
        );
        assert_eq!(fault_of(&got).1, "unknown container");
    }
    let dial = as_user(
        &server,
        "AGENT2",
        "PhoneCall",
        "dial",
        &[("userId", "AGENT1"), ("address", "2003")],
    )
    .await;
    assert_eq!(fault_of(&dial).1, "unknown user", "{}", dial.body);
    // A user header that is not a user id is refused, not ignored.
    let invalid = as_user(
        &server,
        "AGENT 2",
        "PhoneCall",
        "hold",
        &[("callId", &call)],
    )
    .await;
    assert_eq!(fault_of(&invalid).1, "invalid user id");
    // A user header that names no agent at all finds no call either.
    let nobody = as_user(&server, "NOBODY", "PhoneCall", "hold", &[("callId", &call)]).await;
    assert_eq!(fault_of(&nobody).1, "unknown call");

    // Nothing changed: the call is still connected with AGENT1's data, and neither agent
    // heard of anything (the next event each gets is the one caused below).
    let answer = as_user(
        &server,
        "AGENT1",
        "PhoneCall",
        "getPhoneCallAttributes",
        &[("callId", &call)],
    )
    .await;
    assert_eq!(text_of(answer.ret(), "state"), "connected");
    assert_eq!(text_of(answer.ret(), "userId"), "AGENT1");
    let answer = as_user(
        &server,
        "AGENT1",
        "Item",
        "getAttachedData",
        &[("itemId", &call)],
    )
    .await;
    assert_eq!(answer.ret().text, CAD);
    as_user(&server, "AGENT1", "PhoneCall", "hold", &[("callId", &call)])
        .await
        .ok();
    assert_eq!(state_event(&mut a1).await, "held");
    if let Some(event) = a2.try_next_event() {
        panic!("AGENT2 heard of AGENT1's call: {}", event.body);
    }

    // Without a user header the call is found at whichever agent has it.
    server
        .call("PhoneCall", "unhold", &[("callId", &call)])
        .await
        .ok();
    assert_eq!(state_event(&mut a1).await, "connected");

    // The supervisor's exception: AGENT2 listens to AGENT1's call (and
    // sees it while listening).
    as_user(
        &server,
        "AGENT2",
        "PhoneCall",
        "listen",
        &[("callId", &call), ("userId", "AGENT2")],
    )
    .await
    .ok();
    assert_eq!(state_event(&mut a2).await, "connected");
    as_user(
        &server,
        "AGENT2",
        "PhoneCall",
        "listenEnd",
        &[("callId", &call), ("userId", "AGENT2")],
    )
    .await
    .ok();
    assert_eq!(state_event(&mut a2).await, "dropped");
    server.stop().await;
}
