//! The session actor's state and its one loop.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::config::{AgentsConfig, OverflowPolicy};
use crate::domain::{AppUrl, AttachedData, UserId, Workmode};
use crate::notify::{
    EndReason, Feedback, Notifier, OutboundEvent, Outbox, PushError, Spool, SpoolContents, SpoolOp,
    StoredSubscription, Ticket,
};
use crate::numbers::E164;
use crate::switch::{
    AgentState, Capability, Direction, LegEvent, LegState, SwitchAdapter, SwitchCommand,
    SwitchError, SwitchEvent, SwitchReply, SwitchRequest,
};

use super::view::{self, AgentStatus, InteractionStatus, StatusSnapshot, SubscriptionStatus};
use super::workmodes;
use super::{
    Answer, AttributesView, Command, EventKind, IciEvent, Operation, PhoneCallView,
    PresenceQueueView, SessionError, Target, Wire,
};

type Reply = oneshot::Sender<Result<Answer, SessionError>>;

/// Call attribute an IVR sets with item attached data before the agent gets the call
/// (ICI.md section 6); matched case-insensitively (`Sap_Cad`, `SAP_CAD`).
const SAP_CAD: &str = "sap_cad";

/// Checks for interactions past `[agents] max_interaction_age` per that age, so one is
/// ended at most a tenth of the age late.
const REAP_CHECKS_PER_AGE: u32 = 10;
/// The reaper's shortest period, so a tiny age (tests) does not keep the actor busy.
const REAP_PERIOD_MIN: Duration = Duration::from_millis(10);
/// The reaper's longest period: a ghost call is ended at most a minute late, and a check a
/// minute costs nothing.
const REAP_PERIOD_MAX: Duration = Duration::from_secs(60);

/// One agent (SAP user).
#[derive(Debug)]
struct Agent {
    user: UserId,
    extension: Option<String>,
    workmode: Workmode,
    reason: Option<String>,
    channels: Vec<String>,
    queues: Vec<String>,
    /// Interactions SAP sees, in arrival order (at most `max_interactions`). Each is the
    /// switch's last snapshot of the leg, shared with the adapter rather than copied.
    visible: Vec<Arc<LegEvent>>,
    /// Interactions waiting behind the cap, oldest first; SAP has never heard of them.
    waiting: VecDeque<Arc<LegEvent>>,
}

/// A leg's identity, its call and extension, as a key of [`Actor::last_seen`]. It holds the
/// snapshot the agent's interaction holds too, rather than a copy of the two strings.
#[derive(Debug, Clone)]
struct LegKey(Arc<LegEvent>);

impl PartialEq for LegKey {
    fn eq(&self, other: &LegKey) -> bool {
        self.0.call == other.0.call && self.0.extension == other.0.extension
    }
}

impl Eq for LegKey {}

impl std::hash::Hash for LegKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.call.hash(state);
        self.0.extension.hash(state);
    }
}

/// One subscription: events for a user or container, to one appURL.
struct Subscription {
    id: u64,
    target: Target,
    url: AppUrl,
    app_ids: Vec<String>,
    sequence: u64,
    outbox: Outbox,
}

pub(super) struct Actor {
    config: Arc<Config>,
    switch: Arc<dyn SwitchAdapter>,
    notifier: Notifier,
    wire: Wire,
    link_up: bool,
    agents: BTreeMap<UserId, Agent>,
    by_extension: HashMap<String, UserId>,
    /// Attached data by call id (or by item id before its call exists). Shared with the
    /// views that carry it; changed copy-on-write.
    attached: HashMap<String, Arc<AttachedData>>,
    /// Item id (from `create`) → the call placed for it.
    aliases: HashMap<String, String>,
    /// Item ids handed out by `create` (or named in `dial`) whose call has not appeared yet.
    pending_items: HashMap<String, Instant>,
    /// Attached-data keys no live call had at the last reaper tick (removed if still so at
    /// the next one: a blind transfer re-alerts within that time).
    orphans: HashSet<String>,
    /// Consultations asked for: consulting extension → the call it holds. The consultation
    /// call inherits that call's attached data (warm transfer screen pop).
    consults: HashMap<String, String>,
    subscriptions: Vec<Subscription>,
    /// Positions in `subscriptions` by [`sub_key`] of their target, so that an event finds
    /// its subscriptions without visiting all of them. Rebuilt when one is removed.
    sub_index: HashMap<String, Vec<usize>>,
    next_id: u64,
    /// When each visible or waiting leg (call, extension) last changed, for the
    /// `max_interaction_age` reaper.
    last_seen: HashMap<LegKey, Instant>,
    /// The actor's own command queue, for tasks that report back (weak: it never keeps
    /// the actor alive).
    myself: mpsc::WeakSender<Command>,
    /// How answering tasks learn when what an operation changed is on disk.
    confirm: Confirm,
    /// The actor's end of [`Confirm::barriers`], taken by [`Actor::run`].
    barriers: Option<mpsc::Receiver<oneshot::Sender<Ticket>>>,
}

impl Actor {
    pub(super) fn new(
        config: Arc<Config>,
        switch: Arc<dyn SwitchAdapter>,
        notifier: Notifier,
        wire: Wire,
        myself: mpsc::WeakSender<Command>,
    ) -> Self {
        let (barriers_tx, barriers) = mpsc::channel(super::COMMAND_QUEUE);
        let confirm = Confirm {
            barriers: barriers_tx,
            spool: notifier.spool().clone(),
        };
        Actor {
            config,
            link_up: switch.link_up_at_start(),
            switch,
            notifier,
            wire,
            agents: BTreeMap::new(),
            by_extension: HashMap::new(),
            attached: HashMap::new(),
            aliases: HashMap::new(),
            pending_items: HashMap::new(),
            orphans: HashSet::new(),
            consults: HashMap::new(),
            subscriptions: Vec::new(),
            sub_index: HashMap::new(),
            next_id: 1,
            last_seen: HashMap::new(),
            myself,
            confirm,
            barriers: Some(barriers),
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut switch_events: mpsc::Receiver<SwitchEvent>,
        mut feedback: mpsc::Receiver<Feedback>,
    ) {
        let max_age = self.config.agents.max_interaction_age;
        // Without a maximum age the reaper's branch is off and its timer never polled.
        let period = max_age.map_or(REAP_PERIOD_MAX, |age| {
            (age / REAP_CHECKS_PER_AGE).clamp(REAP_PERIOD_MIN, REAP_PERIOD_MAX)
        });
        let mut reaper = tokio::time::interval(period);
        reaper.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut barriers = self.barriers.take().expect("the actor runs once");
        loop {
            tokio::select! {
                biased;
                Some(event) = switch_events.recv() => self.on_switch_event(event),
                Some(fb) = feedback.recv() => self.on_feedback(fb),
                // After the switch events: everything the switch reported before a barrier
                // request was sent has been taken and queued for the spool.
                Some(barrier) = barriers.recv() => {
                    let _ = barrier.send(self.notifier.spool().last_queued());
                }
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = reaper.tick(), if max_age.is_some() => {
                    self.reap_older_than(max_age.unwrap_or_default());
                }
            }
        }
        debug!("session manager stopped");
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Execute {
                operation,
                user_header,
                reply,
            } => self.execute(operation, user_header, reply),
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::Reap { call } => self.end_call(&call, "unknown to the switch"),
            Command::Reconfigure(config) => {
                info!("session manager: reloaded configuration in force");
                self.config = config;
            }
        }
    }

