//! The built-in switch simulator: the embedded default switch, so that a person (and the
//! test suite) can drive the connector end to end without a real PBX.
//!
//! [`start`] spawns one tokio task, an actor that owns the whole simulated switch: devices
//! (extensions), agents, ACD queues, calls and timers. Two handles reach it through one
//! bounded channel: [`SimSwitch`], the [`SwitchAdapter`] the session manager drives, and
//! [`SimControl`], the "outside world" (callers ringing in, remote parties answering or
//! hanging up, agents pressing buttons on their phones), which the admin listener exposes
//! over HTTP through [`control::handle`]. The task ends when every handle is dropped.
//!
//! Ordering contract: for every command and every control action the simulator sends all
//! resulting [`SwitchEvent`](super::SwitchEvent)s on the [`EventSink`], awaiting each send, before it answers.
//!
//! Behaviour worth knowing (the choices a real switch would leave to configuration):
//! - Extensions named in [`SimSettings`] exist from the start; `SetAgentState` for an unknown
//!   extension creates it (free seating). Anything dialled that is neither an extension nor a
//!   queue number is an external party: it produces no events, and answers an outbound call
//!   after [`SimSettings::remote_answer_after`] (or only through [`SimControl::remote_answer`]).
//! - A direct call to an extension alerts whatever the agent's state, even logged out: the
//!   phone rings as a phone does; only ACD distribution looks at agent states. Several calls
//!   may alert at one extension at once (call waiting).
//! - ACD: a call waits in its queue (FIFO) and is offered to a Ready agent logged in to that
//!   queue who has no alerting call, preferring agents without any call, then the one idle the
//!   longest (since becoming Ready, being offered a call, or finishing the last call).
//! - A leg that ends because the rest of the call went away is `Dropped` with cause
//!   `abandoned` if it was still alerting, `remote_hangup` otherwise. An agent's own `Clear`
//!   is `normal`.
//! - Hold, consultation and blind transfer need a two-party call (`Connected`); a
//!   `Conferenced` leg can only be cleared or drop parties. Conference and consultation
//!   transfer need the consultation call answered.
//! - A blind transfer to an external number connects at once (the simulator does not model
//!   the far end ringing after a transfer); to a queue number, the call waits in that queue.

mod acd;
mod actor;
mod commands;
pub mod control;
mod model;
mod outside;
mod settle;
#[cfg(test)]
mod tests;
mod views;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::{
    AgentState, CallRef, Capability, EventSink, Extension, SwitchAdapter, SwitchError,
    SwitchRequest,
};

/// How many commands and control actions may wait for the simulator before `submit` answers
/// `Unavailable` (control actions wait for room instead). Large enough for load tests, small
/// enough that a stuck session manager shows up as back-pressure rather than memory growth.
pub const SIM_QUEUE_DEPTH: usize = 1024;

/// What the simulated switch looks like at start. Plain data: the config module maps its
/// `[switch.sim]` section onto it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimSettings {
    /// Extensions that exist from the start (more appear when an agent logs in at an unknown
    /// one).
    pub extensions: Vec<String>,
    /// ACD queues.
    pub queues: Vec<SimQueue>,
    /// How long an external party takes to answer an outbound call; `None`: it answers only
    /// when told to through [`SimControl::remote_answer`].
    pub remote_answer_after: Option<Duration>,
}

/// One ACD queue of the simulated switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimQueue {
    /// Queue name, as it appears in leg events (`queue`) and in `SetAgentState` queue lists.
    pub name: String,
    /// The number callers dial to reach the queue (the call's `dnis`).
    pub number: String,
    /// Extensions that log in to this queue by default; empty: every agent that logs in.
    pub members: Vec<String>,
    /// After-call work: how long an agent whose answered call from this queue ended stays
    /// in [`AgentState::WrapUp`] before it is ready again; `None`: no wrap-up.
    pub wrap_up: Option<Duration>,
}

