//! The notifier against a fake SAP event receiver on real sockets: ordering, retries,
//! duplicates, the end of SAP's session, the queue bound, and draining after the end.

use crate::common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ici_connector::notify::{
    Destinations, EndReason, Feedback, Notifier, NotifierSettings, OutboundEvent, Outbox, PushError,
};
use ici_connector::soap::{Value, write_call};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use common::fake_sap::{FakeSap, Mode, Received, WAIT};

/// Small pauses so retries happen quickly on real sockets.
fn settings() -> NotifierSettings {
    NotifierSettings {
        request_timeout: Duration::from_secs(5),
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        ..NotifierSettings::default()
    }
}

fn notifier(settings: NotifierSettings) -> (Notifier, mpsc::Receiver<Feedback>) {
    common::log_to_test_output();
    let (feedback, feedback_rx) = mpsc::channel(16);
    (Notifier::new(settings, feedback), feedback_rx)
}

fn open(notifier: &Notifier, id: u64, url: &str) -> Outbox {
    notifier.open(id, url.parse().expect("valid URL"))
}

/// An event as the session manager writes it: `appIds` first, `sequence` in the call.
fn event(name: &'static str, app_id: &str, sequence: u64) -> OutboundEvent {
    let call = Value::Struct(vec![
        ("callId", Value::text(format!("CALL-{sequence}"))),
        ("state", Value::text("alerting")),
        ("remoteAddress", Value::text("+4930123456")),
        ("sequence", Value::Int(sequence as i64)),
    ]);
    let body = write_call(
        "urn:IciEventInterface",
        name,
        &[("appIds", Value::text_list([app_id])), ("call", call)],
    );
    OutboundEvent {
        name,
        sequence,
        user: "AGENT1".into(),
        call: Some(format!("CALL-{sequence}")),
        body,
    }
}

fn call_event(app_id: &str, sequence: u64) -> OutboundEvent {
    event("phoneCallChanged", app_id, sequence)
}

fn sequences(events: &[Received]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.sequence.expect("event carries a sequence"))
        .collect()
}

/// Waits for a condition that no channel reports (a count inside the notifier).
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    common::poll(what, WAIT, || {
        std::future::ready(match condition() {
            true => Ok(()),
            false => Err("not yet".into()),
        })
    })
    .await
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("not within {WAIT:?}: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_events_over_five_subscriptions_survive_refused_connections() {
    let mut sap = FakeSap::start().await;
    sap.set_mode(Mode::Refuse);
    let (notifier, _feedback) = notifier(settings());
    let outboxes: Vec<Outbox> = (0..5)
        .map(|i| open(&notifier, i, &sap.url_for(&format!("/sap/events/{i}"))))
        .collect();
    for sequence in 1..=200 {
        for (i, outbox) in outboxes.iter().enumerate() {
            outbox
                .push(call_event(&format!("APP{i}"), sequence))
                .unwrap();
        }
    }
    // Keep the port closed until every subscription has been refused a few times.
    wait_until("every outbox failed 3 attempts", || {
        outboxes.iter().all(|o| o.failed_attempts() >= 3)
    })
    .await;
    for outbox in &outboxes {
        assert_eq!(outbox.depth(), 200, "nothing delivered while refused");
    }

    sap.resume().await;
    let received = sap.next_events(1000).await;
    for i in 0..5 {
        let path = format!("/sap/events/{i}");
        let mine: Vec<Received> = received
            .iter()
            .filter(|e| e.path == path)
            .cloned()
            .collect();
        assert_eq!(
            sequences(&mine),
            (1..=200).collect::<Vec<u64>>(),
            "subscription {i}: in order, no gap, no duplicate"
        );
        assert!(mine.iter().all(|e| e.app_ids == [format!("APP{i}")]));
    }
    wait_until("every outbox acknowledged", || {
        outboxes.iter().all(|o| o.depth() == 0)
    })
    .await;
    assert!(sap.try_next_event().is_none());
}

