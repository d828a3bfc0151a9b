//! Nothing lost across our own restarts: events accepted from the switch sit in the spool
//! until SAP acknowledged them, and subscriptions survive, whether the connector stops
//! gracefully or is killed with SIGKILL.

use crate::common;

use std::sync::Arc;
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

/// Waits until the spool holds every event up to `sequence`. Polled: only the status page
/// reports it (a SOAP answer confirms only what its own operation changed, and these
/// events come from the simulator's control API).
async fn wait_durable(api: &Endpoints, sequence: u64) {
    let what = format!("the spool holds every event up to {sequence}");
    common::poll(&what, Duration::from_secs(30), || async move {
        let status = api.status().await;
        let durable = status["subscriptions"][0]["durable_sequence"]
            .as_u64()
            .unwrap_or(0);
        match durable >= sequence {
            true => Ok(()),
            false => Err(status.to_string()),
        }
    })
    .await
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

// ---- kill -9 in the middle of a burst of call operations ---------------------------------

/// Agents of the burst, one worker each (user, extension).
const BURST_AGENTS: [(&str, &str); 4] = [
    ("B1", "2101"),
    ("B2", "2102"),
    ("B3", "2103"),
    ("B4", "2104"),
];
/// SOAP operations answered 200 (over all workers) after which the process is killed.
const KILL_AFTER_ANSWERS: usize = 40;

/// One step of a worker's cycle, and the leg state SAP must hear about once it succeeded.
#[derive(Debug, Clone, Copy)]
enum Step {
    Dial,
    RemoteAnswer,
    Hold,
    Unhold,
    Drop,
}

impl Step {
    const CYCLE: [Step; 5] = [
        Step::Dial,
        Step::RemoteAnswer,
        Step::Hold,
        Step::Unhold,
        Step::Drop,
    ];

    fn state(self) -> &'static str {
        match self {
            Step::Dial => "dialing",
            Step::RemoteAnswer | Step::Unhold => "connected",
            Step::Hold => "held",
            Step::Drop => "dropped",
        }
    }
}

/// What one worker saw: its steps that succeeded, in order, with their call.
#[derive(Debug, Default)]
struct WorkerLog {
    succeeded: Vec<(Step, String)>,
}

