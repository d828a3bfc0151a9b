//! The accept loop both listeners share: HTTP/1.0 and 1.1 with keep-alive (hyper 1), a cap
//! on open connections, a header read timeout against slow clients, and a graceful stop
//! that lets in-flight requests finish within a deadline.

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

use crate::security::{AccessList, SecurityCounters};
use crate::tls::ServerTls;

/// The response type of both listeners.
pub type HttpResponse = Response<Full<Bytes>>;

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// A client must finish the TLS handshake, and then send its request headers, each
    /// within this time.
    pub header_read_timeout: Duration,
    /// How long a graceful stop waits for in-flight requests.
    pub drain: Duration,
    /// Largest request head (request line and headers); hyper answers 431 beyond it. Values
    /// under 8192 are raised to 8192, hyper's smallest buffer.
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

/// Serves `listener` until `stop` turns true (or its sender is dropped).
pub async fn serve<F, Fut>(
    listener: TcpListener,
    limits: ConnectionLimits,
    security: ListenerSecurity,
    mut stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(hyper::Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("semaphore never closed"),
            _ = stop.changed() => break,
        };
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
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
        let _ = stream.set_nodelay(true);
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
                        return drop(permit);
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
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => debug!("all connections closed"),
        _ = tokio::time::sleep(limits.drain) => warn!("drain deadline passed; closing connections"),
    }
}

/// The TLS handshake of one connection, within the header timeout. A client that speaks
/// plain HTTP gets a readable 400 instead of TLS garbage.
async fn handshake(
    stream: TcpStream,
    tls: &ServerTls,
    limits: &ConnectionLimits,
    counters: &SecurityCounters,
    addr: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != TLS_HANDSHAKE => {
            SecurityCounters::bump(&counters.plain_http_on_tls);
            debug!(peer = %addr, "plain HTTP on the TLS port");
            let mut stream = stream;
            let _ = tokio::time::timeout(limits.header_read_timeout, async {
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_ON_TLS}",
                    PLAIN_HTTP_ON_TLS.len()
                );
                stream.write_all(answer.as_bytes()).await?;
                stream.shutdown().await?;
                // Read what the client sent, so closing does not reset the connection
                // before it has read the answer.
                let mut sink = [0u8; 4096];
                let mut total = 0;
                while total < 64 * 1024 {
                    match stream.read(&mut sink).await? {
                        0 => break,
                        n => total += n,
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            return None;
        }
        Ok(Ok(1)) => {}
        _ => return None,
    }
    match tokio::time::timeout(limits.header_read_timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            SecurityCounters::bump(&counters.tls_handshake_failures);
            debug!(peer = %addr, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            SecurityCounters::bump(&counters.tls_handshake_failures);
            debug!(peer = %addr, "TLS handshake timed out");
            None
        }
    }
}

async fn serve_connection<I, F, Fut>(
    io: I,
    peer: Peer,
    limits: ConnectionLimits,
    watcher: hyper_util::server::graceful::Watcher,
    handler: F,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    F: Fn(hyper::Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    let addr = peer.addr;
    let service = service_fn(move |request| {
        let response = handler(request, peer.clone());
        async move { Ok::<_, Infallible>(response.await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true)
        .serve_connection(io, service);
    if let Err(e) = watcher.watch(connection).await {
        debug!(peer = %addr, error = %e, "connection ended with an error");
    }
}

/// A response with a body and content type.
pub fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
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
