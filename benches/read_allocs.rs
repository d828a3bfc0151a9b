//! Heap allocations per read request through the whole server: a connector started in
//! this process (simulator switch, default `info` logging to files, so the request's log
//! line is included), one agent with one answered call, and `getAttributes` and
//! `getPhoneCallAttributes` sent one after the other on one keep-alive connection by a
//! client that allocates nothing per request. Everything the process allocates while they
//! are answered (hyper, the handler, the session actor, the log line and its writer
//! thread, metrics) is counted, averaged per request. Deterministic to a fraction of an
//! allocation, unlike a time: the figure to compare before and after a change on a busy
//! machine.
//!
//! `cargo test --bench read_allocs` (or `cargo bench --bench read_allocs`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use ici_connector::config::Config;
use ici_connector::{Listeners, logging, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/counting.rs"]
mod counting;
use counting::{ALLOCATIONS, BYTES};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Requests answered before counting (connection, session and metrics set up).
const WARMUP: u64 = 500;
/// Requests counted per operation; `READ_ALLOCS_REQUESTS` sets another count (more, to
/// profile the read path with `perf record` over this bench).
const COUNTED: u64 = 2000;

fn counted() -> u64 {
    std::env::var("READ_ALLOCS_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(COUNTED)
}
const USER: &str = "B00000";
const EXTENSION: &str = "300000";

fn envelope(interface: &str, op: &str, params: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Header><pre:user xmlns:pre="urn:Ici{interface}Interface" SOAP-ENV:mustUnderstand="0">{USER}</pre:user></SOAP-ENV:Header><SOAP-ENV:Body><ns0:{op} xmlns:ns0="urn:Ici{interface}Interface">{params}</ns0:{op}></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// One HTTP/1.1 keep-alive connection whose buffers are reused: no allocation per request.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends a prepared request; returns the status and the body's range in `self.buf`.
    async fn send(&mut self, request: &[u8]) -> (u16, std::ops::Range<usize>) {
        self.stream.write_all(request).await.expect("write");
        self.buf.clear();
        loop {
            if let Some(head_end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..head_end]).expect("ascii head");
                let status: u16 = head[9..12].parse().expect("status");
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .expect("content-length");
                let body = head_end + 4..head_end + 4 + length;
                while self.buf.len() < body.end {
                    self.read().await;
                }
                return (status, body);
            }
            self.read().await;
        }
    }

    async fn read(&mut self) {
        let len = self.buf.len();
        self.buf.resize(self.buf.capacity(), 0);
        let n = self.stream.read(&mut self.buf[len..]).await.expect("read");
        assert!(n > 0, "connection closed");
        self.buf.truncate(len + n);
    }

    async fn expect_ok(&mut self, request: &[u8]) -> String {
        let (status, body) = self.send(request).await;
        let text = String::from_utf8_lossy(&self.buf[body]).into_owned();
        assert!((200..300).contains(&status), "{status}: {text}");
        text
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn post(path: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn soap(interface: &str, op: &str, params: &str) -> Vec<u8> {
    post("/", "text/xml", &envelope(interface, op, params))
}

/// (allocations, bytes) per request over `counted` requests.
async fn count(client: &mut Client, request: &[u8], counted: u64) -> (f64, f64) {
    for _ in 0..WARMUP {
        client.send(request).await;
    }
    let (a0, b0) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..counted {
        let (status, _) = client.send(request).await;
        assert_eq!(status, 200);
    }
    let (a1, b1) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (
        (a1 - a0) as f64 / counted as f64,
        (b1 - b0) as f64 / counted as f64,
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("logs")).expect("log directory");
    let toml = format!(
        r#"[soap]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[switch.sim]
extensions = ["{EXTENSION}"]
remote_answer_after = "off"
[events]
data_dir = "{data}"
[logging]
level = "info"
directory = "{logs}"
"#,
        data = dir.path().join("data").display(),
        logs = dir.path().join("logs").display(),
    );
    let config = Config::from_toml_str(&toml).expect("bench configuration");
    let _log = logging::init(&config.logging).expect("logging");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listeners = Listeners::bind(&config).await.expect("bind");
        let (soap_addr, admin_addr) = listeners.addresses().expect("addresses");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(config, listeners, async {
            let _ = stopped.await;
        }));

        let mut client = Client::connect(soap_addr).await;
        let user = format!("<userId>{USER}</userId>");
        client
            .expect_ok(&soap("User", "getAttributes", &user))
            .await;
        client
            .expect_ok(&soap(
                "User",
                "setAddresses",
                &format!("{user}<addresses><item>{EXTENSION}</item></addresses>"),
            ))
            .await;
        client
            .expect_ok(&soap(
                "User",
                "setCurrentWorkmode",
                &format!("{user}<workmode>2</workmode>"),
            ))
            .await;
        let mut admin = Client::connect(admin_addr).await;
        let answer = admin
            .expect_ok(&post(
                "/sim/calls",
                "application/json",
                &format!(r#"{{"from": "+4930000001", "to": "{EXTENSION}"}}"#),
            ))
            .await;
        let call: serde_json::Value = serde_json::from_str(&answer).expect("json");
        let call = call["callId"].as_str().expect("callId").to_string();
        client
            .expect_ok(&soap(
                "Item",
                "accept",
                &format!("<itemId>{call}</itemId>"),
            ))
            .await;

        let reads = [
            ("getAttributes", soap("User", "getAttributes", &user)),
            (
                "getPhoneCallAttributes",
                soap(
                    "PhoneCall",
                    "getPhoneCallAttributes",
                    &format!("<callId>{call}</callId>"),
                ),
            ),
        ];
        for (name, request) in &reads {
            let counted = counted();
            let (allocations, bytes) = count(&mut client, request, counted).await;
            println!(
                "allocations {name}: {allocations:.1} allocations/request, {bytes:.0} bytes/request (whole process, {counted} requests)"
            );
        }
        let _ = stop.send(());
        let _ = server.await;
    });
}
