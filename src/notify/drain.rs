//! The drain task of one outbox: POSTs its events one after another, retries the event at
//! the head while SAP's answer says it may take it later, drops it when SAP refuses it for
//! good, and stops when SAP's session is gone or the outbox was dropped and emptied. What
//! each HTTP status means is in the module doc of [`super`] and in [`Verdict`].

use std::error::Error;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{Instrument, Span, debug, error, info, info_span, warn};

use super::outbox::{Next, Shared};
use super::spool::{Spool, SpoolOp};
use super::{EndReason, Feedback, HttpClient, NotifierSettings, OutboundEvent, SubscriptionId};
use crate::backoff::Backoff;

/// SAP answers an event with an empty SOAP envelope. At most this much of any answer is
/// read: the status is the answer, and a body longer than this (a proxy's page, a
/// misconfigured handler) is cut off, its connection closed rather than pooled.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How much of a refusing answer's body goes into the log line of the dropped event: the
/// start of SAP's error page usually says why.
const REJECTION_EXCERPT_BYTES: usize = 256;

const SOAP_ACTION: HeaderName = HeaderName::from_static("soapaction");

/// What the drain task of one outbox needs, kept by the [`super::Outbox`] and shared with
/// the task while one runs. There is one per subscription and most sit idle, so what all
/// share (the HTTP client, the settings) is behind an `Arc`, not copied into each.
///
/// A task runs only while the outbox has something to deliver ([`Drain::start`]): an idle
/// subscription holds no task (about 900 bytes each), only this record.
pub(super) struct Drain {
    pub(super) id: SubscriptionId,
    pub(super) url: Uri,
    pub(super) shared: Arc<Shared>,
    pub(super) client: Arc<HttpClient>,
    pub(super) settings: Arc<NotifierSettings>,
    pub(super) feedback: mpsc::Sender<Feedback>,
    pub(super) spool: Spool,
    /// Turns true when the process stops: a running task ends at once.
    pub(super) stop: watch::Receiver<bool>,
    /// Tasks running, and a wake-up when one ends (for [`super::Notifier::flush`]).
    pub(super) active: Arc<(AtomicUsize, Notify)>,
}

/// How the delivery of one event ended.
enum Outcome {
    Delivered,
    SessionGone(StatusCode),
    /// SAP refused this event for good ([`Verdict::Rejected`]); it is dropped.
    Rejected,
    /// The outbox was dropped and `close_grace` ran out before SAP took the event.
    GaveUp,
}

/// What SAP's HTTP status means for the event, decided per status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 2xx: SAP took it, whatever the body says or how long it is.
    Delivered,
    /// 401, 404: SAP's IC session behind the appURL has ended.
    SessionGone,
    /// 408, 429, 5xx: SAP (or a proxy before it) may take it later.
    Retry,
    /// Every other status (other 4xx, 3xx): SAP would refuse the same request again, so
    /// retrying would block every later event of the subscription for ever.
    Rejected,
}

impl Verdict {
    fn of(status: StatusCode) -> Verdict {
        match status.as_u16() {
            200..=299 => Verdict::Delivered,
            401 | 404 => Verdict::SessionGone,
            408 | 429 | 500..=599 => Verdict::Retry,
            _ => Verdict::Rejected,
        }
    }
}

/// SAP's answer to one attempt.
struct Answer {
    status: StatusCode,
    /// The pause a 429 or 503 asked for (`Retry-After`).
    retry_after: Option<Duration>,
    /// The start of the body (lossy UTF-8), for the log line of a refusal.
    excerpt: String,
}

