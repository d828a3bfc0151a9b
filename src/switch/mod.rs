//! The switch adapter: a CSTA-like vocabulary between the session manager and a telephone
//! switch (the built-in simulator, Asterisk AMI, ...).
//!
//! An adapter is an actor. The session manager validates a request against its own view of
//! the agent, then hands the adapter a [`SwitchRequest`] and returns to its loop at once: it
//! never waits for the switch. The adapter answers the original caller on the request's
//! `reply` channel, and reports every state change it caused (or that happened on the switch
//! by itself) as a [`SwitchEvent`] on its [`EventSink`] **before** it answers, so a SOAP request
//! that follows the answer always sees the new state.

pub mod asterisk;
mod attributes;
pub mod sim;

use std::fmt;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use attributes::Attributes;

/// The call attribute that carries an item's attached data (the whole `ItemAttachedData`
/// document) on the switch: set by an IVR before an agent gets the call (ICI.md section 6)
/// or by the session through [`SwitchCommand::SetCallData`]. Matched case-insensitively in
/// leg attributes (`Sap_Cad`, `SAP_CAD`).
pub const ATTACHED_DATA_ATTRIBUTE: &str = "Sap_Cad";

/// The switch's identifier of one call. All legs of one call share it (Asterisk: `Linkedid`);
/// it is also the call id SAP sees.
pub type CallRef = String;

/// A switch device: an agent's extension or station (a workcenter, with free seating).
pub type Extension = String;

/// What a switch can do. SAP is told (getAttributes) and an operation that needs a missing
/// capability is answered with a Client fault naming the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Place an outbound call from an agent's device (dial).
    MakeCall,
    /// Answer an alerting call from the connector (accept).
    Answer,
    /// Put a connected call on hold and take it back.
    Hold,
    /// Hang up the agent's side of a call (drop).
    Clear,
    /// Blind (single-step) transfer.
    BlindTransfer,
    /// Place a consultation call while holding the first one.
    Consult,
    /// Join a held call and its consultation call.
    Conference,
    /// Remove one party from a conference.
    DropParty,
    /// Supervisor silent monitoring.
    Listen,
    /// Log agents in/out and set ready / not ready / custom states.
    AgentState,
    /// Send an alerting ACD call back to its queue.
    Reroute,
    /// Store the item's attached data on the switch side too.
    AttachData,
    /// Swap the held call and its consultation call ([`SwitchCommand::Alternate`]).
    Alternate,
}

impl Capability {
    /// Every capability, in a stable order (for getAttributes and docs).
    pub const ALL: [Capability; 13] = [
        Capability::MakeCall,
        Capability::Answer,
        Capability::Hold,
        Capability::Clear,
        Capability::BlindTransfer,
        Capability::Consult,
        Capability::Conference,
        Capability::DropParty,
        Capability::Listen,
        Capability::AgentState,
        Capability::Reroute,
        Capability::AttachData,
        Capability::Alternate,
    ];

    /// Stable lower-camel name, as reported to SAP and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::MakeCall => "makeCall",
            Capability::Answer => "answer",
            Capability::Hold => "hold",
            Capability::Clear => "clear",
            Capability::BlindTransfer => "blindTransfer",
            Capability::Consult => "consult",
            Capability::Conference => "conference",
            Capability::DropParty => "dropParty",
            Capability::Listen => "listen",
            Capability::AgentState => "agentState",
            Capability::Reroute => "reroute",
            Capability::AttachData => "attachData",
            Capability::Alternate => "alternate",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agent's state on the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Not logged in to any queue.
    LoggedOut,
    /// Logged in and available for ACD calls.
    Ready,
    /// Logged in, not available; optional reason code.
    NotReady { reason: Option<String> },
    /// A custom switch state (mapped from SAP workmodes >= 4 by config).
    Custom { state: String },
}

/// `ready`, `not ready (BRK)`, `custom state Lunch`: for logs.
impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentState::LoggedOut => f.write_str("logged out"),
            AgentState::Ready => f.write_str("ready"),
            AgentState::NotReady { reason: None } => f.write_str("not ready"),
            AgentState::NotReady {
                reason: Some(reason),
            } => write!(f, "not ready ({reason})"),
            AgentState::Custom { state } => write!(f, "custom state {state}"),
        }
    }
}

