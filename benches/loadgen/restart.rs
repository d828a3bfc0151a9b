//! `restart`: a restart with a large backlog in the spool (BENCHMARKS.md, benchmark 8).
//!
//! 1. Starts an order-checking receiver (SAP's appURL side: `/sap/{subscription}`).
//! 2. Fills a fresh spool through the store's own API (`RedbStore::apply`, the writer
//!    thread's path, in large commits): `--subscriptions` subscriptions to the receiver and
//!    `--events` undelivered `phoneCallChanged` events spread over them, numbered 1, 2, ...
//!    per subscription; then marks it stopped gracefully (`close_clean`) unless `--crash`.
//! 3. Starts the connector on that spool and measures, from its start: the time until it
//!    answers a SOAP request (`getAttributes`, which goes through the session manager), its
//!    RSS then, the highest RSS while it delivers for `--watch` seconds (sampled every
//!    [`RSS_SAMPLE`], and the kernel's `VmHWM`), how many events arrived, and whether every
//!    subscription's events arrived in order, from its first one, without a gap.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ici_connector::notify::spool::SpoolStore;
use ici_connector::notify::{RedbStore, SpoolOp, StoredEvent, StoredSubscription};
use serde_json::json;
use tokio::net::TcpListener;

use super::{Conn, EMPTY_SOAP_RESPONSE, between, envelope};

/// Events per commit while filling the spool.
const FILL_BATCH: u64 = 20_000;
/// How often the connector's RSS is read while it delivers.
const RSS_SAMPLE: Duration = Duration::from_millis(100);
/// How long the connector may take to answer its first SOAP request.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

pub struct RestartRun {
    pub connector: PathBuf,
    pub events: u64,
    pub subscriptions: u64,
    pub watch: Duration,
    pub crash: bool,
    pub label: String,
}

/// What the receiver saw, per subscription (index = subscription id - 1).
struct Seen {
    /// The last sequence number received per subscription (0: none yet).
    last: Vec<AtomicU64>,
    received: AtomicU64,
    /// Events that did not carry the next number of their subscription.
    out_of_order: AtomicU64,
    /// The first of them, for the report.
    first_problem: Mutex<Option<String>>,
}

fn start_receiver(subscriptions: u64) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen {
        last: (0..subscriptions).map(|_| AtomicU64::new(0)).collect(),
        received: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        first_problem: Mutex::new(None),
    });
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let shared = seen.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(receive(request, &seen).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    let addr: SocketAddr = addr_rx.recv().expect("receiver address");
    (format!("http://{addr}/sap/"), seen)
}

async fn receive(
    request: hyper::Request<hyper::body::Incoming>,
    seen: &Seen,
) -> Response<Full<Bytes>> {
    let id = request
        .uri()
        .path()
        .strip_prefix("/sap/")
        .and_then(|i| i.parse::<usize>().ok());
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let sequence = between(&text, "<sequence>", "</sequence>").and_then(|s| s.parse::<u64>().ok());
    seen.received.fetch_add(1, Ordering::Relaxed);
    let problem = match (id.and_then(|i| seen.last.get(i.wrapping_sub(1))), sequence) {
        (Some(last), Some(sequence)) => {
            let before = last.swap(sequence, Ordering::AcqRel);
            (sequence != before + 1)
                .then(|| format!("subscription {}: {sequence} after {before}", id.unwrap()))
        }
        _ => Some(format!("unexpected event at {id:?}: {sequence:?}")),
    };
    if let Some(problem) = problem {
        seen.out_of_order.fetch_add(1, Ordering::Relaxed);
        seen.first_problem.lock().unwrap().get_or_insert(problem);
    }
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .body(Full::new(Bytes::from_static(
            EMPTY_SOAP_RESPONSE.as_bytes(),
        )))
        .unwrap()
}