    // ---- operations ---------------------------------------------------------------------

    fn execute(&mut self, operation: Operation, hint: Option<UserId>, reply: Reply) {
        let before = self.notifier.spool().last_queued();
        let result = match self.execute_inner(operation, hint.as_ref()) {
            Ok(Step::Switch(commands)) => return self.submit(commands, reply),
            Ok(Step::Answer(value)) => Ok(value),
            Err(e) => Err(e),
        };
        self.confirm.answer_after(before, result, reply);
    }

    fn execute_inner(
        &mut self,
        operation: Operation,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        use Operation::*;
        match operation {
            GetWorkcenterCapability => answer(Answer::WorkcenterCapability(
                self.config.agents.free_seating,
            )),
            GetPresenceQueueInfo { channel } => {
                answer(Answer::PresenceQueues(self.presence_queues(channel)))
            }
            GetAttributes { user } => {
                self.ensure_agent(&user)?;
                self.end_subscriptions(&Target::User(user.clone()), NEW_SESSION_REASON);
                let agent = self
                    .agents
                    .get(&user)
                    .ok_or(SessionError::UnknownUser(user.to_string()))?;
                answer(Answer::Attributes(Box::new(self.attributes(agent))))
            }
            SetCurrentWorkmode {
                user,
                workmode,
                reason,
            } => self.set_workmode(&user, workmode, reason),
            SetCurrentChannels { user, channels } => {
                self.ensure_agent(&user)?.channels = channels;
                done()
            }
            SetCurrentQueues { user, queues } => {
                self.ensure_agent(&user)?.queues = queues;
                done()
            }
            SetAddresses { user, addresses } => {
                self.ensure_agent(&user)?;
                self.set_extension(&user, addresses.into_iter().next());
                done()
            }
            Subscribe {
                target,
                url,
                app_id,
            } => self.subscribe(target, url, app_id),
            Unsubscribe {
                target,
                url,
                app_id,
            } => {
                self.unsubscribe(&target, &url, &app_id);
                done()
            }
            Create { .. } => {
                let item = format!("item-{}", self.next_id());
                self.pending_items.insert(item.clone(), Instant::now());
                answer(Answer::Id(item))
            }
            Accept { item } => self.on_leg_in(
                &item,
                hint,
                Capability::Answer,
                &[LegState::Alerting],
                |leg| SwitchCommand::Answer {
                    call: leg.call.clone(),
                    extension: leg.extension.clone(),
                },
            ),
            Reroute { item } => self.reroute(&item, hint),
            SetAttachedData { item, data } => {
                let key = self.item_key(&item, hint)?;
                Arc::make_mut(self.attached.entry(key).or_default()).merge(data);
                done()
            }
            GetAttachedData { item } => {
                let key = self.item_key(&item, hint)?;
                let data = self.attached.get(&key).cloned().unwrap_or_default();
                answer(Answer::AttachedData(data))
            }
            DeleteAttachedData { item, applications } => {
                let key = self.item_key(&item, hint)?;
                if let Some(data) = self.attached.get_mut(&key) {
                    match applications {
                        Some(ids) => Arc::make_mut(data).remove(&ids),
                        None => *data = Arc::default(),
                    }
                }
                done()
            }
            GetCalls { container } => {
                let agent = self.own_container(&container, hint)?;
                let calls = agent
                    .visible
                    .iter()
                    .map(|leg| self.phone_call(&agent.user, leg))
                    .collect();
                answer(Answer::Calls(calls))
            }
            DropCalls { container } => {
                self.require(Capability::Clear)?;
                let agent = self.own_container(&container, hint)?;
                Ok(Step::Switch(
                    agent
                        .visible
                        .iter()
                        .map(|leg| SwitchCommand::Clear {
                            call: leg.call.clone(),
                            extension: leg.extension.clone(),
                        })
                        .collect(),
                ))
            }
            Dial {
                container,
                user,
                address,
                item,
            } => {
                if let (Some(user), Some(header)) = (&user, hint)
                    && user != header
                {
                    // Dialling from another agent's phone (see `leg_ref`).
                    return Err(SessionError::UnknownUser(user.to_string()));
                }
                self.dial(container, user.as_ref().or(hint), &address, item)
            }
            Hold { call } => self.on_leg_in(
                &call,
                hint,
                Capability::Hold,
                &[LegState::Connected, LegState::Conferenced],
                |leg| SwitchCommand::Hold {
                    call: leg.call.clone(),
                    extension: leg.extension.clone(),
                },
            ),
            Unhold { call } => {
                self.on_leg_in(&call, hint, Capability::Hold, &[LegState::Held], |leg| {
                    SwitchCommand::Retrieve {
                        call: leg.call.clone(),
                        extension: leg.extension.clone(),
                    }
                })
            }
            Drop { call } => self.on_leg_in(&call, hint, Capability::Clear, &[], |leg| {
                SwitchCommand::Clear {
                    call: leg.call.clone(),
                    extension: leg.extension.clone(),
                }
            }),
            Transfer { call, address } => {
                let destination = self.destination(&address)?;
                self.on_leg_in(
                    &call,
                    hint,
                    Capability::BlindTransfer,
                    &[LegState::Connected, LegState::Held],
                    |leg| SwitchCommand::SingleStepTransfer {
                        call: leg.call.clone(),
                        extension: leg.extension.clone(),
                        destination,
                    },
                )
            }
            Consult { call, address } => {
                let destination = self.destination(&address)?;
                let step = self.on_leg_in(
                    &call,
                    hint,
                    Capability::Consult,
                    &[LegState::Connected],
                    |leg| SwitchCommand::Consult {
                        call: leg.call.clone(),
                        extension: leg.extension.clone(),
                        destination,
                    },
                )?;
                if let Step::Switch(commands) = &step
                    && let Some(SwitchCommand::Consult {
                        call, extension, ..
                    }) = commands.first()
                {
                    self.consults.insert(extension.clone(), call.clone());
                }
                Ok(step)
            }
            Conference { call, consult } => {
                self.require(Capability::Conference)?;
                let (held, other) = self.call_pair(&call, &consult, hint)?;
                expect_state(&held, &[LegState::Held])?;
                expect_state(&other, &[LegState::Connected, LegState::Dialing])?;
                Ok(Step::Switch(vec![SwitchCommand::Conference {
                    held: held.call.clone(),
                    consult: other.call.clone(),
                    extension: held.extension.clone(),
                }]))
            }
            Alternate { call, consult } => {
                self.require(Capability::Hold)?;
                let (a, b) = self.call_pair(&call, &consult, hint)?;
                let (held, connected) = match (a.state, b.state) {
                    (LegState::Held, LegState::Connected) => (a, b),
                    (LegState::Connected, LegState::Held) => (b, a),
                    _ => return Err(invalid_state(&a)),
                };
                Ok(Step::Switch(vec![
                    SwitchCommand::Hold {
                        call: connected.call.clone(),
                        extension: connected.extension.clone(),
                    },
                    SwitchCommand::Retrieve {
                        call: held.call.clone(),
                        extension: held.extension.clone(),
                    },
                ]))
            }
            Reconnect { call, consult } => {
                self.require(Capability::Hold)?;
                self.require(Capability::Clear)?;
                let (held, other) = self.call_pair(&call, &consult, hint)?;
                expect_state(&held, &[LegState::Held])?;
                Ok(Step::Switch(vec![
                    SwitchCommand::Clear {
                        call: other.call.clone(),
                        extension: other.extension.clone(),
                    },
                    SwitchCommand::Retrieve {
                        call: held.call.clone(),
                        extension: held.extension.clone(),
                    },
                ]))
            }
            DropParty { call, address } => {
                self.require(Capability::DropParty)?;
                let (_, leg) = self.find_leg(&call, hint)?;
                expect_state(&leg, &[LegState::Conferenced, LegState::Connected])?;
                let wanted = E164::normalize(&address);
                if address.trim() == leg.extension || E164::normalize(&leg.extension) == wanted {
                    // The agent drops itself (the vendor allows it): it leaves, the others
                    // stay in the conference.
                    self.require(Capability::Clear)?;
                    expect_state(&leg, &[LegState::Conferenced])?;
                    return Ok(Step::Switch(vec![SwitchCommand::Clear {
                        call: leg.call.clone(),
                        extension: leg.extension.clone(),
                    }]));
                }
                let party = leg
                    .parties
                    .iter()
                    .find(|p| p.as_str() == address.trim() || E164::normalize(p) == wanted)
                    .cloned()
                    .ok_or_else(|| SessionError::InvalidAddress(address.clone()))?;
                Ok(Step::Switch(vec![SwitchCommand::DropParty {
                    call: leg.call.clone(),
                    extension: leg.extension.clone(),
                    party,
                }]))
            }
            Listen { call, user } => self.listen(&call, &user, true),
            ListenEnd { call, user } => self.listen(&call, &user, false),
            GetPhoneCallAttributes { call } => {
                let (user, leg) = self.leg_ref(&call, hint, &[])?;
                answer(Answer::Call(self.phone_call(user, leg)))
            }
        }
    }

