//! The end of subscriptions (a new IC session, SAP's 401), and callback URLs that are dead
//! or hang.

use tokio::net::TcpListener;

use super::*;
use crate::common::fake_sap::{Mode, WAIT};

/// getAttributes again ends the old IC session's subscription (subscriptionEnded at the old
/// URL); a 401 from SAP's URL ends only that subscription.
#[tokio::test]
async fn subscriptions_end_on_a_new_session_and_on_401() {
    let server = TestServer::start(BASE).await;
    let mut a1 = login(&server, "A1", "2001", 3).await;
    let mut a2 = login(&server, "A2", "2002", 3).await;

    server
        .call("User", "getAttributes", &[("userId", "A1")])
        .await
        .ok();
    let ended = a1.next().await;
    assert_eq!(ended.name, "subscriptionEnded", "{}", ended.body);
    assert_eq!(ended.field("reason").as_deref(), Some("new session"));
    assert_eq!(subscription_urls(&server).await, [a2.fake.url.clone()]);

    // The new session: one URL answers 401 (SAP's session behind it is gone), one is fine.
    let gone = FakeSap::start().await;
    gone.set_mode(Mode::Status(401));
    let old_fake = std::mem::replace(&mut a1.fake, FakeSap::start().await);
    a1.sequence = 0;
    subscribe(&server, "A1", &gone.url, &a1.app_id()).await;
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;

    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "ready"}),
    )
    .await;
    a1.workmode_event(2, None).await;
    gone.wait_requests(1).await;
    // Only the status page shows when SAP's 401 has travelled back from the notifier.
    let api = &server;
    common::poll("the 401 ends the subscription", WAIT, || async move {
        let status = status(api).await;
        match status["subscriptions"].as_array().unwrap().len() {
            2 => Ok(()),
            _ => Err(status.to_string()),
        }
    })
    .await;
    let mut urls = subscription_urls(&server).await;
    urls.sort();
    let mut expected = vec![a1.fake.url.clone(), a2.fake.url.clone()];
    expected.sort();
    assert_eq!(urls, expected);

    // Both remaining subscriptions keep getting events; the gone URL hears nothing more.
    let call = ring(&server, json!({"from": "4711", "to": "2001"})).await;
    a1.call_event(&call, "alerting").await;
    let other = ring(&server, json!({"from": "4712", "to": "2002"})).await;
    a2.call_event(&other, "alerting").await;
    assert_eq!(gone.requests(), 1);
    drop(old_fake);
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// Accepts connections and never answers: an appURL whose server hangs.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sap/events", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (url, task)
}

/// A dead or hanging callback URL never holds up SAP's requests: `dial` and `hold` answer
/// while their events are still undelivered; once SAP is back, every event arrives in order.
#[tokio::test]
async fn dead_callback_urls_do_not_slow_requests() {
    let server = TestServer::start(BASE).await;
    let (hanging, hole) = black_hole().await;
    let fake = FakeSap::start().await;
    fake.set_mode(Mode::Refuse);
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
    subscribe(&server, "A1", &hanging, &a1.app_id()).await;
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;

    let answer = a1
        .op(
            &server,
            "PhoneCall",
            "dial",
            &[("userId", "A1"), ("address", "4711")],
        )
        .await;
    let call = answer.ret().text.to_string();
    sim(
        &server,
        "POST",
        &format!("/calls/{call}/answer"),
        Value::Null,
    )
    .await;
    a1.op(&server, "PhoneCall", "hold", &[("callId", &call)])
        .await
        .ok();
    // Both answers are in; the three events (dialing, connected, held) are still queued on
    // both subscriptions.
    let status = status(&server).await;
    for sub in status["subscriptions"].as_array().unwrap() {
        assert_eq!(sub["sequence"], 3, "{status}");
        assert!(sub["queue_depth"].as_u64().unwrap() >= 1, "{status}");
    }
    assert!(a1.fake.try_next_event().is_none());

    a1.fake.resume().await;
    a1.call_event(&call, "dialing").await;
    a1.call_event(&call, "connected").await;
    a1.call_event(&call, "held").await;
    hole.abort();
    server.stop().await;
}
