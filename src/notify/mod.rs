//! The notifier: delivers events (`phoneCallChanged`, `workmodeChanged`,
//! `subscriptionEnded`, ...) to the callback URL (appURL) that SAP handed over when it
//! subscribed.
//!
//! One ordered [`Outbox`] per subscription, drained by a tokio task of its own that POSTs
//! the events one after another (the task runs while the outbox has events: an idle
//! subscription holds none), so the order of one subscription holds and one slow or dead SAP
//! session never delays another. The session manager calls [`Outbox::push`] from inside its
//! actor loop: it never blocks and never awaits; the memory it may hold is bounded by
//! [`NotifierSettings::max_queue_per_subscription`], and the spool's writer queue by
//! [`spool::WRITER_QUEUE`] (the session manager waits for room between messages).
//!
//! Delivery (`drain`): `POST` with `Content-Type: text/xml; charset=utf-8` and
//! `SOAPAction: "urn:IciEventInterface#<event>"`, HTTP/1.1 keep-alive through one shared
//! connection pool, only to addresses [`Destinations`] lets through (never our own
//! listeners; only `[events] allow` when set; checked again on every connect). What SAP's
//! answer means, by status class:
//! - **2xx**: delivered, whatever the body; the next event goes out. At most
//!   64 KiB of the body is read (SAP's answer is an empty SOAP envelope); a longer or
//!   slower body is not waited for: its connection is closed instead of going back to
//!   the pool. A connection that breaks inside a short body is a failure (retried).
//! - **401 or 404**: SAP's IC session behind this URL has ended (ICI.md, section 1). That is
//!   normal: logged at info, [`Feedback::Ended`] with [`EndReason::SessionGone`] is sent once,
//!   the rest of the outbox is dropped and the task stops.
//! - **408, 429, 5xx**, and no answer at all (connection refused, reset or closed
//!   mid-response, no answer within [`NotifierSettings::request_timeout`], a destination
//!   refused at connect time): SAP may take the event later. The **same** event is
//!   retried after a capped exponential backoff with jitter, for as long as the
//!   subscription exists; later events wait behind it. A `Retry-After` on 429 or 503
//!   lengthens the pause, up to [`NotifierSettings::retry_max`].
//! - **Any other status** (400, 403, 405, 413, 415, 422, ..., and 3xx): SAP refuses this
//!   event and would refuse it again. The event is **dropped**: logged at error with the
//!   subscription, sequence, status and the start of SAP's answer, counted as
//!   `ici_events_dropped_total{reason="rejected"}`, and the next event goes out. The
//!   subscription lives on, so the agent keeps getting later calls; its sequence number
//!   is a gap SAP can see. (Ending the subscription instead would turn one bad event
//!   into an agent without screen pops until the next login.)
//!
//! **Duplicates.** A request that timed out (or whose connection broke after SAP read it) may
//! still have been processed by SAP, so its retry can deliver the same event twice. Events
//! are never reordered and never skipped; the per-subscription `sequence` inside each event
//! body lets SAP (and the tests) recognise a repeat: it carries the same sequence number.
//!
//! **Gaps.** A sequence number is never given to two different events, across restarts
//! too: after a crash numbering resumes above a reservation kept on disk
//! ([`spool::SEQUENCE_RESERVE`]), so events that were numbered but not yet on disk when
//! the process died show SAP a gap (it resynchronises with `getCalls`). No event of a SOAP
//! operation SAP saw answered can be among them: the session manager answers once the
//! spool has committed them ([`Spool::committed`]). A record damaged on disk is quarantined
//! at start and leaves a gap as well.

mod destination;
mod drain;
mod fence;
mod outbox;
pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

use crate::config::EventsConfig;

pub use destination::{DestinationError, Destinations};
pub use fence::{Fence, FenceControl};
pub use outbox::{Outbox, PushError};
pub use spool::{
    JetStreamStore, RedbStore, Spool, SpoolContents, SpoolOp, StoredAttached, StoredEvent,
    StoredSubscription, Ticket,
};

/// The session manager's identifier of one subscription (one appURL of one user or
/// container). Never reused while the process runs.
pub type SubscriptionId = u64;