    /// Sends commands to the switch one after another (stopping at the first failure) and
    /// answers the SOAP caller from a task once the events they caused are on disk, so the
    /// actor never waits for the switch or the spool.
    fn submit(&self, commands: Vec<SwitchCommand>, reply: Reply) {
        let switch = Arc::clone(&self.switch);
        let myself = self.myself.clone();
        let confirm = self.confirm.clone();
        tokio::spawn(async move {
            let mut result = Ok(Answer::Done);
            for command in commands {
                let (tx, rx) = oneshot::channel();
                switch.submit(SwitchRequest { command, reply: tx });
                result = match rx.await {
                    Ok(Ok(SwitchReply::Done)) => Ok(Answer::Done),
                    Ok(Ok(SwitchReply::NewCall(call))) => Ok(Answer::Id(call)),
                    Ok(Err(e)) => Err(SessionError::Switch(e)),
                    Err(_) => Err(SessionError::Switch(SwitchError::Unavailable(
                        "switch adapter stopped".into(),
                    ))),
                };
                if let Err(SessionError::Switch(SwitchError::UnknownCall(call))) = &result {
                    // Our view had a call the switch no longer knows: a ghost. End it.
                    if let Some(myself) = myself.upgrade() {
                        let _ = myself.send(Command::Reap { call: call.clone() }).await;
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            confirm.switch_events_durable().await;
            let _ = reply.send(result);
        });
    }

    fn require(&self, capability: Capability) -> Result<(), SessionError> {
        if self.switch.capabilities().contains(&capability) {
            Ok(())
        } else {
            Err(SessionError::NotSupported {
                capability,
                switch: self.switch.name(),
            })
        }
    }

    /// The common shape of call operations: capability, the agent's leg, its state, one
    /// command.
    fn on_leg_in(
        &self,
        call: &str,
        hint: Option<&UserId>,
        capability: Capability,
        states: &[LegState],
        command: impl FnOnce(&LegEvent) -> SwitchCommand,
    ) -> Result<Step, SessionError> {
        self.require(capability)?;
        let (_, leg) = self.find_leg_in(call, hint, states)?;
        if !states.is_empty() {
            expect_state(&leg, states)?;
        }
        Ok(Step::Switch(vec![command(&leg)]))
    }

    fn reroute(&mut self, item: &str, hint: Option<&UserId>) -> Result<Step, SessionError> {
        self.require(Capability::Reroute)?;
        let (user, leg) = self.find_leg(item, hint)?;
        expect_state(&leg, &[LegState::Alerting])?;
        let mut commands = vec![SwitchCommand::Reroute {
            call: leg.call.clone(),
            extension: leg.extension.clone(),
        }];
        // The reject workmode keeps the call from coming straight back (applied after the
        // reroute succeeded, as the vendor does).
        if let Some(reject) = self.config.workmodes.reject
            && self.require(Capability::AgentState).is_ok()
        {
            let state = workmodes::to_switch(&self.config.workmodes, Workmode(reject), None)?;
            commands.push(SwitchCommand::SetAgentState {
                extension: leg.extension.clone(),
                state,
                queues: self.login_queues(&user),
            });
        }
        Ok(Step::Switch(commands))
    }

    fn set_workmode(
        &mut self,
        user: &UserId,
        requested: Workmode,
        reason: Option<String>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::AgentState)?;
        let config = Arc::clone(&self.config);
        let config = &config.workmodes;
        let agent = self.ensure_agent(user)?;
        let extension = agent
            .extension
            .clone()
            .ok_or_else(|| SessionError::NoAddress(user.to_string()))?;
        let logging_in =
            agent.workmode == Workmode::LOGGED_OFF && requested != Workmode::LOGGED_OFF;
        let workmode = if logging_in && config.ignore_sap_login_workmode {
            // SAP's initial workmode is ignored: the configured login workmode, or not ready
            // (the safe choice: no ACD call before the agent says so).
            Workmode(config.login.unwrap_or(Workmode::NOT_READY.0))
        } else {
            requested
        };
        let state = workmodes::to_switch(config, workmode, reason)?;
        let queues = self.login_queues(user);
        Ok(Step::Switch(vec![SwitchCommand::SetAgentState {
            extension,
            state,
            queues,
        }]))
    }

    fn login_queues(&self, user: &UserId) -> Vec<String> {
        let agent_queues = self
            .agents
            .get(user)
            .map(|a| a.queues.clone())
            .unwrap_or_default();
        if !agent_queues.is_empty() {
            return agent_queues;
        }
        match self.config.agents.users.get(user.as_str()) {
            Some(listed) if !listed.queues.is_empty() => listed.queues.clone(),
            _ => self.config.agents.queues.clone(),
        }
    }

    fn dial(
        &mut self,
        container: Option<String>,
        user: Option<&UserId>,
        address: &str,
        item: Option<String>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::MakeCall)?;
        let agent = match (&container, user) {
            (_, Some(user)) => self.ensure_agent(user)?,
            (Some(container), None) => self.agent_for_container(container)?,
            (None, None) => return Err(SessionError::UnknownContainer(String::new())),
        };
        let extension = agent
            .extension
            .clone()
            .ok_or_else(|| SessionError::NoAddress(agent.user.to_string()))?;
        let destination = self.destination(address)?;
        let correlation = match item {
            Some(item) => item,
            None => format!("dial-{}", self.next_id()),
        };
        self.pending_items
            .insert(correlation.clone(), Instant::now());
        Ok(Step::Switch(vec![SwitchCommand::MakeCall {
            extension,
            destination,
            correlation,
        }]))
    }

    fn listen(
        &mut self,
        call: &str,
        supervisor: &UserId,
        start: bool,
    ) -> Result<Step, SessionError> {
        self.require(Capability::Listen)?;
        let extension = self
            .ensure_agent(supervisor)?
            .extension
            .clone()
            .ok_or_else(|| SessionError::NoAddress(supervisor.to_string()))?;
        let call = self.resolve(call);
        let known = self
            .agents
            .values()
            .any(|a| a.visible.iter().any(|l| l.call == call));
        if !known {
            return Err(SessionError::UnknownCall(call));
        }
        let command = if start {
            SwitchCommand::Listen {
                call,
                supervisor: extension,
            }
        } else {
            SwitchCommand::ListenEnd {
                call,
                supervisor: extension,
            }
        };
        Ok(Step::Switch(vec![command]))
    }

    /// The number to hand the switch for an address SAP dials or transfers to.
    fn destination(&self, address: &str) -> Result<String, SessionError> {
        let number = self.config.numbers.outbound_number(address);
        if number.is_empty() || number.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(SessionError::InvalidAddress(address.to_string()));
        }
        Ok(number)
    }

