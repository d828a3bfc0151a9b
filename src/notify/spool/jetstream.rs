//! [`JetStreamStore`]: the spool in a replicated NATS JetStream stream, for the connectors
//! of an active/standby pair (`[cluster]`).
//!
//! The stream is a log: each commit of the spool's writer is one message (several when it
//! is larger than a NATS message may be) holding the changes in order, in the checksummed
//! envelope of [`super::record`]. The state (subscriptions, undelivered events, agent
//! addresses) is what replaying the log gives; the writer keeps it in memory too, and every
//! [`COMPACT_AFTER`] messages writes it out whole (between a begin and an end mark) and
//! purges the log before it, so the log stays short and a takeover reads little.
//!
//! **Durable means replicated.** A message counts once JetStream acknowledged it, that is
//! once a majority of the stream's replicas (2 of 3) stored it: the spool's tickets, and so
//! the answers to SAP, wait for that.
//!
//! **Fencing.** Every write says which stream sequence it follows
//! (`Nats-Expected-Last-Sequence`). A connector taking over writes a takeover mark first,
//! then reads what came before it: from then on any write of the former active follows the
//! wrong sequence and the stream refuses it, however late it comes (a paused process, a
//! partition). The refused store reports [`SpoolStore::fenced`] and writes no more.
//! Each write also carries its writer (node and lease revision) and a message id, so a write
//! retried after a lost acknowledgement is taken once (JetStream's duplicate window).
//!
//! **Sequence numbers** continue as with redb: replaying the log gives every
//! subscription's last number and the reservation [`SEQUENCE_RESERVE`] ahead of it; after a
//! crash (no clean mark before the takeover) numbering resumes above the reservation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::record::{seal_json, unseal};
use super::{
    SEQUENCE_RESERVE, SpoolContents, SpoolError, SpoolOp, SpoolStore, StoredAttached, StoredEvent,
    StoredSubscription,
};
use crate::config::ClusterConfig;
use crate::notify::Fence;

/// Messages written since the last compaction that start the next one.
pub const COMPACT_AFTER: u64 = 2048;

/// The header naming the writer of a message (`node/lease revision`).
const WRITER_HEADER: &str = "Ici-Writer";

/// A message is kept below this share of the server's `max_payload`, leaving room for the
/// envelope and headers.
const PAYLOAD_SHARE: usize = 2;

/// What one change is assumed to add to a message besides an event's body (JSON keys,
/// numbers, the user and call), when a commit is cut into messages.
const OP_OVERHEAD: usize = 512;

/// First and longest pause between attempts of a write NATS did not acknowledge (a node
/// down, a stream leader being elected).
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_millis(500);

/// One message of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
enum Entry {
    /// Changes, in the order they were made.
    Commit {
        ops: Vec<LogOp>,
    },
    /// A connector took the spool over; every write of another after it is refused.
    Takeover {
        node: String,
        lease: u64,
    },
    /// The writer stopped gracefully with everything committed.
    Clean,
    /// The state follows whole; it replaces what came before once [`Entry::CompactEnd`]
    /// follows (a compaction cut short by a crash is ignored).
    CompactBegin,
    CompactEnd,
}

/// One change as logged: a [`SpoolOp`], or a subscription as written by a compaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum LogOp {
    /// A subscription with its reservation, exactly (compaction).
    Subscription {
        sub: StoredSubscription,
        reserved: u64,
    },
    PutSubscription {
        sub: StoredSubscription,
    },
    RemoveSubscription {
        id: u64,
    },
    Append {
        id: u64,
        event: StoredEvent,
    },
    Remove {
        id: u64,
        sequence: u64,
    },
    Agent {
        user: String,
        extension: Option<String>,
    },
    /// SAP-set attached data of a call or item (`None`: gone with its call).
    Attached {
        key: String,
        data: Option<StoredAttached>,
    },
}

impl From<&SpoolOp> for LogOp {
    fn from(op: &SpoolOp) -> LogOp {
        match op {
            SpoolOp::PutSubscription(sub) => LogOp::PutSubscription { sub: sub.clone() },
            SpoolOp::RemoveSubscription(id) => LogOp::RemoveSubscription { id: *id },
            SpoolOp::Append(id, event) => LogOp::Append {
                id: *id,
                event: event.clone(),
            },
            SpoolOp::Remove(id, sequence) => LogOp::Remove {
                id: *id,
                sequence: *sequence,
            },
            SpoolOp::Agent(user, extension) => LogOp::Agent {
                user: user.clone(),
                extension: extension.clone(),
            },
            SpoolOp::Attached(key, data) => LogOp::Attached {
                key: key.clone(),
                data: data.clone(),
            },
        }
    }
}

