//! A fake SAP event receiver (the appURL side of ICI): a real HTTP/1.1 server on
//! `127.0.0.1:0` that hands every event it accepts to the test through a channel.
//!
//! ```ignore
//! let mut sap = FakeSap::start().await;
//! // ... subscribe with sap.url, cause an event ...
//! let event = sap.next_event().await;
//! assert_eq!(event.name, "phoneCallChanged");
//! assert_eq!(event.field("state").as_deref(), Some("alerting"));
//! ```
//!
//! Every request is counted ([`FakeSap::requests`]), also those that fail; only requests
//! answered 2xx are reported by [`FakeSap::next_event`]. Timeouts here use tokio time: do
//! not combine with `tokio::time::pause` (the paused clock jumps while sockets wait).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use quick_xml::Reader;
use quick_xml::events::Event;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How long [`FakeSap::next_event`] and [`FakeSap::wait_requests`] wait before failing the
/// test. Generous: CI machines are shared.
pub const WAIT: Duration = Duration::from_secs(30);

/// The default path of [`FakeSap::url`].
pub const EVENTS_PATH: &str = "/sap/events";

const EMPTY_SOAP_RESPONSE: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">"#,
    r#"<SOAP-ENV:Body/></SOAP-ENV:Envelope>"#
);

/// How the fake answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 200 with an empty SOAP response; the event is reported.
    Ok,
    /// Answer this status (2xx ones are reported, others not).
    Status(u16),
    /// Answer `status` with a body of `bytes` bytes (2xx ones are reported): SAP's error
    /// pages, or a proxy that answers with a whole document.
    Body { status: u16, bytes: usize },
    /// Answer `status` with a `Retry-After: value` header (2xx ones are reported).
    RetryAfter { status: u16, value: String },
    /// SAP processes the event (it is reported at once) but its 200 comes after the delay:
    /// with a delay beyond the client's timeout this produces the duplicate case.
    Slow(Duration),
    /// Send a 200 status line and headers announcing a body, then drop the connection.
    /// Not reported.
    CloseMidResponse,
    /// Stop listening: connections are refused. Existing connections are closed. Leave this
    /// mode with [`FakeSap::resume`]. As a per-path mode ([`FakeSap::set_mode_for`]) the
    /// connection is dropped without an answer instead, since a port cannot refuse a path.
    Refuse,
}

/// One event the fake accepted (answered 2xx).
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path, e.g. `/sap/events`.
    pub path: String,
    /// The request headers (names lower-case).
    pub headers: HeaderMap,
    /// The request body as text (lossy UTF-8).
    pub body: String,
    /// The request body exactly as received, for byte-for-byte comparisons.
    pub raw: Bytes,
    /// Local name of the first element inside the SOAP Body (the event operation).
    pub name: String,
    /// The text of the first `sequence` element, as a number.
    pub sequence: Option<u64>,
    /// The texts of the `item` elements of `appIds`.
    pub app_ids: Vec<String>,
}

impl Received {
    /// The text of the first element named `name` (local name) anywhere in the body.
    pub fn field(&self, name: &str) -> Option<String> {
        elements(&self.body)
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.text)
    }

    /// The `SOAPAction` header as sent (quotes included).
    pub fn soap_action(&self) -> Option<&str> {
        self.headers.get("soapaction")?.to_str().ok()
    }
}

/// The fake SAP server. Dropping it stops the server and closes its connections.
pub struct FakeSap {
    /// `http://127.0.0.1:PORT/sap/events`: the appURL to subscribe with.
    pub url: String,
    /// The bound address (the same across [`FakeSap::resume`]).
    pub addr: SocketAddr,
    state: Arc<State>,
    events: mpsc::UnboundedReceiver<Received>,
    server: Mutex<Option<JoinHandle<()>>>,
    /// A socket bound to the port but never listening: it keeps the port ours while
    /// [`Mode::Refuse`] closes the listener (connections are refused, and no other test's
    /// server can be given the port and receive our events).
    _reservation: tokio::net::TcpSocket,
}

/// A listener on `addr` that shares the port with the reservation (both SO_REUSEADDR; only
/// one listens).
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

struct State {
    mode: Mutex<Mode>,
    path_modes: Mutex<HashMap<String, Mode>>,
    requests: watch::Sender<u64>,
    /// TCP connections accepted so far (a reused keep-alive connection counts once).
    connections: watch::Sender<u64>,
    events: mpsc::UnboundedSender<Received>,
}

