//! [`RedbStore`]: the spool in one redb file, [`FILE_NAME`] in `[events] data_dir`.
//!
//! Format 2 (this build): tables `meta` (format number, graceful-stop flag),
//! `subscriptions`, `events`, `agent_addresses`, `attached_data` (added later without a
//! format change, see `attached`) and `quarantine`, every record in the checksummed
//! envelope of [`super::record`]. Format 1 (before it: bare JSON records, a
//! table `agents`, no `meta`) is migrated in place, in one transaction, when opened.
//!
//! Opening refuses, with an error naming the file, rather than start with nothing:
//! - an empty (0-byte) file, a file that is not a redb database, a redb database that is
//!   not an event spool, or one of a newer format;
//! - a file whose pages fail redb's own checksums and that cannot be read even so.
//!
//! Every open runs redb's integrity check. A file that fails it but can still be read (a
//! cleanly closed file with a damaged record) is read record by record. Every record is
//! checked at load: one that fails its checksum or does not decode is moved to the
//! `quarantine` table (with the reason, its subscription and sequence, and its raw bytes
//! for inspection), logged at error and counted in `ici_spool_quarantined_total`; the rest
//! is loaded and delivered, and the missing sequence number shows SAP the gap.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use redb::{
    Database, DatabaseError, ReadableTable, StorageError, Table, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::record::{RecordError, event_key, seal, seal_json, subscription_key, unseal};
use super::{
    SEQUENCE_RESERVE, SpoolContents, SpoolError, SpoolOp, SpoolStore, StoredEvent,
    StoredSubscription,
};

/// The spool's file name inside `[events] data_dir`.
pub const FILE_NAME: &str = "spool.redb";

/// The format this build writes (see the module documentation).
const FORMAT: u64 = 2;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SUBSCRIPTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("subscriptions");
const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agent_addresses");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
/// Format 1's agent addresses (user → extension, no envelope).
const AGENTS_V1: TableDefinition<&str, &str> = TableDefinition::new("agents");
/// The tables of a format-1 spool, and nothing else.
const FORMAT_1_TABLES: [&str; 3] = ["subscriptions", "events", "agents"];

/// Why the events of a quarantined subscription follow it.
const ORPHAN: &str = "its subscription record is missing or damaged";

/// `meta` key: the format number.
const FORMAT_KEY: &str = "format";
/// `meta` key: 1 when the last run stopped gracefully with everything committed.
const CLEAN_KEY: &str = "clean";

/// The signature at the start of every redb file.
const REDB_SIGNATURE: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// What an operator can do about a file the connector refuses.
const WHAT_TO_DO: &str = "refusing to start. Restore the file from a backup, or move it aside \
     to start with an empty spool (SAP must then subscribe again)";

/// A subscription record: the session manager's view plus the sequence reservation.
#[derive(Debug, Serialize, Deserialize)]
struct SubscriptionRecord {
    #[serde(flatten)]
    sub: StoredSubscription,
    /// Numbers up to here may have been handed out; after a crash numbering resumes above.
    #[serde(default)]
    reserved: u64,
}

impl SubscriptionRecord {
    /// Keeps the reservation [`SEQUENCE_RESERVE`] ahead of the last number used.
    fn reserve(&mut self) {
        self.reserved = self
            .reserved
            .max(self.sub.sequence.saturating_add(SEQUENCE_RESERVE));
    }
}

/// A quarantined record, as stored in `quarantine`.
#[derive(Debug, Serialize)]
struct Quarantined<'a> {
    table: &'static str,
    key: String,
    subscription: Option<u64>,
    sequence: Option<u64>,
    reason: &'a str,
    /// Seconds since the Unix epoch.
    quarantined_at: u64,
    /// The record's bytes as they were found, base64.
    raw: String,
}