/// A command to the switch. Extensions name the agent device acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchCommand {
    /// Change an agent's state; `queues` are the ACD queues to log in to (empty: the
    /// switch's default for that agent).
    SetAgentState {
        extension: Extension,
        state: AgentState,
        queues: Vec<String>,
    },
    /// Outbound call from `extension` to `destination` (already reformatted for the switch).
    /// `correlation` comes back on the first event of the new call.
    MakeCall {
        extension: Extension,
        destination: String,
        correlation: String,
    },
    Answer {
        call: CallRef,
        extension: Extension,
    },
    Hold {
        call: CallRef,
        extension: Extension,
    },
    Retrieve {
        call: CallRef,
        extension: Extension,
    },
    /// The agent leaves the call (for a two-party call this ends it).
    Clear {
        call: CallRef,
        extension: Extension,
    },
    /// Blind transfer of `call` away from `extension`.
    SingleStepTransfer {
        call: CallRef,
        extension: Extension,
        destination: String,
    },
    /// Hold `call` and place a new call from `extension` to `destination`.
    Consult {
        call: CallRef,
        extension: Extension,
        destination: String,
    },
    /// Join the held call and the consultation call into one conference (the held call's id
    /// survives).
    Conference {
        held: CallRef,
        consult: CallRef,
        extension: Extension,
    },
    /// Complete a consultation transfer (warm transfer): connect the held party with the
    /// consulted one and take the agent out. `held` is the call the consultation was placed
    /// from (whether it is held now or, after [`SwitchCommand::Alternate`], the consultation
    /// is); its id survives for the parties that stay. The agent's legs of both calls end
    /// `Transferred` (cause `transferred`); the consulted party's leg of `consult` ends
    /// (`Dropped`, cause `transferred`) and it continues on `held` (a `Connected` snapshot of
    /// `held` at its device).
    TransferConsult {
        held: CallRef,
        consult: CallRef,
        extension: Extension,
    },
    /// Swap the calls of a consultation: the one the agent talks on (`active`) is held, the
    /// held one (`held`) is taken back. Reported as `Held` / `Connected` snapshots of the
    /// agent's two legs.
    Alternate {
        held: CallRef,
        active: CallRef,
        extension: Extension,
    },
    /// End a consultation and go back to the call it was placed from: the agent's leg of
    /// `consult` ends (`Dropped`, cause `normal`; the consulted party's with
    /// `remote_hangup`), and the agent talks on `held` again (retrieved if it was held, as
    /// it is unless an [`SwitchCommand::Alternate`] swapped them).
    Reconnect {
        held: CallRef,
        consult: CallRef,
        extension: Extension,
    },
    /// Remove `party` (an address as it appears in the call's parties) from `call`.
    DropParty {
        call: CallRef,
        extension: Extension,
        party: String,
    },
    /// Start silent monitoring of `call` from the supervisor's device.
    Listen {
        call: CallRef,
        supervisor: Extension,
    },
    ListenEnd {
        call: CallRef,
        supervisor: Extension,
    },
    /// Send an alerting call back to the queue it came from.
    Reroute {
        call: CallRef,
        extension: Extension,
    },
    /// Store attached data on the switch's call, so it follows the call through transfers
    /// and reaches agents served by another connector instance. The session writes the
    /// item's whole attached data document under [`ATTACHED_DATA_ATTRIBUTE`]. The switch
    /// carries it in the call's `attributes` on later snapshots (no snapshot of its own),
    /// including those of a consultation call placed from this one (Asterisk: the channel
    /// variable `SAP_CAD`, inherited by the consultation channel).
    SetCallData {
        call: CallRef,
        key: String,
        value: String,
    },
}

