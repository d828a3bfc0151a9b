//! Completing a consultation (ICI.md section 4): a warm transfer, a transfer elsewhere
//! refused while the consultation is up, alternate and reconnect in either order, and the
//! attached data riding on the switch's calls.

use super::*;

/// The IVR's data plus SAP's own application, as SAP's `setAttachedData` leaves it.
fn both_cad() -> String {
    format!(
        "<ItemAttachedData>{IVR}<Application id=\"SAP-IC\"><BUPA>0815</BUPA></Application></ItemAttachedData>"
    )
}

/// The simulator's view of a call (`GET /sim/calls`).
async fn sim_call(server: &TestServer, call: &str) -> Value {
    let calls = sim(server, "GET", "/calls", Value::Null).await;
    calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == call)
        .cloned()
        .unwrap_or_else(|| panic!("no sim call {call} in {calls}"))
}

fn sim_parties(call: &Value) -> Vec<String> {
    call["parties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["address"].as_str().unwrap().to_string())
        .collect()
}

/// A1 (ready) gets the customer's queue call and accepts it; A2 is not ready. SAP sets
/// its data on the call. Returns both sessions and the call.
async fn customer_with_a1(server: &TestServer) -> (Sap, Sap, String) {
    let mut a1 = login(server, "A1", "2001", 2).await;
    let a2 = login(server, "A2", "2002", 3).await;
    let call = ring(
        server,
        json!({"from": "+4930123456", "queue": "support",
               "attributes": {"Sap_Cad": ivr_cad()}}),
    )
    .await;
    a1.call_event(&call, "alerting").await;
    a1.op(server, "Item", "accept", &[("itemId", &call)])
        .await
        .ok();
    a1.call_event(&call, "connected").await;
    let sap_app = r#"<ItemAttachedData><Application id="SAP-IC"><BUPA>0815</BUPA></Application></ItemAttachedData>"#;
    a1.op(
        server,
        "Item",
        "setAttachedData",
        &[("itemId", &call), ("attachedData", sap_app)],
    )
    .await
    .ok();
    (a1, a2, call)
}

/// A1 consults A2 on `call` and A2 accepts: the consultation call.
async fn consult_a2(server: &TestServer, a1: &mut Sap, a2: &mut Sap, call: &str) -> String {
    let answer = a1
        .op(
            server,
            "PhoneCall",
            "consult",
            &[("callId", call), ("address", "2002")],
        )
        .await;
    let consult = answer.ret().text.to_string();
    a1.call_event(call, "held").await;
    a1.call_event(&consult, "dialing").await;
    let (_, pc) = a2.call_event(&consult, "alerting").await;
    // Warm transfer screen pop: the consulted agent sees the customer's data.
    assert_eq!(text_of(&pc, "attachedData"), both_cad());
    a2.op(server, "Item", "accept", &[("itemId", &consult)])
        .await
        .ok();
    a1.call_event(&consult, "connected").await;
    a2.call_event(&consult, "connected").await;
    consult
}

/// consult, then `transfer` of the held call to the consulted address completes the warm
/// transfer: the customer is joined with A2, A1 leaves with both legs `transferred`, A2's
/// consultation call ends and A2 continues on the customer's call with its data. A
/// transfer elsewhere while the consultation is up is refused and changes nothing.
#[tokio::test]
async fn transfer_to_the_consulted_party_completes_a_warm_transfer() {
    let server = TestServer::start(BASE).await;
    let (mut a1, mut a2, call) = customer_with_a1(&server).await;
    // setAttachedData is written to the switch's call, so it follows the call.
    assert_eq!(
        sim_call(&server, &call).await["attributes"]["Sap_Cad"],
        both_cad()
    );
    let consult = consult_a2(&server, &mut a1, &mut a2, &call).await;
    // The consultation call carries the data on the switch too.
    assert_eq!(
        sim_call(&server, &consult).await["attributes"]["Sap_Cad"],
        both_cad()
    );

    let refused = a1
        .op(
            &server,
            "PhoneCall",
            "transfer",
            &[("callId", &call), ("address", "+4940999")],
        )
        .await;
    fault(&refused, "consultation in progress");
    assert_eq!(
        call_ids(&server, "2001").await,
        [call.clone(), consult.clone()]
    );

    a1.op(
        &server,
        "PhoneCall",
        "transfer",
        &[("callId", &call), ("address", "2002")],
    )
    .await
    .ok();
    let (_, pc) = a1.call_event(&call, "transferred").await;
    assert_eq!(text_of(&pc, "reason"), "transferred");
    let (_, pc) = a1.call_event(&consult, "transferred").await;
    assert_eq!(text_of(&pc, "reason"), "transferred");
    let (_, pc) = a2.call_event(&consult, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "transferred");
    let (_, pc) = a2.call_event(&call, "connected").await;
    assert_eq!(parties(&pc), ["+4930123456"]);
    assert_eq!(text_of(&pc, "remoteAddress"), "+4930123456");
    assert_eq!(text_of(&pc, "attachedData"), both_cad());
    assert!(call_ids(&server, "2001").await.is_empty());
    assert_eq!(call_ids(&server, "2002").await, vec![call.clone()]);
    assert_eq!(
        sim_parties(&sim_call(&server, &call).await),
        ["+4930123456", "2002"]
    );
    assert_eq!(
        sim(&server, "GET", "/calls", Value::Null).await["calls"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the consultation call is gone"
    );
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// After `alternate` (the customer connected, the consultation held), `transfer` of the
/// consultation call without an address still completes the warm transfer.
#[tokio::test]
async fn transfer_of_the_consultation_call_without_address_completes_it() {
    let server = TestServer::start(BASE).await;
    let (mut a1, mut a2, call) = customer_with_a1(&server).await;
    let consult = consult_a2(&server, &mut a1, &mut a2, &call).await;
    a1.op(
        &server,
        "PhoneCall",
        "alternate",
        &[("callId", &call), ("consultCallId", &consult)],
    )
    .await
    .ok();
    a1.call_event(&consult, "held").await;
    a1.call_event(&call, "connected").await;

    a1.op(&server, "PhoneCall", "transfer", &[("callId", &consult)])
        .await
        .ok();
    a1.call_event(&call, "transferred").await;
    a1.call_event(&consult, "transferred").await;
    a2.call_event(&consult, "dropped").await;
    let (_, pc) = a2.call_event(&call, "connected").await;
    assert_eq!(text_of(&pc, "attachedData"), both_cad());
    assert!(call_ids(&server, "2001").await.is_empty());
    assert_eq!(call_ids(&server, "2002").await, vec![call.clone()]);
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// `reconnect` ends the consultation and leaves A1 with the customer, whether the customer
/// is held (retrieved) or, after `alternate`, already connected.
#[tokio::test]
async fn reconnect_ends_the_consultation_in_either_order() {
    let server = TestServer::start(BASE).await;
    let (mut a1, mut a2, call) = customer_with_a1(&server).await;

    let consult = consult_a2(&server, &mut a1, &mut a2, &call).await;
    a1.op(
        &server,
        "PhoneCall",
        "alternate",
        &[("callId", &call), ("consultCallId", &consult)],
    )
    .await
    .ok();
    a1.call_event(&consult, "held").await;
    a1.call_event(&call, "connected").await;
    a1.op(
        &server,
        "PhoneCall",
        "reconnect",
        &[("callId", &call), ("consultCallId", &consult)],
    )
    .await
    .ok();
    let (_, pc) = a1.call_event(&consult, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "normal");
    let (_, pc) = a2.call_event(&consult, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "remote_hangup");
    assert_eq!(call_ids(&server, "2001").await, vec![call.clone()]);
    assert_eq!(call_state(&server, &call).await, "connected");

    // Again, without alternating: the held customer is taken back.
    let consult = consult_a2(&server, &mut a1, &mut a2, &call).await;
    a1.op(
        &server,
        "PhoneCall",
        "reconnect",
        &[("callId", &call), ("consultCallId", &consult)],
    )
    .await
    .ok();
    a1.call_event(&consult, "dropped").await;
    a1.call_event(&call, "connected").await;
    a2.call_event(&consult, "dropped").await;
    // The consultation is over: a blind transfer elsewhere is allowed again.
    a1.op(
        &server,
        "PhoneCall",
        "transfer",
        &[("callId", &call), ("address", "+4940999")],
    )
    .await
    .ok();
    a1.call_event(&call, "transferred").await;
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// `conference` after `alternate` (the consultation held, the customer connected) merges
/// the two calls: the customer's call survives with A1 and A2 on it.
#[tokio::test]
async fn conference_after_alternate_merges() {
    let server = TestServer::start(BASE).await;
    let (mut a1, mut a2, call) = customer_with_a1(&server).await;
    let consult = consult_a2(&server, &mut a1, &mut a2, &call).await;
    a1.op(
        &server,
        "PhoneCall",
        "alternate",
        &[("callId", &call), ("consultCallId", &consult)],
    )
    .await
    .ok();
    a1.call_event(&consult, "held").await;
    a1.call_event(&call, "connected").await;
    a1.op(
        &server,
        "PhoneCall",
        "conference",
        &[("callId", &call), ("consultCallId", &consult)],
    )
    .await
    .ok();
    a1.call_event(&consult, "dropped").await;
    a1.call_event(&call, "conferenced").await;
    a2.call_event(&consult, "dropped").await;
    let (_, pc) = a2.call_event(&call, "conferenced").await;
    assert_eq!(text_of(&pc, "attachedData"), both_cad());
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}
