//! Nothing lost across our own restarts: events accepted from the switch sit in the spool
//! until SAP acknowledged them, and subscriptions survive, whether the connector stops
//! gracefully or is killed with SIGKILL.

use crate::common;

use std::time::Duration;

use common::fake_sap::{FakeSap, Mode};
use common::process::Process;
use common::server::{Endpoints, TestServer};
use serde_json::json;

const CALLS: usize = 20;

/// Rings 2001 `CALLS` times and lets each caller hang up: two events per call, after the
/// workmode event.
async fn make_events(api: &Endpoints) -> u64 {
    for _ in 0..CALLS {
        let (status, body) = api
            .sim("POST", "/calls", json!({"from": "4711", "to": "2001"}))
            .await;
        assert_eq!(status, 201, "{body}");
        let call = body["callId"].as_str().unwrap().to_string();
        let (status, _) = api
            .sim("POST", &format!("/calls/{call}/hangup"), json!(null))
            .await;
        assert_eq!(status, 200);
    }
    1 + 2 * CALLS as u64
}

/// Waits (polling the status page: nothing else reports it) until the spool holds every
/// event up to `sequence`.
async fn wait_durable(api: &Endpoints, sequence: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = api.status().await;
        let durable = status["subscriptions"][0]["durable_sequence"]
            .as_u64()
            .unwrap_or(0);
        if durable >= sequence {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spool stuck at {durable}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Receives `count` events and checks they are exactly sequences 1..=count, in order.
async fn expect_all_in_order(fake: &mut FakeSap, count: u64) {
    let events = fake.next_events(count as usize).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence.unwrap()).collect();
    assert_eq!(sequences, (1..=count).collect::<Vec<_>>());
    assert_eq!(events[0].name, "workmodeChanged");
    assert!(events[1..].iter().all(|e| e.name == "phoneCallChanged"));
    assert!(events.iter().all(|e| e.app_ids == ["IC-1"]));
}

#[tokio::test]
async fn graceful_restart_keeps_undelivered_events_and_the_subscription() {
    let mut fake = FakeSap::start().await;
    fake.set_mode(Mode::Refuse);
    let config = "[switch.sim]\nremote_answer_after = \"off\"";
    let first = TestServer::start(config).await;
    first.log_in("A1", "2001", &fake.url, "IC-1", 2).await;
    let count = make_events(&first).await;
    wait_durable(&first, count).await;
    let data = first.data.clone();
    first.stop().await;

    fake.resume().await;
    let second = TestServer::start_with_data(
        ici_connector::config::Config::from_toml_str(config).unwrap(),
        data,
    )
    .await;
    expect_all_in_order(&mut fake, count).await;
    // The subscription survived: a new event continues the numbering.
    second
        .sim("POST", "/agents/2001/state", json!({"state": "not_ready"}))
        .await;
    let next = fake.next_event().await;
    assert_eq!(
        (next.name.as_str(), next.sequence),
        ("workmodeChanged", Some(count + 1))
    );
    second.stop().await;
}

#[tokio::test]
async fn sigkill_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[soap]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [events]\ndata_dir = {:?}\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n\
             [switch.sim]\nremote_answer_after = \"off\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut fake = FakeSap::start().await;
    fake.set_mode(Mode::Refuse);

    let first = Process::start(&config);
    first
        .endpoints
        .log_in("A1", "2001", &fake.url, "IC-1", 2)
        .await;
    let count = make_events(&first.endpoints).await;
    wait_durable(&first.endpoints, count).await;
    first.kill(); // SIGKILL: no shutdown code runs

    fake.resume().await;
    let second = Process::start(&config);
    expect_all_in_order(&mut fake, count).await;
    second.kill();
}