impl LogOp {
    /// Roughly what this change adds to a message.
    fn size(&self) -> usize {
        match self {
            LogOp::Append { event, .. } => event.body.len() + OP_OVERHEAD,
            _ => OP_OVERHEAD,
        }
    }
}

/// The spool as the log describes it.
#[derive(Debug, Default, Clone)]
struct State {
    /// Subscriptions with their reservation.
    subs: BTreeMap<u64, (StoredSubscription, u64)>,
    events: BTreeMap<(u64, u64), StoredEvent>,
    agents: BTreeMap<String, String>,
    attached: BTreeMap<String, StoredAttached>,
}

impl State {
    /// Applies one change, as the redb store does: a subscription's number and reservation
    /// never go backwards.
    fn apply(&mut self, op: &LogOp) {
        match op {
            LogOp::Subscription { sub, reserved } => {
                self.subs.insert(sub.id, (sub.clone(), *reserved));
            }
            LogOp::PutSubscription { sub } => {
                let mut sub = sub.clone();
                let mut reserved = 0;
                if let Some((old, old_reserved)) = self.subs.get(&sub.id) {
                    sub.sequence = sub.sequence.max(old.sequence);
                    reserved = *old_reserved;
                }
                reserved = reserved.max(sub.sequence.saturating_add(SEQUENCE_RESERVE));
                self.subs.insert(sub.id, (sub, reserved));
            }
            LogOp::RemoveSubscription { id } => {
                self.subs.remove(id);
                self.events.retain(|(sub, _), _| sub != id);
            }
            LogOp::Append { id, event } => {
                self.events.insert((*id, event.sequence), event.clone());
                if let Some((sub, reserved)) = self.subs.get_mut(id)
                    && event.sequence > sub.sequence
                {
                    sub.sequence = event.sequence;
                    *reserved = (*reserved).max(sub.sequence.saturating_add(SEQUENCE_RESERVE));
                }
            }
            LogOp::Remove { id, sequence } => {
                self.events.remove(&(*id, *sequence));
            }
            LogOp::Agent { user, extension } => match extension {
                Some(extension) => {
                    self.agents.insert(user.clone(), extension.clone());
                }
                None => {
                    self.agents.remove(user);
                }
            },
            LogOp::Attached { key, data } => match data {
                Some(data) => {
                    self.attached.insert(key.clone(), data.clone());
                }
                None => {
                    self.attached.remove(key);
                }
            },
        }
    }

    /// What [`SpoolStore::load`] hands out: after a crash (`clean` false) numbering
    /// continues above every reservation.
    fn contents(&self, clean: bool) -> SpoolContents {
        let mut contents = SpoolContents {
            agents: self.agents.clone(),
            attached: self.attached.clone(),
            ..SpoolContents::default()
        };
        for (id, (sub, reserved)) in &self.subs {
            let events: Vec<StoredEvent> = self
                .events
                .range((*id, 0)..=(*id, u64::MAX))
                .map(|(_, e)| e.clone())
                .collect();
            let mut sub = sub.clone();
            sub.sequence = sub.sequence.max(events.last().map_or(0, |e| e.sequence));
            if !clean {
                sub.sequence = sub.sequence.max(*reserved);
            }
            contents.subscriptions.push((sub, events));
        }
        let orphans = self
            .events
            .keys()
            .filter(|(id, _)| !self.subs.contains_key(id))
            .count();
        if orphans > 0 {
            warn!(
                events = orphans,
                "event spool: events of subscriptions that no longer exist are not delivered"
            );
        }
        contents
    }

    /// The whole state as changes (a compaction).
    fn as_ops(&self) -> Vec<LogOp> {
        let subs = self
            .subs
            .values()
            .map(|(sub, reserved)| LogOp::Subscription {
                sub: sub.clone(),
                reserved: *reserved,
            });
        let events = self.events.iter().map(|((id, _), event)| LogOp::Append {
            id: *id,
            event: event.clone(),
        });
        let agents = self.agents.iter().map(|(user, extension)| LogOp::Agent {
            user: user.clone(),
            extension: Some(extension.clone()),
        });
        let attached = self.attached.iter().map(|(key, data)| LogOp::Attached {
            key: key.clone(),
            data: Some(data.clone()),
        });
        subs.chain(events).chain(agents).chain(attached).collect()
    }
}