/// The embedded default: one redb file.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// Opens (or creates) `dir/spool.redb`, creating `dir` if needed, and checks it (see the
    /// module documentation); a format-1 spool is migrated.
    pub fn open(dir: &Path) -> Result<RedbStore, SpoolError> {
        let path = dir.join(FILE_NAME);
        std::fs::create_dir_all(dir)
            .map_err(|e| SpoolError::new(&path, format!("cannot create its folder: {e}")))?;
        let db = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path)?,
            Err(e) => return Err(SpoolError::new(&path, e)),
            Ok(meta) if meta.len() == 0 => {
                return Err(SpoolError::new(
                    &path,
                    format!(
                        "the file is empty (0 bytes): the subscriptions and queued events it \
                         held are gone; {WHAT_TO_DO}"
                    ),
                ));
            }
            Ok(_) => open_existing(&path)?,
        };
        let store = RedbStore { db, path };
        store.check_format()?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> SpoolError {
        SpoolError::new(&self.path, e)
    }

    /// Accepts format 2, migrates format 1, refuses anything else.
    fn check_format(&self) -> Result<(), SpoolError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let tables: BTreeSet<String> = txn
            .list_tables()
            .map_err(|e| self.err(e))?
            .map(|t| t.name().to_string())
            .collect();
        if tables.contains(META.name()) {
            let format = {
                let meta = txn.open_table(META).map_err(|e| self.not_a_spool(e))?;
                meta.get(FORMAT_KEY)
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value())
            };
            match format {
                Some(FORMAT) => {}
                Some(newer) if newer > FORMAT => {
                    return Err(self.err(format!(
                        "written by a newer version (spool format {newer}; this version reads \
                         up to {FORMAT}); {WHAT_TO_DO}"
                    )));
                }
                _ => return Err(self.not_a_spool(format!("tables {tables:?}"))),
            }
            // All tables exist in a format-2 spool; opening them checks their types.
            self.open_all(&txn)?;
        } else if tables.is_empty() {
            // Only an interrupted first start of format 1 leaves a redb file without tables.
            warn!(file = %self.path.display(), "event spool without tables: initialised as an empty spool");
            self.open_all(&txn)?;
            self.set_meta(&txn, true)?;
        } else if tables.iter().eq(sorted(FORMAT_1_TABLES).iter()) {
            self.migrate_format_1(&txn)?;
        } else {
            return Err(self.not_a_spool(format!("tables {tables:?}")));
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn not_a_spool(&self, why: impl std::fmt::Display) -> SpoolError {
        self.err(format!(
            "a redb database, but not an event spool ({why}); {WHAT_TO_DO}"
        ))
    }

    fn open_all(&self, txn: &WriteTransaction) -> Result<(), SpoolError> {
        open_all(txn).map_err(|e| self.not_a_spool(e))
    }

    fn set_meta(&self, txn: &WriteTransaction, clean: bool) -> Result<(), SpoolError> {
        set_meta(txn, clean).map_err(|e| self.err(e))
    }

    /// Rewrites a format-1 spool (bare JSON) into format 2. Records that do not decode go
    /// to quarantine. Format 1 kept no graceful-stop flag: numbering continues after the
    /// last number on disk, as it did.
    fn migrate_format_1(&self, txn: &WriteTransaction) -> Result<(), SpoolError> {
        // Format 1's `subscriptions` and `events` have the types of format 2.
        self.open_all(txn)?;
        let mut quarantine = Quarantine::new(txn, &self.path);
        let (mut subscriptions, mut events, mut agents) = (0usize, 0usize, 0usize);
        {
            let mut table = txn.open_table(SUBSCRIPTIONS).map_err(|e| self.err(e))?;
            let all: Vec<(u64, Vec<u8>)> = table
                .iter()
                .map_err(|e| self.err(e))?
                .map(|e| e.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for (id, raw) in all {
                table.remove(id).map_err(|e| self.err(e))?;
                match serde_json::from_slice::<StoredSubscription>(&raw) {
                    Ok(sub) if sub.id == id => {
                        let record = SubscriptionRecord { sub, reserved: 0 };
                        put_subscription(&mut table, &record).map_err(|e| self.err(e))?;
                        subscriptions += 1;
                    }
                    other => {
                        let reason = match other {
                            Err(e) => format!("format-1 record does not decode: {e}"),
                            Ok(_) => "format-1 record under another id".to_string(),
                        };
                        quarantine.put(Damage::subscription(id, &raw, reason))?;
                    }
                }
            }
        }
        {
            let mut table = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            let all: Vec<((u64, u64), Vec<u8>)> = table
                .iter()
                .map_err(|e| self.err(e))?
                .map(|e| e.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for ((id, sequence), raw) in all {
                table.remove((id, sequence)).map_err(|e| self.err(e))?;
                match serde_json::from_slice::<StoredEvent>(&raw) {
                    Ok(event) if event.sequence == sequence => {
                        put_event(&mut table, id, &event).map_err(|e| self.err(e))?;
                        events += 1;
                    }
                    other => {
                        let reason = match other {
                            Err(e) => format!("format-1 record does not decode: {e}"),
                            Ok(_) => "format-1 record under another sequence".to_string(),
                        };
                        quarantine.put(Damage::event(id, sequence, &raw, reason))?;
                    }
                }
            }
        }
        {
            let old = txn.open_table(AGENTS_V1).map_err(|e| self.err(e))?;
            let mut table = txn.open_table(AGENTS).map_err(|e| self.err(e))?;
            for entry in old.iter().map_err(|e| self.err(e))? {
                let (user, extension) = entry.map_err(|e| self.err(e))?;
                let (user, extension) = (user.value(), extension.value());
                table
                    .insert(user, seal(user.as_bytes(), extension.as_bytes()).as_slice())
                    .map_err(|e| self.err(e))?;
                agents += 1;
            }
        }
        txn.delete_table(AGENTS_V1).map_err(|e| self.err(e))?;
        self.set_meta(txn, true)?;
        info!(
            file = %self.path.display(),
            subscriptions, events, agents,
            quarantined = quarantine.count,
            "event spool migrated from format 1: records now carry checksums"
        );
        Ok(())
    }

    fn subscription(
        &self,
        table: &Table<u64, &[u8]>,
        quarantine: &mut Quarantine<'_>,
        id: u64,
    ) -> Result<Option<SubscriptionRecord>, SpoolError> {
        let raw = match table.get(id).map_err(|e| self.err(e))? {
            Some(raw) => raw.value().to_vec(),
            None => return Ok(None),
        };
        match decode_subscription(id, &raw) {
            Ok(record) => Ok(Some(record)),
            Err(reason) => {
                // Overwritten by the caller; the damaged copy is kept for inspection.
                quarantine.put(Damage::subscription(id, &raw, reason.to_string()))?;
                Ok(None)
            }
        }
    }
}

/// Creates a new, empty format-2 spool at `path`. It is built under another name and renamed
/// into place, so a crash during the first start never leaves a half-made (or empty) file
/// under the spool's name.
fn create(path: &Path) -> Result<Database, SpoolError> {
    let fail = |e: &dyn std::fmt::Display| SpoolError::new(path, format!("cannot create: {e}"));
    let fresh = path.with_extension("redb.new");
    let _ = std::fs::remove_file(&fresh);
    {
        let db = Database::create(&fresh).map_err(|e| fail(&e))?;
        let txn = db.begin_write().map_err(|e| fail(&e))?;
        open_all(&txn).map_err(|e| fail(&e))?;
        set_meta(&txn, true).map_err(|e| fail(&e))?;
        txn.commit().map_err(|e| fail(&e))?;
    }
    std::fs::rename(&fresh, path).map_err(|e| fail(&e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(&e))?;
    }
    info!(file = %path.display(), "event spool created");
    open_existing(path)
}

/// Opens an existing file with redb's integrity check; a file that fails it is read anyway
/// if redb can (its records are then checked one by one at load).
fn open_existing(path: &Path) -> Result<Database, SpoolError> {
    let mut signature = [0u8; REDB_SIGNATURE.len()];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut signature));
    match read {
        Ok(()) if signature == REDB_SIGNATURE => {}
        Ok(()) => {
            return Err(SpoolError::new(
                path,
                format!("not a redb database, so not an event spool; {WHAT_TO_DO}"),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(SpoolError::new(
                path,
                format!("too short to be a redb database, so not an event spool; {WHAT_TO_DO}"),
            ));
        }
        Err(e) => return Err(SpoolError::new(path, format!("cannot read: {e}"))),
    }
    let why = match Database::builder()
        .set_check_integrity_on_open(true)
        .open(path)
    {
        Ok(db) => return Ok(db),
        Err(DatabaseError::Storage(StorageError::Corrupted(why))) => why,
        Err(e) => return Err(SpoolError::new(path, format!("cannot open: {e}"))),
    };
    error!(
        file = %path.display(),
        %why,
        "event spool fails its integrity check: reading it record by record, damaged records go to quarantine"
    );
    // redb may panic on a file damaged in its structure rather than in a record.
    match std::panic::catch_unwind(|| Database::builder().open(path)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(SpoolError::new(
            path,
            format!("damaged beyond repair ({why}; {e}); {WHAT_TO_DO}"),
        )),
        Err(_) => Err(SpoolError::new(
            path,
            format!("damaged beyond repair ({why}); {WHAT_TO_DO}"),
        )),
    }
}

impl SpoolStore for RedbStore {
    fn apply(&mut self, ops: &[SpoolOp]) -> Result<(), SpoolError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        // The highest sequence appended per subscription in this commit.
        let mut last_sequence: BTreeMap<u64, u64> = BTreeMap::new();
        {
            let mut quarantine = Quarantine::new(&txn, &self.path);
            let mut subs = txn.open_table(SUBSCRIPTIONS).map_err(|e| self.err(e))?;
            let mut events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            let mut agents = txn.open_table(AGENTS).map_err(|e| self.err(e))?;
            let mut attached_data = txn
                .open_table(attached::ATTACHED)
                .map_err(|e| self.err(e))?;
            for op in ops {
                match op {
                    SpoolOp::PutSubscription(sub) => {
                        let mut record = SubscriptionRecord {
                            sub: sub.clone(),
                            reserved: 0,
                        };
                        // Never let the stored sequence or reservation go backwards.
                        if let Some(old) = self.subscription(&subs, &mut quarantine, sub.id)? {
                            record.sub.sequence = record.sub.sequence.max(old.sub.sequence);
                            record.reserved = old.reserved;
                        }
                        record.reserve();
                        put_subscription(&mut subs, &record).map_err(|e| self.err(e))?;
                    }
                    SpoolOp::RemoveSubscription(id) => {
                        subs.remove(*id).map_err(|e| self.err(e))?;
                        events
                            .retain_in((*id, 0)..=(*id, u64::MAX), |_, _| false)
                            .map_err(|e| self.err(e))?;
                    }
                    SpoolOp::Append(id, event) => {
                        put_event(&mut events, *id, event).map_err(|e| self.err(e))?;
                        let last = last_sequence.entry(*id).or_insert(0);
                        *last = (*last).max(event.sequence);
                    }
                    SpoolOp::Remove(id, sequence) => {
                        events.remove((*id, *sequence)).map_err(|e| self.err(e))?;
                    }
                    SpoolOp::Agent(user, Some(extension)) => {
                        let record = seal(user.as_bytes(), extension.as_bytes());
                        agents
                            .insert(user.as_str(), record.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    SpoolOp::Agent(user, None) => {
                        agents.remove(user.as_str()).map_err(|e| self.err(e))?;
                    }
                    SpoolOp::Attached(key, data) => {
                        attached::put(&mut attached_data, key, data.as_ref())
                            .map_err(|e| self.err(e))?;
                    }
                }
            }
            // Once per subscription and commit, not per event: the last number used and
            // the reservation ahead of it go to disk with the events they cover.
            for (id, sequence) in last_sequence {
                if let Some(mut record) = self.subscription(&subs, &mut quarantine, id)?
                    && sequence > record.sub.sequence
                {
                    record.sub.sequence = sequence;
                    record.reserve();
                    put_subscription(&mut subs, &record).map_err(|e| self.err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn load(&mut self) -> Result<SpoolContents, SpoolError> {
        // redb may panic on a file damaged in its structure rather than in a record (it is
        // read without the integrity check when that failed): refuse it, naming the file.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.load_checked()))
            .unwrap_or_else(|_| {
                Err(self.err(format!(
                    "damaged beyond repair (reading it failed); {WHAT_TO_DO}"
                )))
            })
    }

    fn close_clean(&mut self) -> Result<(), SpoolError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(CLEAN_KEY, 1).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn file(&self) -> &Path {
        &self.path
    }
}

impl RedbStore {
    /// [`SpoolStore::load`]: checks every record, moves the damaged ones to quarantine,
    /// and clears the graceful-stop flag, in one transaction.
    fn load_checked(&mut self) -> Result<SpoolContents, SpoolError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut contents = SpoolContents::default();
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let clean = meta
                .get(CLEAN_KEY)
                .map_err(|e| self.err(e))?
                .is_some_and(|v| v.value() == 1);
            // Until the next graceful stop, a restart is a crash.
            meta.insert(CLEAN_KEY, 0).map_err(|e| self.err(e))?;
            let mut quarantine = Quarantine::new(&txn, &self.path);

            let mut subs_table = txn.open_table(SUBSCRIPTIONS).map_err(|e| self.err(e))?;
            let mut subs: BTreeMap<u64, SubscriptionRecord> = BTreeMap::new();
            let mut damaged = Vec::new();
            for entry in subs_table.iter().map_err(|e| self.err(e))? {
                let (id, raw) = entry.map_err(|e| self.err(e))?;
                let (id, raw) = (id.value(), raw.value());
                match decode_subscription(id, raw) {
                    Ok(record) => {
                        subs.insert(id, record);
                    }
                    Err(reason) => damaged.push(Damage::subscription(id, raw, reason.to_string())),
                }
            }
            for damage in damaged {
                subs_table
                    .remove(damage.subscription.unwrap_or_default())
                    .map_err(|e| self.err(e))?;
                quarantine.put(damage)?;
            }

            let mut events_table = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            let mut events: BTreeMap<u64, Vec<StoredEvent>> = BTreeMap::new();
            let mut damaged = Vec::new();
            // Events whose subscription is gone, per subscription: (count, first, last).
            let mut orphans: BTreeMap<u64, (usize, u64, u64)> = BTreeMap::new();
            for entry in events_table.iter().map_err(|e| self.err(e))? {
                let (key, raw) = entry.map_err(|e| self.err(e))?;
                let ((id, sequence), raw) = (key.value(), raw.value());
                if !subs.contains_key(&id) {
                    let mut damage = Damage::event(id, sequence, raw, ORPHAN.to_string());
                    damage.quiet = true;
                    let (count, _, last) = orphans.entry(id).or_insert((0, sequence, sequence));
                    *count += 1;
                    *last = sequence;
                    damaged.push(damage);
                    continue;
                }
                match decode_event(id, sequence, raw) {
                    Ok(event) => events.entry(id).or_default().push(event),
                    Err(e) => damaged.push(Damage::event(id, sequence, raw, e.to_string())),
                }
            }
            for (subscription, (events, first, last)) in orphans {
                error!(
                    file = %self.path.display(),
                    subscription, events, first, last,
                    "event spool: the events of a damaged subscription moved to quarantine, they will not be delivered"
                );
            }
            for damage in damaged {
                let key = (
                    damage.subscription.unwrap_or_default(),
                    damage.sequence.unwrap_or_default(),
                );
                events_table.remove(key).map_err(|e| self.err(e))?;
                quarantine.put(damage)?;
            }

            let mut agents_table = txn.open_table(AGENTS).map_err(|e| self.err(e))?;
            let mut damaged = Vec::new();
            for entry in agents_table.iter().map_err(|e| self.err(e))? {
                let (user, raw) = entry.map_err(|e| self.err(e))?;
                let (user, raw) = (user.value(), raw.value());
                match decode_agent(user, raw) {
                    Ok(extension) => {
                        contents.agents.insert(user.to_string(), extension);
                    }
                    Err(reason) => damaged.push((user.to_string(), raw.to_vec(), reason)),
                }
            }
            for (user, raw, reason) in damaged {
                agents_table
                    .remove(user.as_str())
                    .map_err(|e| self.err(e))?;
                quarantine.put(Damage::agent(&user, &raw, reason.to_string()))?;
            }

            let mut attached_table = txn
                .open_table(attached::ATTACHED)
                .map_err(|e| self.err(e))?;
            let (attached, damaged) =
                attached::load(&mut attached_table).map_err(|e| self.err(e))?;
            contents.attached = attached;
            for damage in damaged {
                quarantine.put(damage)?;
            }

            for (id, mut record) in subs {
                let events = events.remove(&id).unwrap_or_default();
                let last = events.last().map_or(0, |e| e.sequence);
                record.sub.sequence = record.sub.sequence.max(last);
                if !clean {
                    // Numbers above the last on disk may have been handed out before the
                    // crash: continue above everything reserved.
                    record.sub.sequence = record.sub.sequence.max(record.reserved);
                }
                contents.subscriptions.push((record.sub, events));
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(contents)
    }
}

fn sorted<const N: usize>(names: [&str; N]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Opens (creating what is missing) every table of format 2.
fn open_all(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(META)?;
    txn.open_table(SUBSCRIPTIONS)?;
    txn.open_table(EVENTS)?;
    txn.open_table(AGENTS)?;
    txn.open_table(attached::ATTACHED)?;
    txn.open_table(QUARANTINE)?;
    Ok(())
}

/// Writes the format number and the graceful-stop flag.
fn set_meta(txn: &WriteTransaction, clean: bool) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    meta.insert(FORMAT_KEY, FORMAT)?;
    meta.insert(CLEAN_KEY, u64::from(clean))?;
    Ok(())
}

fn put_subscription(
    table: &mut Table<u64, &[u8]>,
    record: &SubscriptionRecord,
) -> Result<(), String> {
    let id = record.sub.id;
    let sealed = seal_json(&subscription_key(id), record).map_err(|e| e.to_string())?;
    table
        .insert(id, sealed.as_slice())
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn put_event(
    table: &mut Table<(u64, u64), &[u8]>,
    id: u64,
    event: &StoredEvent,
) -> Result<(), String> {
    let sealed = seal_json(&event_key(id, event.sequence), event).map_err(|e| e.to_string())?;
    table
        .insert((id, event.sequence), sealed.as_slice())
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn decode_subscription(id: u64, raw: &[u8]) -> Result<SubscriptionRecord, RecordError> {
    let json = unseal(&subscription_key(id), raw)?;
    let record: SubscriptionRecord =
        serde_json::from_slice(json).map_err(|e| RecordError::Decode(e.to_string()))?;
    if record.sub.id != id {
        return Err(RecordError::Decode(format!(
            "the record names subscription {}",
            record.sub.id
        )));
    }
    Ok(record)
}

fn decode_event(id: u64, sequence: u64, raw: &[u8]) -> Result<StoredEvent, RecordError> {
    let json = unseal(&event_key(id, sequence), raw)?;
    let event: StoredEvent =
        serde_json::from_slice(json).map_err(|e| RecordError::Decode(e.to_string()))?;
    if event.sequence != sequence {
        return Err(RecordError::Decode(format!(
            "the record names sequence {}",
            event.sequence
        )));
    }
    Ok(event)
}

fn decode_agent(user: &str, raw: &[u8]) -> Result<String, RecordError> {
    let extension = unseal(user.as_bytes(), raw)?;
    String::from_utf8(extension.to_vec()).map_err(|e| RecordError::Decode(e.to_string()))
}

/// A damaged record on its way to quarantine.
struct Damage {
    table: &'static str,
    key: String,
    subscription: Option<u64>,
    sequence: Option<u64>,
    raw: Vec<u8>,
    reason: String,
    /// Logged in a summary by the caller rather than one line each.
    quiet: bool,
}

impl Damage {
    fn subscription(id: u64, raw: &[u8], reason: String) -> Damage {
        Damage {
            table: "subscriptions",
            key: id.to_string(),
            subscription: Some(id),
            sequence: None,
            raw: raw.to_vec(),
            reason,
            quiet: false,
        }
    }

    fn event(id: u64, sequence: u64, raw: &[u8], reason: String) -> Damage {
        Damage {
            table: "events",
            key: format!("{id}/{sequence}"),
            subscription: Some(id),
            sequence: Some(sequence),
            raw: raw.to_vec(),
            reason,
            quiet: false,
        }
    }

    fn agent(user: &str, raw: &[u8], reason: String) -> Damage {
        Damage {
            table: "agent_addresses",
            key: user.to_string(),
            subscription: None,
            sequence: None,
            raw: raw.to_vec(),
            reason,
            quiet: false,
        }
    }
}

/// The `quarantine` table of one write transaction, opened on first use.
struct Quarantine<'txn> {
    txn: &'txn WriteTransaction,
    file: &'txn Path,
    count: usize,
}

impl<'txn> Quarantine<'txn> {
    fn new(txn: &'txn WriteTransaction, file: &'txn Path) -> Quarantine<'txn> {
        Quarantine {
            txn,
            file,
            count: 0,
        }
    }

    /// Keeps `damage` in the quarantine table (the caller has removed it from its own),
    /// logs it and counts it.
    fn put(&mut self, damage: Damage) -> Result<(), SpoolError> {
        let err = |e: &dyn std::fmt::Display| SpoolError::new(self.file, e);
        if !damage.quiet {
            error!(
                file = %self.file.display(),
                table = damage.table,
                subscription = damage.subscription,
                sequence = damage.sequence,
                key = %damage.key,
                reason = %damage.reason,
                "event spool: damaged record moved to quarantine, it will not be delivered"
            );
        }
        crate::metrics::spool_record_quarantined(damage.table);
        let mut table = self.txn.open_table(QUARANTINE).map_err(|e| err(&e))?;
        let next = table
            .last()
            .map_err(|e| err(&e))?
            .map_or(1, |(k, _)| k.value() + 1);
        let quarantined_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let entry = Quarantined {
            table: damage.table,
            key: damage.key,
            subscription: damage.subscription,
            sequence: damage.sequence,
            reason: &damage.reason,
            quarantined_at,
            raw: base64::engine::general_purpose::STANDARD.encode(&damage.raw),
        };
        let json = serde_json::to_vec(&entry).map_err(|e| err(&e))?;
        table
            .insert(next, seal(&next.to_be_bytes(), &json).as_slice())
            .map_err(|e| err(&e))?;
        self.count += 1;
        Ok(())
    }
}

mod attached;
#[cfg(test)]
mod tests;