    // ---- lookups ------------------------------------------------------------------------

    /// The agent for a user, created on first use if the user may log in.
    fn ensure_agent(&mut self, user: &UserId) -> Result<&mut Agent, SessionError> {
        if !self.agents.contains_key(user) {
            let listed = self
                .config
                .agents
                .users
                .iter()
                .find(|(id, _)| id.eq_ignore_ascii_case(user.as_str()));
            if listed.is_none() && !self.config.agents.accept_unlisted_users {
                return Err(SessionError::UnknownUser(user.to_string()));
            }
            let extension = listed.map(|(_, u)| u.extension.clone());
            let queues = listed.map(|(_, u)| u.queues.clone()).unwrap_or_default();
            self.agents.insert(
                user.clone(),
                Agent {
                    user: user.clone(),
                    extension: None,
                    workmode: Workmode::LOGGED_OFF,
                    reason: None,
                    channels: self.config.agents.channels.clone(),
                    queues,
                    visible: Vec::new(),
                    waiting: VecDeque::new(),
                },
            );
            self.set_extension(user, extension);
        }
        self.agents
            .get_mut(user)
            .ok_or_else(|| SessionError::UnknownUser(user.to_string()))
    }

    fn set_extension(&mut self, user: &UserId, extension: Option<String>) {
        let Some(agent) = self.agents.get_mut(user) else {
            return;
        };
        if let Some(old) = agent.extension.take() {
            self.by_extension.remove(&old);
        }
        if let Some(new) = &extension
            && let Some(previous) = self.by_extension.insert(new.clone(), user.clone())
            && previous != *user
            && let Some(other) = self.agents.get_mut(&previous)
        {
            // Free seating: the workcenter changed hands.
            other.extension = None;
        }
        self.notifier
            .spool()
            .record(SpoolOp::Agent(user.to_string(), extension.clone()));
        if let Some(agent) = self.agents.get_mut(user) {
            agent.extension = extension;
        }
    }

    /// A container is an address (extension) or a user id.
    fn agent_for_container(&self, container: &str) -> Result<&Agent, SessionError> {
        let by_address = self.by_extension.get(container);
        let by_user = UserId::parse(container).ok();
        by_address
            .or(by_user.as_ref())
            .and_then(|user| self.agents.get(user))
            .ok_or_else(|| SessionError::UnknownContainer(container.to_string()))
    }

    /// [`Self::agent_for_container`] for an operation on the agent's calls: with a `user`
    /// header only that agent's own container counts, another's is unknown (see
    /// [`Self::leg_ref`]).
    fn own_container(
        &self,
        container: &str,
        hint: Option<&UserId>,
    ) -> Result<&Agent, SessionError> {
        let agent = self.agent_for_container(container)?;
        match hint {
            Some(user) if *user != agent.user => {
                Err(SessionError::UnknownContainer(container.to_string()))
            }
            _ => Ok(agent),
        }
    }

    /// The call an item id stands for.
    fn resolve(&self, id: &str) -> String {
        self.aliases
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// A visible leg of the call, at the agent named by the `user` header when it has one.
    fn find_leg(
        &self,
        id: &str,
        hint: Option<&UserId>,
    ) -> Result<(UserId, Arc<LegEvent>), SessionError> {
        self.find_leg_in(id, hint, &[])
    }

    /// Like [`Self::find_leg`]; without a `user` header naming an agent on the call, a leg
    /// in one of `states` wins: an internal call has a leg at both agents, and `accept`
    /// means the alerting one, not the caller's dialing one.
    fn find_leg_in(
        &self,
        id: &str,
        hint: Option<&UserId>,
        states: &[LegState],
    ) -> Result<(UserId, Arc<LegEvent>), SessionError> {
        self.leg_ref(id, hint, states)
            .map(|(user, leg)| (user.clone(), Arc::clone(leg)))
    }

    /// [`Self::find_leg_in`] without copying: read-only operations (such as
    /// getPhoneCallAttributes, SAP's most frequent request) answer from the tables.
    ///
    /// With a `user` header only that agent's legs count: another agent's call is an
    /// unknown call, so one IC session can neither act on nor read another agent's call.
    /// Without one (no IC session: a tool acting for the SAP system, which may act for any
    /// agent) the call is looked for at every agent.
    fn leg_ref(
        &self,
        id: &str,
        hint: Option<&UserId>,
        states: &[LegState],
    ) -> Result<(&UserId, &Arc<LegEvent>), SessionError> {
        let call = self.resolve(id);
        fn leg_of<'a>(agent: &'a Agent, call: &str) -> Option<(&'a UserId, &'a Arc<LegEvent>)> {
            let leg = agent.visible.iter().find(|leg| leg.call == call)?;
            Some((&agent.user, leg))
        }
        let on_call = |agent| leg_of(agent, &call);
        let found = match hint {
            Some(user) => self.agents.get(user).and_then(on_call),
            None => {
                let mut all = self.agents.values().filter_map(on_call);
                let first = all.next();
                match first {
                    Some((_, leg)) if !states.is_empty() && !states.contains(&leg.state) => {
                        all.find(|(_, leg)| states.contains(&leg.state)).or(first)
                    }
                    _ => first,
                }
            }
        };
        found.ok_or(SessionError::UnknownCall(id.to_string()))
    }

    /// Two calls of the same agent (held call and consultation call).
    fn call_pair(
        &self,
        call: &str,
        consult: &str,
        hint: Option<&UserId>,
    ) -> Result<(Arc<LegEvent>, Arc<LegEvent>), SessionError> {
        let (user, first) = self.find_leg(call, hint)?;
        let (_, second) = self.find_leg(consult, Some(&user))?;
        if second.extension != first.extension {
            return Err(SessionError::UnknownCall(consult.to_string()));
        }
        Ok((first, second))
    }

