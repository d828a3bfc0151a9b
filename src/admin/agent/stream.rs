//! The desktop's Server-Sent Events streams: one per open page, each with the token that
//! completes its appURL. The receiver hands every event it accepts to the stream of its
//! token; a stream ends when the page goes away (the browser closes the connection, seen
//! at the next keep-alive at the latest) or the admin listener stops, and its token with
//! it, so later events to its appURL get 401 and the subscription ends as SAP's would.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::AdminBody;
use super::receiver::EVENTS_PATH;
use crate::listener;

/// Most desktop pages open at once on one connector; a further one gets 503. A browser
/// holds at most six HTTP/1.1 connections per origin anyway, so this bounds pages from
/// many browsers, not tabs of one.
const MAX_STREAMS: usize = 64;

/// Frames one stream may hold unsent. A page that does not keep up makes the receiver
/// answer 503, so the notifier retries later and nothing is lost.
const STREAM_QUEUE: usize = 256;

/// How often an idle stream sends a comment line: proxies keep it open, and a page that
/// went away is noticed (the write fails) within this time.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Random bytes in a token (printed as hex): not guessable.
const TOKEN_BYTES: usize = 16;

/// What became of one event handed to [`Streams::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// On its way to the page.
    Sent,
    /// No open page has this token.
    Unknown,
    /// The page is behind: try again later.
    Busy,
}

/// The open streams of the admin listener.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

struct Inner {
    /// `http://<admin address>/agent/events/`: a token completes it.
    base_url: String,
    open: Mutex<HashMap<String, mpsc::Sender<Bytes>>>,
    stop: watch::Receiver<bool>,
    random: SystemRandom,
}

impl Streams {
    /// Streams of the admin listener bound at `admin`, all ended when `stop` turns true.
    pub fn new(admin: SocketAddr, stop: watch::Receiver<bool>) -> Streams {
        let receiver = super::receiver_address(admin);
        Streams {
            inner: Arc::new(Inner {
                base_url: format!("http://{receiver}{EVENTS_PATH}"),
                open: Mutex::new(HashMap::new()),
                stop,
                random: SystemRandom::new(),
            }),
        }
    }

    /// Opens a stream: the response whose body is the stream, its first event the page's
    /// appURL.
    pub fn open(&self) -> Response<AdminBody> {
        let mut bytes = [0u8; TOKEN_BYTES];
        if self.inner.random.fill(&mut bytes).is_err() {
            return unavailable("no random numbers for a token\n");
        }
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let hello = json!({ "appURL": format!("{}{token}", self.inner.base_url) });
        let _ = tx.try_send(frame("hello", &hello));
        {
            let mut open = self.inner.open.lock().expect("streams lock");
            if open.len() >= MAX_STREAMS {
                return unavailable("too many agent desktops open\n");
            }
            open.insert(token.clone(), tx.clone());
        }
        tokio::spawn(keep_alive(Arc::clone(&self.inner), token, tx));
        let mut response = Response::new(EventBody { rx }.boxed());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// Whether an open page holds `token` (checked before a receiver reads a body).
    pub fn knows(&self, token: &str) -> bool {
        self.inner
            .open
            .lock()
            .expect("streams lock")
            .contains_key(token)
    }

    /// Hands an event envelope to the stream of `token`.
    pub fn deliver(&self, token: &str, envelope: &str) -> Delivery {
        let open = self.inner.open.lock().expect("streams lock");
        let Some(tx) = open.get(token) else {
            return Delivery::Unknown;
        };
        match tx.try_send(frame("ici", &json!({ "xml": envelope }))) {
            Ok(()) => Delivery::Sent,
            Err(mpsc::error::TrySendError::Full(_)) => Delivery::Busy,
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Unknown,
        }
    }
}

/// Keeps one stream alive until its page goes or the listener stops, then forgets its
/// token (dropping the last sender ends the body).
async fn keep_alive(inner: Arc<Inner>, token: String, tx: mpsc::Sender<Bytes>) {
    let mut stop = inner.stop.clone();
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tx.closed() => break,
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = tick.tick() => {
                // A full queue already has something to write.
                let _ = tx.try_send(Bytes::from_static(b": keep-alive\n\n"));
            }
        }
    }
    inner.open.lock().expect("streams lock").remove(&token);
}

/// One SSE event: its name and one `data:` line of JSON (which has no raw line breaks).
fn frame(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn unavailable(text: &'static str) -> Response<AdminBody> {
    listener::text(StatusCode::SERVICE_UNAVAILABLE, text).map(|body| body.boxed())
}

/// The body of one stream: what its channel brings, until every sender is gone.
struct EventBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
    }
}