/// Reads the log in order.
#[derive(Debug, Default)]
struct Replay {
    state: State,
    /// A compaction under way: the state it is writing.
    compacting: Option<State>,
    /// The last thing logged was a graceful stop.
    clean: bool,
}

impl Replay {
    fn entry(&mut self, entry: Entry) {
        match entry {
            Entry::Commit { ops } => {
                let target = match &mut self.compacting {
                    Some(state) => state,
                    None => {
                        self.clean = false;
                        &mut self.state
                    }
                };
                for op in &ops {
                    target.apply(op);
                }
            }
            Entry::Takeover { .. } => {
                // A compaction its writer did not finish is void; the connector taking
                // over may have numbered events it never committed.
                self.compacting = None;
                self.clean = false;
            }
            Entry::Clean => self.clean = true,
            Entry::CompactBegin => self.compacting = Some(State::default()),
            Entry::CompactEnd => {
                if let Some(state) = self.compacting.take() {
                    self.state = state;
                }
            }
        }
    }
}

/// The spool of a connector pair in a JetStream stream (see the module documentation).
pub struct JetStreamStore {
    js: jetstream::Context,
    stream: stream::Stream,
    subject: String,
    /// `nats:<stream>`, for error messages.
    name: PathBuf,
    /// The runtime the NATS client runs on; the spool's writer thread blocks on it.
    runtime: tokio::runtime::Handle,
    /// `node/lease revision`.
    writer: String,
    /// Messages written by this writer (the message ids).
    written: u64,
    /// The stream sequence of the last message of the log, as this writer knows it.
    last: u64,
    state: State,
    /// What was in the stream at the takeover, until [`SpoolStore::load`] takes it.
    loaded: Option<SpoolContents>,
    since_compaction: u64,
    fence: Fence,
    fenced: bool,
    max_message: usize,
}