/// The notifier's limits. They come from `[events]` ([`NotifierSettings::from`]), whose
/// defaults are the only ones; [`Default`] is that of a default `[events]`.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// How long one delivery attempt may take, from connecting to the last byte of SAP's
    /// answer, before it counts as failed and is retried (`[events] request_timeout`).
    pub request_timeout: Duration,
    /// First pause before a retry; it doubles with every failed attempt of the same event
    /// (`[events] retry_min`).
    pub retry_min: Duration,
    /// The longest pause between two attempts (`[events] retry_max`).
    pub retry_max: Duration,
    /// Events one subscription may hold undelivered (queued plus the one in flight); past
    /// that [`Outbox::push`] answers [`PushError::Full`]. Bounds memory when SAP is away
    /// (`[events] max_queue_per_subscription`).
    pub max_queue_per_subscription: usize,
    /// Events all subscriptions together may hold undelivered; past that every push answers
    /// [`PushError::Full`] (`[events] max_queue_total`).
    pub max_queue_total: usize,
    /// After the [`Outbox`] is dropped (the subscription ended), how long its task keeps
    /// retrying what is still queued before it gives up and discards the rest, so a dead URL
    /// cannot keep a task alive for ever. Default [`CLOSE_GRACE`].
    pub close_grace: Duration,
    /// TLS for `https://` appURLs (roots, our client certificate). Default `None`: the
    /// system's root certificates, no client certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Where events may go (our own listeners refused, `[events] allow`). Default: any
    /// address.
    pub destinations: Arc<Destinations>,
    /// Whether this connector may deliver now (the leader lease of `[cluster]`); checked
    /// before every attempt. Default: open.
    pub fence: Fence,
}

/// How long the task of an ended subscription keeps retrying its last events (the final
/// `subscriptionEnded` among them): room for two attempts at the default longest pause
/// (`[events] retry_max`, 30 s), so SAP, briefly away, still hears that the subscription
/// ended, and a dead URL does not keep a task alive for long.
pub const CLOSE_GRACE: Duration = Duration::from_secs(60);

impl From<&EventsConfig> for NotifierSettings {
    /// The settings `[events]` asks for. TLS and the destinations are left at their
    /// defaults: they need the loaded certificates and the bound listeners.
    fn from(events: &EventsConfig) -> Self {
        NotifierSettings {
            request_timeout: events.request_timeout,
            retry_min: events.retry_min,
            retry_max: events.retry_max,
            max_queue_per_subscription: events.max_queue_per_subscription,
            max_queue_total: events.max_queue_total,
            close_grace: CLOSE_GRACE,
            tls: None,
            destinations: Arc::default(),
            fence: Fence::open(),
        }
    }
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings::from(&EventsConfig::default())
    }
}

/// One event, ready to go on the wire. The ICI layer writes the SOAP envelope (the session
/// manager calls it, see `session::Wire`); the notifier only carries it.
#[derive(Debug, Clone)]
pub struct OutboundEvent {
    /// The ICI event operation, e.g. `"phoneCallChanged"`; it names the `SOAPAction`.
    pub name: &'static str,
    /// The per-subscription sequence number written into `body` (for logs; duplicates keep
    /// it).
    pub sequence: u64,
    /// The agent (SAP user) the event concerns, for logs.
    pub user: String,
    /// The call the event concerns, if any, for logs.
    pub call: Option<String>,
    /// The complete SOAP envelope, already written.
    pub body: String,
}

/// Why the notifier ended a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// SAP answered 401 or 404 at the appURL: its IC session has ended.
    SessionGone {
        /// The HTTP status SAP answered.
        status: u16,
    },
    /// The outbox was full (SAP did not keep up). Not sent by the notifier itself: the
    /// caller sees [`PushError::Full`] and ends the subscription with this reason.
    Overflow,
}

/// `SAP's session ended (HTTP 404)`, `event queue overflow`: for logs.
impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::SessionGone { status } => write!(f, "SAP's session ended (HTTP {status})"),
            EndReason::Overflow => f.write_str("event queue overflow"),
        }
    }
}

