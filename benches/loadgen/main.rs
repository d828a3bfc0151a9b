//! The load tool of benches/run.sh: N keep-alive HTTP/1.1 connections (hyper client),
//! latencies in an HDR histogram, and a callback receiver that plays SAP's appURL side.
//!
//! - `soap`: benchmark 1 and 5. A closed loop (every connection sends its next request as
//!   soon as the answer is in) measures saturation; then an open loop at a fraction of that
//!   rate measures latency from each request's send, and also from its *scheduled* send
//!   time, so a stall is not hidden by the load backing off (coordinated omission; tokio's
//!   timer adds up to 1 ms to the latter). Against the connector
//!   (`--admin`) it first logs one agent in per connection with one answered call.
//!   With `--tls-ca` it speaks TLS to the SOAP server (each connection a full handshake
//!   when opened, no resumption), with `--tls-cert`/`--tls-key` it sends a client
//!   certificate; the admin listener stays plain HTTP (benchmark 6).
//! - `connect`: connection setup rate (benchmark 6): opens `--count` new connections, each
//!   with its TCP and (with `--tls-ca`) TLS handshake and one request, then closes it.
//! - `certs`: writes a CA, a server certificate for localhost/127.0.0.1 and a client
//!   certificate (ECDSA P-256, rcgen) into a directory, for the TLS runs.
//! - `events`: benchmarks 2 and 3. Grows the connector to each size in `--sizes` (agents
//!   logged in and subscribed to the receiver, six calls each), reads the connector's RSS,
//!   then drives simulator events (hang up an agent's oldest call, ring a new one) and
//!   times each from the control request being sent to the `phoneCallChanged` arriving.
//! - `restart`: benchmark 8. A spool filled with undelivered events, then a connector
//!   started on it: time until SOAP answers, memory, delivery order (see `restart`).
//!
//! Results are one JSON object per line on stdout; progress goes to stderr.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

mod restart;

