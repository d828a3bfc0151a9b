//! The session manager: one actor task that owns all agent state.
//!
//! Per agent (SAP user): workmode, channels, queues, address, and the interaction table
//! (at most `max_interactions` visible to SAP, the rest waiting in FIFO order). Subscriptions
//! and item attached data live here too. Inputs arrive on bounded channels: switch events
//! first (so a SOAP request answered after a switch change always sees that change), then
//! notifier feedback, then SOAP commands. The actor never awaits I/O: commands go to the
//! switch adapter with the SOAP caller's reply, events go to per-subscription outboxes.
//! Its one wait is for room in the event spool's bounded queue, before it takes a message
//! (`notify::Spool::room`): a disk slower than the events slows its intake.

mod actor;
mod answer;
mod error;
mod event;
mod operation;
#[cfg(test)]
mod spool_pressure;
mod view;
mod workmodes;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::domain::UserId;
use crate::notify::{Feedback, Notifier, SpoolContents};
use crate::switch::{SwitchAdapter, SwitchEvent};

pub use answer::{
    Answer, AttributesView, PhoneCallView, PresenceQueueView, ReasonView, WorkmodeView,
};
pub use error::SessionError;
pub use event::{EventKind, IciEvent, Wire};
pub use operation::{Operation, Target};
pub use view::{AgentStatus, InteractionStatus, StatusSnapshot, SubscriptionStatus};

/// Depth of the command queue from the SOAP listener; a full queue makes callers wait
/// (back-pressure), it never drops a request.
const COMMAND_QUEUE: usize = 1024;
/// Depth of the switch event queue; the adapter waits when it is full.
pub const SWITCH_EVENT_QUEUE: usize = 4096;
/// Depth of the notifier's feedback queue (subscriptions SAP ended). A delivery task sends
/// at most one message and then stops, so a full queue only delays that task's end, never
/// an event; the depth absorbs many SAP sessions ending together (a SAP restart).
pub const FEEDBACK_QUEUE: usize = 1024;

/// A request to the actor.
#[derive(Debug)]
enum Command {
    Execute {
        operation: Operation,
        user_header: Option<UserId>,
        reply: oneshot::Sender<Result<Answer, SessionError>>,
    },
    Snapshot {
        reply: oneshot::Sender<StatusSnapshot>,
    },
    /// The switch said it does not know this call: end it toward SAP.
    Reap { call: String },
    /// A reloaded configuration (only its run-time changeable parts differ).
    Reconfigure(Arc<Config>),
}

/// The cloneable handle the SOAP and admin listeners talk to.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Command>,
    /// For the appURL check of `subscribe*`, which resolves a host name: done here, in the
    /// caller's task, because the actor never awaits I/O.
    notifier: Notifier,
}

impl SessionHandle {
    /// Runs an operation; `user_header` is SAP's `user` SOAP header: when present, call
    /// operations see only that agent's calls (a call id shared by two agents, as in an
    /// internal call, means that agent's leg; another agent's call is unknown), except a
    /// supervisor's `listen`/`listenEnd`.
    pub async fn execute(
        &self,
        operation: Operation,
        user_header: Option<UserId>,
    ) -> Result<Answer, SessionError> {
        if let Operation::Subscribe { url, .. } = &operation
            && let Err(refused) = self.notifier.check_destination(&url.uri()).await
        {
            crate::metrics::subscription_refused("app_url");
            // The reason names host and address; the URL may carry credentials.
            tracing::warn!(reason = %refused, "subscription refused");
            return Err(refused.into());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Execute {
                operation,
                user_header,
                reply,
            })
            .await
            .map_err(|_| SessionError::ShuttingDown)?;
        rx.await.map_err(|_| SessionError::ShuttingDown)?
    }

    /// Puts a reloaded configuration in force (workmode mapping, numbers, caps).
    pub async fn reconfigure(&self, config: Arc<Config>) {
        let _ = self.tx.send(Command::Reconfigure(config)).await;
    }

    /// What the status page and metrics show.
    pub async fn snapshot(&self) -> Option<StatusSnapshot> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Snapshot { reply }).await.ok()?;
        rx.await.ok()
    }
}

/// What the session manager is started with.
pub struct Parts {
    pub config: Arc<Config>,
    pub switch: Arc<dyn SwitchAdapter>,
    /// The receiving end of the channel whose sender the switch adapter got in its
    /// [`crate::switch::EventSink`].
    pub switch_events: mpsc::Receiver<SwitchEvent>,
    pub notifier: Notifier,
    pub feedback: mpsc::Receiver<Feedback>,
    /// What the event spool kept from the previous run.
    pub restored: SpoolContents,
    /// How events become envelopes and switch data becomes attached data.
    pub wire: Wire,
}

/// Starts the actor. The task ends when every handle is dropped; dropping its
/// subscriptions lets their outboxes drain.
pub fn start(parts: Parts) -> (SessionHandle, tokio::task::JoinHandle<()>) {
    let Parts {
        config,
        switch,
        switch_events,
        notifier,
        feedback,
        restored,
        wire,
    } = parts;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let mut actor = actor::Actor::new(config, switch, notifier.clone(), wire, tx.downgrade());
    actor.restore(restored);
    let task = tokio::spawn(actor.run(rx, switch_events, feedback));
    (SessionHandle { tx, notifier }, task)
}
