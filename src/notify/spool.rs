//! The durable event spool: every event is on disk before it is sent to SAP, and leaves
//! the disk when SAP acknowledged it, so a crash or `kill -9` loses nothing: after a restart
//! the remaining events of every subscription are delivered in order.
//!
//! The storage sits behind [`SpoolStore`] (redb is the embedded default, [`RedbStore`]); a
//! replicated backend can plug in without touching the notifier. Writes go through one
//! writer thread that commits everything waiting in one transaction (group commit), so the
//! cost of an fsync is shared by all events that arrived meanwhile and the session manager
//! never waits for the disk. An outbox only sends an event once its commit is done.
//!
//! **Confirmed means durable.** Every change queued gets a [`Ticket`] (its place in the
//! writer's queue); the writer publishes how far it has committed. The session manager
//! answers a SOAP operation that changed something only once [`Spool::committed`] says the
//! changes it queued, the events the switch reported for it included, are on disk. So an
//! operation SAP saw succeed never loses its events to a crash; what a crash can lose is
//! only what no answer had confirmed yet.
//!
//! **Sequence numbers are never handed out twice.** Each subscription record keeps, beside
//! the last number used, a reservation [`SEQUENCE_RESERVE`] numbers ahead, written in the
//! same commit as the events. After a graceful stop numbering continues where it stopped;
//! after a crash it resumes above the reservation, so events that were numbered but not yet
//! on disk leave a visible gap instead of their numbers going to other events.
//!
//! **Damage is quarantined, never delivered.** Every record is stored in a checksummed
//! envelope (`record`); the store checks the file at open and moves a record that fails its
//! checksum or does not decode to a quarantine table, logged with its subscription and
//! sequence (see [`RedbStore`]). Every error names the spool file.

mod jetstream;
mod record;
mod redb_store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{error, warn};

use super::outbox::Shared;
use super::{OutboundEvent, SubscriptionId};

pub use jetstream::{COMPACT_AFTER, JetStreamStore};
pub use record::RecordError;
pub use redb_store::{FILE_NAME, RedbStore};

/// Sequence numbers reserved beyond the last one on disk. A crash skips at most this many
/// numbers of a subscription; numbers could only be given twice if the writer fell more
/// than this many events of one subscription behind the session manager.
pub const SEQUENCE_RESERVE: u64 = 1000;

/// A subscription as stored (the session manager's view, without its outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubscription {
    pub id: SubscriptionId,
    /// `"user"` or `"container"`.
    pub kind: String,
    /// The user id or container id.
    pub target: String,
    pub url: String,
    pub app_ids: Vec<String>,
    /// The last sequence number handed out. Read back from [`SpoolStore::load`] it is the
    /// number to continue after: above every number a crash may have left unrecorded.
    #[serde(default)]
    pub sequence: u64,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub name: String,
    pub sequence: u64,
    pub user: String,
    pub call: Option<String>,
    pub body: String,
}

impl From<&OutboundEvent> for StoredEvent {
    fn from(e: &OutboundEvent) -> Self {
        StoredEvent {
            name: e.name.to_string(),
            sequence: e.sequence,
            user: e.user.clone(),
            call: e.call.clone(),
            body: e.body.clone(),
        }
    }
}

/// What was on disk at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolContents {
    /// Subscriptions with their undelivered events in sequence order.
    pub subscriptions: Vec<(StoredSubscription, Vec<StoredEvent>)>,
    /// Agent addresses (user → extension), so events route to the right agent after a
    /// restart even when SAP does not repeat setAddresses.
    pub agents: BTreeMap<String, String>,
}

/// One change to the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolOp {
    /// Create or update a subscription.
    PutSubscription(StoredSubscription),
    /// Forget a subscription and its events.
    RemoveSubscription(SubscriptionId),
    /// An event to deliver.
    Append(SubscriptionId, StoredEvent),
    /// SAP acknowledged (or the policy dropped) an event.
    Remove(SubscriptionId, u64),
    /// An agent's address (`None`: none).
    Agent(String, Option<String>),
}

/// Why the spool failed. The message always names the spool file.
#[derive(Debug, thiserror::Error)]
#[error("event spool {file}: {message}")]
pub struct SpoolError {
    /// The spool file (or directory) concerned.
    pub file: String,
    /// What went wrong.
    pub message: String,
}

impl SpoolError {
    /// An error about `file`.
    pub fn new(file: &Path, message: impl std::fmt::Display) -> SpoolError {
        SpoolError {
            file: file.display().to_string(),
            message: message.to_string(),
        }
    }
}