#[derive(Debug, Parser)]
#[command(about = "Load generator and SAP callback receiver for the connector benchmarks")]
struct Cli {
    /// Without one (as `cargo test --all-targets` runs bench targets) there is nothing to do.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SOAP throughput and latency (closed loop, then open loop at a fraction of it).
    Soap {
        /// `host:port` of the SOAP server under test.
        #[arg(long)]
        target: SocketAddr,
        /// URL path to POST to.
        #[arg(long, default_value = "/")]
        path: String,
        /// The connector's admin listener: set up one agent with a call per connection.
        /// Without it, every request is the same getPhoneCallAttributes (baseline, peer).
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// What each connection sends.
        #[arg(long, value_enum, default_value = "attrs")]
        op: Op,
        #[arg(long, default_value_t = 200)]
        connections: usize,
        /// Seconds of each measured phase.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds of unmeasured load before each phase.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// The open-loop phase's rate as a fraction of the measured saturation (0 skips it).
        #[arg(long, default_value_t = 0.5)]
        fraction: f64,
        /// A label copied into the output.
        #[arg(long, default_value = "")]
        label: String,
        /// The server's process id: its CPU time per request (from /proc) is reported.
        #[arg(long)]
        pid: Option<u32>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Connection setup rate: new connections, each with one request, then closed.
    Connect {
        #[arg(long)]
        target: SocketAddr,
        /// Connections to open (after as many unmeasured as --concurrency).
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Connections being set up at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value = "")]
        label: String,
        /// The server's process id: its CPU time per connection is reported.
        #[arg(long)]
        pid: Option<u32>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Writes ca.crt, server.crt/.key (localhost, 127.0.0.1) and client.crt/.key (CN
    /// sapprd), ECDSA P-256, signed by the CA, into a directory.
    Certs {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Event pipeline latency and rate, and the connector's memory, at growing sizes.
    Events {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        admin: SocketAddr,
        /// The connector's process id (RSS from /proc).
        #[arg(long)]
        pid: u32,
        /// Agent counts to grow to, ascending, e.g. 1000,10000,20000.
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Calls per agent (the SAP IC shows six).
        #[arg(long, default_value_t = 6)]
        calls: usize,
        /// First extension number; agent i has extension `first + i`.
        #[arg(long, default_value_t = 300000)]
        first_extension: u64,
        /// Agents driven at once (each waits for its event before the next action) for the
        /// rate at saturation.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Agents driven at once for the latency at a moderate load (0 skips it).
        #[arg(long, default_value_t = 16)]
        latency_concurrency: usize,
        /// Seconds of measured events per size (0: memory only).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
    },
    /// A restart with undelivered events in the spool: time to SOAP ready, RSS, order.
    Restart {
        /// The connector executable to start on the filled spool.
        #[arg(long)]
        connector: PathBuf,
        /// Undelivered events in the spool.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Subscriptions they belong to (round robin).
        #[arg(long, default_value_t = 100)]
        subscriptions: u64,
        /// Seconds of delivery watched after the connector is ready.
        #[arg(long, default_value_t = 10.0)]
        watch: f64,
        /// Leave the spool as a crash would (no graceful-stop mark).
        #[arg(long)]
        crash: bool,
        #[arg(long, default_value = "")]
        label: String,
    },
}

/// TLS to the server under test (the SOAP listener).
#[derive(Debug, clap::Args)]
struct TlsArgs {
    /// PEM file with the CA that signed the server's certificate; turns TLS on.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM) to present.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Server name to send (SNI) and verify the certificate against.
    #[arg(long, default_value = "localhost")]
    tls_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    /// getPhoneCallAttributes on the connection's call.
    Attrs,
    /// hold, unhold, hold, ... on the connection's call.
    Holdpair,
}

/// How long one setup step or awaited event may take before the run fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        eprintln!("loadgen: no command; benches/run.sh runs this tool (see --help)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        match command {
            Command::Soap {
                target,
                path,
                admin,
                op,
                connections,
                duration,
                warmup,
                fraction,
                label,
                pid,
                tls,
            } => {
                soap(SoapRun {
                    target,
                    path,
                    admin,
                    op,
                    connections,
                    duration: Duration::from_secs_f64(duration),
                    warmup: Duration::from_secs_f64(warmup),
                    fraction,
                    label,
                    pid,
                    tls: TlsClient::from_args(&tls),
                })
                .await
            }
            Command::Connect {
                target,
                count,
                concurrency,
                label,
                pid,
                tls,
            } => {
                connect(ConnectRun {
                    target,
                    count,
                    concurrency: concurrency.max(1),
                    label,
                    pid,
                    tls: TlsClient::from_args(&tls),
                })
                .await
            }
            Command::Certs { dir } => certs(&dir),
            Command::Events {
                target,
                admin,
                pid,
                sizes,
                calls,
                first_extension,
                concurrency,
                latency_concurrency,
                duration,
                warmup,
            } => {
                events(EventsRun {
                    latency_concurrency,
                    target,
                    admin,
                    pid,
                    sizes,
                    calls,
                    first_extension,
                    concurrency,
                    duration: Duration::from_secs_f64(duration),
                    warmup: Duration::from_secs_f64(warmup),
                })
                .await
            }
            Command::Restart {
                connector,
                events,
                subscriptions,
                watch,
                crash,
                label,
            } => {
                restart::restart(restart::RestartRun {
                    connector,
                    events,
                    subscriptions: subscriptions.max(1),
                    watch: Duration::from_secs_f64(watch),
                    crash,
                    label,
                })
                .await
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// HTTP client: one keep-alive connection, requests one at a time.

struct Conn {
    addr: SocketAddr,
    send: SendRequest<Full<Bytes>>,
    /// TLS only: the negotiated protocol version, cipher suite and key exchange group.
    tls: Option<[String; 3]>,
}

impl Conn {
    /// A plain HTTP connection.
    async fn open(addr: SocketAddr) -> Conn {
        Conn::open_with(addr, None).await
    }

    /// A connection over TLS when `tls` is given (a full handshake), else plain.
    async fn open_with(addr: SocketAddr, tls: Option<&TlsClient>) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let Some(tls) = tls else {
            return Conn::http(addr, stream, None).await;
        };
        let stream = tls
            .connector
            .connect(tls.name.clone(), stream)
            .await
            .expect("TLS handshake");
        let session = stream.get_ref().1;
        let negotiated = [
            format!("{:?}", session.protocol_version().expect("TLS version")),
            format!(
                "{:?}",
                session
                    .negotiated_cipher_suite()
                    .expect("cipher suite")
                    .suite()
            ),
            format!(
                "{:?}",
                session
                    .negotiated_key_exchange_group()
                    .expect("key exchange")
                    .name()
            ),
        ];
        Conn::http(addr, stream, Some(negotiated)).await
    }

    async fn http<T>(addr: SocketAddr, io: T, tls: Option<[String; 3]>) -> Conn
    where
        T: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .expect("HTTP handshake");
        tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        Conn { addr, send, tls }
    }

    /// POSTs `body` to `path`; the status and body of the answer.
    async fn post(&mut self, path: &str, content_type: &str, body: Bytes) -> (StatusCode, Bytes) {
        let request = Request::post(path)
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::CONTENT_TYPE, content_type)
            .header("soapaction", "\"\"")
            .body(Full::new(body))
            .expect("request");
        self.send.ready().await.expect("connection usable");
        let response = self.send.send_request(request).await.expect("HTTP request");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        (status, body)
    }

