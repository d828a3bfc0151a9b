//! The durable event spool: every event is on disk before it is sent to SAP, and leaves
//! the disk when SAP acknowledged it, so a crash or `kill -9` loses nothing: after a restart
//! the remaining events of every subscription are delivered in order.
//!
//! The storage sits behind [`SpoolStore`] (redb is the embedded default, [`RedbStore`]); a
//! replicated backend can plug in without touching the notifier. Writes go through one
//! writer thread that commits everything waiting in one transaction (group commit), so the
//! cost of an fsync is shared by all events that arrived meanwhile and the session manager
//! does not wait for each commit. An outbox only sends an event once its commit is done.
//!
//! **The writer's queue is bounded** ([`WRITER_QUEUE`] changes, see `queue`): when the disk
//! falls behind, producers wait for room instead of memory growing with the event rate,
//! and nothing queued is ever dropped. The session manager waits before it takes its next
//! message ([`Spool::room`]), so its bounded inputs fill up and the back-pressure reaches
//! SAP's requests (they wait for their answer) and the switch adapter (it waits to report
//! events); the drain tasks wait before they queue an acknowledgement
//! ([`Spool::record_waiting`]).
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
mod queue;
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
use queue::WriterQueue;

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
    /// Item attached data by call (or item) id, so what SAP set survives a restart.
    pub attached: BTreeMap<String, StoredAttached>,
}

/// Item attached data as stored: (application id, the application's element as text), in
/// order. The session manager converts; the spool only keeps the strings.
pub type StoredAttached = Vec<(String, String)>;

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
    /// The attached data of a call or item (`None`: forget it, the call has ended).
    Attached(String, Option<StoredAttached>),
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

/// Changes that may wait for the writer before producers wait in turn (see `queue`): two
/// of the writer's largest commits, so one commit's worth can queue while the writer is
/// busy with another, and a slow disk holds the producers back instead of letting memory
/// grow with the event rate (`[events] max_queue_total` alone allows a million events).
pub const WRITER_QUEUE: usize = 2 * MAX_BATCH;

/// The bottleneck warning (see [`Spool::room`]) is logged at most this often.
const BOTTLENECK_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A message to the writer thread.
enum Message {
    Op(SpoolOp, Option<Durable>),
    /// Commit what came before, close the store, answer, and end.
    Close(std_mpsc::Sender<()>),
}