/// Storage of the spool. `apply` is one atomic, durable transaction.
pub trait SpoolStore: Send + 'static {
    fn apply(&mut self, ops: &[SpoolOp]) -> Result<(), SpoolError>;

    /// Everything stored. Each subscription's `sequence` is where numbering continues: the
    /// last number used after a graceful stop ([`SpoolStore::close_clean`]), the reserved
    /// one after a crash.
    fn load(&mut self) -> Result<SpoolContents, SpoolError>;

    /// Records that every change has been applied and nothing more will come (a graceful
    /// stop), so the next start may continue numbering without a gap. A store that does
    /// not implement it always resumes above its reservations.
    fn close_clean(&mut self) -> Result<(), SpoolError> {
        Ok(())
    }

    /// Whether another connector has taken the spool over (a replicated store refused a
    /// write): then what failed to commit must not be delivered from memory either, and
    /// nothing more is written. A store of one connector never is.
    fn fenced(&self) -> bool {
        false
    }

    /// Where the store keeps its data, for error messages.
    fn file(&self) -> &Path {
        Path::new("(in memory)")
    }
}

/// The place of a change in the writer's queue: changes are committed in ticket order, so
/// once the writer has committed ticket `n`, every change with a lower ticket is durable.
pub type Ticket = u64;

/// A message to the writer thread.
enum Message {
    Op(SpoolOp, Option<Durable>),
    /// Commit what came before, close the store, answer, and end.
    Close(std_mpsc::Sender<()>),
}

/// Marks an event durable in its outbox once committed.
struct Durable {
    shared: Arc<Shared>,
    sequence: u64,
}

/// The writer's input. Tickets are given out under the same lock as the send, so the
/// writer receives changes in ticket order.
struct Queue {
    last: Ticket,
    tx: std_mpsc::Sender<Message>,
}

/// What every handle of one durable spool shares.
struct Writer {
    queue: Mutex<Queue>,
    /// The highest ticket committed (or given up on after a failed commit).
    committed: watch::Receiver<Ticket>,
}

/// The handle to the spool's writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    writer: Option<Arc<Writer>>,
    /// Commits that failed (the events were delivered from memory anyway).
    failures: Arc<AtomicU64>,
    /// The last ticket queued through this handle and its clones (see
    /// [`Spool::independent`]).
    queued: Arc<AtomicU64>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("durable", &self.writer.is_some())
            .finish()
    }
}

