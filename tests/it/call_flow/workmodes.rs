//! Workmodes set by SAP and on the phone, reasons, custom workmodes, the reject workmode,
//! and the login workmode.

use super::*;

const WORKMODES: &str = r#"
[[workmodes.reasons]]
code = "BRK"
text = "Break"

[[workmodes.custom]]
id = 4
text = "Lunch"
switch_state = "Lunch"
"#;

/// Workmodes from SAP and from the phone, reasons, custom workmodes, and the reject
/// workmode after `reroute`.
#[tokio::test]
async fn workmodes_from_sap_and_from_the_phone() {
    let server = TestServer::start(&format!("{BASE}{WORKMODES}")).await;
    let mut a1 = login(&server, "A1", "2001", 2).await;
    let mut a2 = login(&server, "A2", "2002", 2).await;
    assert_eq!(sim_agent(&server, "2001").await["state"], "ready");

    // Not ready with a configured reason.
    let set = |workmode: &'static str, reason: Option<&'static str>| {
        let mut pairs = vec![("userId", "A1"), ("workmode", workmode)];
        if let Some(reason) = reason {
            pairs.push(("reason", reason));
        }
        pairs
    };
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &set("3", Some("BRK")),
    )
    .await
    .ok();
    a1.workmode_event(3, Some("BRK")).await;
    let agent = sim_agent(&server, "2001").await;
    assert_eq!(
        (agent["state"].as_str(), agent["reason"].as_str()),
        (Some("not_ready"), Some("BRK"))
    );

    // Custom workmode 4 is the switch state "Lunch".
    a1.op(&server, "User", "setCurrentWorkmode", &set("4", None))
        .await
        .ok();
    a1.workmode_event(4, None).await;
    let agent = sim_agent(&server, "2001").await;
    assert_eq!(
        (agent["state"].as_str(), agent["custom"].as_str()),
        (Some("custom"), Some("Lunch"))
    );

    // An unknown reason or workmode: Client fault, nothing changes.
    fault(
        &a1.op(
            &server,
            "User",
            "setCurrentWorkmode",
            &set("3", Some("XYZ")),
        )
        .await,
        "unknown reason",
    );
    fault(
        &a1.op(&server, "User", "setCurrentWorkmode", &set("9", None))
            .await,
        "unknown workmode",
    );
    assert_eq!(sim_agent(&server, "2001").await["custom"], "Lunch");

    // The agent presses buttons on the phone: SAP is told.
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "not_ready", "reason": "BRK"}),
    )
    .await;
    a1.workmode_event(3, Some("BRK")).await;
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "custom", "custom": "Lunch"}),
    )
    .await;
    a1.workmode_event(4, None).await;
    // A switch state nobody mapped shows as not ready with the state as reason.
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "custom", "custom": "Meeting"}),
    )
    .await;
    a1.workmode_event(3, Some("Meeting")).await;
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "ready"}),
    )
    .await;
    a1.workmode_event(2, None).await;
    let attributes = server
        .call("User", "getAttributes", &[("userId", "A2")])
        .await;
    assert_eq!(text_of(attributes.ret(), "currentWorkmode"), "2");
    // That getAttributes began a new IC session for A2: its old subscription ends.
    let ended = a2.next().await;
    assert_eq!(ended.name, "subscriptionEnded");
    a2.fake = FakeSap::start().await;
    a2.sequence = 0;
    subscribe(&server, "A2", &a2.fake.url, &a2.app_id()).await;

    // Reroute: A2 became ready first after A1's break... A1 was ready last, so A2 (idle
    // the longest) gets the queue call; it rejects it, goes to the reject workmode (3), and
    // the call goes back to the queue and on to A1.
    let call = ring(&server, json!({"from": "+4930123456", "queue": "support"})).await;
    a2.call_event(&call, "alerting").await;
    a2.op(&server, "Item", "reroute", &[("itemId", &call)])
        .await
        .ok();
    let (_, pc) = a2.call_event(&call, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "rerouted");
    a2.workmode_event(3, None).await;
    let (_, pc) = a1.call_event(&call, "alerting").await;
    assert_eq!(text_of(&pc, "queue"), "support");
    assert_eq!(sim_agent(&server, "2002").await["state"], "not_ready");
    // reroute of a direct (non-ACD) or answered call is refused.
    a1.op(&server, "Item", "accept", &[("itemId", &call)])
        .await
        .ok();
    a1.call_event(&call, "connected").await;
    fault(
        &a1.op(&server, "Item", "reroute", &[("itemId", &call)])
            .await,
        "invalid call state",
    );
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// `ignore_sap_login_workmode`: SAP's first workmode is replaced by `login`; later ones are
/// applied as asked.
#[tokio::test]
async fn login_workmode_replaces_the_one_sap_asks_for_at_login() {
    let config =
        format!("{BASE}{WORKMODES}\n[workmodes]\nignore_sap_login_workmode = true\nlogin = 4\n");
    let server = TestServer::start(&config).await;
    let fake = FakeSap::start().await;
    let mut a1 = Sap {
        user: "A1".into(),
        extension: "2001".into(),
        fake,
        sequence: 0,
    };
    server
        .post(envelope(
            &ns("User"),
            "setAddresses",
            "<userId>A1</userId><addresses><item>2001</item></addresses>",
        ))
        .await
        .ok();
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &[("userId", "A1"), ("workmode", "2")],
    )
    .await
    .ok();
    a1.workmode_event(4, None).await;
    assert_eq!(sim_agent(&server, "2001").await["custom"], "Lunch");
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &[("userId", "A1"), ("workmode", "2")],
    )
    .await
    .ok();
    a1.workmode_event(2, None).await;
    assert_eq!(sim_agent(&server, "2001").await["state"], "ready");
    a1.assert_quiet();
    server.stop().await;
}

