//! What the control API shows of the model (`GET /sim/calls`, `GET /sim/agents`).
//!
//! Separate because views only read: they translate the model's states into the words the
//! control API and the status page use, and change nothing.

use super::model::{Call, Party, RemotePhase, Sim};
use super::{SimAgentView, SimCallView, SimPartyView};
use crate::switch::AgentState;

impl Sim {
    /// Every known extension with its agent state, ordered by extension.
    pub(super) fn agent_views(&self) -> Vec<SimAgentView> {
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

/// One call as `GET /sim/calls` shows it.
pub(super) fn call_view(call: &Call) -> SimCallView {
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
        listeners: call.listeners().to_vec(),
        attributes: call.attributes.to_map(),
        dialled: call.dialled().cloned(),
    }
}