/// An inbound call from the outside world, as a test or a person places it through
/// [`SimControl::create_call`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateCall {
    /// The caller's address, raw (e.g. `sip:555@example.com` or `+4930123456`); the call's
    /// `ani`.
    pub from: String,
    /// The dialled number: an extension or a queue number. Exactly one of `to` and `queue`.
    pub to: Option<String>,
    /// A queue by name (or number), for callers that do not care about numbers.
    pub queue: Option<String>,
    /// Extra call attributes (IVR data such as `Sap_Cad`); they override `ani`/`dnis` if
    /// they name them.
    pub attributes: BTreeMap<String, String>,
    /// The caller hangs up after this long (a scripted caller), answered or not.
    pub hangup_after: Option<Duration>,
}

/// Why a control action failed. Maps to HTTP statuses in [`control::handle`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No such call (any more).
    #[error("unknown call {0}")]
    UnknownCall(CallRef),
    /// The destination of a new inbound call is neither an extension nor a queue.
    #[error("unknown destination {0}")]
    UnknownDestination(String),
    /// The request itself is malformed (missing caller, both `to` and `queue`, ...).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The call is not in a state that allows the action (e.g. answer a call nobody dials).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// The simulator task is gone (it panicked or the process is shutting down).
    #[error("simulator stopped")]
    Stopped,
}

/// A call as the control API shows it (`GET /sim/calls`): enough to see what the switch
/// did, e.g. which number it dialled out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimCallView {
    /// The call id, as in leg events.
    pub id: CallRef,
    /// `inbound`, `outbound` or `internal`.
    pub direction: &'static str,
    /// The ACD queue the call came through, if any.
    pub queue: Option<String>,
    /// Whether the call is waiting in its queue for an agent.
    pub waiting: bool,
    /// Everybody on the call, in order of joining.
    pub parties: Vec<SimPartyView>,
    /// Supervisors silently listening.
    pub listeners: Vec<Extension>,
    /// Call attributes (`ani`, `dnis`, attached data).
    pub attributes: BTreeMap<String, String>,
    /// The last external number the switch dialled on this call, as it received it.
    pub dialled: Option<String>,
}

/// One party of a [`SimCallView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimPartyView {
    /// An extension, or an external address raw.
    pub address: String,
    /// `extension` or `external`.
    pub kind: &'static str,
    /// Extensions: the leg state (`alerting`, `dialing`, `connected`, `held`,
    /// `conferenced`). External parties: `waiting` (inbound, unanswered), `ringing`
    /// (outbound, unanswered) or `connected`.
    pub state: &'static str,
}

/// An agent (extension) as the control API shows it (`GET /sim/agents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimAgentView {
    /// The extension.
    pub extension: Extension,
    /// `logged_out`, `ready`, `not_ready` or `custom`.
    pub state: &'static str,
    /// Not-ready reason code, if any.
    pub reason: Option<String>,
    /// Custom state name, for `custom`.
    pub custom: Option<String>,
    /// Queues the agent is logged in to.
    pub queues: Vec<String>,
    /// Calls with a leg at this extension (including listened ones).
    pub calls: Vec<CallRef>,
    /// The last external number this extension made the switch dial (MakeCall, consultation
    /// or transfer), as the switch received it: lets a test check number reformatting.
    pub last_dialled: Option<String>,
}

/// Everything that reaches the actor, from either handle.
#[derive(Debug)]
enum Msg {
    Command(SwitchRequest),
    Control(ControlRequest),
}

/// A control action with its answer channel.
#[derive(Debug)]
enum ControlRequest {
    CreateCall(CreateCall, oneshot::Sender<Result<CallRef, SimError>>),
    RemoteAnswer(CallRef, oneshot::Sender<Result<(), SimError>>),
    RemoteHangup(CallRef, oneshot::Sender<Result<(), SimError>>),
    SetAgentState(Extension, AgentState, oneshot::Sender<Result<(), SimError>>),
    ListCalls(oneshot::Sender<Vec<SimCallView>>),
    ListAgents(oneshot::Sender<Vec<SimAgentView>>),
}

