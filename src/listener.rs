//! The accept loop both listeners share: HTTP/1.0 and 1.1 with keep-alive (hyper 1), caps
//! on open connections in all and per source address (`slots`; a client beyond them gets
//! a prompt 503, never a silent wait in the backlog), a header read timeout against slow
//! clients, and a graceful stop that lets in-flight requests finish within a deadline.

mod slots;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

use self::slots::{NoSlot, Slots, Slotted};
use crate::config::Limits;
use crate::security::{AccessList, SecurityCounters};
use crate::tls::ServerTls;

/// The response type of both listeners.
pub type HttpResponse = Response<Full<Bytes>>;

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once; a further client gets 503 and is closed.
    pub max_connections: usize,
    /// Most connections open at once from one address; a further one gets 503.
    pub max_connections_per_peer: usize,
    /// A client must finish the TLS handshake, and then send its request headers, each
    /// within this time.
    pub header_read_timeout: Duration,
    /// How long a graceful stop waits for in-flight requests.
    pub drain: Duration,
    /// Largest request head (request line and headers); hyper answers 431 beyond it. Values
    /// under [`Limits::MIN_HEADER_BYTES`], hyper's smallest buffer, are raised to it.
    pub max_header_bytes: usize,
}

/// Who may talk to one listener, and over what.
#[derive(Debug, Clone, Default)]
pub struct ListenerSecurity {
    /// TLS on this listener (`None`: plain HTTP).
    pub tls: Option<ServerTls>,
    /// Source addresses allowed to connect.
    pub allow: AccessList,
    /// Where refusals are counted.
    pub counters: Arc<SecurityCounters>,
}

/// The far end of one connection, as the request handler sees it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The verified client certificate's subject (TLS with client certificates only).
    pub client_subject: Option<Arc<str>>,
}

/// The first byte of a TLS handshake record; anything else on a TLS port is not TLS.
const TLS_HANDSHAKE: u8 = 0x16;

/// The body a plain-HTTP client gets on the TLS port, before the connection is closed.
const PLAIN_HTTP_ON_TLS: &str = "this port speaks HTTPS (TLS 1.2 or 1.3)\n";

/// The body of the 503 a client beyond the connection caps gets.
const NO_SLOT: &str = "too many connections; try again shortly\n";

/// `Retry-After` of that 503, in seconds: slots free up as requests finish, within
/// milliseconds to seconds.
const NO_SLOT_RETRY_AFTER_SECS: u32 = 1;

/// What a TLS client beyond the caps gets instead of an HTTP answer it could not read
/// before a handshake: a fatal `internal_error` alert (TLS record type 21, version 3.3,
/// length 2, level 2, description 80), sent in the clear as before any handshake.
const NO_SLOT_TLS_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50];

/// Most refused connections being answered at once; beyond that a refused connection is
/// closed without an answer, so that a flood cannot make the refusals themselves a cost.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// How long a refused connection is kept to read what the client sent, so that closing it
/// does not reset the connection before the client has read the answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Most bytes read from a client that is being closed (see [`answer_and_close`]): enough
/// for a request head and a small body in flight; a client sending more is not waited for.
const LINGER_READ_LIMIT: usize = 64 * 1024;

/// The read buffer of that linger, on the stack of each refusal task: one page, as what
/// is read is thrown away.
const LINGER_READ_CHUNK: usize = 4096;