impl SwitchCommand {
    /// The capability a command needs.
    pub fn capability(&self) -> Capability {
        match self {
            SwitchCommand::SetAgentState { .. } => Capability::AgentState,
            SwitchCommand::MakeCall { .. } => Capability::MakeCall,
            SwitchCommand::Answer { .. } => Capability::Answer,
            SwitchCommand::Hold { .. } | SwitchCommand::Retrieve { .. } => Capability::Hold,
            SwitchCommand::Clear { .. } => Capability::Clear,
            SwitchCommand::SingleStepTransfer { .. } => Capability::BlindTransfer,
            SwitchCommand::Consult { .. } | SwitchCommand::TransferConsult { .. } => {
                Capability::Consult
            }
            SwitchCommand::Conference { .. } => Capability::Conference,
            SwitchCommand::Alternate { .. } => Capability::Alternate,
            SwitchCommand::Reconnect { .. } => Capability::Consult,
            SwitchCommand::DropParty { .. } => Capability::DropParty,
            SwitchCommand::Listen { .. } | SwitchCommand::ListenEnd { .. } => Capability::Listen,
            SwitchCommand::Reroute { .. } => Capability::Reroute,
            SwitchCommand::SetCallData { .. } => Capability::AttachData,
        }
    }
}

/// What a command asks, as a person would say it: `hold sim-1 at 2001`. Call data is named
/// by its key only: its value may be a customer's data.
impl fmt::Display for SwitchCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SwitchCommand::*;
        match self {
            SetAgentState {
                extension,
                state,
                queues,
            } => {
                write!(f, "set {extension} {state}")?;
                if !queues.is_empty() {
                    write!(f, " in {}", queues.join(", "))?;
                }
                Ok(())
            }
            MakeCall {
                extension,
                destination,
                correlation,
            } => write!(f, "call {destination} from {extension} for {correlation}"),
            Answer { call, extension } => write!(f, "answer {call} at {extension}"),
            Hold { call, extension } => write!(f, "hold {call} at {extension}"),
            Retrieve { call, extension } => write!(f, "retrieve {call} at {extension}"),
            Clear { call, extension } => write!(f, "clear {call} at {extension}"),
            SingleStepTransfer {
                call,
                extension,
                destination,
            } => write!(f, "transfer {call} from {extension} to {destination}"),
            Consult {
                call,
                extension,
                destination,
            } => write!(f, "consult {destination} from {extension}, holding {call}"),
            Conference {
                held,
                consult,
                extension,
            } => write!(f, "conference {held} with {consult} at {extension}"),
            TransferConsult {
                held,
                consult,
                extension,
            } => write!(f, "transfer {held} to {consult} at {extension}"),
            Alternate {
                held,
                active,
                extension,
            } => write!(f, "alternate to {held} from {active} at {extension}"),
            Reconnect {
                held,
                consult,
                extension,
            } => write!(f, "reconnect {held} ending {consult} at {extension}"),
            DropParty {
                call,
                extension,
                party,
            } => write!(f, "drop {party} from {call} at {extension}"),
            Listen { call, supervisor } => write!(f, "listen to {call} from {supervisor}"),
            ListenEnd { call, supervisor } => {
                write!(f, "stop listening to {call} from {supervisor}")
            }
            Reroute { call, extension } => write!(f, "reroute {call} from {extension}"),
            SetCallData { call, key, .. } => write!(f, "set call data {key} on {call}"),
        }
    }
}

/// A successful answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchReply {
    Done,
    /// MakeCall / Consult: the new call's reference.
    NewCall(CallRef),
}

/// Why the switch refused or failed a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// The switch does not know this call (any more).
    #[error("unknown call {0}")]
    UnknownCall(CallRef),
    /// The switch does not know this device.
    #[error("unknown extension {0}")]
    UnknownExtension(Extension),
    /// The call is not in a state that allows the command (e.g. hold on a held call).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// The switch cannot do this at all.
    #[error("{0} is not supported by this switch")]
    NotSupported(Capability),
    /// The switch link is down or the adapter is overloaded; the command was not executed.
    #[error("switch unavailable: {0}")]
    Unavailable(String),
    /// The switch rejected the command for another reason.
    #[error("switch rejected the command: {0}")]
    Rejected(String),
}

/// A command together with the channel its answer goes to.
#[derive(Debug)]
pub struct SwitchRequest {
    pub command: SwitchCommand,
    pub reply: oneshot::Sender<Result<SwitchReply, SwitchError>>,
}

/// A call leg's state as seen from one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegState {
    /// Ringing at the agent's device.
    Alerting,
    /// Outbound: the agent's device is calling out, the far end not yet answered.
    Dialing,
    Connected,
    Held,
    /// In a conference of three or more parties.
    Conferenced,
    /// The agent's device left the call (or the call ended).
    Dropped,
    /// The call was transferred away from this device.
    Transferred,
}