#[tokio::test]
async fn server_error_is_retried_and_delivered_once() {
    let mut sap = FakeSap::start().await;
    sap.set_mode(Mode::Status(500));
    let (notifier, _feedback) = notifier(settings());
    let outbox = open(&notifier, 1, &sap.url);
    outbox.push(call_event("APP1", 1)).unwrap();
    sap.wait_requests(3).await;
    sap.set_mode(Mode::Ok);

    let first = sap.next_event().await;
    assert_eq!(first.sequence, Some(1));
    assert_eq!(first.path, "/sap/events");
    assert_eq!(first.name, "phoneCallChanged");
    assert_eq!(
        first.soap_action(),
        Some("\"urn:IciEventInterface#phoneCallChanged\"")
    );
    assert_eq!(
        first.headers["content-type"].to_str().unwrap(),
        "text/xml; charset=utf-8"
    );
    assert_eq!(first.app_ids, ["APP1"]);
    assert_eq!(first.field("state").as_deref(), Some("alerting"));
    assert_eq!(first.field("callId").as_deref(), Some("CALL-1"));
    assert_eq!(first.field("remoteAddress").as_deref(), Some("+4930123456"));
    assert!(outbox.failed_attempts() >= 2);

    // The next event comes right after: the first one was not delivered twice.
    outbox.push(call_event("APP1", 2)).unwrap();
    assert_eq!(sap.next_event().await.sequence, Some(2));
}

#[tokio::test]
async fn timed_out_request_is_retried_and_may_repeat_with_the_same_sequence() {
    let mut sap = FakeSap::start().await;
    // SAP processes the event but answers after the notifier gave up waiting.
    sap.set_mode(Mode::Slow(Duration::from_secs(2)));
    let (notifier, _feedback) = notifier(NotifierSettings {
        request_timeout: Duration::from_millis(200),
        ..settings()
    });
    let outbox = open(&notifier, 1, &sap.url);
    outbox.push(call_event("APP1", 1)).unwrap();
    outbox.push(call_event("APP1", 2)).unwrap();

    let first = sap.next_event().await;
    let repeat = sap.next_event().await;
    assert_eq!(first.sequence, Some(1));
    assert_eq!(repeat.sequence, first.sequence, "a retry repeats the event");
    assert_eq!(repeat.body, first.body);
    sap.set_mode(Mode::Ok);

    // Further repeats of 1 may arrive before the retry that succeeds; 2 only after them.
    loop {
        let next = sap.next_event().await;
        match next.sequence {
            Some(1) => continue,
            Some(2) => break,
            other => panic!("unexpected sequence {other:?}"),
        }
    }
    outbox.push(call_event("APP1", 3)).unwrap();
    assert_eq!(sap.next_event().await.sequence, Some(3), "2 was sent once");
}

#[tokio::test]
async fn connection_closed_mid_response_is_retried() {
    let mut sap = FakeSap::start().await;
    sap.set_mode(Mode::CloseMidResponse);
    let (notifier, _feedback) = notifier(settings());
    let outbox = open(&notifier, 1, &sap.url);
    outbox.push(call_event("APP1", 1)).unwrap();
    sap.wait_requests(2).await;
    sap.set_mode(Mode::Ok);

    assert_eq!(sap.next_event().await.sequence, Some(1));
    outbox.push(call_event("APP1", 2)).unwrap();
    assert_eq!(sap.next_event().await.sequence, Some(2));
    assert!(outbox.failed_attempts() >= 1);
}

#[tokio::test]
async fn unauthorized_ends_only_that_subscription() {
    let gone_sap = FakeSap::start().await;
    gone_sap.set_mode(Mode::Status(401));
    let mut alive_sap = FakeSap::start().await;
    let (notifier, mut feedback) = notifier(settings());
    let gone = open(&notifier, 1, &gone_sap.url);
    let alive = open(&notifier, 2, &alive_sap.url);
    for sequence in 1..=3 {
        gone.push(call_event("GONE", sequence)).unwrap();
        alive.push(call_event("ALIVE", sequence)).unwrap();
    }

    let ended = within("feedback", feedback.recv()).await.unwrap();
    let Feedback::Ended { id, reason } = ended;
    assert_eq!(id, 1);
    assert_eq!(reason, EndReason::SessionGone { status: 401 });
    assert_eq!(sequences(&alive_sap.next_events(3).await), [1, 2, 3]);

    assert_eq!(gone_sap.requests(), 1, "no retry after 401");
    assert_eq!(
        gone.push(call_event("GONE", 4)).unwrap_err(),
        PushError::Closed
    );
    assert_eq!(gone.depth(), 0, "the rest of the outbox is dropped");
    assert!(!gone.is_open());

    alive.push(call_event("ALIVE", 4)).unwrap();
    assert_eq!(alive_sap.next_event().await.sequence, Some(4));
    assert!(alive.is_open());
    assert!(feedback.try_recv().is_err(), "feedback is sent once");
}

