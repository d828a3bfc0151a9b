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
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

/// The response type of both listeners.
pub type HttpResponse = Response<Full<Bytes>>;

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// A client must send its request headers within this time.
    pub header_read_timeout: Duration,
    /// How long a graceful stop waits for in-flight requests.
    pub drain: Duration,
}

/// Serves `listener` until `stop` turns true (or its sender is dropped).
pub async fn serve<F, Fut>(
    listener: TcpListener,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(hyper::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("semaphore never closed"),
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
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
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let response = handler(request, peer);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "connection ended with an error");
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