/// Why one attempt failed (and will be retried).
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("request failed")]
    Send(#[source] hyper_util::client::legacy::Error),
    #[error("reading the response failed")]
    Response(#[source] Box<dyn Error + Send + Sync>),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected HTTP status {0}")]
    Status(StatusCode),
}

impl Drain {
    /// The span of every line about this outbox. Made for each event rather than held for
    /// the task's life: an idle subscription then keeps nothing in the log subscriber's
    /// span registry (about 450 bytes each), and the lines read the same.
    fn span(&self) -> Span {
        info_span!("outbox", subscription = self.id, url = %self.url)
    }

    /// Starts a task that delivers until the outbox is empty. The caller has marked the
    /// outbox as having one ([`Shared::claim_task`]), so at most one runs at a time.
    /// Must be called inside a tokio runtime.
    pub(super) fn start(self: &Arc<Self>) {
        self.active.0.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(Arc::clone(self).run());
    }

    /// The whole task: delivers until the outbox is empty (or done) or the notifier stops
    /// (`stop` turns true), then counts itself out of `active`.
    async fn run(self: Arc<Self>) {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = self.drain() => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
        self.active.0.fetch_sub(1, Ordering::AcqRel);
        self.active.1.notify_waiters();
    }

    async fn drain(&self) {
        let mut backoff = Backoff::new(self.settings.retry_min, self.settings.retry_max, self.id);
        loop {
            match self.shared.next().await {
                Next::Event(event) => {
                    // Boxed: the task's loop state stays small while it waits for an
                    // event's commit, not the far larger state of an HTTP request.
                    if Box::pin(self.handle(event, &mut backoff)).await.is_break() {
                        return;
                    }
                }
                Next::Idle => return,
                Next::Ended => {
                    self.span()
                        .in_scope(|| debug!("subscription ended, outbox drained"));
                    return;
                }
            }
        }
    }

    /// Delivers `event` and acts on how that ended; `Break` when the task is to stop.
    async fn handle(&self, event: OutboundEvent, backoff: &mut Backoff) -> ControlFlow<()> {
        let sequence = event.sequence;
        let span = self.span();
        match self.deliver(event, backoff).instrument(span.clone()).await {
            Outcome::Delivered => {
                self.spool
                    .record_waiting(SpoolOp::Remove(self.id, sequence))
                    .await;
                self.shared.delivered();
                ControlFlow::Continue(())
            }
            Outcome::Rejected => {
                // Done with it as with a delivered one: off the spool, its place freed.
                self.spool
                    .record_waiting(SpoolOp::Remove(self.id, sequence))
                    .await;
                self.shared.delivered();
                crate::metrics::events_dropped("rejected", 1);
                ControlFlow::Continue(())
            }
            Outcome::SessionGone(status) => {
                let still_owned = self.shared.closed_at().is_none();
                let discarded = self.shared.end();
                crate::metrics::events_dropped("session_gone", discarded as u64);
                span.in_scope(|| {
                    info!(
                        status = status.as_u16(),
                        discarded, "SAP session gone: subscription ended"
                    )
                });
                // Once the Outbox is dropped the owner has forgotten the subscription
                // (a 401 to the final subscriptionEnded is the normal case): no feedback.
                if still_owned {
                    let reason = EndReason::SessionGone {
                        status: status.as_u16(),
                    };
                    let ended = Feedback::Ended {
                        id: self.id,
                        reason,
                    };
                    if self.feedback.send(ended).await.is_err() {
                        span.in_scope(|| debug!("feedback receiver gone"));
                    }
                }
                ControlFlow::Break(())
            }
            Outcome::GaveUp => {
                let discarded = self.shared.end();
                crate::metrics::events_dropped("gave_up", discarded as u64);
                span.in_scope(|| {
                    warn!(
                        discarded,
                        grace_ms = self.settings.close_grace.as_millis() as u64,
                        "subscription ended and SAP unreachable: undelivered events discarded"
                    )
                });
                ControlFlow::Break(())
            }
        }
    }

    /// Delivers one event, retrying until SAP takes it or refuses the session.
    async fn deliver(&self, event: OutboundEvent, backoff: &mut Backoff) -> Outcome {
        let OutboundEvent {
            name,
            sequence,
            user,
            call,
            body,
        } = event;
        let body = Bytes::from(body);
        let action = HeaderValue::from_str(&format!("\"urn:IciEventInterface#{name}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"urn:IciEventInterface\""));
        let call = call.as_deref();
        crate::logging::capture(&user, call, "event", name, &body);
        let mut failures: u32 = 0;
        loop {
            let attempt = failures + 1;
            let span = info_span!("notify", event = name, attempt);
            // A connector that lost its leader lease sends nothing: the next active
            // delivers this event from the replicated spool.
            self.settings.fence.allowed().await;
            let started = Instant::now();
            let result = self
                .attempt(body.clone(), action.clone())
                .instrument(span.clone())
                .await;
            let latency_ms = started.elapsed().as_millis() as u64;
            self.note_result(name, sequence, &result);
            let (error, retry_after) = match result {
                Ok(answer) => {
                    let status = answer.status;
                    match Verdict::of(status) {
                        Verdict::Delivered => {
                            crate::metrics::event_delivered(name, started.elapsed());
                            span.in_scope(|| {
                                let status = status.as_u16();
                                if attempt == 1 {
                                    info!(%user, call, event = name, sequence, attempt, status, latency_ms, "event delivered");
                                } else {
                                    info!(%user, call, event = name, sequence, attempt, status, latency_ms, "event delivered after retry");
                                }
                            });
                            return Outcome::Delivered;
                        }
                        Verdict::SessionGone => {
                            span.in_scope(|| {
                                info!(%user, call, event = name, sequence, attempt, status = status.as_u16(), latency_ms, "SAP no longer knows this session");
                            });
                            return Outcome::SessionGone(status);
                        }
                        Verdict::Rejected => {
                            span.in_scope(|| {
                                error!(subscription = self.id, %user, call, event = name, sequence, attempt, status = status.as_u16(), latency_ms, answer = ?answer.excerpt, "SAP refused the event: dropped, the next one follows");
                            });
                            return Outcome::Rejected;
                        }
                        Verdict::Retry => (AttemptError::Status(status), answer.retry_after),
                    }
                }
                Err(error) => (error, None),
            };
            failures = failures.saturating_add(1);
            self.shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
            let pause = backoff.pause_honouring(failures, retry_after);
            let status = match &error {
                AttemptError::Status(status) => Some(status.as_u16()),
                _ => None,
            };
            if let Some(closed_at) = self.shared.closed_at()
                && Instant::now() + pause > closed_at + self.settings.close_grace
            {
                span.in_scope(|| {
                    warn!(%user, call, event = name, sequence, attempt, status, latency_ms, error = %Chain(&error), "delivery failed after the subscription ended; giving up");
                });
                return Outcome::GaveUp;
            }
            crate::metrics::event_retried(name);
            span.in_scope(|| {
                warn!(%user, call, event = name, sequence, attempt, status, latency_ms, retry_in_ms = pause.as_millis() as u64, error = %Chain(&error), "delivery failed; will retry");
            });
            tokio::time::sleep(pause).await;
        }
    }

    /// Remembers how the last attempt ended, for the status page.
    fn note_result(&self, name: &str, sequence: u64, result: &Result<Answer, AttemptError>) {
        let text = match result {
            Ok(answer) if Verdict::of(answer.status) == Verdict::Rejected => {
                format!(
                    "HTTP {} {name} #{sequence} (dropped)",
                    answer.status.as_u16()
                )
            }
            Ok(answer) => format!("HTTP {} {name} #{sequence}", answer.status.as_u16()),
            Err(error) => format!("failed {name} #{sequence}: {}", Chain(error)),
        };
        if let Ok(mut last) = self.shared.last_delivery.lock() {
            *last = Some(text);
        }
    }

    /// One POST, from connecting to SAP's answer, within `request_timeout`. The status is
    /// the answer; at most [`MAX_RESPONSE_BYTES`] of the body are read within what is left
    /// of the time, and only a 2xx whose body breaks off before that is a failure.
    async fn attempt(&self, body: Bytes, action: HeaderValue) -> Result<Answer, AttemptError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.url.clone();
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        headers.insert(SOAP_ACTION, action);
        let timeout = self.settings.request_timeout;
        let deadline = Instant::now() + timeout;
        let response = tokio::time::timeout_at(deadline, self.client.request(request))
            .await
            .map_err(|_| AttemptError::Timeout(timeout))?
            .map_err(AttemptError::Send)?;
        let status = response.status();
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                retry_after(response.headers())
            }
            _ => None,
        };
        let mut excerpt = Vec::new();
        let read = read_bounded(response.into_body(), &mut excerpt);
        if let Ok(Err(error)) = tokio::time::timeout_at(deadline, read).await
            && status.is_success()
        {
            // A short answer that breaks off: it may not be SAP's (a proxy gave up).
            return Err(AttemptError::Response(Box::new(error)));
        }
        Ok(Answer {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        })
    }
}