/// The pause after a failed `accept` (out of file descriptors, say): long enough that a
/// persistent failure does not spin a core, short enough that service resumes at once
/// when connections close and free descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `listener` until `stop` turns true (or its sender is dropped). The response
/// body is the handler's choice: whole bodies ([`HttpResponse`]) or streams (the admin
/// listener's Server-Sent Events).
pub async fn serve<F, Fut, B>(
    listener: TcpListener,
    limits: ConnectionLimits,
    security: ListenerSecurity,
    mut stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(hyper::Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let slots = Slots::new(limits.max_connections, limits.max_connections_per_peer);
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        if !security.allow.allows(addr.ip()) {
            SecurityCounters::bump(&security.counters.connections_refused);
            debug!(peer = %addr, "connection from an address not in the allow-list closed");
            continue;
        }
        let slot = match slots.take(addr.ip()) {
            Ok(slot) => slot,
            Err(no_slot) => {
                refuse(stream, addr, no_slot, &limits, &security, &refusals);
                continue;
            }
        };
        let stream = Slotted::new(slot, stream);
        let _ = stream.get_ref().set_nodelay(true);
        let handler = handler.clone();
        let watcher = graceful.watcher();
        let tls = security.tls.clone();
        let counters = Arc::clone(&security.counters);
        tokio::spawn(async move {
            let peer = Peer {
                addr,
                client_subject: None,
            };
            match tls {
                None => {
                    serve_connection(TokioIo::new(stream), peer, limits, watcher, handler).await
                }
                Some(tls) => {
                    let Some(stream) = handshake(stream, &tls, &limits, &counters, addr).await
                    else {
                        return;
                    };
                    let client_subject = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(crate::tls::Subject::of)
                        .map(|s| Arc::from(s.full));
                    let peer = Peer {
                        addr,
                        client_subject,
                    };
                    serve_connection(TokioIo::new(stream), peer, limits, watcher, handler).await
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => debug!("all connections closed"),
        _ = tokio::time::sleep(limits.drain) => warn!("drain deadline passed; closing connections"),
    }
}

/// Answers a connection that got no slot (a 503 with `Retry-After`, or a TLS alert on the
/// TLS port) and closes it, counted and logged (one line per peer and minute; when the
/// whole listener is full, one line a minute in all).
fn refuse(
    stream: TcpStream,
    addr: SocketAddr,
    no_slot: NoSlot,
    limits: &ConnectionLimits,
    security: &ListenerSecurity,
    in_flight: &Arc<Semaphore>,
) {
    let counters = &security.counters;
    let (counter, reason, log_key, limit) = match no_slot {
        NoSlot::PeerCap => (
            &counters.connections_over_peer_cap,
            "peer_cap",
            addr.ip(),
            limits.max_connections_per_peer,
        ),
        NoSlot::ListenerCap => (
            &counters.connections_over_cap,
            "max_connections",
            std::net::Ipv6Addr::UNSPECIFIED.into(),
            limits.max_connections,
        ),
    };
    SecurityCounters::bump(counter);
    crate::metrics::connection_refused(reason);
    if let Some(suppressed) = counters.connection_log.admit(log_key) {
        warn!(
            peer = %addr,
            reason,
            limit,
            suppressed = (suppressed > 0).then_some(suppressed),
            "connection refused with 503: too many connections"
        );
    }
    // Beyond this many answers at once the connection is just closed.
    let Ok(permit) = Arc::clone(in_flight).try_acquire_owned() else {
        return;
    };
    let answer = if security.tls.is_some() {
        NO_SLOT_TLS_ALERT.to_vec()
    } else {
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Retry-After: {NO_SLOT_RETRY_AFTER_SECS}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{NO_SLOT}",
            NO_SLOT.len()
        )
        .into_bytes()
    };
    tokio::spawn(async move {
        answer_and_close(stream, &answer, REFUSAL_LINGER).await;
        drop(permit);
    });
}

/// Writes `answer`, closes our side, and reads what the client sends until it closes too
/// (at most [`LINGER_READ_LIMIT`] bytes, within `linger`): closing a socket with unread
/// data resets the connection, and the client might lose the answer.
async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    answer: &[u8],
    linger: Duration,
) {
    let _ = tokio::time::timeout(linger, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; LINGER_READ_CHUNK];
        let mut total = 0;
        while total < LINGER_READ_LIMIT {
            match stream.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// The TLS handshake of one connection, within the header timeout. A client that speaks
/// plain HTTP gets a readable 400 instead of TLS garbage. Every refusal is counted, logged
/// with its reason and listed on the status page ([`crate::security::tls_refusals`]).
async fn handshake(
    stream: Slotted<TcpStream>,
    tls: &ServerTls,
    limits: &ConnectionLimits,
    counters: &SecurityCounters,
    addr: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<Slotted<TcpStream>>> {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(
        limits.header_read_timeout,
        stream.get_ref().peek(&mut first),
    )
    .await;
    match peeked {
        Ok(Ok(1)) if first[0] != TLS_HANDSHAKE => {
            SecurityCounters::bump(&counters.plain_http_on_tls);
            counters
                .tls_refusals
                .record(addr, "plain HTTP on the TLS port (answered 400)");
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_ON_TLS}",
                PLAIN_HTTP_ON_TLS.len()
            );
            answer_and_close(stream, answer.as_bytes(), limits.header_read_timeout).await;
            return None;
        }
        Ok(Ok(1)) => {}
        // Closed or silent before a first byte (a port check, say): not a handshake.
        _ => return None,
    }
    let reason =
        match tokio::time::timeout(limits.header_read_timeout, tls.acceptor().accept(stream)).await
        {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => crate::tls::handshake_refusal(&e),
            Err(_) => format!(
                "handshake not finished within limits.header_read_timeout ({})",
                humantime::format_duration(limits.header_read_timeout)
            ),
        };
    SecurityCounters::bump(&counters.tls_handshake_failures);
    counters.tls_refusals.record(addr, &reason);
    None
}

async fn serve_connection<I, F, Fut, B>(
    io: I,
    peer: Peer,
    limits: ConnectionLimits,
    watcher: hyper_util::server::graceful::Watcher,
    handler: F,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    F: Fn(hyper::Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let addr = peer.addr;
    let service = service_fn(move |request| {
        let response = handler(request, peer.clone());
        async move { Ok::<_, Infallible>(response.await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(Limits::MIN_HEADER_BYTES))
        .keep_alive(true)
        .serve_connection(io, service);
    if let Err(e) = watcher.watch(connection).await {
        debug!(peer = %addr, error = %e, "connection ended with an error");
    }
}

/// A response with a body and content type. The content types are constants: a static
/// header value is not copied for every response.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    Response::builder()
        .status(status)
        .header(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        )
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    response(status, "text/plain; charset=utf-8", body)
}

/// Asks hyper to close the connection after this response (used when we did not read the
/// request body, so the connection cannot be reused).
pub fn closing(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    TimedOut,
    Broken,
}

/// Reads a request body of at most `max` bytes within `timeout`. A declared length over
/// the limit is refused before anything is read.
pub async fn read_body(
    request: hyper::Request<Incoming>,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let limited = http_body_util::Limited::new(request.into_body(), max);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Ok(Err(_)) => Err(BodyError::Broken),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