#[tokio::test]
async fn not_found_on_one_path_ends_that_subscription() {
    let mut sap = FakeSap::start().await;
    sap.set_mode_for("/sap/gone", Mode::Status(404));
    let (notifier, mut feedback) = notifier(settings());
    let gone = open(&notifier, 7, &sap.url_for("/sap/gone"));
    let alive = open(&notifier, 8, &sap.url);
    gone.push(call_event("GONE", 1)).unwrap();
    alive.push(call_event("ALIVE", 1)).unwrap();

    let Feedback::Ended { id, reason } = within("feedback", feedback.recv()).await.unwrap();
    assert_eq!((id, reason), (7, EndReason::SessionGone { status: 404 }));
    let received = sap.next_event().await;
    assert_eq!(
        (received.path.as_str(), received.sequence),
        ("/sap/events", Some(1))
    );
    assert_eq!(gone.push(call_event("GONE", 2)), Err(PushError::Closed));
}

#[tokio::test]
async fn full_outbox_refuses_pushes_until_sap_catches_up() {
    let mut sap = FakeSap::start().await;
    sap.set_mode(Mode::Refuse);
    let (notifier, _feedback) = notifier(NotifierSettings {
        max_queue_per_subscription: 3,
        ..settings()
    });
    let outbox = open(&notifier, 1, &sap.url);
    for sequence in 1..=3 {
        outbox.push(call_event("APP1", sequence)).unwrap();
    }
    assert_eq!(outbox.push(call_event("APP1", 4)), Err(PushError::Full));
    wait_until("a refused attempt", || outbox.failed_attempts() >= 1).await;
    assert_eq!(
        outbox.push(call_event("APP1", 4)),
        Err(PushError::Full),
        "the event in flight still counts"
    );
    assert_eq!(outbox.depth(), 3);

    sap.resume().await;
    assert_eq!(sequences(&sap.next_events(3).await), [1, 2, 3]);
    wait_until("acknowledged", || outbox.depth() == 0).await;
    outbox.push(call_event("APP1", 4)).unwrap();
    assert_eq!(sap.next_event().await.sequence, Some(4));
}

#[tokio::test]
async fn dropped_outbox_still_delivers_everything_queued() {
    let mut sap = FakeSap::start().await;
    sap.set_mode(Mode::Status(503));
    let (notifier, mut feedback) = notifier(settings());
    let outbox = open(&notifier, 1, &sap.url);
    for sequence in 1..=19 {
        outbox.push(call_event("APP1", sequence)).unwrap();
    }
    outbox.push(event("subscriptionEnded", "APP1", 20)).unwrap();
    drop(outbox);
    sap.wait_requests(2).await;
    sap.set_mode(Mode::Ok);

    let received = sap.next_events(20).await;
    assert_eq!(sequences(&received), (1..=20).collect::<Vec<u64>>());
    assert_eq!(
        received[19].name, "subscriptionEnded",
        "the final event goes last"
    );
    assert!(feedback.try_recv().is_err());
}

#[tokio::test]
async fn slow_sap_session_does_not_delay_another() {
    let mut slow_sap = FakeSap::start().await;
    slow_sap.set_mode(Mode::Slow(WAIT));
    let mut fast_sap = FakeSap::start().await;
    let (notifier, _feedback) = notifier(NotifierSettings {
        request_timeout: WAIT * 2,
        ..settings()
    });
    let slow = open(&notifier, 1, &slow_sap.url);
    let fast = open(&notifier, 2, &fast_sap.url);
    slow.push(call_event("SLOW", 1)).unwrap();
    slow.push(call_event("SLOW", 2)).unwrap();
    assert_eq!(slow_sap.next_event().await.sequence, Some(1));
    for sequence in 1..=10 {
        fast.push(call_event("FAST", sequence)).unwrap();
    }
    assert_eq!(
        sequences(&fast_sap.next_events(10).await),
        (1..=10).collect::<Vec<u64>>()
    );
    assert_eq!(slow.depth(), 2, "the slow session is still waiting for SAP");
}