    async fn soap(&mut self, body: String) -> Bytes {
        let (status, answer) = self
            .post("/", "text/xml; charset=utf-8", Bytes::from(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{body}\n=> {}",
            String::from_utf8_lossy(&answer)
        );
        answer
    }

    async fn sim(&mut self, path: &str, json: serde_json::Value) -> serde_json::Value {
        let body = if json.is_null() {
            Bytes::new()
        } else {
            Bytes::from(json.to_string())
        };
        let (status, answer) = self
            .post(&format!("/sim{path}"), "application/json", body)
            .await;
        assert!(
            status.is_success(),
            "/sim{path}: {status} {}",
            String::from_utf8_lossy(&answer)
        );
        serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null)
    }
}

/// What opens TLS connections to the server under test.
#[derive(Clone)]
struct TlsClient {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    client_cert: bool,
}

impl TlsClient {
    /// `None` without `--tls-ca`. Resumption is off: every connection is a full handshake.
    fn from_args(args: &TlsArgs) -> Option<TlsClient> {
        let ca = args.tls_ca.as_deref()?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in pem_certs(ca) {
            roots.add(cert).expect("a usable CA certificate");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
        let mut config = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                let key = PrivateKeyDer::from_pem_file(key)
                    .unwrap_or_else(|e| panic!("{}: {e}", key.display()));
                builder
                    .with_client_auth_cert(pem_certs(cert), key)
                    .expect("client certificate and key")
            }
            _ => builder.with_no_client_auth(),
        };
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Some(TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(args.tls_name.clone()).expect("--tls-name"),
            client_cert: args.tls_cert.is_some(),
        })
    }

    /// For the output: whether and how TLS was used.
    fn describe(tls: Option<&TlsClient>, first: &Conn) -> serde_json::Value {
        match (tls, &first.tls) {
            (Some(tls), Some([version, suite, group])) => json!({
                "version": version,
                "suite": suite,
                "key_exchange": group,
                "client_cert": tls.client_cert,
            }),
            _ => serde_json::Value::Null,
        }
    }
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// User plus system CPU time of process `pid` so far (`/proc/PID/stat`, in clock ticks of
/// 10 ms: Linux reports them in USER_HZ, 100 per second).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // The fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat") + 2..]
        .split(' ')
        .collect();
    // utime and stime are fields 14 and 15 of the line; 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// CPU time of the server (`pid`, if known) and of this process, to subtract later.
struct CpuMark {
    server: Option<(u32, Duration)>,
    own: Duration,
}

impl CpuMark {
    fn now(pid: Option<u32>) -> CpuMark {
        CpuMark {
            server: pid.map(|pid| (pid, cpu_time(pid))),
            own: cpu_time(std::process::id()),
        }
    }

    /// Microseconds of CPU per unit of work since the mark: the server's and the load
    /// tool's.
    fn per(&self, units: u64) -> serde_json::Value {
        let per = |d: Duration| (d.as_secs_f64() * 1e6 / units.max(1) as f64 * 10.0).round() / 10.0;
        json!({
            "server_cpu_us": self.server.map(|(pid, before)| per(cpu_time(pid) - before)),
            "loadgen_cpu_us": per(cpu_time(std::process::id()) - self.own),
        })
    }
}

