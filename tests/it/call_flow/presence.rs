//! What SAP and the switch are told when the other side goes away: a lost IC session puts
//! the agent in the configured state on the switch; a switch outage shows every agent the
//! `switch_unavailable` workmode until the link is back; and a workcenter is held by one
//! logged-in agent at a time.

use super::*;
use crate::common::fake_sap::{Mode, WAIT};

/// The sim agent's `(state, reason)` as the switch sees it.
async fn switch_state(server: &TestServer, extension: &str) -> (String, Option<String>) {
    let agent = sim_agent(server, extension).await;
    (
        agent["state"].as_str().unwrap_or_default().to_string(),
        agent["reason"].as_str().map(str::to_string),
    )
}

async fn wait_switch_state(server: &TestServer, extension: &str, state: &str) {
    let want = state.to_string();
    common::poll(
        &format!("{extension} is {state} on the switch"),
        WAIT,
        || {
            let want = want.clone();
            async move {
                let (got, reason) = switch_state(server, extension).await;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("{got} {reason:?}"))
                }
            }
        },
    )
    .await;
}

async fn unsubscribe(server: &TestServer, sap: &Sap) {
    sap.op(
        server,
        "User",
        "unsubscribeUser",
        &[
            ("userId", &sap.user),
            ("appURL", &sap.fake.url),
            ("appId", &sap.app_id()),
        ],
    )
    .await
    .ok();
}

/// SAP's appURL answering 404 and `unsubscribeUser` both leave the agent not ready on the
/// switch with the configured reason; an agent with another subscription left is not
/// touched.
#[tokio::test]
async fn a_lost_ic_session_puts_the_agent_not_ready_on_the_switch() {
    let server = TestServer::start(BASE).await;
    let a1 = login(&server, "A1", "2001", 2).await;
    let a2 = login(&server, "A2", "2002", 2).await;
    let mut a3 = login(&server, "A3", "2003", 2).await;

    // A1's IC session is gone: the next event gets 404.
    a1.fake.set_mode(Mode::Status(404));
    ring(&server, json!({"from": "4711", "to": "2001"})).await;
    wait_switch_state(&server, "2001", "not_ready").await;
    assert_eq!(
        switch_state(&server, "2001").await.1.as_deref(),
        Some("IC_SESSION_LOST")
    );

    // unsubscribeUser: answered once the switch was told (the simulator takes commands
    // and control requests in order).
    unsubscribe(&server, &a2).await;
    assert_eq!(
        switch_state(&server, "2002").await,
        ("not_ready".to_string(), Some("IC_SESSION_LOST".to_string()))
    );

    // A3 has a second subscription: losing one of two is not a lost session.
    let second = FakeSap::start().await;
    subscribe(&server, "A3", &second.url, &a3.app_id()).await;
    unsubscribe(&server, &a3).await;
    assert_eq!(switch_state(&server, "2003").await.0, "ready");
    a3.assert_quiet();

    // The status page shows what the switch reported.
    let status = status(&server).await;
    let a1_status = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["user_id"] == "A1")
        .cloned()
        .unwrap();
    assert_eq!(a1_status["workmode"], 3, "{status}");
    assert_eq!(a1_status["reason"], "IC_SESSION_LOST", "{status}");
    server.stop().await;
}

/// `on_session_lost = "logged_out"` logs the agent out when its subscription ends on
/// overflow; `"keep"` leaves it as it is.
#[tokio::test]
async fn a_lost_ic_session_can_log_out_or_keep_the_agent() {
    let config = format!(
        "{BASE}max_queue_per_subscription = 2\n[agents]\non_session_lost = \"logged_out\"\n"
    );
    let server = TestServer::start(&config).await;
    let a1 = login(&server, "A1", "2001", 2).await;
    a1.fake.set_mode(Mode::Refuse);
    for _ in 0..3 {
        let call = ring(&server, json!({"from": "4711", "to": "2001"})).await;
        sim(
            &server,
            "POST",
            &format!("/calls/{call}/hangup"),
            Value::Null,
        )
        .await;
    }
    wait_switch_state(&server, "2001", "logged_out").await;
    server.stop().await;

    let config = format!("{BASE}[agents]\non_session_lost = \"keep\"\n");
    let server = TestServer::start(&config).await;
    let a1 = login(&server, "A1", "2001", 2).await;
    unsubscribe(&server, &a1).await;
    assert_eq!(switch_state(&server, "2001").await.0, "ready");
    server.stop().await;
}

const SWITCH_UNAVAILABLE: &str = r#"
[[workmodes.custom]]
id = 9
text = "Switch unavailable"
switch_state = "unavailable"
selectable = false
"#;