/// A `phoneCallChanged` as the connector writes it (about 1,150 bytes, as in the golden
/// wire test).
fn event_body(user: &str, sequence: u64, call: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><SOAP-ENV:Body><ns:phoneCallChanged xmlns:ns="urn:IciEventInterface"><appIds><item>IC-{user}</item></appIds><sequence>{sequence}</sequence><phoneCall><callId>{call}</callId><containerId>300000</containerId><userId>{user}</userId><state>alerting</state><direction>inbound</direction><remoteAddress>+4930123456</remoteAddress><remoteAddressRaw>sip:+4930123456@example.com</remoteAddressRaw><dialedAddress>+600</dialedAddress><dialedAddressRaw>600</dialedAddressRaw><queue>support</queue><parties><item>sip:+4930123456@example.com</item></parties><attachedData>&lt;ItemAttachedData&gt;&lt;Application id=&quot;IVR&quot;&gt;&lt;CRM_IC&gt;&lt;BUPA&gt;4711&lt;/BUPA&gt;&lt;/CRM_IC&gt;&lt;/Application&gt;&lt;/ItemAttachedData&gt;</attachedData><reason xsi:nil="true"/></phoneCall><attachedData>&lt;ItemAttachedData&gt;&lt;Application id=&quot;IVR&quot;&gt;&lt;CRM_IC&gt;&lt;BUPA&gt;4711&lt;/BUPA&gt;&lt;/CRM_IC&gt;&lt;/Application&gt;&lt;/ItemAttachedData&gt;</attachedData></ns:phoneCallChanged></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

fn user(id: u64) -> String {
    format!("R{id:05}")
}

/// Fills `data` with the subscriptions and events of `run` through the store API.
fn fill(run: &RestartRun, data: &Path, url: &str) {
    let mut store = RedbStore::open(data).expect("spool");
    let _ = store.load().expect("load the fresh spool");
    let subscriptions: Vec<SpoolOp> = (1..=run.subscriptions)
        .map(|id| {
            SpoolOp::PutSubscription(StoredSubscription {
                id,
                kind: "user".into(),
                target: user(id),
                url: format!("{url}{id}"),
                app_ids: vec![format!("IC-{}", user(id))],
                sequence: 0,
            })
        })
        .collect();
    store.apply(&subscriptions).expect("subscriptions");
    let mut ops = Vec::with_capacity(FILL_BATCH as usize);
    for n in 0..run.events {
        // Round robin, so each subscription's events are spread over the whole file.
        let id = n % run.subscriptions + 1;
        let sequence = n / run.subscriptions + 1;
        let call = format!("sim-{}", n / 4 + 1);
        let who = user(id);
        ops.push(SpoolOp::Append(
            id,
            StoredEvent {
                name: "phoneCallChanged".into(),
                sequence,
                body: event_body(&who, sequence, &call),
                user: who,
                call: Some(call),
            },
        ));
        if ops.len() as u64 == FILL_BATCH {
            store.apply(&ops).expect("events");
            ops.clear();
        }
    }
    store.apply(&ops).expect("events");
    if !run.crash {
        store.close_clean().expect("close");
    }
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn start_connector(run: &RestartRun, dir: &Path) -> (Child, PathBuf) {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[soap]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [switch.sim]\nextensions = [\"300000\"]\nremote_answer_after = \"off\"\n\
             [events]\ndata_dir = {:?}\n[logging]\nlevel = \"info\"\n",
            dir.join("data").display().to_string()
        ),
    )
    .expect("config");
    let log = dir.join("stderr.log");
    let child = Command::new(&run.connector)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start the connector");
    (child, log)
}

/// Waits for the SOAP address in the connector's log.
async fn soap_address(log: &Path, started: Instant) -> SocketAddr {
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("soap="))
            .and_then(|a| a.parse().ok())
        {
            return addr;
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "the connector did not start: {text}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn restart(run: RestartRun) {
    let work = tempfile::tempdir().expect("work dir");
    let (url, seen) = start_receiver(run.subscriptions);
    let filling = Instant::now();
    fill(&run, &work.path().join("data"), &url);
    let fill_s = filling.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(work.path().join("data").join("spool.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "restart: spool filled with {} events for {} subscriptions in {fill_s:.1} s ({} MB)",
        run.events,
        run.subscriptions,
        file_bytes / 1_000_000
    );

    let started = Instant::now();
    let (mut child, log) = start_connector(&run, work.path());
    let pid = child.id();
    let addr = soap_address(&log, started).await;
    let listening_s = started.elapsed().as_secs_f64();
    let mut soap = Conn::open(addr).await;
    let (status, _) = soap
        .post(
            "/",
            "text/xml; charset=utf-8",
            Bytes::from(envelope(
                "READY",
                "User",
                "getAttributes",
                "<userId>READY</userId>",
            )),
        )
        .await;
    let ready_s = started.elapsed().as_secs_f64();
    assert!(status.is_success(), "getAttributes: {status}");
    let rss_ready = status_kb(pid, "VmRSS:") * 1024;
    let received_at_ready = seen.received.load(Ordering::Relaxed);

    let watching = Instant::now();
    let mut rss_max = rss_ready;
    while watching.elapsed() < run.watch && seen.received.load(Ordering::Relaxed) < run.events {
        tokio::time::sleep(RSS_SAMPLE).await;
        rss_max = rss_max.max(status_kb(pid, "VmRSS:") * 1024);
    }
    let watched = watching.elapsed().as_secs_f64();
    let hwm = status_kb(pid, "VmHWM:") * 1024;
    let delivered = seen.received.load(Ordering::Relaxed);
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    let out_of_order = seen.out_of_order.load(Ordering::Relaxed);
    let started_in_order = seen
        .last
        .iter()
        .filter(|l| l.load(Ordering::Relaxed) > 0)
        .count();
    println!(
        "{}",
        json!({
            "bench": "restart",
            "label": run.label,
            "events": run.events,
            "subscriptions": run.subscriptions,
            "crash": run.crash,
            "spool_bytes": file_bytes,
            "fill_s": fill_s,
            "listening_s": listening_s,
            "ready_s": ready_s,
            "rss_ready_bytes": rss_ready,
            "rss_max_bytes": rss_max,
            "hwm_bytes": hwm,
            "delivered_before_ready": received_at_ready,
            "delivered": delivered,
            "delivered_per_s": ((delivered - received_at_ready) as f64 / watched).round(),
            "subscriptions_delivering": started_in_order,
            "out_of_order": out_of_order,
            "first_problem": *seen.first_problem.lock().unwrap(),
        })
    );
}