impl FakeSap {
    /// Binds `127.0.0.1:0` and starts serving in [`Mode::Ok`].
    pub async fn start() -> FakeSap {
        let reservation = tokio::net::TcpSocket::new_v4().expect("fake SAP: socket");
        reservation
            .set_reuseaddr(true)
            .expect("fake SAP: SO_REUSEADDR");
        reservation
            .bind("127.0.0.1:0".parse().unwrap())
            .expect("fake SAP: bind 127.0.0.1:0");
        let addr = reservation.local_addr().expect("fake SAP: local address");
        let listener = listen_on(addr).expect("fake SAP: listen");
        let (events_tx, events) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Ok),
            path_modes: Mutex::new(HashMap::new()),
            requests: watch::Sender::new(0),
            connections: watch::Sender::new(0),
            events: events_tx,
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        FakeSap {
            url: format!("http://{addr}{EVENTS_PATH}"),
            addr,
            state,
            events,
            server: Mutex::new(Some(server)),
            _reservation: reservation,
        }
    }

    /// The URL of another path on this server (for several subscriptions on one fake).
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Changes how every path without its own mode is answered, from the next request on.
    /// [`Mode::Refuse`] closes the port; panics if the port is closed and `mode` would
    /// reopen it: use [`FakeSap::resume`] for that.
    pub fn set_mode(&self, mode: Mode) {
        let mut current = self.state.mode.lock().unwrap();
        assert!(
            *current != Mode::Refuse || mode == Mode::Refuse,
            "fake SAP: the port is closed; call resume() to reopen it"
        );
        if mode == Mode::Refuse
            && let Some(server) = self.server.lock().unwrap().as_ref()
        {
            // Drops the listener and, with it, the JoinSet of open connections; resume()
            // awaits the end of the task before binding again.
            server.abort();
        }
        *current = mode;
    }

    /// Gives `path` its own mode (overrides [`FakeSap::set_mode`] for it).
    pub fn set_mode_for(&self, path: &str, mode: Mode) {
        self.state
            .path_modes
            .lock()
            .unwrap()
            .insert(path.to_string(), mode);
    }

    /// After [`Mode::Refuse`]: listens again on the same port, in [`Mode::Ok`].
    pub async fn resume(&self) {
        let previous = self.server.lock().unwrap().take();
        if let Some(previous) = previous {
            previous.abort();
            let _ = previous.await;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        let listener = loop {
            match listen_on(self.addr) {
                Ok(listener) => break listener,
                // A client socket can briefly hold the port (a connect to a closed port in
                // the ephemeral range may connect to itself); it goes away by itself.
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!(
                        "fake SAP: re-binding {} failed ({e}); trying again",
                        self.addr
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("fake SAP: cannot re-bind {}: {e}", self.addr),
            }
        };
        *self.state.mode.lock().unwrap() = Mode::Ok;
        *self.server.lock().unwrap() = Some(tokio::spawn(serve(listener, self.state.clone())));
    }

    /// The next event answered 2xx, in arrival order. Panics after [`WAIT`].
    pub async fn next_event(&mut self) -> Received {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => unreachable!("the fake SAP state holds a sender"),
            Err(_) => panic!(
                "fake SAP: no event within {WAIT:?} ({} requests received so far)",
                self.requests()
            ),
        }
    }

    /// The next `n` events.
    pub async fn next_events(&mut self, n: usize) -> Vec<Received> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.next_event().await);
        }
        events
    }

    /// An event already received and not yet taken, without waiting.
    pub fn try_next_event(&mut self) -> Option<Received> {
        self.events.try_recv().ok()
    }

    /// Requests received so far, whatever they were answered.
    pub fn requests(&self) -> u64 {
        *self.state.requests.borrow()
    }

    /// TCP connections accepted so far: fewer than [`FakeSap::requests`] when the client
    /// reuses keep-alive connections.
    pub fn connections(&self) -> u64 {
        *self.state.connections.borrow()
    }

    /// Waits until at least `n` requests have been received. Panics after [`WAIT`].
    pub async fn wait_requests(&self, n: u64) {
        let mut requests = self.state.requests.subscribe();
        let reached = tokio::time::timeout(WAIT, requests.wait_for(|seen| *seen >= n)).await;
        if reached.is_err() {
            panic!(
                "fake SAP: {} requests within {WAIT:?}, expected at least {n}",
                self.requests()
            );
        }
    }
}

impl Drop for FakeSap {
    fn drop(&mut self) {
        if let Ok(mut server) = self.server.lock()
            && let Some(server) = server.take()
        {
            server.abort();
        }
    }
}

