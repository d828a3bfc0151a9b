//! Queue presence on Asterisk: one `QueueStatus` action, its event list read into a
//! [`QueueStatus`] per configured queue (SAP's getPresenceQueueInfo).
//!
//! `QueueStatus` answers with `Response: Success` and then, all carrying the action's
//! `ActionID`, a `QueueParams` per queue, a `QueueMember` per member and a `QueueEntry` per
//! waiting caller, ended by `QueueStatusComplete`. From them:
//!
//! | field | from |
//! |---|---|
//! | waiting | `QueueEntry` count (`QueueParams Calls` when no entries are listed) |
//! | longest wait | the largest `QueueEntry Wait` (seconds) |
//! | agents logged in | `QueueMember` count |
//! | agents ready | members with `Paused: 0` whose device is usable (`Status` not 4 invalid, 5 unavailable) |
//! | number | `[switch.asterisk] queue_numbers`: Asterisk has no number of a queue, the dialplan has |
//!
//! `QueueSummary` has fewer facts (its `Available` leaves out agents on a call), so the one
//! action is `QueueStatus`, which the adapter also reads at every resync.
//!
//! Self-contained: the link only starts a query, hands it every message whose `ActionID`
//! is the query's, and ends it when the link drops or the answer is late.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::codec::{Action, Message};
use crate::config::AsteriskConfig;
use crate::switch::{QueueStatus, SwitchError, SwitchReply};

/// Device states (`QueueMember Status`, Asterisk's `ast_device_state`) of a member that
/// cannot take a call: 4 invalid, 5 unavailable (the phone is not registered).
const UNUSABLE_DEVICE_STATES: [&str; 2] = ["4", "5"];

/// How long a queue query may take before it is answered `Unavailable`: a busy PBX lists
/// hundreds of members in well under a second.
pub const QUERY_WAIT: Duration = Duration::from_secs(3);

type Reply = oneshot::Sender<Result<SwitchReply, SwitchError>>;

/// The action that starts a query.
pub fn action() -> Action {
    Action::new("QueueStatus")
}

/// What one queue's list items add up to.
#[derive(Debug, Default)]
struct Tally {
    params_calls: usize,
    entries: usize,
    longest_wait: u64,
    members: usize,
    ready: usize,
}

/// One `QueueStatus` answer being read.
#[derive(Debug)]
pub struct Collector {
    /// `[switch.asterisk] queues`: only these are reported; empty: every queue.
    wanted: Vec<String>,
    numbers: BTreeMap<String, String>,
    queues: BTreeMap<String, Tally>,
    refused: Option<String>,
}

/// What one message did to a collector.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    More,
    /// The list is complete (or refused): answer now.
    Done,
}

impl Collector {
    pub fn new(config: &AsteriskConfig) -> Collector {
        Collector {
            wanted: config.queues.clone(),
            numbers: config.queue_numbers.clone(),
            queues: BTreeMap::new(),
            refused: None,
        }
    }

    /// Reads one message of the answer (the caller matched its `ActionID`).
    pub fn feed(&mut self, message: &Message) -> Progress {
        if message.is_response() {
            if message.get("Response") == Some("Error") {
                self.refused = Some(message.get("Message").unwrap_or("error").to_owned());
                return Progress::Done;
            }
            return Progress::More;
        }
        let event = message.event();
        if event == Some("QueueStatusComplete") {
            return Progress::Done;
        }
        let Some(queue) = message.value("Queue") else {
            return Progress::More;
        };
        if !self.wanted.is_empty() && !self.wanted.iter().any(|q| q == queue) {
            return Progress::More;
        }
        let tally = self.queues.entry(queue.to_owned()).or_default();
        let number = |key: &str| message.get(key).and_then(|v| v.trim().parse::<u64>().ok());
        match event {
            Some("QueueParams") => {
                tally.params_calls = number("Calls").unwrap_or(0) as usize;
            }
            Some("QueueMember") => {
                tally.members += 1;
                let paused = message.get("Paused").is_some_and(|p| p.trim() != "0");
                let unusable = message
                    .get("Status")
                    .is_some_and(|s| UNUSABLE_DEVICE_STATES.contains(&s.trim()));
                if !paused && !unusable {
                    tally.ready += 1;
                }
            }
            Some("QueueEntry") => {
                tally.entries += 1;
                tally.longest_wait = tally.longest_wait.max(number("Wait").unwrap_or(0));
            }
            _ => {}
        }
        Progress::More
    }

    /// The answer: every queue Asterisk listed (of the configured ones), by name; a
    /// configured queue Asterisk does not know is left out rather than shown empty.
    pub fn finish(self) -> Result<SwitchReply, SwitchError> {
        if let Some(why) = self.refused {
            return Err(SwitchError::Rejected(why));
        }
        let numbers = self.numbers;
        Ok(SwitchReply::Queues(
            self.queues
                .into_iter()
                .map(|(name, tally)| QueueStatus {
                    number: numbers.get(&name).cloned(),
                    waiting: if tally.entries > 0 {
                        tally.entries
                    } else {
                        tally.params_calls
                    },
                    longest_wait: Duration::from_secs(tally.longest_wait),
                    agents_logged_in: tally.members,
                    agents_ready: tally.ready,
                    name,
                })
                .collect(),
        ))
    }
}

/// The queue queries in progress on one connection.
#[derive(Debug, Default)]
pub struct Queries {
    pending: Vec<(String, Collector, Reply, Instant)>,
}

impl Queries {
    /// A query was sent with `action_id`.
    pub fn start(&mut self, action_id: String, config: &AsteriskConfig, reply: Reply) {
        self.pending.push((
            action_id,
            Collector::new(config),
            reply,
            Instant::now() + QUERY_WAIT,
        ));
    }

    /// Takes the message if it belongs to a query (true), answering the query when its
    /// list is complete.
    pub fn take(&mut self, message: &Message) -> bool {
        let Some(id) = message.get("ActionID") else {
            return false;
        };
        let Some(pos) = self.pending.iter().position(|(pending, ..)| pending == id) else {
            return false;
        };
        if self.pending[pos].1.feed(message) == Progress::Done {
            let (_, collector, reply, _) = self.pending.remove(pos);
            let _ = reply.send(collector.finish());
        }
        true
    }

    /// Answers the queries whose answer is late.
    pub fn expire(&mut self, now: Instant) {
        let (late, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(.., deadline)| *deadline <= now);
        self.pending = pending;
        for (_, _, reply, _) in late {
            let _ = reply.send(Err(SwitchError::Unavailable(
                "Asterisk did not list its queues in time".into(),
            )));
        }
    }

    /// Answers every query: the connection is gone.
    pub fn abandon(&mut self) {
        for (_, _, reply, _) in self.pending.drain(..) {
            let _ = reply.send(Err(SwitchError::Unavailable("AMI connection lost".into())));
        }
    }
}

#[cfg(test)]
mod tests;
