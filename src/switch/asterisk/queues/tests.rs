//! The collector over AMI text: `testdata/queue_status_recorded.ami` is the `QueueStatus`
//! answer recorded from the lab PBX (`queue_call.ami`, one queue, agent 2001 on a call);
//! `testdata/queue_status_busy.ami` is written in the same layout, with the fields
//! Asterisk's `app_queue` lists for `QueueEntry` (waiting callers), a paused member and
//! one whose phone is unregistered (`Status: 5`), which the lab cannot produce on demand.

use super::*;
use crate::switch::asterisk::codec::{Decoder, Frame};

const BANNER: &str = "Asterisk Call Manager/11.0.0";

fn config(queues: &[&str], numbers: &[(&str, &str)]) -> AsteriskConfig {
    let mut config: AsteriskConfig = toml::from_str(
        r#"host = "127.0.0.1"
username = "cti"
secret = "x""#,
    )
    .unwrap();
    config.queues = queues.iter().map(|q| q.to_string()).collect();
    config.queue_numbers = numbers
        .iter()
        .map(|(q, n)| (q.to_string(), n.to_string()))
        .collect();
    config
}

/// The messages of `text`, read by the adapter's decoder as if right after the banner.
fn messages(text: &str) -> Vec<Message> {
    let mut decoder = Decoder::new();
    decoder.feed(format!("{BANNER}\r\n{text}").as_bytes());
    let mut out = Vec::new();
    while let Ok(Some(frame)) = decoder.next_frame() {
        if let Frame::Message(message) = frame {
            out.push(message);
        }
    }
    out
}

/// Feeds the whole answer; the collector must say done exactly at the last message.
fn collect(config: &AsteriskConfig, text: &str) -> Vec<QueueStatus> {
    let mut collector = Collector::new(config);
    let messages = messages(text);
    let last = messages.len() - 1;
    for (i, message) in messages.iter().enumerate() {
        let progress = collector.feed(message);
        assert_eq!(
            progress == Progress::Done,
            i == last,
            "message {i}: {message:?}"
        );
    }
    match collector.finish() {
        Ok(SwitchReply::Queues(queues)) => queues,
        other => panic!("{other:?}"),
    }
}

#[test]
fn recorded_answer_one_agent_on_a_call_nobody_waiting() {
    let text = include_str!("../testdata/queue_status_recorded.ami");
    let queues = collect(&config(&["support"], &[("support", "600")]), text);
    assert_eq!(
        queues,
        [QueueStatus {
            name: "support".into(),
            number: Some("600".into()),
            waiting: 0,
            longest_wait: Duration::ZERO,
            agents_logged_in: 1,
            agents_ready: 1,
        }]
    );
}

#[test]
fn waiting_callers_paused_and_unregistered_members() {
    let text = include_str!("../testdata/queue_status_busy.ami");
    let queues = collect(&config(&[], &[("support", "600")]), text);
    assert_eq!(
        queues,
        [
            QueueStatus {
                name: "billing".into(),
                number: None,
                waiting: 0,
                longest_wait: Duration::ZERO,
                agents_logged_in: 0,
                agents_ready: 0,
            },
            QueueStatus {
                name: "support".into(),
                number: Some("600".into()),
                waiting: 2,
                longest_wait: Duration::from_secs(47),
                agents_logged_in: 3,
                agents_ready: 1,
            },
        ]
    );
    // Only the configured queues are reported.
    let only = collect(&config(&["billing"], &[]), text);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].name, "billing");
}

#[test]
fn a_refused_action_fails_the_query() {
    let mut collector = Collector::new(&config(&[], &[]));
    let refused =
        messages("Response: Error\r\nActionID: ici-3\r\nMessage: Permission denied\r\n\r\n");
    assert_eq!(collector.feed(&refused[0]), Progress::Done);
    assert_eq!(
        collector.finish(),
        Err(SwitchError::Rejected("Permission denied".into()))
    );
}

#[tokio::test]
async fn queries_take_only_their_own_messages_and_answer_once_complete() {
    let config = config(&[], &[]);
    let mut queries = Queries::default();
    let (tx, mut rx) = oneshot::channel();
    queries.start("ici-7".into(), &config, tx);
    let other = messages("Event: QueueMemberPause\r\nQueue: support\r\nPaused: 1\r\n\r\n");
    assert!(
        !queries.take(&other[0]),
        "an event of no query is the model's"
    );
    let answer = messages(include_str!("../testdata/queue_status_busy.ami"));
    for message in &answer {
        assert!(
            rx.try_recv().is_err(),
            "answered before the list was complete"
        );
        assert!(queries.take(message));
    }
    assert!(matches!(rx.try_recv(), Ok(Ok(SwitchReply::Queues(q))) if q.len() == 2));
}

#[tokio::test(start_paused = true)]
async fn a_late_or_lost_answer_is_unavailable() {
    let config = config(&[], &[]);
    let mut queries = Queries::default();
    let (late_tx, mut late_rx) = oneshot::channel();
    queries.start("ici-1".into(), &config, late_tx);
    tokio::time::advance(QUERY_WAIT).await;
    let (lost_tx, mut lost_rx) = oneshot::channel();
    queries.start("ici-2".into(), &config, lost_tx);
    queries.expire(Instant::now());
    assert!(matches!(
        late_rx.try_recv(),
        Ok(Err(SwitchError::Unavailable(_)))
    ));
    assert!(lost_rx.try_recv().is_err(), "not late yet");
    queries.abandon();
    assert!(matches!(
        lost_rx.try_recv(),
        Ok(Err(SwitchError::Unavailable(_)))
    ));
}
