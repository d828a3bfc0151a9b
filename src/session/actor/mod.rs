//! The session actor: its state and its one loop. What it does is spread over one file per
//! job, each an `impl Actor` block:
//! - [`execute`]: running an operation and answering it (the dispatch, switch commands);
//! - the handlers per ICI interface, mirroring `ici/`: [`system`], [`user`], [`item`],
//!   [`line`], [`phonecall`];
//! - [`lookups`]: agents, containers, legs and items by the ids SAP names;
//! - [`interactions`]: the interaction table fed by switch events (the six-cap, the
//!   reaper, resynchronisation);
//! - [`subscriptions`]: subscriptions, publishing events, the spool's records of them;
//! - [`outages`]: what happens when the other side goes away: an agent whose IC session
//!   is lost, every agent while the switch link is down, a workcenter held by another;
//! - [`status`]: the status page's snapshot.

mod attached;
mod consultation;
mod execute;
mod interactions;
mod item;
mod line;
mod lookups;
mod outages;
mod phonecall;
mod status;
mod subscriptions;
mod system;
mod user;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::config::Config;
use crate::domain::{AppUrl, UserId, Workmode};
use crate::notify::{Feedback, Notifier, Outbox, Ticket};
use crate::switch::{LegEvent, SwitchAdapter, SwitchEvent};

use super::{Command, Target, Wire};

use attached::AttachedTable;
use execute::Confirm;

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
    /// The workmode and reason SAP was last told (the wrap-up one during after-call work).
    workmode: Workmode,
    reason: Option<String>,
    /// While the switch link is down and SAP is shown `switch_unavailable`: the agent's
    /// own workmode and reason, kept up to date and shown again when the link is back.
    outage: Option<(Workmode, Option<String>)>,
    /// During after-call work: the workmode and reason to show again when it is over.
    before_wrap_up: Option<(Workmode, Option<String>)>,
    channels: Vec<String>,
    queues: Vec<String>,
    /// Interactions SAP sees, in arrival order (at most `max_interactions`). Each is the
    /// switch's last snapshot of the leg, shared with the adapter rather than copied.
    visible: Vec<Arc<LegEvent>>,
    /// Interactions waiting behind the cap, oldest first; SAP has never heard of them.
    waiting: VecDeque<Arc<LegEvent>>,
}

impl Agent {
    /// Every interaction of the agent: those SAP sees, then those waiting behind the cap.
    fn legs(&self) -> impl Iterator<Item = &Arc<LegEvent>> + Clone {
        self.visible.iter().chain(self.waiting.iter())
    }

    /// The agent has a leg of `call`, seen by SAP or waiting.
    fn has_call(&self, call: &str) -> bool {
        self.legs().any(|l| l.call == call)
    }
}

impl Actor {
    /// Some agent still has a leg of `call`.
    fn call_is_live(&self, call: &str) -> bool {
        self.agents.values().any(|a| a.has_call(call))
    }
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
    /// Why the switch link is down, while it is (for the status page).
    link_down_reason: Option<String>,
    /// Boxed: users are added in order, which leaves B-tree nodes about half full, and a
    /// node of unboxed agents would be mostly empty slots of a large struct.
    agents: BTreeMap<UserId, Box<Agent>>,
    by_extension: HashMap<String, UserId>,
    /// Attached data by call id (or by item id before its call exists), kept in the spool.
    attached: AttachedTable,
    /// Item id (from `create`) → the call placed for it.
    aliases: HashMap<String, String>,
    /// Item ids handed out by `create` (or named in `dial`) whose call has not appeared yet.
    pending_items: HashMap<String, Instant>,
    /// Attached-data keys no live call had at the last reaper tick (removed if still so at
    /// the next one: a blind transfer re-alerts within that time).
    orphans: HashSet<String>,
    /// Consultations by consulting extension: the call it holds, the address consulted,
    /// and the consultation call once the switch reported it. The consultation call
    /// inherits the held call's attached data (warm transfer screen pop), and `transfer`
    /// completes the consultation (ICI.md section 4).
    consults: HashMap<String, consultation::Consultation>,
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
        let (confirm, barriers) = Confirm::new(notifier.spool().clone());
        let attached = AttachedTable::new(notifier.spool().clone());
        Actor {
            config,
            link_up: switch.link_up_at_start(),
            link_down_reason: None,
            switch,
            notifier,
            wire,
            agents: BTreeMap::new(),
            by_extension: HashMap::new(),
            attached,
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
            // The changes of one message go to the spool without waiting; a full spool
            // queue (a disk slower than the events) holds the next message back, so the
            // back-pressure reaches the bounded mailbox and switch event queue.
            self.notifier.spool().room().await;
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
}
