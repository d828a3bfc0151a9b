//! The simulator's actor: the whole simulated switch as plain data, and the loop that feeds
//! it messages and timers.
//!
//! Every operation first validates (so a refused command changes nothing and emits
//! nothing), then mutates the model, marking the calls it touched. `settle` then ends calls
//! that have fewer than two parties left, distributes waiting ACD calls, and emits a leg
//! snapshot for every leg whose snapshot differs from the last one sent: events follow from
//! the state instead of being hand-written per command, so a leg never misses a change.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use super::{
    ControlRequest, CreateCall, Msg, SimAgentView, SimCallView, SimError, SimPartyView, SimSettings,
};
use crate::switch::{
    AgentState, Attributes, CallRef, Direction, EventSink, Extension, LegEvent, LegState,
    SwitchCommand, SwitchError, SwitchEvent, SwitchReply,
};

type OpResult<T> = Result<T, SwitchError>;

/// A leg's own state; `Active` is reported as Connected or Conferenced by party count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Alerting,
    Dialing,
    Active,
    Held,
}

/// An external party's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemotePhase {
    /// Inbound caller nobody answered yet.
    Waiting,
    /// Outbound: being called, not answered yet.
    Ringing,
    Connected,
}

#[derive(Debug, Clone)]
enum Party {
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
    fn ext(ext: &str, phase: Phase) -> Party {
        Party::Ext {
            ext: ext.to_owned(),
            phase,
            correlation: None,
            acd_offer: false,
        }
    }

    fn address(&self) -> &str {
        match self {
            Party::Ext { ext, .. } => ext,
            Party::Remote { address, .. } => address,
        }
    }
}

#[derive(Debug)]
struct Call {
    id: CallRef,
    /// Placed by an external party (else by an extension).
    inbound: bool,
    parties: Vec<Party>,
    listeners: Vec<Extension>,
    /// Queue name the call came through.
    queue: Option<String>,
    /// Waiting in `queue` for an agent.
    waiting: bool,
    /// Agents that rerouted this call: it is not offered to them again.
    rerouted_by: BTreeSet<Extension>,
    /// Shared with every leg snapshot of the call.
    attributes: Attributes,
    dialled: Option<String>,
}

impl Call {
    fn leg(&self, ext: &str) -> Option<(usize, Phase)> {
        self.parties.iter().enumerate().find_map(|(i, p)| match p {
            Party::Ext { ext: e, phase, .. } if e == ext => Some((i, *phase)),
            _ => None,
        })
    }

    fn has_party(&self, address: &str) -> bool {
        self.parties.iter().any(|p| p.address() == address)
    }

    fn involves(&self, ext: &str) -> bool {
        self.leg(ext).is_some() || self.listeners.iter().any(|l| l == ext)
    }