/// Reads `body` to its end or to [`MAX_RESPONSE_BYTES`], whichever comes first, keeping
/// its first [`REJECTION_EXCERPT_BYTES`] in `excerpt`. Read to its end, the connection goes
/// back to the keep-alive pool; a body dropped before its end (the caller drops it, past
/// the limit or the deadline) makes hyper close the connection instead.
async fn read_bounded(mut body: Incoming, excerpt: &mut Vec<u8>) -> Result<(), hyper::Error> {
    let mut read = 0;
    while read < MAX_RESPONSE_BYTES {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            read += data.len();
            let room = REJECTION_EXCERPT_BYTES.saturating_sub(excerpt.len());
            excerpt.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(())
}

/// The pause a `Retry-After` header asks for, from now: delay-seconds or an HTTP date
/// (RFC 9110, 10.2.3). `None` when absent or unreadable.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Displays an error with its chain of sources: `a: b: c`.
struct Chain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Outbox;

    #[test]
    fn verdict_per_status_class() {
        let verdict = |code: u16| Verdict::of(StatusCode::from_u16(code).unwrap());
        for code in [200, 202, 204, 299] {
            assert_eq!(verdict(code), Verdict::Delivered, "{code}");
        }
        for code in [401, 404] {
            assert_eq!(verdict(code), Verdict::SessionGone, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(verdict(code), Verdict::Retry, "{code}");
        }
        for code in [
            301, 302, 400, 402, 403, 405, 409, 410, 413, 415, 422, 431, 451, 600,
        ] {
            assert_eq!(verdict(code), Verdict::Rejected, "{code}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            headers
        };
        assert_eq!(retry_after(&headers("120")), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers(" 0 ")), Some(Duration::ZERO));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let pause = retry_after(&headers(&in_a_minute)).unwrap();
        assert!(
            pause > Duration::from_secs(55) && pause <= Duration::from_secs(61),
            "{pause:?}"
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO),
            "a date in the past: no extra pause"
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn dropped_outbox_gives_up_after_close_grace() {
        // A port that nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);

        let shared = Arc::new(Shared::new(10));
        let (feedback, mut feedback_rx) = mpsc::channel(1);
        let (_stop, stop) = watch::channel(false);
        let active = Arc::new((AtomicUsize::new(0), Notify::new()));
        let drain = Drain {
            id: 1,
            url: format!("http://{addr}/sap/events").parse().unwrap(),
            shared: shared.clone(),
            client: Arc::new(super::super::http_client(None, Arc::default())),
            settings: Arc::new(NotifierSettings {
                retry_min: Duration::from_millis(10),
                retry_max: Duration::from_millis(20),
                close_grace: Duration::from_millis(100),
                ..NotifierSettings::default()
            }),
            feedback,
            spool: Spool::memory(),
            stop,
            active: active.clone(),
        };
        let outbox = Outbox::new(1, shared.clone(), Spool::memory(), Some(Arc::new(drain)));
        for sequence in 1..=3 {
            outbox
                .push(OutboundEvent {
                    name: "subscriptionEnded",
                    sequence,
                    user: "AGENT1".into(),
                    call: None,
                    body: String::new(),
                })
                .unwrap();
        }
        assert_eq!(
            active.0.load(Ordering::Acquire),
            1,
            "the first push started a task"
        );
        drop(outbox);
        let ended = async {
            loop {
                let wake = active.1.notified();
                if active.0.load(Ordering::Acquire) == 0 {
                    return;
                }
                wake.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), ended)
            .await
            .expect("the task stops after close_grace");
        assert!(shared.failed_attempts.load(Ordering::Relaxed) >= 1);
        assert_eq!(shared.end(), 0, "nothing left queued");
        assert!(feedback_rx.try_recv().is_err(), "giving up is not reported");
        assert_eq!(
            active.0.load(Ordering::Acquire),
            0,
            "the task counted itself out"
        );
    }
}