/// The simulator drops its link: every agent is shown workmode 9 (listed, not
/// selectable), commands fail with "switch unavailable", the status page shows the link
/// down. Back up: each agent's workmode as the switch has it, and a call that ended
/// meanwhile is dropped.
#[tokio::test]
async fn a_switch_outage_is_shown_to_sap_and_restored() {
    let config = format!("{BASE}{SWITCH_UNAVAILABLE}[workmodes]\nswitch_unavailable = 9\n");
    let server = TestServer::start(&config).await;
    let attributes = server
        .call("User", "getAttributes", &[("userId", "NOBODY")])
        .await;
    let listed: Vec<(String, String)> = attributes
        .ret()
        .child("workmodes")
        .unwrap()
        .children
        .iter()
        .map(|w| (text_of(w, "id"), text_of(w, "selectable")))
        .collect();
    assert!(
        listed.contains(&("9".to_string(), "false".to_string())),
        "{}",
        attributes.body
    );
    let mut a1 = login(&server, "A1", "2001", 2).await;
    let mut a2 = login(&server, "A2", "2002", 3).await;
    let call = ring(&server, json!({"from": "4711", "to": "2001"})).await;
    a1.call_event(&call, "alerting").await;

    let (code, _) = server
        .sim(
            "POST",
            "/link",
            json!({"up": false, "reason": "maintenance"}),
        )
        .await;
    assert_eq!(code, 200);
    a1.workmode_event(9, None).await;
    a2.workmode_event(9, None).await;
    let down = status(&server).await;
    assert_eq!(down["switch_link_up"], false, "{down}");
    assert_eq!(down["switch_link_reason"], "maintenance", "{down}");
    let refused = a1
        .op(
            &server,
            "User",
            "setCurrentWorkmode",
            &[("userId", "A1"), ("workmode", "3")],
        )
        .await;
    assert_eq!(refused.fault().1, "switch unavailable", "{}", refused.body);

    // Meanwhile on the switch: the caller gives up, A2 presses ready.
    sim(
        &server,
        "POST",
        &format!("/calls/{call}/hangup"),
        Value::Null,
    )
    .await;
    sim(
        &server,
        "POST",
        "/agents/2002/state",
        json!({"state": "ready"}),
    )
    .await;

    let (code, _) = server.sim("POST", "/link", json!({"up": true})).await;
    assert_eq!(code, 200);
    a1.workmode_event(2, None).await;
    a1.call_event(&call, "dropped").await;
    a2.workmode_event(2, None).await;
    let up = status(&server).await;
    assert_eq!(up["switch_link_up"], true, "{up}");
    assert_eq!(up["switch_link_reason"], Value::Null, "{up}");
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &[("userId", "A1"), ("workmode", "3")],
    )
    .await
    .ok();
    a1.workmode_event(3, None).await;
    a2.assert_quiet();
    server.stop().await;
}

/// By default the switch link going down shows not ready with reason SWITCH_UNAVAILABLE;
/// the agent's own workmode comes back with the link.
#[tokio::test]
async fn a_switch_outage_shows_not_ready_by_default() {
    let server = TestServer::start(BASE).await;
    let mut a1 = login(&server, "A1", "2001", 2).await;
    server.sim("POST", "/link", json!({"up": false})).await;
    a1.workmode_event(3, Some("SWITCH_UNAVAILABLE")).await;
    server.sim("POST", "/link", json!({"up": true})).await;
    a1.workmode_event(2, None).await;
    server.stop().await;
}

/// setAddresses for an extension another logged-in agent holds is refused with a fault
/// naming the holder; one the switch does not know is refused; a free one is fine.
#[tokio::test]
async fn a_held_or_unknown_workcenter_is_refused() {
    let server = TestServer::start(BASE).await;
    let mut a1 = login(&server, "A1", "2001", 2).await;
    let set = |user: &str, address: &str| {
        envelope_as(
            user,
            "User",
            "setAddresses",
            &format!("<userId>{user}</userId><addresses><item>{address}</item></addresses>"),
        )
    };
    server
        .call("User", "getAttributes", &[("userId", "A2")])
        .await
        .ok();
    let taken = server.post(set("A2", "2001")).await;
    fault(&taken, "address in use");
    assert!(taken.body.contains("2001 is held by A1"), "{}", taken.body);
    let unknown = server.post(set("A2", "2999")).await;
    fault(&unknown, "unknown address");
    assert!(unknown.body.contains("2999"), "{}", unknown.body);
    server.post(set("A2", "2002")).await.ok();

    // A1 still has 2001: its calls reach it.
    let call = ring(&server, json!({"from": "4711", "to": "2001"})).await;
    a1.call_event(&call, "alerting").await;
    server.stop().await;
}

/// `workcenter_in_use = "take_over"`: the extension moves, the holder's subscriptions end
/// with a reason.
#[tokio::test]
async fn a_workcenter_can_be_taken_over() {
    let config = format!("{BASE}[agents]\nworkcenter_in_use = \"take_over\"\n");
    let server = TestServer::start(&config).await;
    let mut a1 = login(&server, "A1", "2001", 2).await;
    let mut a2 = login(&server, "A2", "2002", 3).await;
    server
        .post(envelope_as(
            "A2",
            "User",
            "setAddresses",
            "<userId>A2</userId><addresses><item>2001</item></addresses>",
        ))
        .await
        .ok();
    let ended = a1.next().await;
    assert_eq!(ended.name, "subscriptionEnded", "{}", ended.body);
    assert_eq!(
        ended.field("reason").as_deref(),
        Some("workcenter taken over")
    );
    a2.extension = "2001".into();
    let call = ring(&server, json!({"from": "4711", "to": "2001"})).await;
    a2.call_event(&call, "alerting").await;
    a1.assert_quiet();
    server.stop().await;
}
