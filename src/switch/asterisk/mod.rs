//! The Asterisk backend: drives a real PBX through its manager interface (AMI, TCP 5038).
//!
//! AMI monitors and controls an existing dialplan, which is exactly the CTI middleware's
//! position: callers reach agents through the PBX's own queues (`app_queue`), and the
//! adapter turns what AMI reports into per-agent [`LegEvent`](super::LegEvent) snapshots:
//!
//! | AMI | leg / agent |
//! |---|---|
//! | `Newchannel` on the call's first channel | `ani` = `CallerIDNum`, `dnis` = `Exten` |
//! | `QueueCallerJoin`, `AgentCalled` | `queue` |
//! | `Newstate` Ringing on an agent channel | alerting (dialing on a call the adapter originated) |
//! | `Newstate` Up / `BridgeEnter` | connected |
//! | `Hold` / `Unhold` | held / connected |
//! | `ConfbridgeJoin` | conferenced |
//! | `BlindTransfer` / `AttendedTransfer` (transferer) | transferred |
//! | `Hangup` | dropped (cause from the Q.850 code; `abandoned` while alerting) |
//!
//! A consultation (`Atxfer`) shares the held call's `Linkedid`; its channels are reported
//! under the `Uniqueid` of the first one the transfer creates (see [`model`]) until it is
//! transferred (the agent hangs up), cancelled (`CancelAtxfer`, the consulted party hangs
//! up) or conferenced (`Redirect` of every party into `CONFERENCE_CONTEXT`).
//! | `VarSet SAP_CAD` | attribute `Sap_Cad` (attached data set by the dialplan/IVR) |
//! | `QueueMemberAdded/Pause/Removed` | [`SwitchEvent::Agent`](super::SwitchEvent::Agent) |
//!
//! The call id is the `Linkedid`, shared by all legs of one call, also after a transfer.
//! A channel belongs to an agent when its device matches `interface_pattern`
//! (`PJSIP/{extension}`). Calls the adapter originates get their own `Uniqueid`
//! (`ici-...`, AMI `ChannelId`) so `MakeCall` can answer with the new call's id.
//!
//! Switchover: when the connection drops the adapter reports `LinkDown`, answers commands
//! with `Unavailable`, reconnects with backoff (alternating with `backup_host`), logs in
//! again, rebuilds its picture from `CoreShowChannels` and `QueueStatus`, and reports
//! `LinkUp` with every live agent leg, so calls that ended meanwhile are dropped toward SAP.
//! The first login reports `LinkUp` the same way; until then the link counts as down.
//! Every failed connect or login is logged at warn with its reason.
//!
//! Ordering: a command is answered after the AMI response *and* the event that shows its
//! effect (the agent's new state, the leg leaving, the originated leg appearing), or after
//! [`COMMAND_WAIT`] if that event does not come.
//!
//! Beyond what AMI reports (see handlers/asterisk/README.md for the AMI of each command):
//! hold and retrieve are done on the server (`Redirect` of both channels out of their
//! bridge into [`HOLD_CONTEXT`], `Bridge` back), reported held/connected by the adapter
//! itself since Asterisk sends no `Hold` for them; accept sends a BroadSoft `talk` NOTIFY
//! where configured (`answer`); reroute rejects the agent's ring (the caller stays in the
//! queue); listen originates `ChanSpy` to the supervisor's phone (its channel, named
//! [`model::SPY_PREFIX`], is never a leg); call data is `Setvar __SAP_CAD`; wrap-up starts
//! at `AgentComplete` and is timed by the adapter (`wrap_up`). Alternate is not offered:
//! Asterisk's attended transfer swaps only on the agent's own DTMF.

mod actor;
pub mod codec;
pub mod model;
pub mod queues;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_plan;

use std::time::Duration;

use tokio::sync::mpsc;

use super::{Capability, EventSink, SwitchAdapter, SwitchError, SwitchRequest};
use crate::config::AsteriskConfig;

/// How many commands may wait for the adapter before `submit` answers `Unavailable`.
pub const COMMAND_QUEUE_DEPTH: usize = 256;
/// Limit for TCP connect plus login.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a command waits for the event that shows its effect before it is answered.
pub const COMMAND_WAIT: Duration = Duration::from_secs(3);
/// Dialplan context the adapter sends originated and transferred calls to. The PBX admin
/// defines it (handlers/asterisk/extensions_ici.conf), normally by including the context
/// agents' phones dial from.
pub const DIAL_CONTEXT: &str = "ici-connector";
/// Dialplan context the adapter redirects the parties of a conference to; `c<digits>`
/// must reach `ConfBridge` (handlers/asterisk/extensions_ici.conf).
pub const CONFERENCE_CONTEXT: &str = "ici-conference";
/// Dialplan context of server-side hold (handlers/asterisk/extensions_ici.conf): the held
/// party waits at [`HOLD_MUSIC_EXTEN`] (music on hold), the agent's channel at
/// [`HOLD_PARK_EXTEN`] (silence) until AMI `Bridge` joins them again.
pub const HOLD_CONTEXT: &str = "ici-hold";
/// Extension in [`HOLD_CONTEXT`] for the held party: `MusicOnHold()`.
pub const HOLD_MUSIC_EXTEN: &str = "music";
/// Extension in [`HOLD_CONTEXT`] for the agent's parked channel: `Wait()`.
pub const HOLD_PARK_EXTEN: &str = "park";

/// What the adapter can do through AMI whatever the phones are.
const CAPABILITIES: [Capability; 11] = [
    Capability::MakeCall,
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
];

/// Start the adapter: spawns its task on the current tokio runtime, which connects, logs in
/// and keeps reconnecting until the handle is dropped.
pub fn start(config: AsteriskConfig, events: EventSink) -> AsteriskSwitch {
    let capabilities = capabilities(&config);
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE_DEPTH);
    tokio::spawn(actor::run(config, rx, events));
    AsteriskSwitch { tx, capabilities }
}

/// [`CAPABILITIES`], and answer when some phone can be answered from SAP
/// (`answer = "notify"`), in [`Capability::ALL`]'s order.
pub fn capabilities(config: &AsteriskConfig) -> Vec<Capability> {
    Capability::ALL
        .into_iter()
        .filter(|c| CAPABILITIES.contains(c) || (*c == Capability::Answer && config.can_answer()))
        .collect()
}

/// The Asterisk adapter as the session manager sees it.
#[derive(Debug, Clone)]
pub struct AsteriskSwitch {
    tx: mpsc::Sender<SwitchRequest>,
    capabilities: Vec<Capability>,
}

impl SwitchAdapter for AsteriskSwitch {
    fn name(&self) -> &'static str {
        "asterisk"
    }

    /// Everything but answer, which needs phones that obey a NOTIFY (`answer`).
    fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    /// Down until the first login and resync report `LinkUp`.
    fn link_up_at_start(&self) -> bool {
        false
    }

    fn submit(&self, request: SwitchRequest) {
        use mpsc::error::TrySendError;
        let (request, why) = match self.tx.try_send(request) {
            Ok(()) => return,
            Err(TrySendError::Full(r)) => (r, "asterisk adapter queue full"),
            Err(TrySendError::Closed(r)) => (r, "asterisk adapter stopped"),
        };
        tracing::warn!(command = %request.command, why, "switch command refused");
        let _ = request
            .reply
            .send(Err(SwitchError::Unavailable(why.to_owned())));
    }
}