impl Message {
    /// An event that will never be committed still goes out from memory.
    fn abandon(self) {
        match self {
            Message::Op(_, Some(mark)) => mark.shared.mark_durable(mark.sequence),
            Message::Op(_, None) => {}
            Message::Close(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Marks an event durable in its outbox once committed.
struct Durable {
    shared: Arc<Shared>,
    sequence: u64,
}

/// What every handle of one durable spool shares. Dropping the last handle lets the writer
/// end once it has committed what is queued.
struct Writer {
    queue: Arc<WriterQueue<Message>>,
    /// The highest ticket committed (or given up on after a failed commit).
    committed: watch::Receiver<Ticket>,
    waits: Mutex<Waits>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.producers_gone();
    }
}

/// Time producers spent waiting for the writer, for the bottleneck warning.
#[derive(Default)]
struct Waits {
    /// Since the last warning.
    count: u64,
    waited: std::time::Duration,
    logged: Option<std::time::Instant>,
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

    /// Loads what `store` holds and starts its writer thread, whose queue holds
    /// [`WRITER_QUEUE`] changes.
    pub fn start(store: impl SpoolStore) -> Result<(Spool, SpoolContents), SpoolError> {
        Spool::start_bounded(store, WRITER_QUEUE)
    }

    /// [`Spool::start`] with a writer queue of `capacity` changes.
    pub fn start_bounded(
        mut store: impl SpoolStore,
        capacity: usize,
    ) -> Result<(Spool, SpoolContents), SpoolError> {
        let contents = store.load()?;
        let queue = Arc::new(WriterQueue::new(capacity));
        let (committed_tx, committed) = watch::channel(0);
        let failures = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&failures);
        let file = store.file().to_path_buf();
        let input = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("event-spool".into())
            .spawn(move || writer(store, &input, committed_tx, counter))
            .map_err(|e| SpoolError::new(&file, format!("cannot start the writer thread: {e}")))?;
        let writer = Writer {
            queue,
            committed,
            waits: Mutex::default(),
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

    /// Changes waiting for the writer now, and the most that ever waited at once.
    pub fn queue_depth(&self) -> (usize, usize) {
        self.writer
            .as_ref()
            .map_or((0, 0), |w| (w.queue.depth(), w.queue.high_water()))
    }

    /// Waits until the writer's queue has room. The session manager calls it before it takes
    /// its next message, since its own changes ([`Spool::record`], [`Outbox::push`]) are
    /// queued without waiting: so the queue holds at most [`WRITER_QUEUE`] changes plus
    /// those of one message, and a slow disk slows the intake instead of growing memory.
    /// Time spent here is measured (`ici_spool_wait_seconds`) and logged as a warning
    /// at most every [`BOTTLENECK_LOG_EVERY`].
    ///
    /// [`Outbox::push`]: super::Outbox::push
    pub async fn room(&self) {
        let Some(writer) = &self.writer else { return };
        if writer.queue.has_room() {
            return;
        }
        let started = std::time::Instant::now();
        writer.queue.room().await;
        self.waited(writer, started.elapsed());
    }

    /// Queues a change; never blocks or waits (see [`Spool::room`]).
    pub fn record(&self, op: SpoolOp) {
        self.send(Message::Op(op, None));
    }

    /// Queues a change once the writer's queue has room: for producers that can wait at
    /// any point (a drain task's acknowledgement), so they never push it past its bound.
    pub async fn record_waiting(&self, op: SpoolOp) {
        let Some(writer) = &self.writer else { return };
        let started = std::time::Instant::now();
        let full = !writer.queue.has_room();
        if let Ok(ticket) = writer.queue.push_waiting(Message::Op(op, None)).await {
            self.queued.fetch_max(ticket, Ordering::AcqRel);
        }
        if full {
            self.waited(writer, started.elapsed());
        }
    }

    fn waited(&self, writer: &Writer, waited: std::time::Duration) {
        crate::metrics::spool_waited(waited);
        let mut waits = writer.waits.lock().unwrap_or_else(|e| e.into_inner());
        waits.count += 1;
        waits.waited += waited;
        let now = std::time::Instant::now();
        if waits
            .logged
            .is_none_or(|at| now.duration_since(at) >= BOTTLENECK_LOG_EVERY)
        {
            warn!(
                waits = waits.count,
                waited_ms = waits.waited.as_millis() as u64,
                queue = writer.queue.capacity(),
                "event spool is the bottleneck: the disk commits slower than events arrive, \
                 so intake waited for the spool writer"
            );
            *waits = Waits {
                logged: Some(now),
                ..Waits::default()
            };
        }
    }

    /// Commits what is queued, closes the store and ends the writer thread; later changes
    /// are ignored. Blocks until done (call it off the async threads).
    pub fn close(&self) {
        if let Some(writer) = &self.writer {
            let (done, wait) = std_mpsc::channel();
            if writer.queue.push(Message::Close(done)).is_ok() {
                let _ = wait.recv();
            }
        }
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
        match writer.queue.push(message) {
            Ok(ticket) => {
                self.queued.fetch_max(ticket, Ordering::AcqRel);
                Some(ticket)
            }
            // The writer has ended; the caller falls back to memory.
            Err(_) => None,
        }
    }
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
    queue: &WriterQueue<Message>,
    committed: watch::Sender<Ticket>,
    failures: Arc<AtomicU64>,
) {
    // However the thread ends (a panic in the store included), producers stop waiting and
    // what is left goes out from memory.
    struct Gone<'a>(&'a WriterQueue<Message>);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            for message in self.0.writer_gone() {
                message.abandon();
            }
        }
    }
    let gone = Gone(queue);
    let is_close = |m: &Message| matches!(m, Message::Close(_));
    let mut closing = None;
    let mut last_batch = 0usize;
    let mut received: Ticket = 0;
    let mut batch = Vec::new();
    while closing.is_none() {
        if !queue.take(MAX_BATCH + 1, &mut batch, is_close) {
            break;
        }
        // Under load (the last commit was a big one), linger briefly so this commit takes
        // more events: the commit's cost (page writes and an fdatasync) is per commit,
        // not per event. A lone event at light load is committed at once.
        if last_batch >= LINGER_FROM && !batch.last().is_some_and(is_close) {
            std::thread::sleep(LINGER);
            queue.try_take(MAX_BATCH, &mut batch, is_close);
        }
        crate::metrics::spool_queue_depth(queue.depth());
        let mut ops = Vec::with_capacity(batch.len());
        let mut durable = Vec::new();
        for message in batch.drain(..) {
            match message {
                Message::Op(op, mark) => {
                    ops.push(op);
                    durable.extend(mark);
                }
                Message::Close(done) => closing = Some(done),
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
                    closing = park(queue);
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
    drop(gone);
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

/// Discards every change until [`Spool::close`] (returned) or the last handle is gone: a
/// fenced connector must not commit, confirm or send any of them.
fn park(queue: &WriterQueue<Message>) -> Option<std_mpsc::Sender<()>> {
    let is_close = |m: &Message| matches!(m, Message::Close(_));
    let mut batch = Vec::new();
    while queue.take(MAX_BATCH, &mut batch, is_close) {
        for message in batch.drain(..) {
            if let Message::Close(done) = message {
                return Some(done);
            }
        }
    }
    None
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

    /// A store whose every commit takes [`SLOW_COMMIT`]: a disk slower than the producers.
    struct Slow {
        applied: Arc<Mutex<Vec<SpoolOp>>>,
    }

    const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(2);

    impl SpoolStore for Slow {
        fn apply(&mut self, ops: &[SpoolOp]) -> Result<(), SpoolError> {
            std::thread::sleep(SLOW_COMMIT);
            self.applied.lock().unwrap().extend_from_slice(ops);
            Ok(())
        }
        fn load(&mut self) -> Result<SpoolContents, SpoolError> {
            Ok(SpoolContents::default())
        }
    }

    fn slow_spool(capacity: usize) -> (Spool, Arc<Mutex<Vec<SpoolOp>>>) {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let store = Slow {
            applied: Arc::clone(&applied),
        };
        (Spool::start_bounded(store, capacity).unwrap().0, applied)
    }

    fn numbered(n: usize) -> SpoolOp {
        SpoolOp::Agent(format!("U{n}"), Some("2001".into()))
    }

    #[tokio::test]
    async fn a_slow_writer_holds_waiting_producers_at_the_bound() {
        const BOUND: usize = 4;
        const CHANGES: usize = 40 * BOUND;
        let (spool, applied) = slow_spool(BOUND);
        for n in 0..CHANGES {
            spool.record_waiting(numbered(n)).await;
        }
        spool.committed(spool.last_queued()).await;
        let (_, high_water) = spool.queue_depth();
        assert_eq!(
            high_water, BOUND,
            "the queue filled up and never grew past its bound"
        );
        let expected: Vec<SpoolOp> = (0..CHANGES).map(numbered).collect();
        assert_eq!(
            *applied.lock().unwrap(),
            expected,
            "nothing lost, order kept"
        );
    }

    /// The session manager's way: it waits for room before it takes a message, then queues
    /// that message's changes without waiting.
    #[tokio::test]
    async fn the_session_manager_waits_for_room_before_each_message() {
        const BOUND: usize = 8;
        const PER_MESSAGE: usize = 3;
        const MESSAGES: usize = 40;
        let (spool, applied) = slow_spool(BOUND);
        let (mailbox, mut messages) = tokio::sync::mpsc::channel::<usize>(2);
        let actor = tokio::spawn({
            let spool = spool.clone();
            async move {
                loop {
                    spool.room().await;
                    let Some(message) = messages.recv().await else {
                        break;
                    };
                    for part in 0..PER_MESSAGE {
                        spool.record(numbered(message * PER_MESSAGE + part));
                    }
                }
            }
        });
        for message in 0..MESSAGES {
            mailbox.send(message).await.unwrap();
        }
        drop(mailbox);
        actor.await.unwrap();
        spool.committed(spool.last_queued()).await;
        let (_, high_water) = spool.queue_depth();
        assert!(
            (BOUND..BOUND + PER_MESSAGE).contains(&high_water),
            "at most one message past the bound: {high_water}"
        );
        let expected: Vec<SpoolOp> = (0..MESSAGES * PER_MESSAGE).map(numbered).collect();
        assert_eq!(
            *applied.lock().unwrap(),
            expected,
            "nothing lost, order kept"
        );
    }

    #[tokio::test]
    async fn a_closed_spool_lets_waiting_producers_go_on() {
        let (spool, applied) = slow_spool(1);
        for n in 0..3 {
            spool.record(numbered(n));
        }
        let closing = spool.clone();
        tokio::task::spawn_blocking(move || closing.close())
            .await
            .unwrap();
        spool.room().await;
        spool.record_waiting(numbered(3)).await;
        assert_eq!(
            applied.lock().unwrap().len(),
            3,
            "changes after close are ignored"
        );
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