/// A SOAP request as SAP sends it, with the agent in the `user` header.
fn envelope(user: &str, interface: &str, op: &str, params: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Header><pre:user xmlns:pre="urn:Ici{interface}Interface" SOAP-ENV:mustUnderstand="0">{user}</pre:user></SOAP-ENV:Header><SOAP-ENV:Body><ns0:{op} xmlns:ns0="urn:Ici{interface}Interface">{params}</ns0:{op}></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

// ---------------------------------------------------------------------------------------
// The callback receiver: SAP's appURL side. Runs on its own thread and runtime.

/// What an agent's driver waits for.
struct Waiter {
    state: &'static str,
    call: Option<String>,
    tx: oneshot::Sender<(Instant, String)>,
}

struct Receiver {
    url: String,
    waiters: Arc<Vec<Mutex<Option<Waiter>>>>,
    received: Arc<AtomicU64>,
}

impl Receiver {
    /// Starts the receiver for `agents` agents (paths `/sap/{index}`).
    fn start(agents: usize) -> Receiver {
        let waiters: Arc<Vec<Mutex<Option<Waiter>>>> =
            Arc::new((0..agents).map(|_| Mutex::new(None)).collect());
        let received = Arc::new(AtomicU64::new(0));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (w, r) = (waiters.clone(), received.clone());
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
                    let _ = stream.set_nodelay(true);
                    let (w, r) = (w.clone(), r.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let (w, r) = (w.clone(), r.clone());
                            async move { Ok::<_, Infallible>(receive(request, &w, &r).await) }
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
        Receiver {
            url: format!("http://{addr}/sap/"),
            waiters,
            received,
        }
    }

    /// Waits for `state` (of `call`, or of any call) at agent `index`. Register before the
    /// action that causes it: the event may arrive before the action's answer.
    fn expect(
        &self,
        index: usize,
        state: &'static str,
        call: Option<String>,
    ) -> oneshot::Receiver<(Instant, String)> {
        let (tx, rx) = oneshot::channel();
        *self.waiters[index].lock().unwrap() = Some(Waiter { state, call, tx });
        rx
    }
}

const EMPTY_SOAP_RESPONSE: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">"#,
    r#"<SOAP-ENV:Body/></SOAP-ENV:Envelope>"#
);

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)?;
    Some(&text[start..start + end])
}

async fn receive(
    request: hyper::Request<hyper::body::Incoming>,
    waiters: &[Mutex<Option<Waiter>>],
    received: &AtomicU64,
) -> Response<Full<Bytes>> {
    let index = request
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
    let at = Instant::now();
    received.fetch_add(1, Ordering::Relaxed);
    let text = String::from_utf8_lossy(&body);
    if let (Some(index), Some(state)) = (index, between(&text, "<state>", "</state>"))
        && let Some(slot) = waiters.get(index)
    {
        let call = between(&text, "<callId>", "</callId>").unwrap_or("");
        let mut slot = slot.lock().unwrap();
        let matches = slot
            .as_ref()
            .is_some_and(|w| w.state == state && w.call.as_deref().is_none_or(|c| c == call));
        if matches {
            let waiter = slot.take().unwrap();
            let _ = waiter.tx.send((at, call.to_string()));
        }
    }
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .body(Full::new(Bytes::from_static(
            EMPTY_SOAP_RESPONSE.as_bytes(),
        )))
        .unwrap()
}

