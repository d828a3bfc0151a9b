//! The durable event spool: every event is on disk before it is sent to SAP, and leaves
//! the disk when SAP acknowledged it, so a crash or `kill -9` loses nothing: after a restart
//! the remaining events of every subscription are delivered in order.
//!
//! The storage sits behind [`SpoolStore`] (redb is the embedded default, [`RedbStore`]); a
//! replicated backend can plug in without touching the notifier. Writes go through one
//! writer thread that commits everything waiting in one transaction (group commit), so the
//! cost of an fsync is shared by all events that arrived meanwhile and the session manager
//! never waits for the disk. An outbox only sends an event once its commit is done.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use super::outbox::Shared;
use super::{OutboundEvent, SubscriptionId};

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
    /// The last sequence number handed out (so numbering continues after a restart).
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

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
#[error("event spool: {0}")]
pub struct SpoolError(pub String);

fn err(e: impl std::fmt::Display) -> SpoolError {
    SpoolError(e.to_string())
}

/// Storage of the spool. `apply` is one atomic, durable transaction.
pub trait SpoolStore: Send + 'static {
    fn apply(&mut self, ops: &[SpoolOp]) -> Result<(), SpoolError>;
    fn load(&mut self) -> Result<SpoolContents, SpoolError>;
}

const SUBSCRIPTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("subscriptions");
const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
const AGENTS: TableDefinition<&str, &str> = TableDefinition::new("agents");