impl LegState {
    /// ICI state name (ICI.md section 5).
    pub fn as_str(self) -> &'static str {
        match self {
            LegState::Alerting => "alerting",
            LegState::Dialing => "dialing",
            LegState::Connected => "connected",
            LegState::Held => "held",
            LegState::Conferenced => "conferenced",
            LegState::Dropped => "dropped",
            LegState::Transferred => "transferred",
        }
    }

    /// Whether the leg no longer exists at the device.
    pub fn is_final(self) -> bool {
        matches!(self, LegState::Dropped | LegState::Transferred)
    }
}

/// Direction of a call as seen from the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        }
    }
}

/// The state of one call at one device, as a full snapshot (not a delta), so a missed event
/// never leaves the session manager with a half-applied change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegEvent {
    pub call: CallRef,
    pub extension: Extension,
    pub state: LegState,
    pub direction: Direction,
    /// ACD queue the call came through, if any.
    pub queue: Option<String>,
    /// Other parties' addresses, raw as the switch names them.
    pub parties: Vec<String>,
    /// Call attributes (ANI / DNIS / IVR data such as `Sap_Cad`), raw. The session manager
    /// picks ANI and DNIS by the configured attribute lists. Shared between the snapshots
    /// of one call (cloning is cheap).
    pub attributes: Attributes,
    /// Correlation of a MakeCall / Consult command, on the first event of that call.
    pub correlation: Option<String>,
    /// Why the leg ended or changed (e.g. `normal`, `abandoned`, `transferred`).
    pub cause: Option<String>,
}

/// What the switch tells the session manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchEvent {
    /// A call leg at an agent's device changed. Shared: the adapter may keep the same
    /// snapshot as its last-sent state while the session manager holds it as the agent's
    /// interaction, so one call costs one snapshot, not one per holder.
    Leg(Arc<LegEvent>),
    /// An agent's state changed on the switch (also when the agent used the phone's buttons).
    Agent {
        extension: Extension,
        state: AgentState,
    },
    /// After-call work (wrap-up) began (`active`) or is over for an agent. It lies over the
    /// agent's state rather than replacing it: while it lasts the switch offers the agent
    /// no queue call and SAP sees the workmode `[workmodes] wrap_up`; when it is over SAP
    /// sees the agent's state again, as the last [`SwitchEvent::Agent`] reported it.
    ///
    /// A switch reports `active: true` when an agent's answered leg of a call from a queue
    /// with wrap-up time ends (Asterisk: `AgentComplete` of a queue with `wrapuptime`), and
    /// `active: false` once that time is over. An agent state set during wrap-up ends it:
    /// a different state is reported as [`SwitchEvent::Agent`] alone (SAP sees it at once),
    /// the state the agent had is reported as `active: false` (a repeated `Agent` report of
    /// the state under the wrap-up changes nothing).
    WrapUp { extension: Extension, active: bool },
    /// The link to the switch is up (again). `calls` is the full set of live legs; every
    /// interaction not in it ended while the link was down.
    LinkUp { calls: Vec<LegEvent> },
    /// The link to the switch is down; commands fail with `Unavailable` until `LinkUp`.
    LinkDown { reason: String },
}

/// `call sim-1 at 2001 alerting (inbound, queue support)`: for logs. A leg's attributes
/// (the caller's data) are left out.
impl fmt::Display for LegEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "call {} at {} {} ({}",
            self.call,
            self.extension,
            self.state.as_str(),
            self.direction.as_str()
        )?;
        if let Some(queue) = &self.queue {
            write!(f, ", queue {queue}")?;
        }
        if let Some(cause) = &self.cause {
            write!(f, ", {cause}")?;
        }
        f.write_str(")")
    }
}

/// `agent at 2001 ready`, `link up with 3 calls`: for logs.
impl fmt::Display for SwitchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchEvent::Leg(leg) => leg.fmt(f),
            SwitchEvent::Agent { extension, state } => write!(f, "agent at {extension} {state}"),
            SwitchEvent::WrapUp {
                extension,
                active: true,
            } => write!(f, "agent at {extension} in wrap-up"),
            SwitchEvent::WrapUp {
                extension,
                active: false,
            } => write!(f, "agent at {extension} done with wrap-up"),
            SwitchEvent::LinkUp { calls } => write!(f, "link up with {} calls", calls.len()),
            SwitchEvent::LinkDown { reason } => write!(f, "link down: {reason}"),
        }
    }
}