async fn wait(rx: oneshot::Receiver<(Instant, String)>, what: &str) -> (Instant, String) {
    match tokio::time::timeout(STEP_TIMEOUT, rx).await {
        Ok(Ok(got)) => got,
        _ => panic!("no {what} event within {STEP_TIMEOUT:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Agents on the connector.

fn user(index: usize) -> String {
    format!("B{index:05}")
}

/// Logs agent `index` in at `extension`, subscribed to the receiver, ready.
async fn log_in(soap: &mut Conn, receiver: &Receiver, index: usize, extension: &str) {
    let u = user(index);
    soap.soap(envelope(
        &u,
        "User",
        "getAttributes",
        &format!("<userId>{u}</userId>"),
    ))
    .await;
    soap.soap(envelope(
        &u,
        "User",
        "setAddresses",
        &format!("<userId>{u}</userId><addresses><item>{extension}</item></addresses>"),
    ))
    .await;
    soap.soap(envelope(
        &u,
        "User",
        "subscribeUser",
        &format!(
            "<userId>{u}</userId><appURL>{}{index}</appURL><appId>IC-{u}</appId>",
            receiver.url
        ),
    ))
    .await;
    soap.soap(envelope(
        &u,
        "User",
        "setCurrentWorkmode",
        &format!("<userId>{u}</userId><workmode>2</workmode>"),
    ))
    .await;
}

/// Rings agent `index`; returns the call id once SAP got its `alerting`, and the time from
/// the control request's send to the event's arrival.
async fn ring(
    admin: &mut Conn,
    receiver: &Receiver,
    index: usize,
    extension: &str,
) -> (String, Duration) {
    let rx = receiver.expect(index, "alerting", None);
    let sent = Instant::now();
    let answer = admin
        .sim(
            "/calls",
            json!({"from": format!("+4930{index:06}"), "to": extension}),
        )
        .await;
    let call = answer["callId"].as_str().expect("callId").to_string();
    let (at, got) = wait(rx, "alerting").await;
    assert_eq!(got, call, "alerting for another call");
    (call, at - sent)
}

// ---------------------------------------------------------------------------------------
// Benchmarks 1 and 5.

struct SoapRun {
    target: SocketAddr,
    path: String,
    admin: Option<SocketAddr>,
    op: Op,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    fraction: f64,
    label: String,
    pid: Option<u32>,
    tls: Option<TlsClient>,
}

/// Per connection: the request bodies it cycles through.
async fn soap_bodies(run: &SoapRun, receiver: Option<&Receiver>) -> Vec<Vec<Bytes>> {
    let Some(admin) = run.admin else {
        let body = Bytes::from(envelope(
            "B00000",
            "PhoneCall",
            "getPhoneCallAttributes",
            "<callId>sim-1</callId>",
        ));
        return vec![vec![body]; run.connections];
    };
    let receiver = receiver.expect("a receiver with --admin");
    let mut bodies = Vec::new();
    let mut soap = Conn::open_with(run.target, run.tls.as_ref()).await;
    let mut control = Conn::open(admin).await;
    for index in 0..run.connections {
        let extension = (300000 + index).to_string();
        log_in(&mut soap, receiver, index, &extension).await;
        let (call, _) = ring(&mut control, receiver, index, &extension).await;
        let u = user(index);
        let rx = receiver.expect(index, "connected", Some(call.clone()));
        soap.soap(envelope(
            &u,
            "Item",
            "accept",
            &format!("<itemId>{call}</itemId>"),
        ))
        .await;
        wait(rx, "connected").await;
        let request = |op: &str| {
            Bytes::from(envelope(
                &u,
                "PhoneCall",
                op,
                &format!("<callId>{call}</callId>"),
            ))
        };
        bodies.push(match run.op {
            Op::Attrs => vec![request("getPhoneCallAttributes")],
            Op::Holdpair => vec![request("hold"), request("unhold")],
        });
    }
    bodies
}

/// The result of one phase.
struct Phase {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    /// From the request's actual send to its complete answer.
    histogram: Histogram<u64>,
    /// Open loop only: from the request's scheduled send time.
    scheduled: Histogram<u64>,
}

/// Runs one phase on every connection: closed loop when `rate` is `None`, else each
/// connection sends at `rate / connections` per second, latency from the scheduled time.
async fn phase(
    conns: &[Rc<tokio::sync::Mutex<Conn>>],
    bodies: &[Vec<Bytes>],
    cursors: &[Rc<std::cell::Cell<usize>>],
    path: &str,
    rate: Option<f64>,
    duration: Duration,
) -> Phase {
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        let conn = conn.clone();
        let bodies = bodies[i].clone();
        let cursor = cursors[i].clone();
        let path = path.to_string();
        let interval = rate.map(|r| Duration::from_secs_f64(conns.len() as f64 / r));
        // Spread the open-loop connections over one interval.
        let offset = interval.map(|iv| iv.mul_f64(i as f64 / conns.len() as f64));
        tasks.push(tokio::task::spawn_local(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut scheduled = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut requests, mut errors) = (0u64, 0u64);
            let mut conn = conn.lock().await;
            let mut next = start + offset.unwrap_or_default();
            loop {
                if interval.is_some() {
                    if next >= end {
                        break;
                    }
                    tokio::time::sleep_until(next.into()).await;
                } else if Instant::now() >= end {
                    break;
                }
                let sent = Instant::now();
                let body = bodies[cursor.get() % bodies.len()].clone();
                cursor.set(cursor.get() + 1);
                let (status, _) = conn.post(&path, "text/xml; charset=utf-8", body).await;
                let micros = sent.elapsed().as_micros() as u64;
                histogram.saturating_record(micros.max(1));
                if interval.is_some() {
                    // From the scheduled send time: what a client that keeps its schedule
                    // sees, plus up to 1 ms of tokio timer granularity.
                    scheduled.saturating_record((next.elapsed().as_micros() as u64).max(1));
                }
                requests += 1;
                if status != StatusCode::OK {
                    errors += 1;
                }
                if let Some(interval) = interval {
                    next += interval;
                }
            }
            (requests, errors, histogram, scheduled)
        }));
    }
    let mut total = Phase {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        scheduled: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
    };
    for task in tasks {
        let (requests, errors, histogram, scheduled) = task.await.expect("load task");
        total.requests += requests;
        total.errors += errors;
        total.histogram.add(histogram).unwrap();
        total.scheduled.add(scheduled).unwrap();
    }
    total.elapsed = start.elapsed();
    total
}

