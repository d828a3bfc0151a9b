//! The simulated switch as plain data: calls and their parties, agents, queues, timers, and
//! the lookups every operation shares.
//!
//! The behaviour lives beside it, in `impl Sim` blocks of one job each, so that each can be
//! read (and changed) without the others: [`super::actor`] runs the loop and the timers,
//! [`super::commands`] carries out the session manager's commands, [`super::acd`] agent
//! states and queue distribution, [`super::outside`] what callers and remote parties do,
//! [`super::settle`] turns state changes into events, [`super::views`] shows the state.
//!
//! Every operation first validates (so a refused command changes nothing and emits
//! nothing), then mutates the model, marking the calls it touched. `settle` then ends calls
//! that have fewer than two parties left, distributes waiting ACD calls, and emits a leg
//! snapshot for every leg whose snapshot differs from the last one sent: events follow from
//! the state instead of being hand-written per command, so a leg never misses a change.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use compact_str::CompactString;
use tokio::time::{Duration, Instant};

use super::SimSettings;
use crate::switch::{
    AgentState, Attributes, CallRef, Direction, Extension, LegEvent, LegState, SwitchError,
    SwitchEvent,
};

pub(super) type OpResult<T> = Result<T, SwitchError>;

/// Prefix of every call id the simulator hands out (`sim-<seq>`).
pub(super) const CALL_ID_PREFIX: &str = "sim-";

/// A leg's own state; `Active` is reported as Connected or Conferenced by party count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Alerting,
    Dialing,
    Active,
    Held,
}

/// An external party's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RemotePhase {
    /// Inbound caller nobody answered yet.
    Waiting,
    /// Outbound: being called, not answered yet.
    Ringing,
    Connected,
}

#[derive(Debug, Clone)]
pub(super) enum Party {
    Ext {
        ext: Extension,
        phase: Phase,
        /// MakeCall correlation, until the leg's first event carried it.
        correlation: Option<String>,
        /// Offered by ACD distribution (so it may be rerouted back to the queue).
        acd_offer: bool,
    },
    Remote {
        address: String,
        phase: RemotePhase,
    },
}

impl Party {
    pub(super) fn ext(ext: &str, phase: Phase) -> Party {
        Party::Ext {
            ext: ext.to_owned(),
            phase,
            correlation: None,
            acd_offer: false,
        }
    }

    pub(super) fn address(&self) -> &str {
        match self {
            Party::Ext { ext, .. } => ext,
            Party::Remote { address, .. } => address,
        }
    }
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) id: CallRef,
    /// Placed by an external party (else by an extension).
    pub(super) inbound: bool,
    pub(super) parties: Vec<Party>,
    /// Queue name the call came through.
    pub(super) queue: Option<String>,
    /// Waiting in `queue` for an agent.
    pub(super) waiting: bool,
    /// When the caller first joined `queue` (a rerouted call keeps its place in time).
    pub(super) queued_at: Option<Instant>,
    /// Shared with every leg snapshot of the call.
    pub(super) attributes: Attributes,
    /// What few calls have (listeners, reroutes, a dialled number), out of line: `None`
    /// for most calls, so a call record is smaller.
    pub(super) extras: Option<Box<CallExtras>>,
}

/// The rarely used parts of a [`Call`].
#[derive(Debug, Default)]
pub(super) struct CallExtras {
    pub(super) listeners: Vec<Extension>,
    /// Agents that rerouted this call: it is not offered to them again.
    pub(super) rerouted_by: BTreeSet<Extension>,
    pub(super) dialled: Option<String>,
}

impl Call {
    /// Supervisors listening in.
    pub(super) fn listeners(&self) -> &[Extension] {
        self.extras.as_deref().map_or(&[], |x| &x.listeners)
    }

    /// Whether `ext` rerouted this call.
    pub(super) fn rerouted_by(&self, ext: &str) -> bool {
        self.extras
            .as_deref()
            .is_some_and(|x| x.rerouted_by.contains(ext))
    }

    /// The last external number the switch dialled on this call.
    pub(super) fn dialled(&self) -> Option<&String> {
        self.extras.as_deref().and_then(|x| x.dialled.as_ref())
    }

    /// The rare parts, made on first use.
    pub(super) fn extras_mut(&mut self) -> &mut CallExtras {
        self.extras.get_or_insert_default()
    }

    pub(super) fn leg(&self, ext: &str) -> Option<(usize, Phase)> {
        self.parties.iter().enumerate().find_map(|(i, p)| match p {
            Party::Ext { ext: e, phase, .. } if e == ext => Some((i, *phase)),
            _ => None,
        })
    }

    pub(super) fn has_party(&self, address: &str) -> bool {
        self.parties.iter().any(|p| p.address() == address)
    }

    pub(super) fn involves(&self, ext: &str) -> bool {
        self.leg(ext).is_some() || self.listeners().iter().any(|l| l == ext)
    }