    /// The attached-data key of an item: a live call, a created item, or one with data.
    /// A live call counts only for the agent the `user` header names, when there is one
    /// (see [`Self::leg_ref`]): another agent's call is an unknown item.
    fn item_key(&self, item: &str, hint: Option<&UserId>) -> Result<String, SessionError> {
        let key = self.resolve(item);
        let has_call = |a: &Agent| {
            a.visible
                .iter()
                .chain(a.waiting.iter())
                .any(|l| l.call == key)
        };
        let live = self.agents.values().any(has_call);
        let known =
            live || self.pending_items.contains_key(&key) || self.attached.contains_key(&key);
        let theirs = match hint {
            Some(user) if live => self.agents.get(user).is_some_and(has_call),
            _ => true,
        };
        if known && theirs {
            Ok(key)
        } else {
            Err(SessionError::UnknownItem(item.to_string()))
        }
    }

    // ---- views --------------------------------------------------------------------------

    fn phone_call(&self, user: &UserId, leg: &Arc<LegEvent>) -> PhoneCallView {
        view::phone_call(
            user,
            leg,
            self.attached.get(&leg.call),
            &self.config.numbers,
        )
    }

    fn attributes(&self, agent: &Agent) -> AttributesView {
        let mut queues = self.config.agents.queues.clone();
        if let Some(listed) = self.config.agents.users.get(agent.user.as_str()) {
            queues.extend(listed.queues.iter().cloned());
        }
        queues.dedup();
        AttributesView {
            user: agent.user.clone(),
            channels: self.config.agents.channels.clone(),
            current_channels: agent.channels.clone(),
            queues,
            current_queues: agent.queues.clone(),
            workmodes: workmodes::list(&self.config.workmodes),
            current_workmode: agent.workmode,
            reasons: workmodes::reasons(&self.config.workmodes),
            addresses: agent.extension.iter().cloned().collect(),
            workcenter_capability: self.config.agents.free_seating,
            max_interactions: self.max_interactions(),
            capabilities: self
                .switch
                .capabilities()
                .iter()
                .map(|c| c.as_str())
                .collect(),
        }
    }

    fn presence_queues(&self, channel: Option<String>) -> Vec<PresenceQueueView> {
        let channel = channel.unwrap_or_else(|| "phone".to_string());
        let mut names: Vec<String> = self.config.agents.queues.clone();
        for user in self.config.agents.users.values() {
            names.extend(user.queues.iter().cloned());
        }
        for agent in self.agents.values() {
            names.extend(agent.queues.iter().cloned());
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|queue| {
                let agents_ready = self
                    .agents
                    .values()
                    .filter(|a| {
                        a.workmode == Workmode::READY
                            && (a.queues.is_empty() || a.queues.contains(&queue))
                    })
                    .count();
                let waiting = self
                    .agents
                    .values()
                    .flat_map(|a| a.waiting.iter())
                    .filter(|l| l.queue.as_deref() == Some(queue.as_str()))
                    .count();
                PresenceQueueView {
                    queue,
                    channel: channel.clone(),
                    waiting,
                    agents_ready,
                }
            })
            .collect()
    }

    fn max_interactions(&self) -> usize {
        usize::from(
            self.config
                .agents
                .max_interactions
                .clamp(1, AgentsConfig::MAX_INTERACTIONS),
        )
    }

    fn snapshot(&self) -> StatusSnapshot {
        let legs = |agent: &Agent| {
            let numbers = &self.config.numbers;
            let status = |leg: &LegEvent, visible: bool| InteractionStatus {
                call_id: leg.call.clone(),
                state: leg.state.as_str().to_string(),
                direction: leg.direction.as_str().to_string(),
                remote: view::numbers(leg, numbers).remote,
                queue: leg.queue.clone(),
                visible,
            };
            agent
                .visible
                .iter()
                .map(|l| status(l, true))
                .chain(agent.waiting.iter().map(|l| status(l, false)))
                .collect()
        };
        StatusSnapshot {
            switch: self.switch.name(),
            switch_link_up: self.link_up,
            agents: self
                .agents
                .values()
                .map(|a| AgentStatus {
                    user_id: a.user.to_string(),
                    extension: a.extension.clone(),
                    workmode: a.workmode.0,
                    reason: a.reason.clone(),
                    interactions: legs(a),
                })
                .collect(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|s| SubscriptionStatus {
                    id: s.id,
                    target: s.target.to_string(),
                    app_url: s.url.redacted(),
                    app_ids: s.app_ids.clone(),
                    sequence: s.sequence,
                    queue_depth: s.outbox.depth(),
                    durable_sequence: s.outbox.durable_sequence(),
                    last_delivery: s.outbox.last_delivery(),
                })
                .collect(),
        }
    }

    // ---- switch events ------------------------------------------------------------------

    fn on_switch_event(&mut self, event: SwitchEvent) {
        match event {
            SwitchEvent::Leg(leg) => self.on_leg(leg),
            SwitchEvent::Agent { extension, state } => self.on_agent_state(&extension, &state),
            SwitchEvent::LinkUp { calls } => self.resync(calls),
            SwitchEvent::LinkDown { reason } => {
                warn!(%reason, "switch link down");
                self.link_up = false;
            }
        }
    }

    fn on_leg(&mut self, leg: Arc<LegEvent>) {
        let Some(user) = self.by_extension.get(&leg.extension).cloned() else {
            debug!(call = %leg.call, extension = %leg.extension, "leg at an address no agent uses");
            return;
        };
        info!(
            target: "ici_connector::switch",
            %user,
            call = %leg.call,
            extension = %leg.extension,
            state = leg.state.as_str(),
            cause = leg.cause.as_deref(),
            "switch event"
        );
        self.adopt_item(&leg);
        self.adopt_consult_data(&user, &leg);
        self.adopt_switch_data(&leg);
        let key = LegKey(Arc::clone(&leg));
        // Removed first also when the leg goes on: `insert` would keep the old key, and
        // with it the superseded snapshot.
        self.last_seen.remove(&key);
        if !leg.state.is_final() {
            self.last_seen.insert(key, Instant::now());
        }
        let cap = self.max_interactions();
        let Some(agent) = self.agents.get_mut(&user) else {
            return;
        };
        let final_state = leg.state.is_final();
        let mut announce = Vec::new();
        if let Some(pos) = agent.visible.iter().position(|l| l.call == leg.call) {
            announce.push(leg.clone());
            if final_state {
                agent.visible.remove(pos);
                while agent.visible.len() < cap {
                    let Some(next) = agent.waiting.pop_front() else {
                        break;
                    };
                    agent.visible.push(next.clone());
                    announce.push(next);
                }
            } else {
                agent.visible[pos] = leg.clone();
            }
        } else if let Some(pos) = agent.waiting.iter().position(|l| l.call == leg.call) {
            if final_state {
                // Ended while waiting behind the cap: SAP never knew it, so it never hears.
                agent.waiting.remove(pos);
            } else {
                agent.waiting[pos] = leg.clone();
            }
        } else if !final_state {
            if agent.visible.len() < cap {
                agent.visible.push(leg.clone());
                announce.push(leg.clone());
            } else {
                debug!(%user, call = %leg.call, "interaction waits behind the cap");
                agent.waiting.push_back(leg.clone());
            }
        }
        for leg in &announce {
            self.publish_call(&user, leg);
        }
        if final_state && leg.cause.as_deref() != Some("transferred") {
            self.forget_call_if_gone(&leg.call);
        }
    }