/// The fake's CloseMidResponse really sends a status line and headers, then closes.
#[tokio::test]
async fn fake_sap_close_mid_response_sends_headers_then_closes() {
    let sap = FakeSap::start().await;
    sap.set_mode(Mode::CloseMidResponse);
    let mut stream = tokio::net::TcpStream::connect(sap.addr).await.unwrap();
    stream
        .write_all(b"POST /sap/events HTTP/1.1\r\nHost: sap\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    within("connection closed", stream.read_to_end(&mut answer))
        .await
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("headers were sent");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 64"),
        "{head}"
    );
    assert!(body.len() < 64, "the body is cut short");
    assert_eq!(sap.requests(), 1);
}

#[tokio::test]
async fn session_gone_after_the_outbox_was_dropped_is_not_reported() {
    let sap = FakeSap::start().await;
    sap.set_mode(Mode::Status(401));
    let (notifier, mut feedback) = notifier(settings());
    // The owner ends the subscription with a final event; SAP's session is already gone.
    let old = open(&notifier, 1, &sap.url);
    old.push(event("subscriptionEnded", "OLD", 1)).unwrap();
    drop(old);
    sap.wait_requests(1).await;
    // A live subscription that then meets the same 401: only it is reported.
    let current = open(&notifier, 2, &sap.url);
    current.push(call_event("NEW", 1)).unwrap();
    let Feedback::Ended { id, reason } = within("feedback", feedback.recv()).await.unwrap();
    assert_eq!((id, reason), (2, EndReason::SessionGone { status: 401 }));
    assert_eq!(sap.requests(), 2);
}

/// A 2xx is a delivery whatever its body: a 10 MB one is cut off after a bounded read, and
/// its connection is closed rather than reused.
#[tokio::test]
async fn large_2xx_body_is_one_delivery_on_a_fresh_connection_each() {
    let mut sap = FakeSap::start().await;
    sap.set_mode(Mode::Body {
        status: 200,
        bytes: 10 * 1024 * 1024,
    });
    let (notifier, _feedback) = notifier(settings());
    let outbox = open(&notifier, 1, &sap.url);
    outbox.push(call_event("APP1", 1)).unwrap();
    outbox.push(call_event("APP1", 2)).unwrap();
    assert_eq!(sequences(&sap.next_events(2).await), [1, 2]);
    wait_until("acknowledged", || outbox.depth() == 0).await;
    assert_eq!(sap.requests(), 2, "no retry");
    assert_eq!(
        sap.connections(),
        2,
        "an unread body's connection is not reused"
    );
    assert_eq!(outbox.failed_attempts(), 0);
}

/// Statuses SAP would answer again the same way (other 4xx, 3xx) drop that event only.
#[tokio::test]
async fn refusing_statuses_drop_the_event_and_the_next_follows() {
    let mut sap = FakeSap::start().await;
    let (notifier, _feedback) = notifier(settings());
    let outbox = open(&notifier, 1, &sap.url);
    let mut sequence = 0;
    for code in [400, 403, 405, 413, 415, 422, 302] {
        sap.set_mode(Mode::Status(code));
        let before = sap.requests();
        sequence += 1;
        outbox.push(call_event("APP1", sequence)).unwrap();
        sap.wait_requests(before + 1).await;
        sap.set_mode(Mode::Ok);
        sequence += 1;
        outbox.push(call_event("APP1", sequence)).unwrap();
        assert_eq!(
            sap.next_event().await.sequence,
            Some(sequence),
            "after {code} the refused event is not sent again"
        );
        assert_eq!(sap.requests(), before + 2, "{code}: one attempt each");
    }
    assert_eq!(
        outbox.failed_attempts(),
        0,
        "a refusal is not a failed attempt"
    );
    assert!(outbox.is_open(), "the subscription goes on");
}