    pub(super) fn direction(&self) -> Direction {
        let remote = self
            .parties
            .iter()
            .any(|p| matches!(p, Party::Remote { .. }));
        match (remote, self.inbound) {
            (false, _) => Direction::Internal,
            (true, true) => Direction::Inbound,
            (true, false) => Direction::Outbound,
        }
    }

    pub(super) fn reported(&self, phase: Phase) -> LegState {
        match phase {
            Phase::Alerting => LegState::Alerting,
            Phase::Dialing => LegState::Dialing,
            Phase::Held => LegState::Held,
            Phase::Active if self.parties.len() >= 3 => LegState::Conferenced,
            Phase::Active => LegState::Connected,
        }
    }

    pub(super) fn answered(&self) -> bool {
        self.parties.iter().any(|p| match p {
            Party::Ext { phase, .. } => matches!(phase, Phase::Active | Phase::Held),
            Party::Remote { phase, .. } => *phase == RemotePhase::Connected,
        })
    }

    /// The addresses of the parties other than `ext`, in a vector of exactly that size (a
    /// snapshot lives as long as the call; collecting from a filter would reserve four).
    fn other_parties(&self, ext: &str) -> Vec<String> {
        let others = || {
            self.parties
                .iter()
                .map(Party::address)
                .filter(|a| *a != ext)
        };
        let mut parties = Vec::with_capacity(others().count());
        parties.extend(others().map(str::to_owned));
        parties
    }

    /// A leg snapshot for `ext` (a party or a listener) with the call as it is now.
    pub(super) fn leg_event(&self, ext: &str, state: LegState, cause: Option<&str>) -> LegEvent {
        LegEvent {
            call: self.id.clone(),
            extension: ext.to_owned(),
            state,
            direction: self.direction(),
            queue: self.queue.clone(),
            parties: self.other_parties(ext),
            attributes: self.attributes.clone(),
            correlation: None,
            cause: cause.map(str::to_owned),
        }
    }
}

#[derive(Debug)]
pub(super) struct Agent {
    pub(super) state: AgentState,
    /// Sorted, no duplicates (a `BTreeSet` would cost a 280-byte node for one queue).
    pub(super) queues: Vec<String>,
    /// Logical time the agent last became Ready, was offered a call or finished its calls.
    pub(super) idle_since: u64,
    pub(super) last_dialled: Option<String>,
    /// In after-call work: the token of the timer that ends it.
    pub(super) wrap_up: Option<u64>,
}

impl Agent {
    pub(super) fn new() -> Agent {
        Agent {
            state: AgentState::LoggedOut,
            queues: Vec::new(),
            idle_since: 0,
            last_dialled: None,
            wrap_up: None,
        }
    }
}

#[derive(Debug)]
pub(super) struct Queue {
    pub(super) name: String,
    pub(super) number: String,
    pub(super) members: Vec<String>,
    pub(super) waiting: VecDeque<u64>,
    /// After-call work after this queue's calls.
    pub(super) wrap_up: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Timer {
    RemoteAnswer(u64),
    RemoteHangup(u64),
    /// The end of an agent's after-call work, by its token ([`Agent::wrap_up`]).
    WrapUpEnd(u64),
}

/// Where a new or transferred call goes.
pub(super) enum Target {
    Ext(Extension),
    Queue(usize),
    Remote(String),
}

/// The simulated switch.
#[derive(Debug)]
pub(super) struct Sim {
    pub(super) agents: BTreeMap<Extension, Agent>,
    pub(super) queues: Vec<Queue>,
    /// Live calls by sequence number (the id is `sim-<seq>`). Boxed: calls are added in
    /// sequence order, which leaves B-tree nodes about half full, and a node of unboxed
    /// calls would be mostly empty slots of a large struct.
    pub(super) calls: BTreeMap<u64, Box<Call>>,
    pub(super) next_call: u64,
    pub(super) clock: u64,
    /// Last snapshot sent per (call, extension), without correlation: the very one the
    /// session manager holds (shared, not copied). The extension inline in the key (no
    /// allocation per leg for the usual short extension).
    pub(super) sent: HashMap<(u64, CompactString), Arc<LegEvent>>,
    /// Events of the operation in progress, sent before its answer.
    pub(super) out: Vec<SwitchEvent>,
    /// Calls the operation in progress touched, in order.
    pub(super) dirty: Vec<u64>,
    /// Calls each extension was seen on: a superset, pruned when read, so that telling
    /// whether an extension still has legs does not scan every call on the switch.
    pub(super) ext_calls: HashMap<Extension, Vec<u64>>,
    pub(super) timers: BTreeMap<(Instant, u64), Timer>,
    pub(super) next_timer: u64,
    pub(super) remote_answer_after: Option<Duration>,
    /// Whether the link to the connector is up: while it is down, commands are refused and
    /// events are not sent (the switch goes on; the connector learns the outcome when the
    /// link is back).
    pub(super) link_up: bool,
}

/// The sequence number in a call id (`sim-7` → 7).
fn call_seq(id: &str) -> Option<u64> {
    id.strip_prefix(CALL_ID_PREFIX)?.parse().ok()
}

impl Sim {
    pub(super) fn new(settings: SimSettings) -> Sim {
        let agents = settings
            .extensions
            .into_iter()
            .map(|e| (e, Agent::new()))
            .collect();
        let queues = settings
            .queues
            .into_iter()
            .map(|q| Queue {
                name: q.name,
                number: q.number,
                members: q.members,
                waiting: VecDeque::new(),
                wrap_up: q.wrap_up,
            })
            .collect();
        Sim {
            agents,
            queues,
            calls: BTreeMap::new(),
            next_call: 1,
            clock: 0,
            sent: HashMap::new(),
            out: Vec::new(),
            dirty: Vec::new(),
            ext_calls: HashMap::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
            remote_answer_after: settings.remote_answer_after,
            link_up: true,
        }
    }