    /// A call placed for an item (create + dial) takes over the item's id and data.
    fn adopt_item(&mut self, leg: &LegEvent) {
        if let Some(item) = &leg.correlation
            && self.pending_items.remove(item).is_some()
        {
            if *item != leg.call {
                self.aliases.insert(item.clone(), leg.call.clone());
            }
            if let Some(data) = self.attached.remove(item) {
                Arc::make_mut(self.attached.entry(leg.call.clone()).or_default())
                    .merge(Arc::unwrap_or_clone(data));
            }
        }
    }

    /// The first leg of a new call placed from an extension that asked for a consultation,
    /// while the consulted-about call is still held there, is the consultation call: it
    /// gets a copy of the held call's attached data, so the consulted agent's IC pops the
    /// customer's account (the vendor's warm transfer screen pop). Calls placed with `dial`
    /// carry a correlation and are never taken for one.
    fn adopt_consult_data(&mut self, user: &UserId, leg: &LegEvent) {
        let placed_here = leg.direction != Direction::Inbound
            && matches!(leg.state, LegState::Dialing | LegState::Connected);
        if !placed_here || leg.correlation.is_some() || self.attached.contains_key(&leg.call) {
            return;
        }
        let Some(held) = self.consults.get(&leg.extension).cloned() else {
            return;
        };
        let Some(agent) = self.agents.get(user) else {
            return;
        };
        let mut legs = agent.visible.iter().chain(agent.waiting.iter());
        if legs.clone().any(|l| l.call == leg.call) {
            return;
        }
        self.consults.remove(&leg.extension);
        if held != leg.call
            && legs.any(|l| l.call == held && l.state == LegState::Held)
            && let Some(data) = self.attached.get(&held).cloned()
        {
            self.attached.insert(leg.call.clone(), data);
        }
    }