/// Where an adapter reports events: the session manager's input, in order.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<SwitchEvent>,
}

impl EventSink {
    /// Wrap the session manager's event channel.
    pub fn new(tx: mpsc::Sender<SwitchEvent>) -> Self {
        EventSink { tx }
    }

    /// Report one event. Waits while the session manager's queue is full (back-pressure
    /// onto the switch side, never a drop). Returns false once the session manager is gone.
    pub async fn send(&self, event: SwitchEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }
}

/// The handle every adapter gives the session manager.
pub trait SwitchAdapter: Send + Sync + 'static {
    /// Short name for faults and logs (`sim`, `asterisk`).
    fn name(&self) -> &'static str;

    /// What this switch can do: exactly the capabilities whose commands `submit` carries
    /// out, since getAttributes tells SAP this list and the session refuses an operation
    /// that needs a missing one before the switch sees it.
    fn capabilities(&self) -> &[Capability];

    /// Queue a command without waiting. The answer arrives on `request.reply`; if the
    /// adapter's queue is full the reply carries `SwitchError::Unavailable`.
    fn submit(&self, request: SwitchRequest);

    /// Whether the link counts as up before the adapter has reported anything. True for
    /// an adapter that needs no connection (the simulator); one that must connect and log
    /// in says false and reports [`SwitchEvent::LinkUp`] once it has, so `/readyz` and
    /// `ici_switch_link_up` never claim a link that is not there.
    fn link_up_at_start(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg() -> LegEvent {
        LegEvent {
            call: "sim-1".into(),
            extension: "2001".into(),
            state: LegState::Alerting,
            direction: Direction::Inbound,
            queue: Some("support".into()),
            parties: vec!["555".into()],
            attributes: Attributes::new(),
            correlation: None,
            cause: None,
        }
    }

    #[test]
    fn commands_read_as_a_person_says_them() {
        let shown = |c: SwitchCommand| c.to_string();
        assert_eq!(
            shown(SwitchCommand::Hold {
                call: "sim-1".into(),
                extension: "2001".into()
            }),
            "hold sim-1 at 2001"
        );
        assert_eq!(
            shown(SwitchCommand::SetAgentState {
                extension: "2001".into(),
                state: AgentState::NotReady {
                    reason: Some("BRK".into())
                },
                queues: vec!["support".into(), "sales".into()],
            }),
            "set 2001 not ready (BRK) in support, sales"
        );
        assert_eq!(
            shown(SwitchCommand::MakeCall {
                extension: "2001".into(),
                destination: "+4930".into(),
                correlation: "dial-3".into(),
            }),
            "call +4930 from 2001 for dial-3"
        );
        // Call data by its key only: the value may be the customer's.
        let data = shown(SwitchCommand::SetCallData {
            call: "sim-1".into(),
            key: "Sap_Cad".into(),
            value: "<PIN>1234</PIN>".into(),
        });
        assert_eq!(data, "set call data Sap_Cad on sim-1");
    }

    #[test]
    fn events_and_states_read_as_the_domain_names_them() {
        assert_eq!(
            SwitchEvent::Leg(Arc::new(leg())).to_string(),
            "call sim-1 at 2001 alerting (inbound, queue support)"
        );
        let mut dropped = leg();
        dropped.state = LegState::Dropped;
        dropped.queue = None;
        dropped.cause = Some("abandoned".into());
        assert_eq!(
            dropped.to_string(),
            "call sim-1 at 2001 dropped (inbound, abandoned)"
        );
        let agent = SwitchEvent::Agent {
            extension: "2001".into(),
            state: AgentState::Custom {
                state: "Lunch".into(),
            },
        };
        assert_eq!(agent.to_string(), "agent at 2001 custom state Lunch");
        let up = SwitchEvent::LinkUp {
            calls: vec![leg(), leg()],
        };
        assert_eq!(up.to_string(), "link up with 2 calls");
        assert_eq!(AgentState::LoggedOut.to_string(), "logged out");
    }
}