/// Accepts connections until aborted; aborting drops the listener and every connection.
async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        state.connections.send_modify(|n| *n += 1);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> io::Result<Response<FakeBody>> {
    state.requests.send_modify(|n| *n += 1);
    let path = request.uri().path().to_string();
    let mode = state.mode_for(&path);
    if mode == Mode::Refuse {
        // An error from the service makes hyper close the connection without an answer.
        return Err(io::Error::other("fake SAP refuses"));
    }
    let (parts, body) = request.into_parts();
    let raw = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let report = || {
        let _ = state
            .events
            .send(received(path.clone(), parts.headers.clone(), raw.clone()));
    };
    let mut body_bytes = None;
    let mut retry_after = None;
    let status = match mode {
        Mode::Body { status, bytes } => {
            body_bytes = Some(bytes);
            reported_status(status, report)
        }
        Mode::RetryAfter { status, value } => {
            retry_after = Some(value);
            reported_status(status, report)
        }
        Mode::Ok => {
            report();
            StatusCode::OK
        }
        Mode::Slow(delay) => {
            report();
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
        Mode::Status(code) => reported_status(code, report),
        Mode::CloseMidResponse => {
            return Ok(Response::new(FakeBody::Broken { polled: false }));
        }
        Mode::Refuse => unreachable!("handled above"),
    };
    let text = match body_bytes {
        Some(bytes) => Bytes::from(vec![b' '; bytes]),
        None if status.is_success() => Bytes::from_static(EMPTY_SOAP_RESPONSE.as_bytes()),
        None => Bytes::from(format!("fake SAP answers {status}")),
    };
    let mut response = Response::new(FakeBody::Full(Full::new(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    if let Some(value) = retry_after {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_str(&value).expect("fake SAP: invalid Retry-After"),
        );
    }
    Ok(response)
}

/// `code` as a status; a 2xx one reports the event first.
fn reported_status(code: u16, report: impl FnOnce()) -> StatusCode {
    let status = StatusCode::from_u16(code).expect("fake SAP: invalid status");
    if status.is_success() {
        report();
    }
    status
}

impl State {
    fn mode_for(&self, path: &str) -> Mode {
        if let Some(mode) = self.path_modes.lock().unwrap().get(path) {
            return mode.clone();
        }
        self.mode.lock().unwrap().clone()
    }
}

/// A response body: complete, or one that fails after the headers went out.
enum FakeBody {
    Full(Full<Bytes>),
    Broken { polled: bool },
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            FakeBody::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
            FakeBody::Broken { polled } => {
                if !*polled {
                    // Pending once, so hyper flushes the status line and headers first.
                    *polled = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(io::Error::other("fake SAP drops the connection"))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            FakeBody::Full(full) => full.is_end_stream(),
            FakeBody::Broken { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FakeBody::Full(full) => full.size_hint(),
            FakeBody::Broken { .. } => SizeHint::with_exact(64),
        }
    }
}

fn received(path: String, headers: HeaderMap, raw: Bytes) -> Received {
    let body = String::from_utf8_lossy(&raw).into_owned();
    let elements = elements(&body);
    let name = elements
        .iter()
        .find(|e| e.parent.as_deref() == Some("Body"))
        .map(|e| e.name.clone())
        .unwrap_or_default();
    let sequence = elements
        .iter()
        .find(|e| e.name == "sequence")
        .and_then(|e| e.text.trim().parse().ok());
    let app_ids = elements
        .iter()
        .filter(|e| e.name == "item" && e.parent.as_deref() == Some("appIds"))
        .map(|e| e.text.to_string())
        .collect();
    Received {
        path,
        headers,
        body,
        raw,
        name,
        sequence,
        app_ids,
    }
}

/// One element of a parsed body: local name, parent's local name, own text (trimmed).
struct Element {
    name: String,
    parent: Option<String>,
    text: String,
}

/// Every element of `body` in document order. Stops quietly at malformed XML: the tests
/// assert on what they expected to find.
fn elements(body: &str) -> Vec<Element> {
    let mut reader = Reader::from_str(body);
    let mut found: Vec<Element> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let parent =
        |found: &Vec<Element>, open: &Vec<usize>| open.last().map(|&i| found[i].name.clone());
    loop {
        let text = match reader.read_event() {
            Ok(Event::Start(start)) => {
                let name = start.local_name().into_inner().to_string();
                let parent = parent(&found, &open);
                found.push(Element {
                    name,
                    parent,
                    text: String::new(),
                });
                open.push(found.len() - 1);
                continue;
            }
            Ok(Event::Empty(start)) => {
                let name = start.local_name().into_inner().to_string();
                let parent = parent(&found, &open);
                found.push(Element {
                    name,
                    parent,
                    text: String::new(),
                });
                continue;
            }
            Ok(Event::End(_)) => {
                open.pop();
                continue;
            }
            Ok(Event::Text(text)) => text.xml10_content().into_owned(),
            Ok(Event::CData(data)) => data.xml10_content().into_owned(),
            Ok(Event::GeneralRef(reference)) => match reference.resolve_char_ref() {
                Ok(Some(ch)) => ch.to_string(),
                _ => match &*reference.xml10_content() {
                    "lt" => "<".into(),
                    "gt" => ">".into(),
                    "amp" => "&".into(),
                    "apos" => "'".into(),
                    "quot" => "\"".into(),
                    _ => String::new(),
                },
            },
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => continue,
        };
        if let Some(&i) = open.last() {
            found[i].text.push_str(&text);
        }
    }
    for element in &mut found {
        let trimmed = element.text.trim();
        if trimmed.len() != element.text.len() {
            element.text = trimmed.to_string();
        }
    }
    found
}