/// Start the simulator: spawns its actor task on the current tokio runtime and returns the
/// adapter handle for the session manager and the control handle for the admin listener and
/// tests. Events go to `events`; the task ends when both handles (and their clones) are gone.
pub fn start(settings: SimSettings, events: EventSink) -> (SimSwitch, SimControl) {
    let (tx, rx) = mpsc::channel(SIM_QUEUE_DEPTH);
    tokio::spawn(actor::run(model::Sim::new(settings), rx, events));
    (SimSwitch { tx: tx.clone() }, SimControl { tx })
}

/// The simulator as a [`SwitchAdapter`]: the session manager's way in.
#[derive(Debug, Clone)]
pub struct SimSwitch {
    tx: mpsc::Sender<Msg>,
}

impl SwitchAdapter for SimSwitch {
    fn name(&self) -> &'static str {
        "sim"
    }

    /// The simulator can do everything the vocabulary names, so every ICI feature can be
    /// exercised without a PBX.
    fn capabilities(&self) -> &[Capability] {
        &Capability::ALL
    }

    /// Reserves a place in the queue before building the message: a refusal then still
    /// holds the request to answer, and no other kind of message can come back.
    fn submit(&self, request: SwitchRequest) {
        use mpsc::error::TrySendError;
        let why = match self.tx.try_reserve() {
            Ok(permit) => return permit.send(Msg::Command(request)),
            Err(TrySendError::Full(())) => "simulator queue full",
            Err(TrySendError::Closed(())) => "simulator stopped",
        };
        tracing::warn!(command = %request.command, why, "switch command refused");
        let _ = request
            .reply
            .send(Err(SwitchError::Unavailable(why.to_owned())));
    }
}

/// The control handle: what happens outside the connector's reach (callers, remote parties,
/// agents' phone buttons), plus views for tests and the status page. Cloneable; every
/// action answers after the events it caused were sent.
#[derive(Debug, Clone)]
pub struct SimControl {
    tx: mpsc::Sender<Msg>,
}

impl SimControl {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ControlRequest,
    ) -> Result<T, SimError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Control(make(reply)))
            .await
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// An external party calls in: to an extension (`to`), to a queue number (`to`) or to a
    /// queue by name (`queue`). Returns the new call's id.
    pub async fn create_call(&self, call: CreateCall) -> Result<CallRef, SimError> {
        self.ask(|r| ControlRequest::CreateCall(call, r)).await?
    }

    /// The external party of an outbound call answers (the call must be ringing out).
    pub async fn remote_answer(&self, call: &str) -> Result<(), SimError> {
        self.ask(|r| ControlRequest::RemoteAnswer(call.to_owned(), r))
            .await?
    }

    /// The external parties of a call hang up. Before anybody answered this is an abandoned
    /// call: alerting legs end with cause `abandoned`, and a call still waiting in its queue
    /// just disappears (no agent ever saw it, so no event).
    pub async fn remote_hangup(&self, call: &str) -> Result<(), SimError> {
        self.ask(|r| ControlRequest::RemoteHangup(call.to_owned(), r))
            .await?
    }

    /// The agent changed state with the phone's buttons. Logging in joins the extension's
    /// default queues. Unknown extensions are created (free seating).
    pub async fn set_agent_state(
        &self,
        extension: &str,
        state: AgentState,
    ) -> Result<(), SimError> {
        self.ask(|r| ControlRequest::SetAgentState(extension.to_owned(), state, r))
            .await?
    }

    /// Every live call, oldest first (empty if the simulator stopped).
    pub async fn list_calls(&self) -> Vec<SimCallView> {
        self.ask(ControlRequest::ListCalls)
            .await
            .unwrap_or_default()
    }

    /// Every known extension with its agent state, ordered by extension (empty if the
    /// simulator stopped).
    pub async fn list_agents(&self) -> Vec<SimAgentView> {
        self.ask(ControlRequest::ListAgents)
            .await
            .unwrap_or_default()
    }
}
