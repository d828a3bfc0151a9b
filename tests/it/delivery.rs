//! Event delivery through the whole connector: callback outages, queue limits and their
//! policies, and the ghost-call reaper. Real HTTP both ways, the simulator as the switch.

use crate::common;

use common::fake_sap::{FakeSap, Mode, Received};
use common::process::Process;
use common::server::{Endpoints, SoapAnswer, TestServer, envelope, envelope_as, ns, params};
use ici_connector::config::EventsConfig;
use serde_json::json;

const AGENTS: [(&str, &str); 5] = [
    ("A1", "2001"),
    ("A2", "2002"),
    ("A3", "2003"),
    ("A4", "2004"),
    ("A5", "2005"),
];

fn config(extra: &str) -> String {
    format!(
        "[switch.sim]\nremote_answer_after = \"off\"\nextensions = [\"2001\", \"2002\", \"2003\", \"2004\", \"2005\"]\n\
         [events]\nretry_min = \"10ms\"\nretry_max = \"50ms\"\n{extra}"
    )
}

async fn ring(api: &Endpoints, to: &str) -> String {
    let (status, body) = api
        .sim("POST", "/calls", json!({"from": "4711", "to": to}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["callId"].as_str().unwrap().to_string()
}

async fn hang_up(api: &Endpoints, call: &str) {
    let (status, body) = api
        .sim("POST", &format!("/calls/{call}/hangup"), json!(null))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn state(event: &Received) -> String {
    event.field("state").unwrap_or_default()
}

#[tokio::test]
async fn a_thousand_events_survive_a_callback_outage_in_order() {
    let server = TestServer::start(&config("")).await;
    let mut fake = FakeSap::start().await;
    for (user, extension) in AGENTS {
        let url = fake.url_for(&format!("/sap/{user}"));
        server
            .log_in(user, extension, &url, &format!("IC-{user}"), 2)
            .await;
    }
    // One workmode event per agent arrived while SAP was up.
    fake.next_events(AGENTS.len()).await;
    fake.set_mode(Mode::Refuse);
    const CALLS: usize = 100;
    for _ in 0..CALLS {
        for (_, extension) in AGENTS {
            let call = ring(&server, extension).await;
            hang_up(&server, &call).await;
        }
    }
    fake.resume().await;
    let events = fake.next_events(AGENTS.len() * CALLS * 2).await;
    for (user, _) in AGENTS {
        let mine: Vec<&Received> = events
            .iter()
            .filter(|e| e.path == format!("/sap/{user}"))
            .collect();
        let sequences: Vec<u64> = mine.iter().map(|e| e.sequence.unwrap()).collect();
        assert_eq!(
            sequences,
            (2..=(1 + 2 * CALLS as u64)).collect::<Vec<_>>(),
            "{user}"
        );
        for pair in mine.chunks(2) {
            assert_eq!(state(pair[0]), "alerting");
            assert_eq!(state(pair[1]), "dropped");
            assert_eq!(pair[0].field("callId"), pair[1].field("callId"));
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn full_queue_ends_the_subscription_with_a_reason() {
    let server = TestServer::start(&config("max_queue_per_subscription = 5\n")).await;
    let mut fake = FakeSap::start().await;
    server.log_in("A1", "2001", &fake.url, "IC-A1", 2).await;
    assert_eq!(fake.next_event().await.name, "workmodeChanged");
    fake.set_mode(Mode::Refuse);
    for _ in 0..4 {
        let call = ring(&server, "2001").await;
        hang_up(&server, &call).await;
    }
    let status = server.status().await;
    assert_eq!(
        status["subscriptions"],
        json!([]),
        "the subscription ended: {status}"
    );
    fake.resume().await;
    let events = fake.next_events(6).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence.unwrap()).collect();
    // Event 7 did not fit: its number is skipped, so SAP sees that one was lost.
    assert_eq!(sequences, [2, 3, 4, 5, 6, 8]);
    let last = events.last().unwrap();
    assert_eq!(last.name, "subscriptionEnded");
    assert_eq!(
        last.field("reason").as_deref(),
        Some("event queue overflow")
    );
    // Nothing more: later calls are not queued for an ended subscription.
    let call = ring(&server, "2001").await;
    hang_up(&server, &call).await;
    server.stop().await;
    assert!(fake.try_next_event().is_none());
}

#[tokio::test]
async fn coalesce_keeps_the_latest_state_of_a_call() {
    let config = config("max_queue_per_subscription = 3\noverflow = \"coalesce\"\n");
    let server = TestServer::start(&config).await;
    let mut fake = FakeSap::start().await;
    server.log_in("A1", "2001", &fake.url, "IC-A1", 2).await;
    assert_eq!(fake.next_event().await.name, "workmodeChanged");
    fake.set_mode(Mode::Refuse);
    let call = ring(&server, "2001").await; // alerting (in flight, retried)
    let accept = |call: &str| envelope(&ns("Item"), "accept", &params(&[("itemId", call)]));
    server.post(accept(&call)).await.ok(); // connected
    for op in ["hold", "unhold", "hold", "unhold", "hold"] {
        server
            .post(envelope(
                &ns("PhoneCall"),
                op,
                &params(&[("callId", &call)]),
            ))
            .await
            .ok();
    }
    assert_eq!(
        server.status().await["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    fake.resume().await;
    let events = fake.next_events(3).await;
    // Superseded states of the call were dropped (which ones depends on whether the
    // alerting event was already in flight); the latest state is always delivered.
    let states: Vec<String> = events.iter().map(state).collect();
    assert_eq!(
        states.last().map(String::as_str),
        Some("held"),
        "{states:?}"
    );
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence.unwrap()).collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "in order: {sequences:?}"
    );
    assert_eq!(
        *sequences.last().unwrap(),
        8,
        "the latest state kept its number"
    );
    server.stop().await;
}

#[tokio::test]
async fn ghost_interactions_are_reaped_after_the_maximum_age() {
    let config = format!(
        "{}\n[agents]\nmax_interaction_age = \"300ms\"\n",
        config("")
    );
    let server = TestServer::start(&config).await;
    let mut fake = FakeSap::start().await;
    server.log_in("A1", "2001", &fake.url, "IC-A1", 2).await;
    assert_eq!(fake.next_event().await.name, "workmodeChanged");
    let call = ring(&server, "2001").await;
    assert_eq!(state(&fake.next_event().await), "alerting");
    // No switch event follows: the reaper ends it toward SAP.
    let dropped = fake.next_event().await;
    assert_eq!(state(&dropped), "dropped");
    assert_eq!(dropped.field("callId"), Some(call));
    assert_eq!(dropped.field("reason").as_deref(), Some("max age"));
    let calls = server
        .call("Line", "getCalls", &[("containerId", "2001")])
        .await;
    assert!(calls.ret().children.is_empty());
    server.stop().await;
}

fn sequences(events: &[Received]) -> Vec<u64> {
    events.iter().map(|e| e.sequence.unwrap()).collect()
}

/// A sample of `/metrics`: the value of the first line starting with `prefix`, 0 without one.
async fn metric(api: &Endpoints, prefix: &str) -> f64 {
    let metrics = api.request(true, "GET", "/metrics", &[], "").await.body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// SAP answering 200 with a 10 MB body has taken the event: one attempt per event, and the
/// next event follows at once.
#[tokio::test]
async fn a_2xx_with_a_large_body_is_one_delivery() {
    let server = TestServer::start(&config("")).await;
    let mut fake = FakeSap::start().await;
    fake.set_mode(Mode::Body {
        status: 200,
        bytes: 10 * 1024 * 1024,
    });
    server.log_in("A1", "2001", &fake.url, "IC-A1", 2).await;
    let call = ring(&server, "2001").await;
    hang_up(&server, &call).await;
    let events = fake.next_events(3).await;
    assert_eq!(sequences(&events), [1, 2, 3], "each event once, in order");
    assert_eq!(fake.requests(), 3, "one attempt per event");
    server.stop().await;
}

/// SAP refusing one event with 400 costs that event (counted, and its sequence number is
/// a gap), not the subscription: the next event is delivered. The connector runs as a child
/// process: the metrics recorder is one per process, and tests beside this one drop events
/// too.
#[tokio::test]
async fn a_400_drops_that_event_and_the_next_one_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start_in(dir.path(), &config(""));
    let server = &process.endpoints;
    let mut fake = FakeSap::start().await;
    fake.set_mode(Mode::Status(400));
    let rejected = r#"ici_events_dropped_total{reason="rejected"}"#;
    let before = metric(server, rejected).await;
    server.log_in("A1", "2001", &fake.url, "IC-A1", 2).await;
    fake.wait_requests(1).await;
    fake.set_mode(Mode::Ok);
    let call = ring(server, "2001").await;
    let alerting = fake.next_event().await;
    assert_eq!(
        alerting.sequence,
        Some(2),
        "event 1 was dropped, not retried"
    );
    assert_eq!(state(&alerting), "alerting");
    assert_eq!(fake.requests(), 2, "the 400 was not retried");
    assert_eq!(metric(server, rejected).await - before, 1.0);
    hang_up(server, &call).await;
    assert_eq!(fake.next_event().await.sequence, Some(3));
    process.stop();
}

/// `subscribeUser` (or `unsubscribeUser`) as SAP sends it.
async fn subscription(
    api: &Endpoints,
    op: &str,
    user: &str,
    url: &str,
    app_id: &str,
) -> SoapAnswer {
    let params = params(&[("userId", user), ("appURL", url), ("appId", app_id)]);
    api.post(envelope_as(user, "User", op, &params)).await
}

async fn subscribe(api: &Endpoints, user: &str, url: &str, app_id: &str) -> SoapAnswer {
    subscription(api, "subscribeUser", user, url, app_id).await
}

/// Asserts a fault of `kind` (`Client` or `Server`) with this faultstring.
fn assert_fault(answer: &SoapAnswer, kind: &str, faultstring: &str) {
    let (code, string) = answer.fault();
    assert!(code.ends_with(kind), "{code}: {}", answer.body);
    assert_eq!(string, faultstring, "{}", answer.body);
}

/// 1,000 subscribe calls for one user (1,000 appURLs, then more appIds at one URL) stop at
/// `max_subscriptions_per_target`, so one event never turns into 1,000 POSTs.
#[tokio::test]
async fn subscriptions_of_one_user_are_capped() {
    let cap = EventsConfig::default().max_subscriptions_per_target;
    let server = TestServer::start(&config("")).await;
    let mut fake = FakeSap::start().await;
    server.log_in("A1", "2001", &fake.url, "IC-A1", 2).await;
    assert_eq!(fake.next_event().await.name, "workmodeChanged");
    let mut accepted = 1;
    for i in 0..1000 {
        let answer = subscribe(&server, "A1", &fake.url_for(&format!("/sap/{i}")), "IC").await;
        if answer.status == 200 {
            accepted += 1;
        } else {
            assert_fault(&answer, "Client", "too many subscriptions");
        }
    }
    assert_eq!(accepted, cap);
    let another_app = subscribe(&server, "A1", &fake.url, "IC-OTHER").await;
    assert_fault(&another_app, "Client", "too many subscriptions");
    // Repeating a subscription that exists adds nothing, so it is not refused.
    subscribe(&server, "A1", &fake.url, "IC-A1").await.ok();
    // The cap is per user: another one still subscribes.
    subscribe(&server, "A2", &fake.url_for("/sap/a2"), "IC-A2")
        .await
        .ok();

    // One event of A1 goes out once per accepted subscription.
    let not_ready = params(&[("userId", "A1"), ("workmode", "3")]);
    server
        .post(envelope_as("A1", "User", "setCurrentWorkmode", &not_ready))
        .await
        .ok();
    let events = fake.next_events(cap).await;
    assert!(events.iter().all(|e| e.name == "workmodeChanged"));
    let status = server.status().await;
    assert_eq!(
        status["subscriptions"].as_array().unwrap().len(),
        cap + 1,
        "{status}"
    );
    server.stop().await;
    assert_eq!(fake.requests(), 1 + cap as u64);
}

/// Past `max_subscriptions` over all users every new subscription is refused until one
/// ends.
#[tokio::test]
async fn subscriptions_are_capped_in_total() {
    let server = TestServer::start(&config(
        "max_subscriptions = 3\nmax_subscriptions_per_target = 1\n",
    ))
    .await;
    let fake = FakeSap::start().await;
    for (i, (user, _)) in AGENTS.iter().enumerate() {
        let answer = subscribe(&server, user, &fake.url_for(&format!("/sap/{user}")), "IC").await;
        if i < 3 {
            answer.ok();
        } else {
            assert_fault(&answer, "Server", "too many subscriptions");
        }
    }
    subscription(
        &server,
        "unsubscribeUser",
        "A1",
        &fake.url_for("/sap/A1"),
        "IC",
    )
    .await
    .ok();
    subscribe(&server, "A4", &fake.url_for("/sap/A4"), "IC")
        .await
        .ok();
    server.stop().await;
}

/// An appURL that reaches the connector's own SOAP or admin listener, under any loopback
/// or wildcard name, is refused: events are never delivered to ourselves.
#[tokio::test]
async fn an_appurl_at_our_own_listeners_is_refused() {
    let server = TestServer::start(&config("")).await;
    let (soap, admin) = (server.soap.port(), server.admin.port());
    let urls = [
        format!("http://{}/", server.soap),
        format!("http://{}/sim/calls", server.admin),
        format!("http://localhost:{admin}/api/capture"),
        format!("http://LocalHost:{soap}/"),
        format!("http://127.0.0.2:{soap}/"),
        format!("http://0.0.0.0:{admin}/"),
        format!("http://[::1]:{soap}/"),
        format!("http://[::ffff:127.0.0.1]:{admin}/"),
        format!("https://127.0.0.1:{soap}/"),
    ];
    for url in &urls {
        let answer = subscribe(&server, "A1", url, "IC").await;
        assert_fault(&answer, "Client", "appURL refused");
        assert!(
            answer.body.contains("own listener"),
            "{url}: {}",
            answer.body
        );
    }
    let status = server.status().await;
    assert_eq!(status["subscriptions"], json!([]), "{status}");
    server.stop().await;
}

/// With `[events] allow`, only its hosts and networks are subscribed to.
#[tokio::test]
async fn an_appurl_outside_the_allow_list_is_refused() {
    let server = TestServer::start(&config("allow = [\"192.0.2.0/24\", \"localhost\"]\n")).await;
    let mut fake = FakeSap::start().await;
    let outside = subscribe(&server, "A1", &fake.url, "IC").await;
    assert_fault(&outside, "Client", "appURL refused");
    assert!(
        outside.body.contains("not in [events] allow"),
        "{}",
        outside.body
    );
    // The same receiver by an allowed name is fine, and gets its events.
    let by_name = format!("http://localhost:{}/sap/events", fake.addr.port());
    server.log_in("A1", "2001", &by_name, "IC", 2).await;
    assert_eq!(fake.next_event().await.name, "workmodeChanged");
    server.stop().await;
    assert_eq!(fake.requests(), 1, "nothing went to the refused appURL");
}