    pub(super) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub(super) fn touch(&mut self, seq: u64) {
        if !self.dirty.contains(&seq) {
            self.dirty.push(seq);
        }
        self.index_call(seq);
    }

    /// Records the extensions now on call `seq` in `ext_calls`.
    pub(super) fn index_call(&mut self, seq: u64) {
        let Sim {
            calls, ext_calls, ..
        } = self;
        let Some(call) = calls.get(&seq) else {
            return;
        };
        let exts = call
            .parties
            .iter()
            .filter_map(|p| match p {
                Party::Ext { ext, .. } => Some(ext),
                Party::Remote { .. } => None,
            })
            .chain(call.listeners().iter());
        for ext in exts {
            let seqs = ext_calls.entry(ext.clone()).or_default();
            if !seqs.contains(&seq) {
                seqs.push(seq);
            }
        }
    }

    pub(super) fn find(&self, id: &str) -> OpResult<u64> {
        call_seq(id)
            .filter(|seq| self.calls.get(seq).is_some_and(|c| c.id == id))
            .ok_or_else(|| SwitchError::UnknownCall(id.to_owned()))
    }

    pub(super) fn call(&self, seq: u64) -> &Call {
        &self.calls[&seq]
    }

    pub(super) fn call_mut(&mut self, seq: u64) -> &mut Call {
        self.calls.get_mut(&seq).expect("live call")
    }

    pub(super) fn known(&self, ext: &str) -> OpResult<()> {
        if self.agents.contains_key(ext) {
            Ok(())
        } else {
            Err(SwitchError::UnknownExtension(ext.to_owned()))
        }
    }

    /// The extension's leg on a call: unknown extension, or `InvalidState` if it is not on it.
    pub(super) fn leg_of(&self, seq: u64, ext: &str) -> OpResult<(usize, Phase)> {
        self.known(ext)?;
        let call = self.call(seq);
        call.leg(ext)
            .ok_or_else(|| SwitchError::InvalidState(format!("{ext} is not on call {}", call.id)))
    }

    pub(super) fn invalid(&self, seq: u64, ext: &str, phase: Phase, wanted: &str) -> SwitchError {
        let call = self.call(seq);
        SwitchError::InvalidState(format!(
            "call {} is {} at {ext}, needs {wanted}",
            call.id,
            call.reported(phase).as_str()
        ))
    }

    fn queue_by_number(&self, number: &str) -> Option<usize> {
        self.queues.iter().position(|q| q.number == number)
    }

    pub(super) fn queue_by_name_or_number(&self, key: &str) -> Option<usize> {
        self.queues
            .iter()
            .position(|q| q.name == key)
            .or_else(|| self.queue_by_number(key))
    }

    pub(super) fn target(&self, destination: &str) -> Target {
        if self.agents.contains_key(destination) {
            Target::Ext(destination.to_owned())
        } else if let Some(q) = self.queue_by_number(destination) {
            Target::Queue(q)
        } else {
            Target::Remote(destination.to_owned())
        }
    }

    /// A destination for `ext` to dial on (or away from) call `seq`.
    pub(super) fn check_destination(
        &self,
        destination: &str,
        ext: &str,
        seq: Option<u64>,
    ) -> OpResult<()> {
        if destination.is_empty() {
            return Err(SwitchError::InvalidState("empty destination".into()));
        }
        if destination == ext {
            return Err(SwitchError::InvalidState(format!(
                "{ext} cannot call itself"
            )));
        }
        if let Some(seq) = seq {
            let call = self.call(seq);
            if call.has_party(destination) || call.involves(destination) {
                return Err(SwitchError::InvalidState(format!(
                    "{destination} is already on call {}",
                    call.id
                )));
            }
        }
        Ok(())
    }

    pub(super) fn has_legs(&mut self, ext: &str) -> bool {
        let Some(seqs) = self.ext_calls.get_mut(ext) else {
            return false;
        };
        let calls = &self.calls;
        seqs.retain(|seq| calls.get(seq).is_some_and(|c| c.involves(ext)));
        if seqs.is_empty() {
            self.ext_calls.remove(ext);
            return false;
        }
        true
    }
}