/// 408, 429 and 5xx may pass: the same event is retried until SAP takes it.
#[tokio::test]
async fn transient_statuses_are_retried() {
    let mut sap = FakeSap::start().await;
    let (notifier, _feedback) = notifier(settings());
    let outbox = open(&notifier, 1, &sap.url);
    for (sequence, code) in (1..).zip([408, 429, 502, 503, 504]) {
        sap.set_mode(Mode::Status(code));
        let before = sap.requests();
        outbox.push(call_event("APP1", sequence)).unwrap();
        sap.wait_requests(before + 2).await;
        sap.set_mode(Mode::Ok);
        assert_eq!(sap.next_event().await.sequence, Some(sequence), "{code}");
    }
    assert!(outbox.failed_attempts() >= 10);
}

/// A 503 with `Retry-After` waits that long before the retry, but never beyond
/// `retry_max`.
#[tokio::test]
async fn retry_after_is_honoured_up_to_retry_max() {
    let mut sap = FakeSap::start().await;
    sap.set_mode(Mode::RetryAfter {
        status: 503,
        value: "1".into(),
    });
    let (patient, _feedback) = notifier(NotifierSettings {
        retry_max: Duration::from_secs(5),
        ..settings()
    });
    let outbox = open(&patient, 1, &sap.url);
    outbox.push(call_event("APP1", 1)).unwrap();
    sap.wait_requests(1).await;
    let refused_at = Instant::now();
    sap.set_mode(Mode::Ok);
    assert_eq!(sap.next_event().await.sequence, Some(1));
    let waited = refused_at.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // An hour is asked for; retry_max (100 ms here) wins.
    let mut capped = FakeSap::start().await;
    capped.set_mode(Mode::RetryAfter {
        status: 429,
        value: "3600".into(),
    });
    let (notifier, _feedback) = notifier(settings());
    let outbox = open(&notifier, 2, &capped.url);
    outbox.push(call_event("APP1", 1)).unwrap();
    capped.wait_requests(2).await;
    capped.set_mode(Mode::Ok);
    assert_eq!(capped.next_event().await.sequence, Some(1));
}

/// Even when the appURL's name resolves to our own listener only at connect time (DNS
/// moved it after the subscription), no connection is made to it.
#[tokio::test]
async fn no_connection_to_our_own_listener_whatever_the_name() {
    let own = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    own.set_nonblocking(true).unwrap();
    let own_addr = own.local_addr().unwrap();
    let (notifier, _feedback) = notifier(NotifierSettings {
        destinations: Arc::new(Destinations::new([own_addr], &[])),
        ..settings()
    });
    let url = format!("http://localhost:{}/sap/events", own_addr.port());
    let outbox = open(&notifier, 1, &url);
    outbox.push(call_event("APP1", 1)).unwrap();
    wait_until("two refused attempts", || outbox.failed_attempts() >= 2).await;
    let accepted = own.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection reached our listener: {accepted:?}"
    );
    let last = outbox.last_delivery().unwrap();
    assert!(last.contains("own listener"), "{last}");
    assert_eq!(
        outbox.depth(),
        1,
        "kept, and retried while the subscription lives"
    );
}

/// With `[events] allow` set, no connection goes to an address outside it.
#[tokio::test]
async fn no_connection_outside_the_allow_list() {
    let mut sap = FakeSap::start().await;
    let outside = |allow: &str| NotifierSettings {
        destinations: Arc::new(Destinations::new([], &[allow.to_string()])),
        ..settings()
    };
    let (refusing, _feedback) = notifier(outside("192.0.2.0/24"));
    let refused = open(&refusing, 1, &sap.url);
    refused.push(call_event("APP1", 1)).unwrap();
    wait_until("two refused attempts", || refused.failed_attempts() >= 2).await;
    assert_eq!(sap.connections(), 0);
    let last = refused.last_delivery().unwrap();
    assert!(last.contains("not in [events] allow"), "{last}");

    let (allowing, _feedback) = notifier(outside("127.0.0.0/8"));
    let allowed = open(&allowing, 2, &sap.url);
    allowed.push(call_event("APP2", 1)).unwrap();
    assert_eq!(sap.next_event().await.app_ids, ["APP2"]);
}