    /// Attached data the IVR set on the switch rides on the first phoneCallChanged.
    fn adopt_switch_data(&mut self, leg: &LegEvent) {
        if self.attached.contains_key(&leg.call) {
            return;
        }
        let cad = leg
            .attributes
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case(SAP_CAD) && !v.trim().is_empty());
        if let Some((_, cad)) = cad {
            match (self.wire.attached_data)(cad) {
                Ok(data) => {
                    self.attached.insert(leg.call.clone(), Arc::new(data));
                }
                Err(error) => {
                    warn!(call = %leg.call, %error, "ignoring attached data from the switch")
                }
            }
        }
    }

    fn forget_call_if_gone(&mut self, call: &str) {
        // The scan below visits every agent: skip it when there is nothing to forget.
        if !self.attached.contains_key(call) && !self.aliases.values().any(|c| c == call) {
            return;
        }
        let live = self.agents.values().any(|a| {
            a.visible
                .iter()
                .chain(a.waiting.iter())
                .any(|l| l.call == call)
        });
        if !live {
            self.attached.remove(call);
            self.aliases.retain(|_, c| c != call);
        }
    }

    fn on_agent_state(&mut self, extension: &str, state: &AgentState) {
        let Some(user) = self.by_extension.get(extension).cloned() else {
            return;
        };
        let (workmode, reason) = workmodes::from_switch(&self.config.workmodes, state);
        let Some(agent) = self.agents.get_mut(&user) else {
            return;
        };
        if agent.workmode == workmode && agent.reason == reason {
            return;
        }
        agent.workmode = workmode;
        agent.reason = reason.clone();
        info!(%user, %workmode, reason = reason.as_deref().unwrap_or(""), "workmode changed");
        let event = IciEvent::WorkmodeChanged {
            user: user.clone(),
            workmode,
            reason,
        };
        self.publish(&user, Some(extension), None, &event);
    }

    /// Ends every leg of `call` toward SAP (`dropped` with `reason`).
    fn end_call(&mut self, call: &str, reason: &str) {
        self.end_legs(|l| l.call == call, reason);
    }

    /// Ends the legs `which` selects toward SAP (`dropped` with `reason`).
    fn end_legs(&mut self, which: impl Fn(&Arc<LegEvent>) -> bool, reason: &str) {
        let legs: Vec<Arc<LegEvent>> = self
            .agents
            .values()
            .flat_map(|a| a.visible.iter().chain(a.waiting.iter()))
            .filter(|l| which(l))
            .cloned()
            .collect();
        for leg in legs {
            warn!(call = %leg.call, extension = %leg.extension, %reason, "ending interaction");
            let mut leg = Arc::unwrap_or_clone(leg);
            leg.state = LegState::Dropped;
            leg.cause = Some(reason.to_string());
            self.on_leg(Arc::new(leg));
        }
    }

    /// Ends interactions no switch event touched for `max_age` (ghost calls).
    fn reap_older_than(&mut self, max_age: Duration) {
        let now = Instant::now();
        let stale: HashSet<LegKey> = self
            .last_seen
            .iter()
            .filter(|(_, seen)| now.duration_since(**seen) >= max_age)
            .map(|(key, _)| key.clone())
            .collect();
        if !stale.is_empty() {
            self.end_legs(|l| stale.contains(&LegKey(Arc::clone(l))), "max age");
        }
        // Items created for a dial that never came, and attached data of calls that left
        // our agents (e.g. blind-transferred outside), must not pile up.
        self.pending_items
            .retain(|_, created| now.duration_since(*created) < max_age);
        let live: HashSet<String> = self
            .agents
            .values()
            .flat_map(|a| a.visible.iter().chain(a.waiting.iter()))
            .map(|l| l.call.clone())
            .collect();
        let orphans: HashSet<String> = self
            .attached
            .keys()
            .filter(|k| !live.contains(*k) && !self.pending_items.contains_key(*k))
            .cloned()
            .collect();
        let previous = std::mem::replace(&mut self.orphans, orphans);
        self.attached
            .retain(|k, _| !(previous.contains(k) && self.orphans.contains(k)));
        self.aliases
            .retain(|item, call| live.contains(call) || self.pending_items.contains_key(item));
    }

    /// After a (re)connect the switch's list of live legs is the truth: every interaction
    /// not in it ended while we could not see it, and is dropped toward SAP.
    fn resync(&mut self, calls: Vec<LegEvent>) {
        info!(calls = calls.len(), "switch link up; resynchronising");
        self.link_up = true;
        let live: HashSet<(String, String)> = calls
            .iter()
            .map(|l| (l.call.clone(), l.extension.clone()))
            .collect();
        let gone: Vec<Arc<LegEvent>> = self
            .agents
            .values()
            .flat_map(|a| a.visible.iter().chain(a.waiting.iter()))
            .filter(|l| !live.contains(&(l.call.clone(), l.extension.clone())))
            .cloned()
            .collect();
        for leg in gone {
            let mut leg = Arc::unwrap_or_clone(leg);
            leg.state = LegState::Dropped;
            leg.cause = Some("switch resync".into());
            self.on_leg(Arc::new(leg));
        }
        for leg in calls {
            self.on_leg(Arc::new(leg));
        }
    }

    // ---- subscriptions and events -------------------------------------------------------

    fn subscribe(
        &mut self,
        target: Target,
        url: AppUrl,
        app_id: String,
    ) -> Result<Step, SessionError> {
        if let Target::User(user) = &target {
            self.ensure_agent(user)?;
        }
        let existing = self
            .sub_index
            .get(&sub_key(&target))
            .into_iter()
            .flatten()
            .copied()
            .find(|&i| self.subscriptions[i].target == target && self.subscriptions[i].url == url);
        if existing.is_some_and(|i| self.subscriptions[i].app_ids.contains(&app_id)) {
            return done();
        }
        self.check_subscription_caps(&target)?;
        if let Some(sub) = existing.map(|i| &mut self.subscriptions[i]) {
            sub.app_ids.push(app_id);
            let stored = stored(sub);
            self.notifier
                .spool()
                .record(SpoolOp::PutSubscription(stored));
            return done();
        }
        let id = self.next_id();
        info!(subscription = id, %target, %url, %app_id, "subscribed");
        let outbox = self.notifier.open(id, url.uri());
        let sub = Subscription {
            id,
            target,
            url,
            app_ids: vec![app_id],
            sequence: 0,
            outbox,
        };
        self.notifier
            .spool()
            .record(SpoolOp::PutSubscription(stored(&sub)));
        self.push_subscription(sub);
        done()
    }

    /// Refuses one more subscription for `target` past `[events]
    /// max_subscriptions_per_target`, or past `max_subscriptions` in total. A subscription
    /// is what SAP subscribed: one appId at one appURL (several share an outbox).
    fn check_subscription_caps(&self, target: &Target) -> Result<(), SessionError> {
        let events = &self.config.events;
        let total: usize = self.subscriptions.iter().map(|s| s.app_ids.len()).sum();
        if total >= events.max_subscriptions {
            crate::metrics::subscription_refused("max_subscriptions");
            warn!(
                %target,
                limit = events.max_subscriptions,
                "subscription refused: too many in total"
            );
            return Err(SessionError::TooManySubscriptions {
                limit: events.max_subscriptions,
            });
        }
        let mine: usize = self
            .sub_index
            .get(&sub_key(target))
            .into_iter()
            .flatten()
            .map(|&i| &self.subscriptions[i])
            .filter(|s| s.target == *target)
            .map(|s| s.app_ids.len())
            .sum();
        if mine >= events.max_subscriptions_per_target {
            crate::metrics::subscription_refused("max_subscriptions_per_target");
            warn!(
                %target,
                limit = events.max_subscriptions_per_target,
                "subscription refused: too many for this target"
            );
            return Err(SessionError::TooManySubscriptionsFor {
                target: target.to_string(),
                limit: events.max_subscriptions_per_target,
            });
        }
        Ok(())
    }

    /// Forgets a subscription here and on the spool (its outbox, if still held by the
    /// caller, delivers what is queued when dropped).
    fn forget_subscription(&mut self, id: u64) {
        self.subscriptions.retain(|s| s.id != id);
        self.reindex_subscriptions();
        self.notifier
            .spool()
            .record(SpoolOp::RemoveSubscription(id));
    }

    /// Re-creates the subscriptions and agent addresses the spool kept across a restart;
    /// their undelivered events go out first, in order.
    pub(super) fn restore(&mut self, contents: SpoolContents) {
        for (user, extension) in contents.agents {
            let Ok(user) = UserId::parse(&user) else {
                continue;
            };
            if self.ensure_agent(&user).is_ok() {
                self.set_extension(&user, Some(extension));
            }
        }
        for (stored, events) in contents.subscriptions {
            let target = match stored.kind.as_str() {
                "user" => UserId::parse(&stored.target).ok().map(Target::User),
                _ => Some(Target::Container(stored.target.clone())),
            };
            let (Some(target), Ok(url)) = (target, AppUrl::parse(&stored.url)) else {
                warn!(
                    subscription = stored.id,
                    "unreadable subscription in the spool; dropped"
                );
                self.notifier
                    .spool()
                    .record(SpoolOp::RemoveSubscription(stored.id));
                continue;
            };
            let events: Vec<OutboundEvent> = events
                .into_iter()
                .filter_map(|e| {
                    let name = EventKind::from_name(&e.name)?.name();
                    Some(OutboundEvent {
                        name,
                        sequence: e.sequence,
                        user: e.user,
                        call: e.call,
                        body: e.body,
                    })
                })
                .collect();
            info!(subscription = stored.id, pending = events.len(), %url, "subscription restored");
            self.next_id = self.next_id.max(stored.id + 1);
            let outbox = self.notifier.open_with(stored.id, url.uri(), events);
            self.push_subscription(Subscription {
                id: stored.id,
                target,
                url,
                app_ids: stored.app_ids,
                sequence: stored.sequence,
                outbox,
            });
        }
    }

    fn push_subscription(&mut self, sub: Subscription) {
        self.sub_index
            .entry(sub_key(&sub.target))
            .or_default()
            .push(self.subscriptions.len());
        self.subscriptions.push(sub);
    }

    fn reindex_subscriptions(&mut self) {
        self.sub_index.clear();
        for (i, sub) in self.subscriptions.iter().enumerate() {
            self.sub_index
                .entry(sub_key(&sub.target))
                .or_default()
                .push(i);
        }
    }

    fn unsubscribe(&mut self, target: &Target, url: &AppUrl, app_id: &str) {
        if let Some(pos) = self
            .subscriptions
            .iter()
            .position(|s| s.target == *target && s.url == *url)
        {
            let sub = &mut self.subscriptions[pos];
            sub.app_ids.retain(|a| a != app_id);
            if sub.app_ids.is_empty() {
                info!(subscription = sub.id, "unsubscribed");
                let id = sub.id;
                self.forget_subscription(id);
            } else {
                let stored = stored(sub);
                self.notifier
                    .spool()
                    .record(SpoolOp::PutSubscription(stored));
            }
        }
    }

    /// Ends every subscription for `target`, telling SAP with subscriptionEnded.
    fn end_subscriptions(&mut self, target: &Target, reason: &'static str) {
        if !self.sub_index.contains_key(&sub_key(target)) {
            return;
        }
        let (ending, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.subscriptions)
            .into_iter()
            .partition(|s| s.target == *target);
        self.subscriptions = keep;
        self.reindex_subscriptions();
        for mut sub in ending {
            info!(subscription = sub.id, %reason, "ending subscription");
            let user = match target {
                Target::User(u) => u.to_string(),
                Target::Container(c) => c.clone(),
            };
            let ended = IciEvent::SubscriptionEnded { reason };
            let event = event_for(self.wire, &mut sub, user, None, &ended);
            if let Err(e) = sub.outbox.push_final(event) {
                warn!(subscription = sub.id, error = %e, "subscriptionEnded not queued");
            }
            self.notifier
                .spool()
                .record(SpoolOp::RemoveSubscription(sub.id));
            // Dropping the outbox lets it deliver what is queued, subscriptionEnded last.
        }
    }

    fn publish_call(&mut self, user: &UserId, leg: &Arc<LegEvent>) {
        let event = IciEvent::PhoneCallChanged(self.phone_call(user, leg));
        self.publish(user, Some(&leg.extension), Some(&leg.call), &event);
    }

    /// Queues an event on every subscription of this user (or its address). A full outbox
    /// ends that subscription: SAP must subscribe again and resynchronise with getCalls.
    fn publish(
        &mut self,
        user: &UserId,
        extension: Option<&str>,
        call: Option<&str>,
        event: &IciEvent,
    ) {
        let name = event.kind().name();
        let wire = self.wire;
        let mut overflowed = Vec::new();
        let mut candidates: Vec<usize> = [
            Some(sub_key(&Target::User(user.clone()))),
            extension.map(container_key),
            Some(container_key(user.as_str())),
        ]
        .into_iter()
        .flatten()
        .filter_map(|key| self.sub_index.get(&key))
        .flatten()
        .copied()
        .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for i in candidates {
            let sub = &mut self.subscriptions[i];
            let matches = match &sub.target {
                Target::User(u) => u == user,
                Target::Container(c) => {
                    Some(c.as_str()) == extension || c.eq_ignore_ascii_case(user.as_str())
                }
            };
            if !matches {
                continue;
            }
            let event = event_for(wire, sub, user.to_string(), call.map(str::to_string), event);
            let coalesce = self.config.events.overflow == OverflowPolicy::Coalesce;
            // A copy only where a full outbox may still take the event after coalescing.
            let retry = coalesce.then(|| event.clone());
            let result = match sub.outbox.push(event) {
                Err(PushError::Full) if let Some(event) = retry => {
                    match call.and_then(|c| sub.outbox.coalesce(name, c)) {
                        Some(dropped) => {
                            warn!(
                                subscription = sub.id,
                                dropped,
                                reason = "coalesced",
                                "event queue full: superseded call state dropped"
                            );
                            crate::metrics::events_dropped("coalesced", 1);
                            sub.outbox.push(event)
                        }
                        None => Err(PushError::Full),
                    }
                }
                other => other,
            };
            match result {
                Ok(()) => {}
                Err(PushError::Full) => {
                    crate::metrics::events_dropped("overflow", 1);
                    overflowed.push(sub.id)
                }
                Err(PushError::Closed) => debug!(subscription = sub.id, "outbox closed"),
            }
        }
        for id in overflowed {
            warn!(
                subscription = id,
                reason = "overflow",
                "event queue full: ending the subscription"
            );
            if let Some(sub) = self.subscriptions.iter_mut().find(|s| s.id == id) {
                let ended = IciEvent::SubscriptionEnded {
                    reason: OVERFLOW_REASON,
                };
                let ended = event_for(wire, sub, user.to_string(), None, &ended);
                let _ = sub.outbox.push_final(ended);
            }
            self.forget_subscription(id);
        }
    }

    fn on_feedback(&mut self, feedback: Feedback) {
        match feedback {
            Feedback::Ended { id, reason } => {
                match &reason {
                    EndReason::SessionGone { status } => {
                        info!(
                            subscription = id,
                            status, "SAP session gone; subscription ended"
                        )
                    }
                    other => warn!(subscription = id, reason = %other, "subscription ended"),
                }
                self.forget_subscription(id);
            }
        }
    }
}

