//! The drain task of one outbox: POSTs its events one after another, retries the event at
//! the head until SAP takes it, and stops when SAP's session is gone or the outbox was
//! dropped and emptied.

use std::error::Error;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{Instrument, Span, debug, info, info_span, warn};

use super::backoff::Backoff;
use super::outbox::Shared;
use super::spool::{Spool, SpoolOp};
use super::{EndReason, Feedback, HttpClient, NotifierSettings, OutboundEvent, SubscriptionId};

/// SAP answers an event with an empty SOAP response; anything longer than this is read as a
/// broken answer (and the event retried) rather than buffered.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

const SOAP_ACTION: HeaderName = HeaderName::from_static("soapaction");

/// Everything one drain task owns. There is one per subscription and most sit idle, so
/// what all tasks share (the HTTP client, the settings) is behind an `Arc`, not copied
/// into each task.
pub(super) struct Drain {
    pub(super) id: SubscriptionId,
    pub(super) url: Uri,
    pub(super) shared: Arc<Shared>,
    pub(super) client: Arc<HttpClient>,
    pub(super) settings: Arc<NotifierSettings>,
    pub(super) feedback: mpsc::Sender<Feedback>,
    pub(super) spool: Spool,
}

/// How the delivery of one event ended.
enum Outcome {
    Delivered,
    SessionGone(StatusCode),
    /// The outbox was dropped and `close_grace` ran out before SAP took the event.
    GaveUp,
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

    /// The whole task: delivers until the outbox is done or the notifier stops (`stop` turns
    /// true), then counts itself out of `active`. One future owning the `Drain` once, so an
    /// idle subscription holds little more than the wait for its next event.
    pub(super) async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        active: Arc<(AtomicUsize, Notify)>,
    ) {
        tokio::select! {
            _ = self.drain() => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
        active.0.fetch_sub(1, Ordering::AcqRel);
        active.1.notify_waiters();
    }

    async fn drain(&self) {
        let mut backoff = Backoff::new(self.settings.retry_min, self.settings.retry_max, self.id);
        while let Some(event) = self.shared.next().await {
            // Boxed: an idle drain task (one per subscription) then holds only this loop's
            // state, not the far larger state of an HTTP request in flight.
            if Box::pin(self.handle(event, &mut backoff)).await.is_break() {
                return;
            }
        }
        self.span()
            .in_scope(|| debug!("subscription ended, outbox drained"));
    }

    /// Delivers `event` and acts on how that ended; `Break` when the task is to stop.
    async fn handle(&self, event: OutboundEvent, backoff: &mut Backoff) -> ControlFlow<()> {
        let sequence = event.sequence;
        let span = self.span();
        match self.deliver(event, backoff).instrument(span.clone()).await {
            Outcome::Delivered => {
                self.spool.record(SpoolOp::Remove(self.id, sequence));
                self.shared.delivered();
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
            let started = Instant::now();
            let result = self
                .attempt(body.clone(), action.clone())
                .instrument(span.clone())
                .await;
            let latency_ms = started.elapsed().as_millis() as u64;
            self.note_result(name, sequence, &result);
            let error = match result {
                Ok(status) if status.is_success() => {
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
                Ok(status @ (StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND)) => {
                    span.in_scope(|| {
                        info!(%user, call, event = name, sequence, attempt, status = status.as_u16(), latency_ms, "SAP no longer knows this session");
                    });
                    return Outcome::SessionGone(status);
                }
                Ok(status) => AttemptError::Status(status),
                Err(error) => error,
            };
            failures = failures.saturating_add(1);
            self.shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
            let pause = backoff.pause(failures);
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
    fn note_result(&self, name: &str, sequence: u64, result: &Result<StatusCode, AttemptError>) {
        let text = match result {
            Ok(status) => format!("HTTP {} {name} #{sequence}", status.as_u16()),
            Err(error) => format!("failed {name} #{sequence}: {}", Chain(error)),
        };
        if let Ok(mut last) = self.shared.last_delivery.lock() {
            *last = Some(text);
        }
    }

    /// One POST, from connecting to the last byte of the answer, within `request_timeout`.
    async fn attempt(&self, body: Bytes, action: HeaderValue) -> Result<StatusCode, AttemptError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.url.clone();
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        headers.insert(SOAP_ACTION, action);
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(AttemptError::Send)?;
            let status = response.status();
            // Read the whole answer: only a complete response counts as delivered, and it
            // returns the connection to the keep-alive pool.
            Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(AttemptError::Response)?;
            Ok(status)
        };
        let timeout = self.settings.request_timeout;
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| AttemptError::Timeout(timeout))?
    }
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

    #[tokio::test]
    async fn dropped_outbox_gives_up_after_close_grace() {
        // A port that nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);

        let shared = Arc::new(Shared::new(10));
        let outbox = Outbox::new(1, shared.clone(), Spool::memory());
        let (feedback, mut feedback_rx) = mpsc::channel(1);
        let drain = Drain {
            id: 1,
            url: format!("http://{addr}/sap/events").parse().unwrap(),
            shared: shared.clone(),
            client: Arc::new(super::super::http_client(None)),
            settings: Arc::new(NotifierSettings {
                retry_min: Duration::from_millis(10),
                retry_max: Duration::from_millis(20),
                close_grace: Duration::from_millis(100),
                ..NotifierSettings::default()
            }),
            feedback,
            spool: Spool::memory(),
        };
        let (_stop, stop) = watch::channel(false);
        let active = Arc::new((AtomicUsize::new(1), Notify::new()));
        let task = tokio::spawn(drain.run(stop, active.clone()));
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
        drop(outbox);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the task stops after close_grace")
            .unwrap();
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