impl Spool {
    /// No spool: events live in memory only (tests of delivery alone).
    pub fn memory() -> Spool {
        Spool {
            writer: None,
            failures: Arc::new(AtomicU64::new(0)),
            queued: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Loads what `store` holds and starts its writer thread.
    pub fn start(mut store: impl SpoolStore) -> Result<(Spool, SpoolContents), SpoolError> {
        let contents = store.load()?;
        let (tx, rx) = std_mpsc::channel::<Message>();
        let (committed_tx, committed) = watch::channel(0);
        let failures = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&failures);
        let file = store.file().to_path_buf();
        std::thread::Builder::new()
            .name("event-spool".into())
            .spawn(move || writer(store, rx, committed_tx, counter))
            .map_err(|e| SpoolError::new(&file, format!("cannot start the writer thread: {e}")))?;
        let writer = Writer {
            queue: Mutex::new(Queue { last: 0, tx }),
            committed,
        };
        Ok((
            Spool {
                writer: Some(Arc::new(writer)),
                failures,
                queued: Arc::new(AtomicU64::new(0)),
            },
            contents,
        ))
    }

    /// A handle to the same spool whose changes do not count in this one's
    /// [`Spool::last_queued`]: the drain tasks' acknowledgements are not the session
    /// manager's changes, and a read-only operation must not wait for them.
    pub fn independent(&self) -> Spool {
        Spool {
            queued: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        }
    }

    /// Whether events are kept on disk.
    pub fn is_durable(&self) -> bool {
        self.writer.is_some()
    }

    /// Failed commits so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The ticket of the last change queued through this handle or its clones; 0 before the
    /// first, and always without a durable spool.
    pub fn last_queued(&self) -> Ticket {
        self.queued.load(Ordering::Acquire)
    }

    /// Whether the change with `ticket` (and every one before it) is committed.
    pub fn is_committed(&self, ticket: Ticket) -> bool {
        self.writer
            .as_ref()
            .is_none_or(|w| *w.committed.borrow() >= ticket)
    }

    /// Waits until the change with `ticket` (and every one before it) is committed. Also
    /// returns when the writer has stopped: a failed commit is logged and counted, and the
    /// events still go out from memory, so waiting longer would only stall SAP.
    pub async fn committed(&self, ticket: Ticket) {
        if let Some(writer) = &self.writer {
            let mut committed = writer.committed.clone();
            let _ = committed.wait_for(|done| *done >= ticket).await;
        }
    }

    /// Commits what is queued, closes the store and ends the writer thread; later changes
    /// are ignored. Blocks until done (call it off the async threads).
    pub fn close(&self) {
        if let Some(writer) = &self.writer {
            let (done, wait) = std_mpsc::channel();
            let sent = lock(&writer.queue).tx.send(Message::Close(done)).is_ok();
            if sent {
                let _ = wait.recv();
            }
        }
    }

    /// Queues a change; never blocks.
    pub fn record(&self, op: SpoolOp) {
        self.send(Message::Op(op, None));
    }

    /// Queues an event; its outbox may send it once it is committed.
    pub(super) fn append(&self, id: SubscriptionId, event: &OutboundEvent, shared: &Arc<Shared>) {
        let durable = Durable {
            shared: Arc::clone(shared),
            sequence: event.sequence,
        };
        let op = SpoolOp::Append(id, StoredEvent::from(event));
        if self.send(Message::Op(op, Some(durable))).is_none() {
            // No spool, or its writer has stopped: the event goes out from memory.
            shared.mark_durable(event.sequence);
        }
    }

    /// Hands `message` to the writer with the next ticket; `None` if there is no writer
    /// (any more).
    fn send(&self, message: Message) -> Option<Ticket> {
        let writer = self.writer.as_ref()?;
        let mut queue = lock(&writer.queue);
        queue.tx.send(message).ok()?;
        queue.last += 1;
        self.queued.fetch_max(queue.last, Ordering::AcqRel);
        Some(queue.last)
    }
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // Only a send happens under the lock; recover the data rather than spread a poison
    // panic into the session manager.
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// Most changes taken into one commit (beyond the first).
const MAX_BATCH: usize = 4096;
/// Commits of at least this many changes count as "under load".
const LINGER_FROM: usize = 16;
/// How long a commit under load waits for more changes.
const LINGER: std::time::Duration = std::time::Duration::from_micros(300);

/// The writer thread: commits everything waiting in one transaction, then tells the
/// outboxes which events are durable and publishes the last ticket committed. Ends when
/// every [`Spool`] handle is gone, or at [`Spool::close`] after marking the store clean.
fn writer(
    mut store: impl SpoolStore,
    rx: std_mpsc::Receiver<Message>,
    committed: watch::Sender<Ticket>,
    failures: Arc<AtomicU64>,
) {
    let mut closing = None;
    let mut last_batch = 0usize;
    let mut received: Ticket = 0;
    while closing.is_none() {
        let Ok(first) = rx.recv() else { break };
        let mut ops = Vec::new();
        let mut durable = Vec::new();
        let mut take = |message: Message, closing: &mut Option<_>| match message {
            Message::Op(op, mark) => {
                ops.push(op);
                durable.extend(mark);
                true
            }
            Message::Close(done) => {
                *closing = Some(done);
                false
            }
        };
        let mut open = take(first, &mut closing);
        for message in rx.try_iter().take(MAX_BATCH) {
            open = take(message, &mut closing);
            if !open {
                break;
            }
        }
        // Under load (the last commit was a big one), linger briefly so this commit takes
        // more events: the commit's cost (page writes and an fdatasync) is per commit,
        // not per event. A lone event at light load is committed at once.
        if open && last_batch >= LINGER_FROM {
            std::thread::sleep(LINGER);
            for message in rx.try_iter().take(MAX_BATCH) {
                if !take(message, &mut closing) {
                    break;
                }
            }
        }
        last_batch = ops.len();
        received += ops.len() as Ticket;
        if let Err(e) = store.apply(&ops) {
            if store.fenced() {
                // Another connector owns the spool: nothing of this commit goes out, and
                // the answers waiting for it wait until this connector has stepped down.
                error!(error = %e, ops = ops.len(), "event spool taken over by another connector: stopped writing");
                if closing.is_none() {
                    closing = park(&rx);
                }
                break;
            }
            failures.fetch_add(1, Ordering::Relaxed);
            // Delivery matters more than the copy on disk: the events still go out from
            // memory; only a crash before delivery could lose them now.
            error!(error = %e, ops = ops.len(), "event spool commit failed");
        }
        for mark in durable {
            mark.shared.mark_durable(mark.sequence);
        }
        committed.send_replace(received);
    }
    warn_if_failed(&failures);
    if closing.is_some() && failures.load(Ordering::Relaxed) == 0 && !store.fenced() {
        // Every change is on disk: the next start continues numbering without a gap.
        if let Err(e) = store.close_clean() {
            error!(error = %e, "event spool: marking the graceful stop failed");
        }
    }
    drop(store);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Discards every change until [`Spool::close`] (returned) or the last handle is gone.
fn park(rx: &std_mpsc::Receiver<Message>) -> Option<std_mpsc::Sender<()>> {
    rx.iter().find_map(|message| match message {
        Message::Close(done) => Some(done),
        Message::Op(..) => None,
    })
}

fn warn_if_failed(failures: &AtomicU64) {
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        warn!(failed, "event spool stopped after failed commits");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in memory that counts commits, so the tests can hold the writer back.
    struct Gate {
        applied: std_mpsc::Sender<usize>,
        open: std_mpsc::Receiver<()>,
    }

    impl SpoolStore for Gate {
        fn apply(&mut self, ops: &[SpoolOp]) -> Result<(), SpoolError> {
            let _ = self.open.recv();
            let _ = self.applied.send(ops.len());
            Ok(())
        }
        fn load(&mut self) -> Result<SpoolContents, SpoolError> {
            Ok(SpoolContents::default())
        }
    }

    fn agent(user: &str) -> SpoolOp {
        SpoolOp::Agent(user.into(), Some("2001".into()))
    }

    #[tokio::test]
    async fn a_ticket_is_committed_only_after_its_commit() {
        let (applied_tx, applied) = std_mpsc::channel();
        let (open, gate) = std_mpsc::channel();
        let (spool, _) = Spool::start(Gate {
            applied: applied_tx,
            open: gate,
        })
        .unwrap();
        assert_eq!(spool.last_queued(), 0);
        assert!(spool.is_committed(0));
        spool.record(agent("A"));
        let ticket = spool.last_queued();
        assert_eq!(ticket, 1);
        assert!(
            !spool.is_committed(ticket),
            "the writer is held at the gate"
        );
        open.send(()).unwrap();
        spool.committed(ticket).await;
        assert!(spool.is_committed(ticket));
        assert_eq!(applied.recv().unwrap(), 1);
    }

    #[tokio::test]
    async fn an_independent_handle_has_its_own_mark() {
        let (applied_tx, _applied) = std_mpsc::channel();
        let (open, gate) = std_mpsc::channel();
        let (spool, _) = Spool::start(Gate {
            applied: applied_tx,
            open: gate,
        })
        .unwrap();
        let acks = spool.independent();
        acks.record(SpoolOp::Remove(1, 1));
        assert_eq!(spool.last_queued(), 0, "not the session's change");
        assert_eq!(acks.last_queued(), 1);
        spool.clone().record(agent("A"));
        assert_eq!(spool.last_queued(), 2, "clones share the mark");
        for _ in 0..2 {
            open.send(()).unwrap();
        }
        spool.committed(2).await;
    }

    /// A replicated store another connector has taken over.
    struct TakenOver;

    impl SpoolStore for TakenOver {
        fn apply(&mut self, _: &[SpoolOp]) -> Result<(), SpoolError> {
            Err(SpoolError::new(Path::new("stream"), "wrong last sequence"))
        }
        fn load(&mut self) -> Result<SpoolContents, SpoolError> {
            Ok(SpoolContents::default())
        }
        fn fenced(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_fenced_commit_is_never_confirmed() {
        let (spool, _) = Spool::start(TakenOver).unwrap();
        spool.record(agent("A"));
        spool.record(agent("B"));
        let closer = spool.clone();
        tokio::task::spawn_blocking(move || closer.close())
            .await
            .unwrap();
        assert!(!spool.is_committed(1), "nothing of it may count as durable");
        assert_eq!(spool.failures(), 0, "not a failure to deliver from memory");
    }

    #[test]
    fn without_a_spool_nothing_waits() {
        let spool = Spool::memory();
        spool.record(agent("A"));
        assert_eq!(spool.last_queued(), 0);
        assert!(spool.is_committed(u64::MAX));
    }
}