    fn direction(&self) -> Direction {
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

    fn reported(&self, phase: Phase) -> LegState {
        match phase {
            Phase::Alerting => LegState::Alerting,
            Phase::Dialing => LegState::Dialing,
            Phase::Held => LegState::Held,
            Phase::Active if self.parties.len() >= 3 => LegState::Conferenced,
            Phase::Active => LegState::Connected,
        }
    }

    fn answered(&self) -> bool {
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
    fn leg_event(&self, ext: &str, state: LegState, cause: Option<&str>) -> LegEvent {
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
struct Agent {
    state: AgentState,
    /// Sorted, no duplicates (a `BTreeSet` would cost a 280-byte node for one queue).
    queues: Vec<String>,
    /// Logical time the agent last became Ready, was offered a call or finished its calls.
    idle_since: u64,
    last_dialled: Option<String>,
}

impl Agent {
    fn new() -> Agent {
        Agent {
            state: AgentState::LoggedOut,
            queues: Vec::new(),
            idle_since: 0,
            last_dialled: None,
        }
    }
}

#[derive(Debug)]
struct Queue {
    name: String,
    number: String,
    members: Vec<String>,
    waiting: VecDeque<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    RemoteAnswer(u64),
    RemoteHangup(u64),
}

/// Where a new or transferred call goes.
enum Target {
    Ext(Extension),
    Queue(usize),
    Remote(String),
}

/// The simulated switch.
#[derive(Debug)]
pub(super) struct Sim {
    agents: BTreeMap<Extension, Agent>,
    queues: Vec<Queue>,
    /// Live calls by sequence number (the id is `sim-<seq>`). Boxed: calls are added in
    /// sequence order, which leaves B-tree nodes about half full, and a node of unboxed
    /// calls would be mostly empty slots of a large struct.
    calls: BTreeMap<u64, Box<Call>>,
    next_call: u64,
    clock: u64,
    /// Last snapshot sent per (call, extension), without correlation: the very one the
    /// session manager holds (shared, not copied).
    sent: HashMap<(u64, Extension), Arc<LegEvent>>,
    /// Events of the operation in progress, sent before its answer.
    out: Vec<SwitchEvent>,
    /// Calls the operation in progress touched, in order.
    dirty: Vec<u64>,
    /// Calls each extension was seen on: a superset, pruned when read, so that telling
    /// whether an extension still has legs does not scan every call on the switch.
    ext_calls: HashMap<Extension, Vec<u64>>,
    timers: BTreeMap<(Instant, u64), Timer>,
    next_timer: u64,
    remote_answer_after: Option<Duration>,
}

/// The actor loop: one message or due timer at a time; events out before each answer.
pub(super) async fn run(mut sim: Sim, mut rx: mpsc::Receiver<Msg>, events: EventSink) {
    loop {
        let deadline = sim.timers.keys().next().map(|(at, _)| *at);
        let msg = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            () = sleep_until(deadline) => {
                sim.fire_timers(Instant::now());
                sim.flush(&events).await;
                continue;
            }
        };
        match msg {
            Msg::Command(request) => {
                let result = sim.command(request.command.clone());
                tracing::debug!(command = ?request.command, ?result, "sim command");
                sim.flush(&events).await;
                let _ = request.reply.send(result);
            }
            Msg::Control(control) => sim.control(control, &events).await,
        }
    }
    tracing::debug!("switch simulator stopped");
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn call_seq(id: &str) -> Option<u64> {
    id.strip_prefix("sim-")?.parse().ok()
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
        }
    }

    async fn flush(&mut self, events: &EventSink) {
        for event in std::mem::take(&mut self.out) {
            if !events.send(event).await {
                tracing::debug!("switch event dropped: the session manager is gone");
            }
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn touch(&mut self, seq: u64) {
        if !self.dirty.contains(&seq) {
            self.dirty.push(seq);
        }
        self.index_call(seq);
    }

    /// Records the extensions now on call `seq` in `ext_calls`.
    fn index_call(&mut self, seq: u64) {
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
            .chain(call.listeners.iter());
        for ext in exts {
            let seqs = ext_calls.entry(ext.clone()).or_default();
            if !seqs.contains(&seq) {
                seqs.push(seq);
            }
        }
    }

    fn schedule(&mut self, after: Duration, timer: Timer) {
        self.next_timer += 1;
        self.timers
            .insert((Instant::now() + after, self.next_timer), timer);
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            // A timer whose call moved on (answered, ended) is simply stale.
            let result = match entry.remove() {
                Timer::RemoteAnswer(seq) if self.calls.contains_key(&seq) => {
                    self.remote_answer(seq)
                }
                Timer::RemoteHangup(seq) if self.calls.contains_key(&seq) => {
                    self.remote_hangup(seq)
                }
                _ => continue,
            };
            if result.is_ok() {
                self.settle();
            }
        }
    }

    // ---- lookups -------------------------------------------------------------------------

    fn find(&self, id: &str) -> OpResult<u64> {
        call_seq(id)
            .filter(|seq| self.calls.get(seq).is_some_and(|c| c.id == id))
            .ok_or_else(|| SwitchError::UnknownCall(id.to_owned()))
    }

    fn call(&self, seq: u64) -> &Call {
        &self.calls[&seq]
    }

    fn call_mut(&mut self, seq: u64) -> &mut Call {
        self.calls.get_mut(&seq).expect("live call")
    }

    fn known(&self, ext: &str) -> OpResult<()> {
        if self.agents.contains_key(ext) {
            Ok(())
        } else {
            Err(SwitchError::UnknownExtension(ext.to_owned()))
        }
    }

    /// The extension's leg on a call: unknown extension, or `InvalidState` if it is not on it.
    fn leg_of(&self, seq: u64, ext: &str) -> OpResult<(usize, Phase)> {
        self.known(ext)?;
        let call = self.call(seq);
        call.leg(ext)
            .ok_or_else(|| SwitchError::InvalidState(format!("{ext} is not on call {}", call.id)))
    }

    fn invalid(&self, seq: u64, ext: &str, phase: Phase, wanted: &str) -> SwitchError {
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

    fn queue_by_name_or_number(&self, key: &str) -> Option<usize> {
        self.queues
            .iter()
            .position(|q| q.name == key)
            .or_else(|| self.queue_by_number(key))
    }

    fn target(&self, destination: &str) -> Target {
        if self.agents.contains_key(destination) {
            Target::Ext(destination.to_owned())
        } else if let Some(q) = self.queue_by_number(destination) {
            Target::Queue(q)
        } else {
            Target::Remote(destination.to_owned())
        }
    }

    /// A destination for `ext` to dial on (or away from) call `seq`.
    fn check_destination(&self, destination: &str, ext: &str, seq: Option<u64>) -> OpResult<()> {
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

    fn has_legs(&mut self, ext: &str) -> bool {
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

    // ---- events --------------------------------------------------------------------------

    /// Emit the final snapshot of a leg (whose call is `call`) and forget it. The parties are
    /// the ones the agent last saw, so a dropped call still names who was on it.
    fn final_event(&mut self, call: &Call, seq: u64, ext: &str, state: LegState, cause: &str) {
        let mut event = call.leg_event(ext, state, Some(cause));
        if let Some(last) = self.sent.remove(&(seq, ext.to_owned())) {
            event.parties = Arc::unwrap_or_clone(last).parties;
        }
        self.out.push(SwitchEvent::Leg(Arc::new(event)));
    }

    /// The extension leaves call `seq` (as a party or a listener) with a final event.
    fn end_leg(&mut self, seq: u64, ext: &str, state: LegState, cause: &str) {
        let call = self.calls.remove(&seq).expect("live call");
        self.final_event(&call, seq, ext, state, cause);
        self.calls.insert(seq, call);
        let call = self.call_mut(seq);
        call.parties.retain(|p| p.address() != ext);
        call.listeners.retain(|l| l != ext);
        self.touch(seq);
        self.leg_ended(ext);
    }

    fn leg_ended(&mut self, ext: &str) {
        if !self.has_legs(ext) {
            let now = self.tick();
            if let Some(agent) = self.agents.get_mut(ext) {
                agent.idle_since = now;
            }
        }
    }

    /// Send a snapshot for every leg of the call that changed since its last one.
    fn sync_call(&mut self, seq: u64) {
        self.index_call(seq);
        let call = &self.calls[&seq];
        let mut changed = Vec::new();
        for (i, party) in call.parties.iter().enumerate() {
            if let Party::Ext {
                ext,
                phase,
                correlation,
                ..
            } = party
            {
                let event = call.leg_event(ext, call.reported(*phase), None);
                changed.push((Some(i), event, correlation.clone()));
            }
        }
        for ext in &call.listeners {
            changed.push((None, call.leg_event(ext, LegState::Connected, None), None));
        }
        for (index, event, correlation) in changed {
            let key = (seq, event.extension.clone());
            if correlation.is_none() && self.sent.get(&key).is_some_and(|last| **last == event) {
                continue;
            }
            let event = Arc::new(event);
            self.sent.insert(key, Arc::clone(&event));
            // The correlation rides on this one event; the snapshot kept is without it.
            let event = match correlation {
                None => event,
                Some(_) => Arc::new(LegEvent {
                    correlation,
                    ..(*event).clone()
                }),
            };
            self.out.push(SwitchEvent::Leg(event));
            if let Some(i) = index
                && let Party::Ext { correlation, .. } = &mut self.call_mut(seq).parties[i]
            {
                *correlation = None;
            }
        }
    }

    /// End a call with fewer than two parties (unless one caller waits in a queue). Returns
    /// whether it ended.
    fn end_if_dead(&mut self, seq: u64) -> bool {
        let call = self.call(seq);
        if call.parties.len() >= 2 || (call.waiting && !call.parties.is_empty()) {
            return false;
        }
        let legs: Vec<(Extension, Phase)> = call
            .parties
            .iter()
            .filter_map(|p| match p {
                Party::Ext { ext, phase, .. } => Some((ext.clone(), *phase)),
                Party::Remote { .. } => None,
            })
            .collect();
        let listeners = call.listeners.clone();
        let call = self.calls.remove(&seq).expect("live call");
        for (ext, phase) in &legs {
            let cause = if *phase == Phase::Alerting {
                "abandoned"
            } else {
                "remote_hangup"
            };
            self.final_event(&call, seq, ext, LegState::Dropped, cause);
        }
        for ext in &listeners {
            self.final_event(&call, seq, ext, LegState::Dropped, "remote_hangup");
        }
        for queue in &mut self.queues {
            queue.waiting.retain(|s| *s != seq);
        }
        for (ext, _) in &legs {
            self.leg_ended(ext);
        }
        for ext in &listeners {
            self.leg_ended(ext);
        }
        tracing::debug!(call = %call.id, "sim call ended");
        true
    }

    /// After a successful operation: end the touched calls that lost their parties,
    /// distribute waiting calls, then send the changed snapshots of the touched and offered
    /// calls (once per leg, with the final state).
    fn settle(&mut self) {
        let touched = std::mem::take(&mut self.dirty);
        let mut alive = Vec::new();
        for seq in touched {
            if self.calls.contains_key(&seq) && !self.end_if_dead(seq) {
                alive.push(seq);
            }
        }
        self.distribute();
        for seq in std::mem::take(&mut self.dirty) {
            if !alive.contains(&seq) {
                alive.push(seq);
            }
        }
        for seq in alive {
            if self.calls.contains_key(&seq) {
                self.sync_call(seq);
            }
        }
    }

    /// Offer waiting calls, queue by queue in FIFO order, to eligible agents.
    fn distribute(&mut self) {
        if self.queues.iter().all(|q| q.waiting.is_empty()) {
            return;
        }
        let mut alerting = BTreeSet::new();
        let mut busy = BTreeSet::new();
        for call in self.calls.values() {
            for party in &call.parties {
                if let Party::Ext { ext, phase, .. } = party {
                    busy.insert(ext.clone());
                    if *phase == Phase::Alerting {
                        alerting.insert(ext.clone());
                    }
                }
            }
            busy.extend(call.listeners.iter().cloned());
        }
        for qi in 0..self.queues.len() {
            let mut i = 0;
            while i < self.queues[qi].waiting.len() {
                let seq = self.queues[qi].waiting[i];
                let call = &self.calls[&seq];
                let name = &self.queues[qi].name;
                let best = self
                    .agents
                    .iter()
                    .filter(|(ext, agent)| {
                        agent.state == AgentState::Ready
                            && agent.queues.contains(name)
                            && !alerting.contains(*ext)
                            && !call.rerouted_by.contains(*ext)
                            && !call.involves(ext)
                    })
                    .min_by_key(|(ext, agent)| (busy.contains(*ext), agent.idle_since))
                    .map(|(ext, _)| ext.clone());
                let Some(ext) = best else {
                    i += 1;
                    continue;
                };
                self.queues[qi].waiting.remove(i);
                let now = self.tick();
                if let Some(agent) = self.agents.get_mut(&ext) {
                    agent.idle_since = now;
                }
                let call = self.call_mut(seq);
                call.waiting = false;
                call.parties.push(Party::Ext {
                    ext: ext.clone(),
                    phase: Phase::Alerting,
                    correlation: None,
                    acd_offer: true,
                });
                alerting.insert(ext.clone());
                busy.insert(ext);
                self.touch(seq);
            }
        }
    }

    // ---- commands ------------------------------------------------------------------------

    pub(super) fn command(&mut self, command: SwitchCommand) -> OpResult<SwitchReply> {
        use SwitchCommand as C;
        let result = match command {
            C::SetAgentState {
                extension,
                state,
                queues,
            } => {
                self.set_agent_state(&extension, state, &queues);
                Ok(SwitchReply::Done)
            }
            C::MakeCall {
                extension,
                destination,
                correlation,
            } => self
                .make_call(&extension, destination.trim(), Some(correlation))
                .map(SwitchReply::NewCall),
            C::Answer { call, extension } => self.answer(&call, &extension),
            C::Hold { call, extension } => self.hold(&call, &extension),
            C::Retrieve { call, extension } => self.retrieve(&call, &extension),
            C::Clear { call, extension } => self.clear(&call, &extension),
            C::SingleStepTransfer {
                call,
                extension,
                destination,
            } => self.single_step_transfer(&call, &extension, destination.trim()),
            C::Consult {
                call,
                extension,
                destination,
            } => self.consult(&call, &extension, destination.trim()),
            C::Conference {
                held,
                consult,
                extension,
            } => self.conference(&held, &consult, &extension),
            C::TransferConsult {
                held,
                consult,
                extension,
            } => self.transfer_consult(&held, &consult, &extension),
            C::DropParty {
                call,
                extension,
                party,
            } => self.drop_party(&call, &extension, &party),
            C::Listen { call, supervisor } => self.listen(&call, &supervisor),
            C::ListenEnd { call, supervisor } => self.listen_end(&call, &supervisor),
            C::Reroute { call, extension } => self.reroute(&call, &extension),
            C::SetCallData { call, key, value } => self.set_call_data(&call, key, value),
        };
        if result.is_ok() {
            self.settle();
        } else {
            debug_assert!(self.out.is_empty() && self.dirty.is_empty());
        }
        result
    }

    fn set_agent_state(&mut self, ext: &str, state: AgentState, queues: &[String]) {
        let join: BTreeSet<String> = if queues.is_empty() {
            self.queues
                .iter()
                .filter(|q| q.members.is_empty() || q.members.iter().any(|m| m == ext))
                .map(|q| q.name.clone())
                .collect()
        } else {
            queues
                .iter()
                .filter_map(|key| match self.queue_by_name_or_number(key) {
                    Some(q) => Some(self.queues[q].name.clone()),
                    None => {
                        tracing::warn!(extension = ext, queue = %key, "sim: no such queue");
                        None
                    }
                })
                .collect()
        };
        let now = self.tick();
        let agent = self.agents.entry(ext.to_owned()).or_insert_with(Agent::new);
        if agent.state == state {
            return;
        }
        if state == AgentState::LoggedOut {
            agent.queues.clear();
        } else if agent.state == AgentState::LoggedOut {
            agent.queues = join.into_iter().collect();
        }
        if state == AgentState::Ready {
            agent.idle_since = now;
        }
        agent.state = state.clone();
        self.out.push(SwitchEvent::Agent {
            extension: ext.to_owned(),
            state,
        });
    }

    fn new_call(&mut self, inbound: bool, caller: Party, dnis: &str) -> u64 {
        let seq = self.next_call;
        self.next_call += 1;
        let attributes = Attributes::from([
            ("ani".to_owned(), caller.address().to_owned()),
            ("dnis".to_owned(), dnis.to_owned()),
        ]);
        // Room for the usual two parties (caller and callee), no more.
        let mut parties = Vec::with_capacity(2);
        parties.push(caller);
        self.calls.insert(
            seq,
            Box::new(Call {
                id: format!("sim-{seq}"),
                inbound,
                parties,
                listeners: Vec::new(),
                queue: None,
                waiting: false,
                rerouted_by: BTreeSet::new(),
                attributes,
                dialled: None,
            }),
        );
        self.touch(seq);
        seq
    }

    /// Route call `seq` to `target`; `by` is the extension that dialled (for
    /// `last_dialled`), `remote` the state an external party starts in.
    fn place(&mut self, seq: u64, target: Target, by: Option<&str>, remote: RemotePhase) {
        self.touch(seq);
        match target {
            Target::Ext(ext) => self
                .call_mut(seq)
                .parties
                .push(Party::ext(&ext, Phase::Alerting)),
            Target::Queue(q) => {
                let name = self.queues[q].name.clone();
                let call = self.call_mut(seq);
                call.queue = Some(name);
                call.waiting = true;
                self.queues[q].waiting.push_back(seq);
            }
            Target::Remote(address) => {
                if let Some(agent) = by.and_then(|ext| self.agents.get_mut(ext)) {
                    agent.last_dialled = Some(address.clone());
                }
                let call = self.call_mut(seq);
                call.dialled = Some(address.clone());
                call.parties.push(Party::Remote {
                    address,
                    phase: remote,
                });
                if remote == RemotePhase::Ringing
                    && let Some(after) = self.remote_answer_after
                {
                    self.schedule(after, Timer::RemoteAnswer(seq));
                }
            }
        }
    }

    fn make_call(
        &mut self,
        ext: &str,
        destination: &str,
        correlation: Option<String>,
    ) -> OpResult<CallRef> {
        self.known(ext)?;
        self.check_destination(destination, ext, None)?;
        let caller = Party::Ext {
            ext: ext.to_owned(),
            phase: Phase::Dialing,
            correlation,
            acd_offer: false,
        };
        let seq = self.new_call(false, caller, destination);
        let target = self.target(destination);
        self.place(seq, target, Some(ext), RemotePhase::Ringing);
        Ok(self.call(seq).id.clone())
    }

    fn answer(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (i, phase) = self.leg_of(seq, ext)?;
        if phase != Phase::Alerting {
            return Err(self.invalid(seq, ext, phase, "alerting"));
        }
        let call = self.call_mut(seq);
        for (j, party) in call.parties.iter_mut().enumerate() {
            match party {
                Party::Ext { phase, .. } if j == i || *phase == Phase::Dialing => {
                    *phase = Phase::Active
                }
                Party::Remote { phase, .. } if *phase == RemotePhase::Waiting => {
                    *phase = RemotePhase::Connected
                }
                _ => {}
            }
        }
        self.touch(seq);
        Ok(SwitchReply::Done)
    }

    fn set_phase(&mut self, seq: u64, i: usize, to: Phase) {
        if let Party::Ext { phase, .. } = &mut self.call_mut(seq).parties[i] {
            *phase = to;
        }
        self.touch(seq);
    }

    /// The extension's leg, which must be a two-party `Connected` one.
    fn connected_leg(&self, seq: u64, ext: &str) -> OpResult<usize> {
        let (i, phase) = self.leg_of(seq, ext)?;
        if self.call(seq).reported(phase) != LegState::Connected {
            return Err(self.invalid(seq, ext, phase, "connected"));
        }
        Ok(i)
    }

    fn hold(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let i = self.connected_leg(seq, ext)?;
        self.set_phase(seq, i, Phase::Held);
        Ok(SwitchReply::Done)
    }

    fn retrieve(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (i, phase) = self.leg_of(seq, ext)?;
        if phase != Phase::Held {
            return Err(self.invalid(seq, ext, phase, "held"));
        }
        self.set_phase(seq, i, Phase::Active);
        Ok(SwitchReply::Done)
    }

    fn clear(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        if !self.call(seq).listeners.iter().any(|l| l == ext) {
            self.leg_of(seq, ext)?;
        }
        self.end_leg(seq, ext, LegState::Dropped, "normal");
        Ok(SwitchReply::Done)
    }

    fn single_step_transfer(
        &mut self,
        id: &str,
        ext: &str,
        destination: &str,
    ) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (_, phase) = self.leg_of(seq, ext)?;
        if !matches!(phase, Phase::Active | Phase::Held) || self.call(seq).parties.len() > 2 {
            return Err(self.invalid(seq, ext, phase, "connected or held"));
        }
        self.check_destination(destination, ext, Some(seq))?;
        self.end_leg(seq, ext, LegState::Transferred, "transferred");
        let target = self.target(destination);
        self.place(seq, target, Some(ext), RemotePhase::Connected);
        Ok(SwitchReply::Done)
    }

    fn consult(&mut self, id: &str, ext: &str, destination: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let i = self.connected_leg(seq, ext)?;
        self.check_destination(destination, ext, Some(seq))?;
        self.set_phase(seq, i, Phase::Held);
        let new = self.make_call(ext, destination, None)?;
        Ok(SwitchReply::NewCall(new))
    }

    /// Checks for Conference / TransferConsult: the agent holds `held` and talks on
    /// `consult`, and nobody is on both.
    fn consult_pair(&self, held: &str, consult: &str, ext: &str) -> OpResult<(u64, u64)> {
        let hs = self.find(held)?;
        let ks = self.find(consult)?;
        if hs == ks {
            return Err(SwitchError::InvalidState(format!(
                "{held} is both the held and the consultation call"
            )));
        }
        let (_, hp) = self.leg_of(hs, ext)?;
        if hp != Phase::Held {
            return Err(self.invalid(hs, ext, hp, "held"));
        }
        let (_, kp) = self.leg_of(ks, ext)?;
        if kp != Phase::Active {
            return Err(self.invalid(ks, ext, kp, "connected"));
        }
        let h = self.call(hs);
        let k = self.call(ks);
        if let Some(p) = k
            .parties
            .iter()
            .find(|p| p.address() != ext && h.has_party(p.address()))
        {
            return Err(SwitchError::InvalidState(format!(
                "{} is on both calls",
                p.address()
            )));
        }
        Ok((hs, ks))
    }

    /// Move everybody but `ext` from the consultation call into the held one; the
    /// consultation call's legs end (`ext`'s with `own`), its id disappears.
    fn merge(&mut self, hs: u64, ks: u64, ext: &str, own: LegState, cause: &str) {
        let consult = self.calls.remove(&ks).expect("live call");
        self.final_event(&consult, ks, ext, own, cause);
        for party in &consult.parties {
            if let Party::Ext { ext: other, .. } = party
                && other != ext
            {
                self.final_event(&consult, ks, other, LegState::Dropped, cause);
            }
        }
        for listener in &consult.listeners {
            self.final_event(&consult, ks, listener, LegState::Dropped, cause);
            self.leg_ended(listener);
        }
        for queue in &mut self.queues {
            queue.waiting.retain(|s| *s != ks);
        }
        let moved = consult.parties.into_iter().filter_map(|p| match p {
            Party::Ext { ext: e, .. } if e == ext => None,
            Party::Ext { ext, phase, .. } => Some(Party::Ext {
                ext,
                phase,
                correlation: None,
                acd_offer: false,
            }),
            remote => Some(remote),
        });
        self.call_mut(hs).parties.extend(moved);
        self.touch(hs);
    }

    fn conference(&mut self, held: &str, consult: &str, ext: &str) -> OpResult<SwitchReply> {
        let (hs, ks) = self.consult_pair(held, consult, ext)?;
        self.merge(hs, ks, ext, LegState::Dropped, "conferenced");
        let (i, _) = self.call(hs).leg(ext).expect("checked");
        self.set_phase(hs, i, Phase::Active);
        Ok(SwitchReply::Done)
    }

    fn transfer_consult(&mut self, held: &str, consult: &str, ext: &str) -> OpResult<SwitchReply> {
        let (hs, ks) = self.consult_pair(held, consult, ext)?;
        self.end_leg(hs, ext, LegState::Transferred, "transferred");
        self.merge(hs, ks, ext, LegState::Transferred, "transferred");
        self.leg_ended(ext);
        Ok(SwitchReply::Done)
    }

    fn drop_party(&mut self, id: &str, ext: &str, party: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (_, phase) = self.leg_of(seq, ext)?;
        let call = self.call(seq);
        if call.reported(phase) != LegState::Conferenced {
            return Err(self.invalid(seq, ext, phase, "conferenced"));
        }
        if party == ext {
            return Err(SwitchError::InvalidState(format!(
                "{ext} cannot drop itself; clear the call instead"
            )));
        }
        let Some(target) = call.parties.iter().find(|p| p.address() == party) else {
            return Err(SwitchError::InvalidState(format!(
                "{party} is not a party of call {id}"
            )));
        };
        if matches!(target, Party::Ext { .. }) {
            self.end_leg(seq, party, LegState::Dropped, "normal");
        } else {
            self.call_mut(seq).parties.retain(|p| p.address() != party);
            self.touch(seq);
        }
        Ok(SwitchReply::Done)
    }

    fn listen(&mut self, id: &str, supervisor: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        self.known(supervisor)?;
        let call = self.call(seq);
        if call.involves(supervisor) {
            return Err(SwitchError::InvalidState(format!(
                "{supervisor} is already on call {id}"
            )));
        }
        if !call.answered() {
            return Err(SwitchError::InvalidState(format!(
                "call {id} is not answered yet"
            )));
        }
        self.call_mut(seq).listeners.push(supervisor.to_owned());
        self.touch(seq);
        Ok(SwitchReply::Done)
    }

    fn listen_end(&mut self, id: &str, supervisor: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        self.known(supervisor)?;
        if !self.call(seq).listeners.iter().any(|l| l == supervisor) {
            return Err(SwitchError::InvalidState(format!(
                "{supervisor} is not listening to call {id}"
            )));
        }
        self.end_leg(seq, supervisor, LegState::Dropped, "normal");
        Ok(SwitchReply::Done)
    }

    fn reroute(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (i, phase) = self.leg_of(seq, ext)?;
        let call = self.call(seq);
        let acd = matches!(
            call.parties[i],
            Party::Ext {
                acd_offer: true,
                ..
            }
        );
        let queue = call
            .queue
            .as_deref()
            .and_then(|name| self.queues.iter().position(|q| q.name == name));
        let (Phase::Alerting, true, Some(q)) = (phase, acd, queue) else {
            return Err(self.invalid(seq, ext, phase, "an alerting ACD call"));
        };
        self.end_leg(seq, ext, LegState::Dropped, "rerouted");
        let call = self.call_mut(seq);
        call.rerouted_by.insert(ext.to_owned());
        call.waiting = true;
        self.queues[q].waiting.push_front(seq);
        Ok(SwitchReply::Done)
    }

    fn set_call_data(&mut self, id: &str, key: String, value: String) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        // Carried by the legs' next events; no event of its own (nothing visible changed).
        let call = self.call_mut(seq);
        call.attributes.insert(key, value);
        let attributes = call.attributes.clone();
        for ((s, _), event) in self.sent.iter_mut() {
            if *s == seq {
                // A copy if the session manager still holds this snapshot: it keeps what it
                // was sent.
                Arc::make_mut(event).attributes = attributes.clone();
            }
        }
        Ok(SwitchReply::Done)
    }

    // ---- the outside world ---------------------------------------------------------------

    async fn control(&mut self, control: ControlRequest, events: &EventSink) {
        fn map<T>(result: OpResult<T>) -> Result<T, SimError> {
            result.map_err(|e| match e {
                SwitchError::UnknownCall(id) => SimError::UnknownCall(id),
                SwitchError::InvalidState(why) => SimError::InvalidState(why),
                other => SimError::BadRequest(other.to_string()),
            })
        }
        match control {
            ControlRequest::CreateCall(call, reply) => {
                let result = self.create_call(call);
                self.done(result.is_ok());
                self.flush(events).await;
                let _ = reply.send(result);
            }
            ControlRequest::RemoteAnswer(id, reply) => {
                let result = self.find(&id).and_then(|seq| self.remote_answer(seq));
                self.done(result.is_ok());
                self.flush(events).await;
                let _ = reply.send(map(result));
            }
            ControlRequest::RemoteHangup(id, reply) => {
                let result = self.find(&id).and_then(|seq| self.remote_hangup(seq));
                self.done(result.is_ok());
                self.flush(events).await;
                let _ = reply.send(map(result));
            }
            ControlRequest::SetAgentState(ext, state, reply) => {
                self.set_agent_state(&ext, state, &[]);
                self.done(true);
                self.flush(events).await;
                let _ = reply.send(Ok(()));
            }
            ControlRequest::ListCalls(reply) => {
                let _ = reply.send(self.calls.values().map(|c| call_view(c)).collect());
            }
            ControlRequest::ListAgents(reply) => {
                let _ = reply.send(self.agent_views());
            }
        }
    }

    fn done(&mut self, ok: bool) {
        if ok {
            self.settle();
        } else {
            debug_assert!(self.out.is_empty() && self.dirty.is_empty());
        }
    }

    fn create_call(&mut self, request: CreateCall) -> Result<CallRef, SimError> {
        let from = request.from.trim();
        if from.is_empty() {
            return Err(SimError::BadRequest("the caller (from) is required".into()));
        }
        let (target, dnis) = match (request.to.as_deref(), request.queue.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(SimError::BadRequest(
                    "give either to or queue, not both".into(),
                ));
            }
            (None, None) => return Err(SimError::BadRequest("to or queue is required".into())),
            (Some(to), None) => match self.target(to.trim()) {
                Target::Remote(_) => return Err(SimError::UnknownDestination(to.into())),
                Target::Ext(ext) => (Target::Ext(ext), to.trim().to_owned()),
                Target::Queue(q) => (Target::Queue(q), self.queues[q].number.clone()),
            },
            (None, Some(queue)) => match self.queue_by_name_or_number(queue.trim()) {
                Some(q) => (Target::Queue(q), self.queues[q].number.clone()),
                None => return Err(SimError::UnknownDestination(queue.into())),
            },
        };
        let caller = Party::Remote {
            address: from.to_owned(),
            phase: RemotePhase::Waiting,
        };
        let seq = self.new_call(true, caller, &dnis);
        self.call_mut(seq).attributes.extend(request.attributes);
        self.place(seq, target, None, RemotePhase::Waiting);
        if let Some(after) = request.hangup_after {
            self.schedule(after, Timer::RemoteHangup(seq));
        }
        Ok(self.call(seq).id.clone())
    }

    fn remote_answer(&mut self, seq: u64) -> OpResult<()> {
        let call = self.call_mut(seq);
        let Some(i) = call.parties.iter().position(|p| {
            matches!(
                p,
                Party::Remote {
                    phase: RemotePhase::Ringing,
                    ..
                }
            )
        }) else {
            return Err(SwitchError::InvalidState(format!(
                "no external party of call {} is ringing",
                call.id
            )));
        };
        for (j, party) in call.parties.iter_mut().enumerate() {
            match party {
                Party::Remote { phase, .. } if j == i => *phase = RemotePhase::Connected,
                Party::Ext { phase, .. } if *phase == Phase::Dialing => *phase = Phase::Active,
                _ => {}
            }
        }
        self.touch(seq);
        Ok(())
    }

    fn remote_hangup(&mut self, seq: u64) -> OpResult<()> {
        let call = self.call_mut(seq);
        if !call
            .parties
            .iter()
            .any(|p| matches!(p, Party::Remote { .. }))
        {
            return Err(SwitchError::InvalidState(format!(
                "call {} has no external party",
                call.id
            )));
        }
        call.parties.retain(|p| matches!(p, Party::Ext { .. }));
        self.touch(seq);
        Ok(())
    }

    fn agent_views(&self) -> Vec<SimAgentView> {
        self.agents
            .iter()
            .map(|(ext, agent)| {
                let (state, reason, custom) = match &agent.state {
                    AgentState::LoggedOut => ("logged_out", None, None),
                    AgentState::Ready => ("ready", None, None),
                    AgentState::NotReady { reason } => ("not_ready", reason.clone(), None),
                    AgentState::Custom { state } => ("custom", None, Some(state.clone())),
                };
                SimAgentView {
                    extension: ext.clone(),
                    state,
                    reason,
                    custom,
                    queues: agent.queues.to_vec(),
                    calls: self
                        .calls
                        .values()
                        .filter(|c| c.involves(ext))
                        .map(|c| c.id.clone())
                        .collect(),
                    last_dialled: agent.last_dialled.clone(),
                }
            })
            .collect()
    }
}

fn call_view(call: &Call) -> SimCallView {
    SimCallView {
        id: call.id.clone(),
        direction: call.direction().as_str(),
        queue: call.queue.clone(),
        waiting: call.waiting,
        parties: call
            .parties
            .iter()
            .map(|p| match p {
                Party::Ext { ext, phase, .. } => SimPartyView {
                    address: ext.clone(),
                    kind: "extension",
                    state: call.reported(*phase).as_str(),
                },
                Party::Remote { address, phase } => SimPartyView {
                    address: address.clone(),
                    kind: "external",
                    state: match phase {
                        RemotePhase::Waiting => "waiting",
                        RemotePhase::Ringing => "ringing",
                        RemotePhase::Connected => "connected",
                    },
                },
            })
            .collect(),
        listeners: call.listeners.clone(),
        attributes: call.attributes.to_map(),
        dialled: call.dialled.clone(),
    }
}