fn phase_json(phase: &Phase) -> serde_json::Value {
    let h = &phase.histogram;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let s = &phase.scheduled;
    let sched = |q: f64| (!s.is_empty()).then(|| s.value_at_quantile(q) as f64 / 1000.0);
    json!({
        "p50_sched_ms": sched(0.5),
        "p99_sched_ms": sched(0.99),
        "p999_sched_ms": sched(0.999),
        "requests": phase.requests,
        "errors": phase.errors,
        "rps": (phase.requests as f64 / phase.elapsed.as_secs_f64()).round(),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": h.max() as f64 / 1000.0,
    })
}

async fn soap(run: SoapRun) {
    let receiver = run.admin.map(|_| Receiver::start(run.connections));
    let bodies = soap_bodies(&run, receiver.as_ref()).await;
    let mut conns = Vec::new();
    for _ in 0..run.connections {
        conns.push(Rc::new(tokio::sync::Mutex::new(
            Conn::open_with(run.target, run.tls.as_ref()).await,
        )));
    }
    let tls = TlsClient::describe(run.tls.as_ref(), &*conns[0].lock().await);
    let cursors: Vec<_> = (0..run.connections)
        .map(|_| Rc::new(std::cell::Cell::new(0)))
        .collect();
    eprintln!(
        "{}: {} connections ready, closed loop",
        run.label, run.connections
    );
    phase(&conns, &bodies, &cursors, &run.path, None, run.warmup).await;
    let cpu = CpuMark::now(run.pid);
    let saturated = phase(&conns, &bodies, &cursors, &run.path, None, run.duration).await;
    let cpu_per_request = cpu.per(saturated.requests);
    let saturation_rps = saturated.requests as f64 / saturated.elapsed.as_secs_f64();
    let mut result = json!({
        "bench": "soap",
        "label": run.label,
        "op": format!("{:?}", run.op).to_lowercase(),
        "connections": run.connections,
        "saturation": phase_json(&saturated),
    });
    if !tls.is_null() {
        result["tls"] = tls;
    }
    if run.pid.is_some() {
        result["saturation"]["cpu_per_request"] = cpu_per_request;
    }
    if run.fraction > 0.0 {
        let rate = saturation_rps * run.fraction;
        eprintln!("{}: open loop at {rate:.0}/s", run.label);
        phase(&conns, &bodies, &cursors, &run.path, Some(rate), run.warmup).await;
        let open = phase(
            &conns,
            &bodies,
            &cursors,
            &run.path,
            Some(rate),
            run.duration,
        )
        .await;
        let mut open_json = phase_json(&open);
        open_json["target_rps"] = json!(rate.round());
        result["open_loop"] = open_json;
    }
    if let Some(receiver) = &receiver {
        result["events_received"] = json!(receiver.received.load(Ordering::Relaxed));
    }
    println!("{result}");
}

// ---------------------------------------------------------------------------------------
// Benchmark 6: connection setup, and the certificates for the TLS runs.

struct ConnectRun {
    target: SocketAddr,
    count: usize,
    concurrency: usize,
    label: String,
    pid: Option<u32>,
    tls: Option<TlsClient>,
}