impl JetStreamStore {
    /// Takes the spool over for the holder of lease revision `lease`: creates the stream
    /// if needed, writes the takeover mark (after which a former active's writes are
    /// refused) and reads the log before it. Writes retry while `fence` allows.
    pub async fn take_over(
        js: jetstream::Context,
        cluster: &ClusterConfig,
        lease: u64,
        fence: Fence,
    ) -> Result<JetStreamStore, SpoolError> {
        let name = PathBuf::from(format!("nats:{}", cluster.stream()));
        let err = |e: &dyn std::fmt::Display| SpoolError::new(&name, e);
        let subject = cluster.subject();
        let mut stream = js
            .get_or_create_stream(stream::Config {
                name: cluster.stream(),
                subjects: vec![subject.clone()],
                storage: stream::StorageType::File,
                num_replicas: cluster.replicas,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| err(&format!("cannot open or create the stream: {e}")))?;
        let writer = format!("{}/{lease}", cluster.node);
        let mark = Entry::Takeover {
            node: cluster.node.clone(),
            lease,
        };
        let payload = seal_json(subject.as_bytes(), &mark).map_err(|e| err(&e))?;
        let message = PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("{writer}-0"))
            .header(WRITER_HEADER, writer.as_str());
        let mark = js
            .send_publish(subject.clone(), message)
            .await
            .map_err(|e| err(&format!("cannot write the takeover mark: {e}")))?
            .await
            .map_err(|e| err(&format!("cannot write the takeover mark: {e}")))?
            .sequence;
        let first = stream
            .info()
            .await
            .map_err(|e| err(&format!("cannot read the stream's state: {e}")))?
            .state
            .first_sequence;
        let mut replay = Replay::default();
        let mut damaged = 0usize;
        for sequence in first.max(1)..mark {
            let message = match stream.get_raw_message(sequence).await {
                Ok(message) => message,
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => continue,
                Err(e) => return Err(err(&format!("cannot read message {sequence}: {e}"))),
            };
            match decode(subject.as_bytes(), &message.payload) {
                Ok(entry) => replay.entry(entry),
                Err(reason) => {
                    damaged += 1;
                    crate::metrics::spool_record_quarantined("stream");
                    error!(stream = %name.display(), sequence, %reason, "event spool: damaged message skipped, its changes are lost");
                }
            }
        }
        let contents = replay.state.contents(replay.clean);
        info!(
            stream = %name.display(), from = first, to = mark, damaged,
            subscriptions = contents.subscriptions.len(),
            events = contents.subscriptions.iter().map(|(_, e)| e.len()).sum::<usize>(),
            clean = replay.clean,
            "event spool taken over"
        );
        let max_message = js.client().server_info().max_payload / PAYLOAD_SHARE;
        Ok(JetStreamStore {
            js,
            stream,
            subject,
            name,
            runtime: tokio::runtime::Handle::current(),
            writer,
            written: 0,
            last: mark,
            state: replay.state,
            loaded: Some(contents),
            since_compaction: mark.saturating_sub(first),
            fence,
            fenced: false,
            max_message: max_message.max(OP_OVERHEAD * 2),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> SpoolError {
        SpoolError::new(&self.name, e)
    }

    /// Writes `ops` as one message, or as several in order when they would not fit one.
    async fn write_ops(&mut self, ops: Vec<LogOp>) -> Result<(), SpoolError> {
        let mut chunk = Vec::new();
        let mut size = 0;
        for op in ops {
            let len = op.size();
            if !chunk.is_empty() && size + len > self.max_message {
                let ops = std::mem::take(&mut chunk);
                self.publish(&Entry::Commit { ops }).await?;
                size = 0;
            }
            size += len;
            chunk.push(op);
        }
        if !chunk.is_empty() {
            self.publish(&Entry::Commit { ops: chunk }).await?;
        }
        Ok(())
    }

    /// Appends `entry` to the log right after the last message this writer knows of;
    /// retried while the lease lasts. A refusal by the stream fences this store.
    async fn publish(&mut self, entry: &Entry) -> Result<u64, SpoolError> {
        if self.fenced {
            return Err(self.err("another connector has taken the spool over"));
        }
        let payload =
            bytes::Bytes::from(seal_json(self.subject.as_bytes(), entry).map_err(|e| self.err(e))?);
        self.written += 1;
        let id = format!("{}-{}", self.writer, self.written);
        let mut pause = RETRY_MIN;
        let mut warned = false;
        loop {
            let message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(&id)
                .expected_last_sequence(self.last)
                .header(WRITER_HEADER, self.writer.as_str());
            let result = match self.js.send_publish(self.subject.clone(), message).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(ack) => {
                    self.last = self.last.max(ack.sequence);
                    self.since_compaction += 1;
                    return Ok(ack.sequence);
                }
                Err(e) => e,
            };
            if e.kind() == PublishErrorKind::WrongLastSequence {
                // Our own earlier write may have landed with its acknowledgement lost;
                // anything else means another connector wrote: we are fenced.
                if let Some(last) = self.own_last().await
                    && last > self.last
                {
                    self.last = last;
                    continue;
                }
                self.fenced = true;
                return Err(self.err(format!(
                    "the stream refused this write ({e}): another connector has taken the \
                     spool over, this one writes no more"
                )));
            }
            if e.kind() == PublishErrorKind::MaxPayloadExceeded {
                // Retrying cannot help: a failed commit (the events go out from memory).
                return Err(self.err(format!("{e} (one change larger than a NATS message)")));
            }
            if !self.fence.allows() {
                self.fenced = true;
                return Err(self.err(format!(
                    "{e}; the leader lease ran out meanwhile, this connector writes no more"
                )));
            }
            if !warned {
                warned = true;
                warn!(stream = %self.name.display(), error = %e, "event spool: write not acknowledged yet, retrying");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// The stream sequence of the log's last message if this writer wrote it.
    async fn own_last(&self) -> Option<u64> {
        let message = self
            .stream
            .get_last_raw_message_by_subject(&self.subject)
            .await
            .ok()?;
        let writer = message.headers.get(WRITER_HEADER)?;
        (writer.as_str() == self.writer).then_some(message.sequence)
    }

    /// Writes the state whole and purges the log before it.
    async fn compact(&mut self) -> Result<(), SpoolError> {
        let begin = self.publish(&Entry::CompactBegin).await?;
        self.write_ops(self.state.as_ops()).await?;
        self.publish(&Entry::CompactEnd).await?;
        self.since_compaction = 0;
        if let Err(e) = self.stream.purge().sequence(begin).await {
            warn!(stream = %self.name.display(), error = %e, "event spool: purging the compacted log failed");
        }
        Ok(())
    }
}

fn decode(key: &[u8], payload: &[u8]) -> Result<Entry, String> {
    let json = unseal(key, payload).map_err(|e| e.to_string())?;
    serde_json::from_slice(json).map_err(|e| e.to_string())
}

impl SpoolStore for JetStreamStore {
    fn apply(&mut self, ops: &[SpoolOp]) -> Result<(), SpoolError> {
        let ops: Vec<LogOp> = ops.iter().map(LogOp::from).collect();
        for op in &ops {
            self.state.apply(op);
        }
        let runtime = self.runtime.clone();
        runtime.block_on(self.write_ops(ops))?;
        if self.since_compaction >= COMPACT_AFTER {
            runtime.block_on(self.compact())?;
        }
        Ok(())
    }

    fn load(&mut self) -> Result<SpoolContents, SpoolError> {
        Ok(self.loaded.take().unwrap_or_default())
    }

    fn close_clean(&mut self) -> Result<(), SpoolError> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.publish(&Entry::Clean)).map(|_| ())
    }

    fn fenced(&self) -> bool {
        self.fenced
    }

    fn file(&self) -> &Path {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: u64, sequence: u64) -> StoredSubscription {
        StoredSubscription {
            id,
            kind: "user".into(),
            target: "AGENT1".into(),
            url: "http://sap/events".into(),
            app_ids: vec![],
            sequence,
        }
    }

    fn event(sequence: u64) -> StoredEvent {
        StoredEvent {
            name: "phoneCallChanged".into(),
            sequence,
            user: "AGENT1".into(),
            call: None,
            body: format!("<e>{sequence}</e>"),
        }
    }

    fn commit(ops: Vec<SpoolOp>) -> Entry {
        Entry::Commit {
            ops: ops.iter().map(LogOp::from).collect(),
        }
    }

    #[test]
    fn a_crash_resumes_above_the_reservation_a_clean_stop_does_not() {
        let log = || {
            vec![
                commit(vec![SpoolOp::PutSubscription(sub(1, 0))]),
                commit(vec![
                    SpoolOp::Append(1, event(1)),
                    SpoolOp::Append(1, event(2)),
                ]),
                commit(vec![SpoolOp::Remove(1, 1)]),
            ]
        };
        let mut crashed = Replay::default();
        log().into_iter().for_each(|e| crashed.entry(e));
        let contents = crashed.state.contents(crashed.clean);
        let (sub, events) = &contents.subscriptions[0];
        assert_eq!(events, &vec![event(2)]);
        assert_eq!(sub.sequence, 2 + SEQUENCE_RESERVE);

        let mut clean = Replay::default();
        log().into_iter().for_each(|e| clean.entry(e));
        clean.entry(Entry::Clean);
        assert_eq!(
            clean.state.contents(clean.clean).subscriptions[0]
                .0
                .sequence,
            2
        );
        clean.entry(Entry::Takeover {
            node: "b".into(),
            lease: 2,
        });
        assert!(
            !clean.clean,
            "the next connector's takeover counts as unclean"
        );
    }

    #[test]
    fn a_compaction_replaces_the_state_only_when_finished() {
        let mut state = State::default();
        for op in [
            SpoolOp::PutSubscription(sub(1, 0)),
            SpoolOp::Append(1, event(7)),
            SpoolOp::Agent("AGENT1".into(), Some("2001".into())),
        ] {
            state.apply(&LogOp::from(&op));
        }
        let mut replay = Replay::default();
        replay.entry(Entry::Commit {
            ops: state.as_ops(),
        });
        let before = replay.state.contents(true);
        replay.entry(Entry::CompactBegin);
        replay.entry(Entry::Commit {
            ops: vec![LogOp::from(&SpoolOp::PutSubscription(sub(1, 0)))],
        });
        replay.entry(Entry::Takeover {
            node: "b".into(),
            lease: 3,
        });
        assert_eq!(replay.state.contents(true), before, "cut short: ignored");

        let mut finished = Replay::default();
        finished.entry(Entry::Commit {
            ops: vec![LogOp::from(&SpoolOp::Append(9, event(1)))],
        });
        finished.entry(Entry::CompactBegin);
        finished.entry(Entry::Commit {
            ops: state.as_ops(),
        });
        finished.entry(Entry::CompactEnd);
        assert_eq!(finished.state.contents(true), before);
    }
}
