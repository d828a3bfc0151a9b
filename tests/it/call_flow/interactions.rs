//! The cap on interactions SAP sees at once, and the order in which the waiting ones
//! appear.

use super::*;

/// At most six interactions reach SAP; the rest wait in arrival order, and one that ends
/// while waiting is never shown.
#[tokio::test]
async fn six_interactions_reach_sap_and_the_rest_wait_in_order() {
    let server = TestServer::start(BASE).await;
    let mut a1 = login(&server, "A1", "2001", 3).await;
    let mut calls = Vec::new();
    for i in 0..8 {
        calls.push(ring(&server, json!({"from": format!("471{i}"), "to": "2001"})).await);
    }
    for call in &calls[..6] {
        let (_, pc) = a1.call_event(call, "alerting").await;
        assert_eq!(text_of(&pc, "direction"), "inbound");
    }
    assert_eq!(call_ids(&server, "2001").await, calls[..6]);
    // The seventh and eighth are unknown to SAP.
    fault(
        &server
            .call(
                "PhoneCall",
                "getPhoneCallAttributes",
                &[("callId", &calls[6])],
            )
            .await,
        "unknown call",
    );

    // SAP drops the first: the oldest waiting one (the seventh) pops at once.
    a1.op(&server, "PhoneCall", "drop", &[("callId", &calls[0])])
        .await
        .ok();
    a1.call_event(&calls[0], "dropped").await;
    a1.call_event(&calls[6], "alerting").await;

    // The eighth caller gives up while waiting: SAP never hears of it.
    sim(
        &server,
        "POST",
        &format!("/calls/{}/hangup", calls[7]),
        Value::Null,
    )
    .await;
    // The second caller hangs up: its drop is the very next event, and nothing pops.
    sim(
        &server,
        "POST",
        &format!("/calls/{}/hangup", calls[1]),
        Value::Null,
    )
    .await;
    let (_, pc) = a1.call_event(&calls[1], "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "abandoned");
    let mut visible = calls[2..7].to_vec();
    assert_eq!(call_ids(&server, "2001").await, visible);

    // A new caller takes the free slot at once; then the cap holds again.
    let late = ring(&server, json!({"from": "4799", "to": "2001"})).await;
    a1.call_event(&late, "alerting").await;
    visible.push(late);
    let over = ring(&server, json!({"from": "4798", "to": "2001"})).await;
    sim(
        &server,
        "POST",
        &format!("/calls/{}/hangup", visible[0]),
        Value::Null,
    )
    .await;
    a1.call_event(&visible[0], "dropped").await;
    a1.call_event(&over, "alerting").await;
    a1.assert_quiet();
    server.stop().await;
}

/// `max_interactions` lowers the cap; the waiting order and the abandoned rule still hold.
#[tokio::test]
async fn configured_cap_of_two() {
    let server = TestServer::start(&format!("{BASE}\n[agents]\nmax_interactions = 2\n")).await;
    let mut a1 = login(&server, "A1", "2001", 3).await;
    let attributes = server
        .call("User", "getAttributes", &[("userId", "A1")])
        .await;
    assert_eq!(text_of(attributes.ret(), "maxInteractions"), "2");
    // getAttributes started a new IC session: the old subscription ended; subscribe again.
    a1.next().await;
    a1.fake = FakeSap::start().await;
    a1.sequence = 0;
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;

    let mut calls = Vec::new();
    for i in 0..4 {
        calls.push(ring(&server, json!({"from": format!("471{i}"), "to": "2001"})).await);
    }
    a1.call_event(&calls[0], "alerting").await;
    a1.call_event(&calls[1], "alerting").await;
    assert_eq!(call_ids(&server, "2001").await, calls[..2]);
    // The third caller gives up while waiting; dropping the first pops the fourth.
    sim(
        &server,
        "POST",
        &format!("/calls/{}/hangup", calls[2]),
        Value::Null,
    )
    .await;
    a1.op(&server, "PhoneCall", "drop", &[("callId", &calls[0])])
        .await
        .ok();
    a1.call_event(&calls[0], "dropped").await;
    a1.call_event(&calls[3], "alerting").await;
    assert_eq!(
        call_ids(&server, "2001").await,
        [calls[1].clone(), calls[3].clone()]
    );
    a1.assert_quiet();
    server.stop().await;
}