/// The embedded default: one redb file.
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens (or creates) `dir/spool.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<RedbStore, SpoolError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let db = Database::create(dir.join("spool.redb")).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        {
            txn.open_table(SUBSCRIPTIONS).map_err(err)?;
            txn.open_table(EVENTS).map_err(err)?;
            txn.open_table(AGENTS).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(RedbStore { db })
    }
}

impl SpoolStore for RedbStore {
    fn apply(&mut self, ops: &[SpoolOp]) -> Result<(), SpoolError> {
        let txn = self.db.begin_write().map_err(err)?;
        // The highest sequence appended per subscription in this commit.
        let mut last_sequence: BTreeMap<SubscriptionId, u64> = BTreeMap::new();
        {
            let mut subs = txn.open_table(SUBSCRIPTIONS).map_err(err)?;
            let mut events = txn.open_table(EVENTS).map_err(err)?;
            let mut agents = txn.open_table(AGENTS).map_err(err)?;
            for op in ops {
                match op {
                    SpoolOp::PutSubscription(sub) => {
                        let mut sub = sub.clone();
                        // Never let the stored sequence go backwards.
                        if let Some(old) = subs.get(sub.id).map_err(err)? {
                            let old: StoredSubscription =
                                serde_json::from_slice(old.value()).map_err(err)?;
                            sub.sequence = sub.sequence.max(old.sequence);
                        }
                        let bytes = serde_json::to_vec(&sub).map_err(err)?;
                        subs.insert(sub.id, bytes.as_slice()).map_err(err)?;
                    }
                    SpoolOp::RemoveSubscription(id) => {
                        subs.remove(*id).map_err(err)?;
                        events
                            .retain_in((*id, 0)..=(*id, u64::MAX), |_, _| false)
                            .map_err(err)?;
                    }
                    SpoolOp::Append(id, event) => {
                        let bytes = serde_json::to_vec(event).map_err(err)?;
                        events
                            .insert((*id, event.sequence), bytes.as_slice())
                            .map_err(err)?;
                        let last = last_sequence.entry(*id).or_insert(0);
                        *last = (*last).max(event.sequence);
                    }
                    SpoolOp::Remove(id, sequence) => {
                        events.remove((*id, *sequence)).map_err(err)?;
                    }
                    SpoolOp::Agent(user, Some(extension)) => {
                        agents
                            .insert(user.as_str(), extension.as_str())
                            .map_err(err)?;
                    }
                    SpoolOp::Agent(user, None) => {
                        agents.remove(user.as_str()).map_err(err)?;
                    }
                }
            }
            // Once per subscription and commit, not per event: a burst of events to one
            // agent rewrote its subscription record for each of them.
            for (id, sequence) in last_sequence {
                let stored = subs.get(id).map_err(err)?.map(|v| v.value().to_vec());
                if let Some(stored) = stored {
                    let mut sub: StoredSubscription =
                        serde_json::from_slice(&stored).map_err(err)?;
                    if sequence > sub.sequence {
                        sub.sequence = sequence;
                        let bytes = serde_json::to_vec(&sub).map_err(err)?;
                        subs.insert(id, bytes.as_slice()).map_err(err)?;
                    }
                }
            }
        }
        txn.commit().map_err(err)
    }

    fn load(&mut self) -> Result<SpoolContents, SpoolError> {
        let txn = self.db.begin_read().map_err(err)?;
        let subs = txn.open_table(SUBSCRIPTIONS).map_err(err)?;
        let events = txn.open_table(EVENTS).map_err(err)?;
        let agents = txn.open_table(AGENTS).map_err(err)?;
        let mut contents = SpoolContents::default();
        for entry in subs.iter().map_err(err)? {
            let (id, value) = entry.map_err(err)?;
            let mut sub: StoredSubscription = serde_json::from_slice(value.value()).map_err(err)?;
            let id = id.value();
            let mut stored = Vec::new();
            for entry in events.range((id, 0)..=(id, u64::MAX)).map_err(err)? {
                let (_, value) = entry.map_err(err)?;
                stored.push(serde_json::from_slice::<StoredEvent>(value.value()).map_err(err)?);
            }
            if let Some(last) = stored.last() {
                sub.sequence = sub.sequence.max(last.sequence);
            }
            contents.subscriptions.push((sub, stored));
        }
        for entry in agents.iter().map_err(err)? {
            let (user, extension) = entry.map_err(err)?;
            contents
                .agents
                .insert(user.value().to_string(), extension.value().to_string());
        }
        Ok(contents)
    }
}

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

/// The handle to the spool's writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    tx: Option<std_mpsc::Sender<Message>>,
    /// Commits that failed (the events were delivered from memory anyway).
    failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("durable", &self.tx.is_some())
            .finish()
    }
}

impl Spool {
    /// No spool: events live in memory only (tests of delivery alone).
    pub fn memory() -> Spool {
        Spool {
            tx: None,
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Loads what `store` holds and starts its writer thread.
    pub fn start(mut store: impl SpoolStore) -> Result<(Spool, SpoolContents), SpoolError> {
        let contents = store.load()?;
        let (tx, rx) = std_mpsc::channel::<Message>();
        let failures = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&failures);
        std::thread::Builder::new()
            .name("event-spool".into())
            .spawn(move || writer(store, rx, counter))
            .map_err(err)?;
        Ok((
            Spool {
                tx: Some(tx),
                failures,
            },
            contents,
        ))
    }

    /// Whether events are kept on disk.
    pub fn is_durable(&self) -> bool {
        self.tx.is_some()
    }

    /// Failed commits so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Commits what is queued, closes the store and ends the writer thread; later changes
    /// are ignored. Blocks until done (call it off the async threads).
    pub fn close(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = std_mpsc::channel();
            if tx.send(Message::Close(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Queues a change; never blocks.
    pub fn record(&self, op: SpoolOp) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Op(op, None));
        }
    }

    /// Queues an event; its outbox may send it once it is committed.
    pub(super) fn append(&self, id: SubscriptionId, event: &OutboundEvent, shared: &Arc<Shared>) {
        match &self.tx {
            Some(tx) => {
                let durable = Durable {
                    shared: Arc::clone(shared),
                    sequence: event.sequence,
                };
                let op = SpoolOp::Append(id, StoredEvent::from(event));
                if tx.send(Message::Op(op, Some(durable))).is_err() {
                    shared.mark_durable(event.sequence);
                }
            }
            None => shared.mark_durable(event.sequence),
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
/// outboxes which events are durable. Ends when every [`Spool`] handle is gone.
fn writer(mut store: impl SpoolStore, rx: std_mpsc::Receiver<Message>, failures: Arc<AtomicU64>) {
    let mut closing = None;
    let mut last_batch = 0usize;
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
        if let Err(e) = store.apply(&ops) {
            failures.fetch_add(1, Ordering::Relaxed);
            // Delivery matters more than the copy on disk: the events still go out from
            // memory; only a crash before delivery could lose them now.
            error!(error = %e, ops = ops.len(), "event spool commit failed");
        }
        for mark in durable {
            mark.shared.mark_durable(mark.sequence);
        }
    }
    warn_if_failed(&failures);
    drop(store);
    if let Some(done) = closing {
        let _ = done.send(());
    }
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

    fn event(sequence: u64) -> StoredEvent {
        StoredEvent {
            name: "phoneCallChanged".into(),
            sequence,
            user: "A".into(),
            call: Some("c".into()),
            body: format!("<e>{sequence}</e>"),
        }
    }

    fn sub(id: u64) -> StoredSubscription {
        StoredSubscription {
            id,
            kind: "user".into(),
            target: "A".into(),
            url: "http://sap/".into(),
            app_ids: vec!["X".into()],
            sequence: 0,
        }
    }

    #[test]
    fn survives_reopen_in_order_and_forgets_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = RedbStore::open(dir.path()).unwrap();
            let mut ops = vec![
                SpoolOp::PutSubscription(sub(1)),
                SpoolOp::PutSubscription(sub(2)),
            ];
            ops.extend((1..=5).map(|s| SpoolOp::Append(1, event(s))));
            ops.push(SpoolOp::Append(2, event(1)));
            ops.push(SpoolOp::Agent("A".into(), Some("2001".into())));
            store.apply(&ops).unwrap();
            store
                .apply(&[
                    SpoolOp::Remove(1, 1),
                    SpoolOp::Remove(1, 2),
                    SpoolOp::RemoveSubscription(2),
                ])
                .unwrap();
        }
        let contents = RedbStore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(contents.subscriptions.len(), 1);
        let (stored, events) = &contents.subscriptions[0];
        assert_eq!(stored.id, 1);
        assert_eq!(stored.sequence, 5);
        let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, [3, 4, 5]);
        assert_eq!(contents.agents["A"], "2001");
    }

    #[test]
    fn sequence_never_goes_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RedbStore::open(dir.path()).unwrap();
        store
            .apply(&[
                SpoolOp::PutSubscription(sub(1)),
                SpoolOp::Append(1, event(7)),
                SpoolOp::Remove(1, 7),
            ])
            .unwrap();
        // A later update of the app ids carries an older sequence.
        store.apply(&[SpoolOp::PutSubscription(sub(1))]).unwrap();
        let contents = store.load().unwrap();
        assert_eq!(contents.subscriptions[0].0.sequence, 7);
        assert!(contents.subscriptions[0].1.is_empty());
    }
}