/// What the notifier tells the session manager, on the channel given to [`Notifier::new`].
#[derive(Debug)]
pub enum Feedback {
    /// The subscription can no longer be served; its outbox is closed and its task stopped.
    /// Sent at most once per subscription, and only while its [`Outbox`] is still alive.
    Ended {
        /// The subscription that ended.
        id: SubscriptionId,
        /// Why it ended.
        reason: EndReason,
    },
}

/// How long an idle keep-alive connection to SAP stays in the pool. Below the usual 2 to 5
/// minute server-side keep-alive limits, so we rarely reuse a connection SAP is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The HTTP client type shared by every outbox: `http://` and `https://` appURLs.
type HttpClient = Client<HttpsConnector<destination::Connector>, Full<Bytes>>;

/// The client every outbox shares; `tls` as in [`NotifierSettings::tls`]; it connects
/// only where `destinations` allows.
fn http_client(
    tls: Option<Arc<rustls::ClientConfig>>,
    destinations: Arc<Destinations>,
) -> HttpClient {
    let tls = tls.unwrap_or_else(|| {
        static SYSTEM: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                crate::tls::client_config(&crate::config::OutboundTlsConfig::default())
                    .expect("system roots alone always make a client configuration")
            })
            .clone()
    });
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(destination::Connector::new(destinations));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// Opens outboxes. Cheap to clone: all clones share one HTTP client, so one keep-alive
/// connection pool per SAP host.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    total: Arc<outbox::TotalBound>,
    /// Drain tasks still running, and a wake-up when one ends (for [`Notifier::flush`]).
    active: Arc<(std::sync::atomic::AtomicUsize, tokio::sync::Notify)>,
    /// Turns true when the process stops: every drain task ends at once, leaving what it
    /// holds in the spool.
    stop: tokio::sync::watch::Sender<bool>,
    /// Shared with every drain task (not a copy per task).
    client: Arc<HttpClient>,
    settings: Arc<NotifierSettings>,
    feedback: mpsc::Sender<Feedback>,
    spool: Spool,
    /// The drain tasks' handle to the spool, one for all: their acknowledgements are not
    /// the session manager's changes (see `Spool::last_queued`).
    acks: Spool,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier whose tasks report ended subscriptions on `feedback`, with events in
    /// memory only.
    pub fn new(settings: NotifierSettings, feedback: mpsc::Sender<Feedback>) -> Notifier {
        Notifier::with_spool(settings, feedback, Spool::memory())
    }

    /// A notifier that keeps every event on `spool` until SAP acknowledged it.
    pub fn with_spool(
        settings: NotifierSettings,
        feedback: mpsc::Sender<Feedback>,
        spool: Spool,
    ) -> Notifier {
        let client = Arc::new(http_client(
            settings.tls.clone(),
            Arc::clone(&settings.destinations),
        ));
        let settings = Arc::new(settings);
        Notifier {
            inner: Arc::new(Inner {
                total: Arc::new(outbox::TotalBound::new(settings.max_queue_total)),
                active: Arc::default(),
                stop: tokio::sync::watch::Sender::new(false),
                client,
                settings,
                feedback,
                acks: spool.independent(),
                spool,
            }),
        }
    }

    /// Waits until every drain task has ended (their outboxes emptied) or
    /// `deadline` passed, whichever comes first. Used by a graceful stop.
    pub async fn flush(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let (count, wake) = &*self.inner.active;
            let notified = wake.notified();
            if count.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                tracing::info!(
                    outboxes = count.load(std::sync::atomic::Ordering::Acquire),
                    "stopping with undelivered events; they stay in the spool"
                );
                return;
            }
        }
    }

    /// Stops the notifier for good: delivers what it can within `deadline` ([`flush`]),
    /// then ends every drain task and closes the spool (its last commit done). What was not
    /// delivered is on disk for the next start.
    ///
    /// [`flush`]: Notifier::flush
    pub async fn shutdown(&self, deadline: Duration) {
        self.flush(deadline).await;
        self.inner.stop.send_replace(true);
        let spool = self.inner.spool.clone();
        let _ = tokio::task::spawn_blocking(move || spool.close()).await;
    }

    /// Events queued over all outboxes (for the status page and metrics).
    pub fn queued_total(&self) -> usize {
        self.inner.total.used()
    }

    /// The spool, for the session manager's subscription records.
    pub fn spool(&self) -> &Spool {
        &self.inner.spool
    }

    /// Whether events may go to `url` (resolved now): for `subscribe*`, so SAP hears at
    /// once of an appURL that would never be delivered to.
    pub async fn check_destination(&self, url: &http::Uri) -> Result<(), DestinationError> {
        self.inner.settings.destinations.check(url).await
    }

    /// The settings this notifier runs with.
    pub fn settings(&self) -> &NotifierSettings {
        &self.inner.settings
    }

    /// Opens the outbox of subscription `id`, whose events a task delivers to `url` (one
    /// runs while there are events to deliver).
    /// Must be called inside a tokio runtime. `http://` and `https://` URLs are delivered
    /// to; any other scheme fails every attempt (logged at error here, once).
    pub fn open(&self, id: SubscriptionId, url: http::Uri) -> Outbox {
        self.open_with(id, url, Vec::new())
    }

    /// Opens an outbox that starts with `events` restored from the spool (already on
    /// disk), so they go out first, in order.
    pub fn open_with(
        &self,
        id: SubscriptionId,
        url: http::Uri,
        events: Vec<OutboundEvent>,
    ) -> Outbox {
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            tracing::error!(
                subscription = id,
                url = %url,
                "appURL scheme not supported (http and https only): deliveries will fail"
            );
        }
        let shared = Arc::new(outbox::Shared::with_total(
            self.inner.settings.max_queue_per_subscription,
            Arc::clone(&self.inner.total),
        ));
        let drain = Arc::new(drain::Drain {
            id,
            url,
            shared: shared.clone(),
            client: Arc::clone(&self.inner.client),
            settings: Arc::clone(&self.inner.settings),
            feedback: self.inner.feedback.clone(),
            spool: self.inner.acks.clone(),
            stop: self.inner.stop.subscribe(),
            active: Arc::clone(&self.inner.active),
        });
        if shared.restore(events) {
            drain.start();
        }
        Outbox::new(id, shared, self.inner.spool.clone(), Some(drain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drain tasks running now.
    fn running(notifier: &Notifier) -> usize {
        notifier
            .inner
            .active
            .0
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// An idle subscription holds no task (one per subscription, idle or not, was most of
    /// its memory): one starts with an event and ends when the outbox is empty.
    #[tokio::test]
    async fn a_task_runs_only_while_the_outbox_has_events() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sap", listener.local_addr().unwrap());
        let sap = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the (empty) body: the request ends with its blank line.
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed");
                request.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            stream
        });
        let (feedback, _feedback) = mpsc::channel(1);
        let notifier = Notifier::new(NotifierSettings::default(), feedback);
        let outbox = notifier.open(1, url.parse().unwrap());
        assert_eq!(running(&notifier), 0, "no task while nothing is queued");
        outbox
            .push(OutboundEvent {
                name: "workmodeChanged",
                sequence: 1,
                user: "AGENT1".into(),
                call: None,
                body: String::new(),
            })
            .unwrap();
        assert_eq!(running(&notifier), 1, "the event started one");
        let _connection = sap.await.unwrap();
        notifier.flush(Duration::from_secs(30)).await;
        assert_eq!(running(&notifier), 0, "it ended with the queue empty");
        assert_eq!(outbox.depth(), 0, "delivered");
        assert!(outbox.is_open(), "the subscription lives on");
    }

    #[test]
    fn end_reasons_display_for_people() {
        let gone = EndReason::SessionGone { status: 404 };
        assert_eq!(gone.to_string(), "SAP's session ended (HTTP 404)");
        assert_eq!(EndReason::Overflow.to_string(), "event queue overflow");
    }

    #[test]
    fn default_settings_are_those_of_a_default_events_table() {
        let settings = NotifierSettings::default();
        let events = EventsConfig::default();
        assert_eq!(settings.request_timeout, events.request_timeout);
        assert_eq!(settings.retry_min, events.retry_min);
        assert_eq!(settings.retry_max, events.retry_max);
        assert_eq!(
            settings.max_queue_per_subscription,
            events.max_queue_per_subscription
        );
        assert_eq!(settings.max_queue_total, events.max_queue_total);
        assert_eq!(settings.close_grace, CLOSE_GRACE);
    }
}