/// Why a subscription whose outbox overflowed ends (told to SAP in subscriptionEnded).
const OVERFLOW_REASON: &str = "event queue overflow";
/// Why getAttributes ends the user's earlier subscriptions: SAP opened a new IC session.
const NEW_SESSION_REASON: &str = "new session";

/// Holds a SOAP answer back until what the operation changed is on disk, so an operation
/// SAP saw succeed never loses its events to a crash. Never makes the actor wait: the
/// waiting happens in the task that answers.
#[derive(Clone)]
struct Confirm {
    /// Asks the actor for the spool ticket of everything it has queued so far.
    barriers: mpsc::Sender<oneshot::Sender<Ticket>>,
    /// The actor's spool handle (its ticket mark counts the actor's changes only).
    spool: Spool,
}

impl Confirm {
    /// Answers an operation the actor ran itself: at once if it queued nothing for the
    /// spool (reads) or that is committed already, else from a task once it is.
    fn answer_after(&self, before: Ticket, result: Result<Answer, SessionError>, reply: Reply) {
        let ticket = self.spool.last_queued();
        if ticket == before || self.spool.is_committed(ticket) {
            let _ = reply.send(result);
            return;
        }
        let spool = self.spool.clone();
        tokio::spawn(async move {
            spool.committed(ticket).await;
            let _ = reply.send(result);
        });
    }

    /// After the switch answered a command: the adapters report a command's events before
    /// they answer it, so once the actor has taken those (its loop takes switch events
    /// before barrier requests) and the spool has committed what it queued, the events are
    /// durable.
    async fn switch_events_durable(&self) {
        if !self.spool.is_durable() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if self.barriers.send(tx).await.is_err() {
            return;
        }
        if let Ok(ticket) = rx.await {
            self.spool.committed(ticket).await;
        }
    }
}

/// What an operation leads to.
enum Step {
    /// Answer now.
    Answer(Answer),
    /// Send these commands to the switch; answer with the last one's result.
    Switch(Vec<SwitchCommand>),
}

/// The `sub_index` key of a subscription target. Containers match an extension exactly or
/// a user id in any case, so their key is lower case (a superset; matches are re-checked).
fn sub_key(target: &Target) -> String {
    match target {
        Target::User(user) => format!("u:{user}"),
        Target::Container(container) => container_key(container),
    }
}

fn container_key(container: &str) -> String {
    format!("c:{}", container.to_ascii_lowercase())
}

fn answer(answer: Answer) -> Result<Step, SessionError> {
    Ok(Step::Answer(answer))
}

fn done() -> Result<Step, SessionError> {
    Ok(Step::Answer(Answer::Done))
}

fn invalid_state(leg: &LegEvent) -> SessionError {
    SessionError::InvalidState {
        call: leg.call.clone(),
        state: leg.state.as_str(),
    }
}

fn expect_state(leg: &LegEvent, states: &[LegState]) -> Result<(), SessionError> {
    if states.contains(&leg.state) {
        Ok(())
    } else {
        Err(invalid_state(leg))
    }
}

/// The stored form of a subscription.
fn stored(sub: &Subscription) -> StoredSubscription {
    let (kind, target) = match &sub.target {
        Target::User(u) => ("user", u.to_string()),
        Target::Container(c) => ("container", c.clone()),
    };
    StoredSubscription {
        id: sub.id,
        kind: kind.to_string(),
        target,
        url: sub.url.to_string(),
        app_ids: sub.app_ids.clone(),
        sequence: sub.sequence,
    }
}

/// Builds one event for a subscription: next sequence number, its app ids, the envelope
/// the wire layer writes.
fn event_for(
    wire: Wire,
    sub: &mut Subscription,
    user: String,
    call: Option<String>,
    event: &IciEvent,
) -> OutboundEvent {
    sub.sequence += 1;
    OutboundEvent {
        name: event.kind().name(),
        sequence: sub.sequence,
        user,
        call,
        body: (wire.event)(event, &sub.app_ids, sub.sequence),
    }
}