/// `count` connections, `concurrency` at a time: each is opened (TCP, then the TLS
/// handshake), carries one getPhoneCallAttributes and is closed. Timed from the connect
/// to the answer's last byte. Also returns how many answers were 200.
async fn connect_phase(run: &Rc<ConnectRun>, count: usize) -> (Histogram<u64>, u64, Duration) {
    let body = Bytes::from(envelope(
        "B00000",
        "PhoneCall",
        "getPhoneCallAttributes",
        "<callId>sim-1</callId>",
    ));
    let next = Rc::new(std::cell::Cell::new(0usize));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..run.concurrency.min(count) {
        let (run, next, body) = (run.clone(), next.clone(), body.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut answered = 0u64;
            while next.get() < count {
                next.set(next.get() + 1);
                let started = Instant::now();
                let mut conn = Conn::open_with(run.target, run.tls.as_ref()).await;
                let (status, _) = conn
                    .post("/", "text/xml; charset=utf-8", body.clone())
                    .await;
                drop(conn);
                histogram.saturating_record((started.elapsed().as_micros() as u64).max(1));
                // Any answer shows the server had the request after the whole handshake;
                // 200 when the call exists.
                if status == StatusCode::OK {
                    answered += 1;
                }
            }
            (histogram, answered)
        }));
    }
    let (histogram, answered) = gather(tasks, "connect task").await;
    (histogram, answered, start.elapsed())
}

/// Waits for every task and adds up their latency histograms and counts.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Histogram<u64>, u64)>>,
    what: &str,
) -> (Histogram<u64>, u64) {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut total = 0;
    for task in tasks {
        let (h, n) = task.await.unwrap_or_else(|e| panic!("{what}: {e}"));
        histogram.add(h).unwrap();
        total += n;
    }
    (histogram, total)
}

async fn connect(run: ConnectRun) {
    let run = Rc::new(run);
    // The first connection tells what TLS was negotiated; then a warm-up round.
    let first = Conn::open_with(run.target, run.tls.as_ref()).await;
    let tls = TlsClient::describe(run.tls.as_ref(), &first);
    drop(first);
    connect_phase(&run, run.concurrency).await;
    let cpu = CpuMark::now(run.pid);
    let (histogram, answered, elapsed) = connect_phase(&run, run.count).await;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let mut result = json!({
        "bench": "connect",
        "label": run.label,
        "count": run.count,
        "ok": answered,
        "concurrency": run.concurrency,
        "conns_per_s": (run.count as f64 / elapsed.as_secs_f64()).round(),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "max_ms": histogram.max() as f64 / 1000.0,
        "cpu_per_connection": cpu.per(run.count as u64),
    });
    if !tls.is_null() {
        result["tls"] = tls;
    }
    println!("{result}");
}

/// The PKI of a TLS run: one CA, and a server and a client certificate it signed, all with
/// ECDSA P-256 keys (rcgen's default, and what a current CA issues by default).
fn certs(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
        ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    };
    std::fs::create_dir_all(dir).expect("certificate directory");
    let write = |name: &str, contents: String| {
        std::fs::write(dir.join(name), contents).expect("write certificate file");
    };
    let key = || KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key pair");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "ICI Benchmark CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, key()).expect("CA certificate");
    write("ca.crt", ca.pem());
    for (name, cn, usage) in [
        ("server", "connector", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", "sapprd", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("leaf parameters");
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = key();
        let cert = params.signed_by(&key, &ca).expect("leaf certificate");
        write(&format!("{name}.crt"), cert.pem());
        write(&format!("{name}.key"), key.serialize_pem());
    }
    eprintln!(
        "certs: ECDSA P-256 CA, server and client certificates in {}",
        dir.display()
    );
}

// ---------------------------------------------------------------------------------------
// Benchmarks 2 and 3.

struct EventsRun {
    target: SocketAddr,
    admin: SocketAddr,
    pid: u32,
    sizes: Vec<usize>,
    calls: usize,
    first_extension: u64,
    concurrency: usize,
    latency_concurrency: usize,
    duration: Duration,
    warmup: Duration,
}

/// Resident set size of `pid` in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// One agent's calls, oldest first.
type Calls = Rc<std::cell::RefCell<Vec<VecDeque<String>>>>;