/// A client that reports a broken connection instead of panicking (the process is killed
/// under it).
struct Tolerant {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl Tolerant {
    fn new() -> Tolerant {
        Tolerant {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }

    /// POSTs `body` to `url`; `None` when the connection broke.
    async fn post(&self, url: &str, body: String) -> Option<(u16, String)> {
        use http_body_util::BodyExt;
        let request = http::Request::post(url)
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"\"")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("an answer or a broken connection within 30 s")
            .ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// The text of the first `<return>` of a SOAP answer.
fn return_text(body: &str) -> String {
    let parsed = ici_connector::soap::parse_request(body.as_bytes()).expect("a SOAP answer");
    parsed
        .operation
        .child("return")
        .map(|r| r.text.to_string())
        .unwrap_or_else(|| panic!("no return in {body}"))
}

/// Cycles dial → remote answer → hold → unhold → drop until a request fails (the process
/// was killed); counts every SOAP operation answered 200 in `answered`.
async fn burst_worker(
    soap: String,
    admin: String,
    user: &'static str,
    answered: Arc<tokio::sync::watch::Sender<usize>>,
) -> WorkerLog {
    use common::server::{envelope_as, params};
    let http = Tolerant::new();
    let mut log = WorkerLog::default();
    let mut call = String::new();
    loop {
        for step in Step::CYCLE {
            let result = match step {
                Step::Dial => {
                    let body = envelope_as(
                        user,
                        "PhoneCall",
                        "dial",
                        &params(&[("userId", user), ("address", "+4930555")]),
                    );
                    http.post(&soap, body).await
                }
                Step::RemoteAnswer => {
                    let url = format!("{admin}/sim/calls/{call}/answer");
                    http.post(&url, String::new()).await
                }
                Step::Hold | Step::Unhold | Step::Drop => {
                    let op = match step {
                        Step::Hold => "hold",
                        Step::Unhold => "unhold",
                        _ => "drop",
                    };
                    let body = envelope_as(user, "PhoneCall", op, &params(&[("callId", &call)]));
                    http.post(&soap, body).await
                }
            };
            let Some((status, body)) = result else {
                return log;
            };
            assert_eq!(status, 200, "{step:?} for {user}: {body}");
            if let Step::Dial = step {
                call = return_text(&body);
            }
            log.succeeded.push((step, call.clone()));
            if !matches!(step, Step::RemoteAnswer) {
                answered.send_modify(|n| *n += 1);
            }
        }
    }
}

/// What one kill -9 in a burst cost.
#[derive(Debug, Default)]
struct BurstReport {
    /// SOAP operations answered 200 before the kill.
    answered: usize,
    /// From the start of the burst to the kill.
    burst: Duration,
    /// Events of steps that succeeded before the kill and never arrived.
    lost_events: usize,
    /// What was lost, for the failure message.
    lost: Vec<String>,
    /// Sequence numbers given to two different events, or handed out again after the
    /// restart.
    reused: Vec<String>,
}

/// One run: four agents, their SAP answering 503, a burst of dial/hold/unhold/drop,
/// SIGKILL right after the `KILL_AFTER_ANSWERS`th answer, restart, SAP back.
async fn kill_during_burst() -> BurstReport {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    // setAddresses takes only extensions the switch has.
    let extensions: Vec<&str> = BURST_AGENTS.iter().map(|(_, ext)| *ext).collect();
    std::fs::write(
        &config,
        format!(
            "[soap]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [events]\ndata_dir = {:?}\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n\
             [switch.sim]\nremote_answer_after = \"off\"\nextensions = {extensions:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut fake = FakeSap::start().await;
    fake.set_mode(Mode::Status(503));
    let path = |user: &str| format!("/sap/{user}");

    let first = Process::start(&config);
    for (user, extension) in BURST_AGENTS {
        first
            .endpoints
            .log_in(user, extension, &fake.url_for(&path(user)), "IC-1", 2)
            .await;
    }
    // The sequence numbers handed out so far, as the status page shows them.
    let admin = format!("http://{}", first.endpoints.admin);
    let soap = first.endpoints.soap_url();
    let (stop_polling, polling_stopped) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(poll_sequences(admin.clone(), polling_stopped));
    let answered = Arc::new(tokio::sync::watch::Sender::new(0usize));
    let burst_start = tokio::time::Instant::now();
    let workers: Vec<_> = BURST_AGENTS
        .iter()
        .map(|&(user, _)| {
            tokio::spawn(burst_worker(
                soap.clone(),
                admin.clone(),
                user,
                Arc::clone(&answered),
            ))
        })
        .collect();
    let mut progress = answered.subscribe();
    tokio::time::timeout(
        Duration::from_secs(60),
        progress.wait_for(|n| *n >= KILL_AFTER_ANSWERS),
    )
    .await
    .expect("the burst makes progress")
    .unwrap();
    let burst = burst_start.elapsed();
    first.kill();
    let _ = stop_polling.send(true);
    let handed_out = poller.await.unwrap();
    let mut logs = Vec::new();
    for worker in workers {
        logs.push(worker.await.unwrap());
    }

    fake.set_mode(Mode::Ok);
    let second = Process::start(&config);
    // The subscriptions the spool kept (all of them, unless subscribeUser was answered before
    // its record was on disk).
    let restored: Vec<String> = second.endpoints.status().await["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["app_url"].as_str().unwrap().parse::<http::Uri>().unwrap())
        .map(|url| url.path().to_string())
        .collect();
    // A fresh event per agent, behind everything restored.
    for (_, extension) in BURST_AGENTS {
        let (status, body) = second
            .endpoints
            .sim(
                "POST",
                &format!("/agents/{extension}/state"),
                json!({"state": "not_ready"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut received: Vec<common::fake_sap::Received> = Vec::new();
    let mut fresh: std::collections::HashMap<String, u64> = Default::default();
    while fresh.len() < restored.len() {
        let event = fake.next_event().await;
        if event.name == "workmodeChanged" && event.field("workmode").as_deref() == Some("3") {
            fresh.insert(event.path.clone(), event.sequence.unwrap());
        }
        received.push(event);
    }
    second.kill();

    let mut report = BurstReport {
        answered: *answered.borrow(),
        burst,
        ..BurstReport::default()
    };
    // No number for two different events.
    let mut bodies: std::collections::HashMap<(String, u64), &str> = Default::default();
    for event in &received {
        let key = (event.path.clone(), event.sequence.unwrap());
        if let Some(other) = bodies.insert(key.clone(), &event.body)
            && other != event.body
        {
            report
                .reused
                .push(format!("{key:?} carried two different events"));
        }
    }
    for ((user, _), log) in BURST_AGENTS.iter().zip(&logs) {
        if !restored.contains(&path(user)) {
            let events = 1 + log.succeeded.len();
            report.lost_events += events;
            report
                .lost
                .push(format!("{user}: the subscription and its {events} events"));
            continue;
        }
        let events: Vec<_> = received.iter().filter(|e| e.path == path(user)).collect();
        // Every SOAP operation answered 200 produced one event of its call, and the remote
        // answer before a hold answered 200 is confirmed with it. (The simulator's own
        // answer is not an operation SAP saw succeed: on its own it promises nothing.)
        let mut expected: std::collections::HashMap<(String, &str), usize> = Default::default();
        let steps = &log.succeeded;
        for (i, (step, call)) in steps.iter().enumerate() {
            let confirmed = match step {
                Step::RemoteAnswer => steps.get(i + 1).is_some_and(|(_, next)| next == call),
                _ => true,
            };
            if confirmed {
                *expected.entry((call.clone(), step.state())).or_default() += 1;
            }
        }
        for ((call, state), want) in expected {
            let mut sequences: Vec<u64> = events
                .iter()
                .filter(|e| {
                    e.field("callId").as_deref() == Some(call.as_str())
                        && e.field("state").as_deref() == Some(state)
                })
                .map(|e| e.sequence.unwrap())
                .collect();
            sequences.sort_unstable();
            sequences.dedup();
            if sequences.len() < want {
                report.lost_events += want - sequences.len();
                report.lost.push(format!(
                    "{user}: {} of {want} {state} events of {call} arrived",
                    sequences.len()
                ));
            }
        }
        // The login's workmodeChanged plus one event per step: numbers up to here were
        // handed out before the kill (a remote answer last perhaps not yet), and so was what
        // the status page showed.
        let last_unconfirmed = matches!(steps.last(), Some((Step::RemoteAnswer, _)));
        let mut before_kill = 1 + steps.len() as u64 - u64::from(last_unconfirmed);
        if let Some(&shown) = handed_out.get(&path(user)) {
            before_kill = before_kill.max(shown);
        }
        let after = fresh[&path(user)];
        if after <= before_kill {
            report.reused.push(format!(
                "{user}: the first event after the restart has number {after}, \
                 numbers up to {before_kill} were handed out before the kill"
            ));
        }
    }
    report
}

/// Polls the status page until told to stop (or the process is gone); returns the highest
/// sequence number seen per appURL path.
async fn poll_sequences(
    admin: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::collections::HashMap<String, u64> {
    let http = Tolerant::new();
    let mut seen = std::collections::HashMap::new();
    let client = &http.client;
    loop {
        if *stop.borrow() {
            return seen;
        }
        let request = http::Request::get(format!("{admin}/api/status"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let answer = tokio::select! {
            answer = client.request(request) => answer,
            _ = stop.changed() => return seen,
        };
        let Ok(answer) = answer else { return seen };
        let Ok(body) = http_body_util::BodyExt::collect(answer.into_body()).await else {
            return seen;
        };
        let status: serde_json::Value =
            serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
        for sub in status["subscriptions"].as_array().into_iter().flatten() {
            let url = sub["app_url"].as_str().unwrap_or_default();
            let path = url.parse::<http::Uri>().map(|u| u.path().to_string());
            if let (Ok(path), Some(sequence)) = (path, sub["sequence"].as_u64()) {
                let entry = seen.entry(path).or_insert(0);
                *entry = (*entry).max(sequence);
            }
        }
    }
}

/// Operations that answered 200 before a kill -9 lose no event, and no sequence number is
/// used twice: SAP's URL answers 503 throughout the burst, so everything sits in the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_confirmed_event_and_reuses_no_number() {
    let report = kill_during_burst().await;
    assert!(report.answered >= KILL_AFTER_ANSWERS);
    assert!(
        report.lost.is_empty() && report.reused.is_empty(),
        "{report:#?}"
    );
}

/// The figures for the release note: `BURST_RUNS` (default 20) runs of the burst above.
/// `cargo test --test durability burst_figures -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check: about a minute"]
async fn burst_figures() {
    let runs: usize = std::env::var("BURST_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let (mut lost, mut reused, mut bad_runs) = (0, 0, 0);
    for run in 1..=runs {
        let report = kill_during_burst().await;
        println!(
            "run {run}: {} answered in {} ms, {} events lost, {} numbers reused",
            report.answered,
            report.burst.as_millis(),
            report.lost_events,
            report.reused.len()
        );
        for what in report.lost.iter().chain(&report.reused) {
            println!("  {what}");
        }
        lost += report.lost_events;
        reused += report.reused.len();
        bad_runs += usize::from(!report.lost.is_empty() || !report.reused.is_empty());
    }
    println!(
        "{runs} runs: {lost} events lost, {reused} sequence numbers reused, {bad_runs} runs with a loss or reuse"
    );
}

// ---- a damaged spool -----------------------------------------------------------------------

/// The spool file inside the data folder of [`process_config`].
const SPOOL_FILE: &str = "spool.redb";

/// A configuration for a child process with its spool in `dir/data`; returns its path.
fn process_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[soap]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [events]\ndata_dir = {:?}\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n\
             [switch.sim]\nremote_answer_after = \"off\"\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    config
}

/// Flips the last byte of every copy of `needle` in `file` (redb may keep stale copies in
/// free pages); returns how many it found.
fn flip_in_file(file: &std::path::Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(file).unwrap();
    let mut found = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let end = at + pos + needle.len();
        bytes[end - 1] ^= 0x01;
        found += 1;
        at = end;
    }
    std::fs::write(file, bytes).unwrap();
    found
}

/// The stderr lines about quarantined records, as (subscription, sequence) pairs.
fn quarantine_line(line: &str) -> Option<(String, String)> {
    if !line.contains("moved to quarantine") || !line.contains("ERROR") {
        return None;
    }
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_default()
            .to_string()
    };
    Some((field("subscription="), field("sequence=")))
}

/// A byte flipped on disk inside one call's events is caught at start: those events go to
/// quarantine with an error line naming subscription and sequence, the others are
/// delivered, and the damaged bytes never reach SAP.
// Several threads: the test blocks on the child's stderr while the fake SAP answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_stored_event_is_quarantined_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let config = process_config(dir.path());
    let mut fake = FakeSap::start().await;
    fake.set_mode(Mode::Status(503));

    let first = Process::start(&config);
    first
        .endpoints
        .log_in("A1", "2001", &fake.url, "IC-1", 2)
        .await;
    // Three calls from three callers: alerting and dropped each, after the workmode event.
    for caller in ["+4930111111", "+4930222222", "+4930333333"] {
        let (status, body) = first
            .endpoints
            .sim("POST", "/calls", json!({"from": caller, "to": "2001"}))
            .await;
        assert_eq!(status, 201, "{body}");
        let call = body["callId"].as_str().unwrap().to_string();
        let (status, _) = first
            .endpoints
            .sim("POST", &format!("/calls/{call}/hangup"), json!(null))
            .await;
        assert_eq!(status, 200);
    }
    wait_durable(&first.endpoints, 7).await;
    first.stop();

    let spool = dir.path().join("data").join(SPOOL_FILE);
    assert!(
        flip_in_file(&spool, b"4930222222") > 0,
        "the caller is on disk"
    );
    fake.set_mode(Mode::Ok);
    let second = Process::start(&config);
    let mut quarantined = vec![
        quarantine_line(&second.expect_line("moved to quarantine")).unwrap(),
        quarantine_line(&second.expect_line("moved to quarantine")).unwrap(),
    ];
    quarantined.sort();
    let expected = |s: &str| ("1".to_string(), s.to_string());
    assert_eq!(quarantined, [expected("4"), expected("5")]);
    let events = fake.next_events(5).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence.unwrap()).collect();
    assert_eq!(sequences, [1, 2, 3, 6, 7], "the gap shows what was lost");
    assert!(events.iter().all(|e| !e.body.contains("493022222")));
    let metrics = second
        .endpoints
        .request(true, "GET", "/metrics", &[], "")
        .await
        .body;
    assert!(
        metrics.contains("ici_spool_quarantined_total{table=\"events\"} 2"),
        "{metrics}"
    );
    second.stop();
}

/// A spool of the previous format (bare JSON, as the last release wrote it) with one broken
/// record: no crash, the record goes to quarantine, the rest is delivered and numbering
/// continues.
// Several threads: the test blocks on the child's stderr while the fake SAP answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_record_is_quarantined_and_the_rest_delivered() {
    use ici_connector::soap::{Value, write_call};
    use redb::TableDefinition;
    const SUBSCRIPTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("subscriptions");
    const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
    const AGENTS: TableDefinition<&str, &str> = TableDefinition::new("agents");

    let dir = tempfile::tempdir().unwrap();
    let config = process_config(dir.path());
    let mut fake = FakeSap::start().await;
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    {
        let db = redb::Database::create(dir.path().join("data").join(SPOOL_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let subscription = json!({"id": 1, "kind": "user", "target": "A1", "url": fake.url,
                "app_ids": ["IC-1"], "sequence": 3});
            txn.open_table(SUBSCRIPTIONS)
                .unwrap()
                .insert(1, subscription.to_string().as_bytes())
                .unwrap();
            let mut events = txn.open_table(EVENTS).unwrap();
            for sequence in 1..=3u64 {
                let body = write_call(
                    "urn:IciEventInterface",
                    "workmodeChanged",
                    &[
                        ("appIds", Value::text_list(["IC-1".to_string()])),
                        ("sequence", Value::Int(sequence as i64)),
                        ("userId", Value::text("A1")),
                        ("workmode", Value::Int(2)),
                    ],
                );
                let event = json!({"name": "workmodeChanged", "sequence": sequence,
                    "user": "A1", "call": null, "body": body});
                events
                    .insert((1, sequence), event.to_string().as_bytes())
                    .unwrap();
            }
            // What stopped the whole connector ("expected value at line 1 column 1").
            events.insert((1, 2), &b"\x00garbage"[..]).unwrap();
            txn.open_table(AGENTS)
                .unwrap()
                .insert("A1", "2001")
                .unwrap();
        }
        txn.commit().unwrap();
    }

    let server = Process::start(&config);
    let line = server.expect_line("moved to quarantine");
    assert_eq!(
        quarantine_line(&line),
        Some(("1".to_string(), "2".to_string())),
        "{line}"
    );
    let events = fake.next_events(2).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence.unwrap()).collect();
    assert_eq!(sequences, [1, 3]);
    // The subscription and the agent's address survived: a new event continues the
    // numbering (the previous format had no reservation to skip).
    server
        .endpoints
        .sim("POST", "/agents/2001/state", json!({"state": "not_ready"}))
        .await;
    assert_eq!(fake.next_event().await.sequence, Some(4));
    server.stop();
}

/// A spool file that holds nothing (0 bytes), or is no spool at all, stops the start with
/// an error naming the file, instead of a start with no subscriptions.
#[tokio::test]
async fn an_empty_or_foreign_spool_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = process_config(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let spool = data.join(SPOOL_FILE);
    for (content, why) in [
        (&b""[..], "empty (0 bytes)"),
        (
            &b"[events]\ndata_dir = \"data\"\n"[..],
            "not a redb database",
        ),
    ] {
        std::fs::write(&spool, content).unwrap();
        let (code, lines) = Process::start_refused(&config);
        assert_ne!(code, Some(0));
        let all = lines.join("\n");
        let named = lines
            .iter()
            .any(|l| l.contains(&spool.display().to_string()) && l.contains(why));
        assert!(named, "no line names {} ({why}):\n{all}", spool.display());
        assert_eq!(
            std::fs::read(&spool).unwrap(),
            content,
            "the file is left alone"
        );
    }
}