/// The `support` queue with two seconds of wrap-up, shown as custom workmode 5.
const WRAP_UP: &str = r#"
[switch.sim]
extensions = ["2001"]
remote_answer_after = "off"

[[switch.sim.queue]]
name = "support"
number = "600"
wrap_up = "2s"

[workmodes]
wrap_up = 5

[[workmodes.custom]]
id = 5
text = "Wrap-up"
switch_state = "wrap-up"
selectable = false
"#;

/// A queue with wrap-up time: after its call, the agent is in after-call work, shown to
/// SAP as the configured wrap-up workmode (5), offered no queue call meanwhile, and ready
/// again by itself when the time is over (the waiting call then rings). A workmode SAP
/// sets during wrap-up ends it at once.
#[tokio::test]
async fn wrap_up_after_a_queue_call_shows_and_ends_by_itself() {
    let server = TestServer::start(WRAP_UP).await;
    let mut a1 = login(&server, "A1", "2001", 2).await;

    let call = ring(&server, json!({"from": "+4930123456", "queue": "support"})).await;
    a1.call_event(&call, "alerting").await;
    a1.op(&server, "Item", "accept", &[("itemId", &call)])
        .await
        .ok();
    a1.call_event(&call, "connected").await;
    sim(
        &server,
        "POST",
        &format!("/calls/{call}/hangup"),
        Value::Null,
    )
    .await;
    a1.call_event(&call, "dropped").await;
    a1.workmode_event(5, None).await;
    let attributes = a1
        .op(&server, "User", "getAttributes", &[("userId", "A1")])
        .await;
    assert_eq!(text_of(attributes.ret(), "currentWorkmode"), "5");
    // getAttributes began a new IC session: subscribe again.
    assert_eq!(a1.next().await.name, "subscriptionEnded");
    a1.fake = FakeSap::start().await;
    a1.sequence = 0;
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;

    // A queue call during wrap-up waits; when wrap-up is over A1 is ready and it rings.
    let next = ring(&server, json!({"from": "+4930123456", "queue": "support"})).await;
    let calls = sim(&server, "GET", "/calls", Value::Null).await;
    assert_eq!(calls["calls"][0]["waiting"], true, "{calls}");
    a1.workmode_event(2, None).await;
    a1.call_event(&next, "alerting").await;
    a1.op(&server, "Item", "accept", &[("itemId", &next)])
        .await
        .ok();
    a1.call_event(&next, "connected").await;
    a1.op(&server, "PhoneCall", "drop", &[("callId", &next)])
        .await
        .ok();
    a1.call_event(&next, "dropped").await;
    a1.workmode_event(5, None).await;
    // SAP's ready during wrap-up ends it: the agent takes queue calls at once.
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &[("userId", "A1"), ("workmode", "2")],
    )
    .await
    .ok();
    a1.workmode_event(2, None).await;
    let again = ring(&server, json!({"from": "+4930123456", "queue": "support"})).await;
    a1.call_event(&again, "alerting").await;
    a1.op(&server, "Item", "accept", &[("itemId", &again)])
        .await
        .ok();
    a1.call_event(&again, "connected").await;
    a1.op(&server, "PhoneCall", "drop", &[("callId", &again)])
        .await
        .ok();
    a1.call_event(&again, "dropped").await;
    a1.workmode_event(5, None).await;
    // SAP's not ready during wrap-up ends it: no ready in between.
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &[("userId", "A1"), ("workmode", "3")],
    )
    .await
    .ok();
    a1.workmode_event(3, None).await;
    assert_eq!(sim_agent(&server, "2001").await["state"], "not_ready");
    let third = ring(&server, json!({"from": "+4930123456", "queue": "support"})).await;
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &[("userId", "A1"), ("workmode", "2")],
    )
    .await
    .ok();
    a1.workmode_event(2, None).await;
    a1.call_event(&third, "alerting").await;
    a1.assert_quiet();
    server.stop().await;
}