async fn events(run: EventsRun) {
    let max = *run.sizes.iter().max().expect("--sizes");
    let receiver = Rc::new(Receiver::start(max));
    let calls: Calls = Rc::new(std::cell::RefCell::new(vec![VecDeque::new(); max]));
    let run = Rc::new(run);
    // Let the connector settle before its baseline RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let empty = rss(run.pid);
    println!(
        "{}",
        json!({"bench": "memory", "agents": 0, "rss_bytes": empty})
    );
    let mut have = 0usize;
    for &size in &run.sizes {
        let started = Instant::now();
        grow(&run, &receiver, &calls, have, size).await;
        let setup = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let bytes = rss(run.pid);
        println!(
            "{}",
            json!({
                "bench": "memory",
                "agents": size,
                "calls_per_agent": run.calls,
                "rss_bytes": bytes,
                "bytes_per_agent": ((bytes as f64 - empty as f64) / size as f64).round(),
                "setup_s": setup.as_secs_f64(),
            })
        );
        have = size;
        if run.duration.is_zero() {
            continue;
        }
        let mut phases = vec![("events", run.concurrency)];
        if run.latency_concurrency > 0 {
            phases.push(("events_light", run.latency_concurrency));
        }
        for (bench, workers) in phases {
            drive(&run, &receiver, &calls, size, workers, run.warmup).await;
            let before = receiver.received.load(Ordering::Relaxed);
            let cpu = CpuMark::now(Some(run.pid));
            let (histogram, events, elapsed) =
                drive(&run, &receiver, &calls, size, workers, run.duration).await;
            let all = receiver.received.load(Ordering::Relaxed) - before;
            // Per event SAP received; the connector's share includes the simulator and
            // the control requests that cause the events.
            let cpu_per_event = cpu.per(all);
            let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{}",
                json!({
                    "bench": bench,
                    "agents": size,
                    "concurrency": workers,
                    "events": events,
                    "events_per_s": (events as f64 / elapsed.as_secs_f64()).round(),
                    "all_posts_per_s": (all as f64 / elapsed.as_secs_f64()).round(),
                    "p50_ms": ms(0.5),
                    "p99_ms": ms(0.99),
                    "p999_ms": ms(0.999),
                    "max_ms": histogram.max() as f64 / 1000.0,
                    "rss_bytes_after": rss(run.pid),
                    "cpu_per_event": cpu_per_event,
                })
            );
        }
    }
}

/// Logs agents `from..to` in with `calls` ringing calls each, `concurrency` at a time.
async fn grow(run: &Rc<EventsRun>, receiver: &Rc<Receiver>, calls: &Calls, from: usize, to: usize) {
    let next = Rc::new(std::cell::Cell::new(from));
    let mut tasks = Vec::new();
    for _ in 0..run.concurrency.min(to - from) {
        let (run, receiver, calls, next) =
            (run.clone(), receiver.clone(), calls.clone(), next.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let mut soap = Conn::open(run.target).await;
            let mut admin = Conn::open(run.admin).await;
            loop {
                let index = next.get();
                if index >= to {
                    break;
                }
                next.set(index + 1);
                let extension = (run.first_extension + index as u64).to_string();
                log_in(&mut soap, &receiver, index, &extension).await;
                for _ in 0..run.calls {
                    let (call, _) = ring(&mut admin, &receiver, index, &extension).await;
                    calls.borrow_mut()[index].push_back(call);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("setup task");
    }
}

/// For `duration`, `concurrency` drivers each take the next agent below `size`, hang up
/// its oldest call and ring it again, timing both events.
async fn drive(
    run: &Rc<EventsRun>,
    receiver: &Rc<Receiver>,
    calls: &Calls,
    size: usize,
    workers: usize,
    duration: Duration,
) -> (Histogram<u64>, u64, Duration) {
    let start = Instant::now();
    let end = start + duration;
    let workers = workers.min(size);
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (run, receiver, calls) = (run.clone(), receiver.clone(), calls.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut admin = Conn::open(run.admin).await;
            let mut index = worker;
            let mut events = 0u64;
            while Instant::now() < end {
                let extension = (run.first_extension + index as u64).to_string();
                let oldest = calls.borrow_mut()[index].pop_front().expect("a call");
                let rx = receiver.expect(index, "dropped", Some(oldest.clone()));
                let sent = Instant::now();
                admin
                    .sim(&format!("/calls/{oldest}/hangup"), serde_json::Value::Null)
                    .await;
                let (at, _) = wait(rx, "dropped").await;
                histogram.saturating_record((at - sent).as_micros().max(1) as u64);
                let (call, latency) = ring(&mut admin, &receiver, index, &extension).await;
                histogram.saturating_record(latency.as_micros().max(1) as u64);
                calls.borrow_mut()[index].push_back(call);
                events += 2;
                index += workers;
                if index >= size {
                    index = worker;
                }
            }
            (histogram, events)
        }));
    }
    let (histogram, events) = gather(tasks, "driver").await;
    (histogram, events, start.elapsed())
}
