//! When the other side goes away, what SAP and the switch are told, so that neither shows
//! something that is no longer true:
//! - an agent's IC session is lost (SAP's appURL answers 401/404, `unsubscribe*`, or the
//!   subscription ends on overflow): the switch puts the agent in `[agents]
//!   on_session_lost`, so ACD calls stop ringing at a desk whose screen will never pop;
//! - the switch link is down: every agent is shown `[workmodes] switch_unavailable`, and
//!   its own workmode again once the link is back;
//! - a workcenter (extension) is held by another logged-in agent: `setAddresses` is
//!   refused, or takes it over (`[agents] workcenter_in_use`).

use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::config::{SessionLostAction, WorkcenterInUse, WorkmodesConfig};
use crate::domain::{UserId, Workmode};
use crate::switch::{AgentState, SwitchCommand, SwitchError, SwitchRequest};

use super::super::{IciEvent, SessionError, Target};
use super::{Actor, Agent};

/// Why the holder's subscriptions end when another agent takes its workcenter over.
const TAKEN_OVER_REASON: &str = "workcenter taken over";

impl Actor {
    /// A subscription of `target` ended for `why` without SAP opening a new session. When
    /// it was the agent's last one, the agent's IC session is lost.
    pub(super) fn subscription_lost(&mut self, target: &Target, why: &str) {
        if let Some(user) = self.agent_of(target)
            && !self.has_session(&user)
        {
            self.on_session_lost(&user, why);
        }
    }

    /// The agent a subscription target stands for: a user, or a container naming an
    /// agent's extension or user id.
    fn agent_of(&self, target: &Target) -> Option<UserId> {
        match target {
            Target::User(user) => Some(user.clone()),
            Target::Container(container) => self
                .agent_for_container(container)
                .ok()
                .map(|agent| agent.user.clone()),
        }
    }

    /// Whether some subscription still delivers this agent's events (an IC session).
    fn has_session(&self, user: &UserId) -> bool {
        self.subscriptions
            .iter()
            .any(|sub| self.agent_of(&sub.target).as_ref() == Some(user))
    }

    /// Puts the agent whose IC session is lost in `[agents] on_session_lost` on the
    /// switch. Fire and forget: the answer is only logged, and the switch's agent event
    /// updates the agent as any other would.
    fn on_session_lost(&mut self, user: &UserId, why: &str) {
        let Some(agent) = self.agents.get(user) else {
            return;
        };
        let action = self.config.agents.on_session_lost;
        let own = own_workmode(agent);
        let state = match action {
            SessionLostAction::Keep => {
                info!(%user, why, workmode = %own, "IC session lost; the agent stays as it is (on_session_lost = keep)");
                return;
            }
            SessionLostAction::NotReady => AgentState::NotReady {
                reason: Some(self.config.agents.session_lost_reason.clone()),
            },
            SessionLostAction::LoggedOut => AgentState::LoggedOut,
        };
        let already = own == Workmode::LOGGED_OFF
            || (action == SessionLostAction::NotReady && own == Workmode::NOT_READY);
        let Some(extension) = agent.extension.clone().filter(|_| !already) else {
            info!(%user, why, workmode = %own, "IC session lost; the agent takes no ACD calls already");
            return;
        };
        info!(%user, %extension, why, %state, "IC session lost; setting the agent on the switch");
        let command = SwitchCommand::SetAgentState {
            extension,
            state,
            queues: self.login_queues(user),
        };
        let (reply, answer) = oneshot::channel();
        self.switch.submit(SwitchRequest { command, reply });
        let user = user.clone();
        tokio::spawn(async move {
            match answer.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    warn!(%user, %error, "IC session lost; the switch did not change the agent")
                }
                Err(_) => warn!(%user, "IC session lost; the switch adapter stopped"),
            }
        });
    }

    /// The switch link is down: every agent is shown `switch_unavailable` (once per
    /// outage), its own workmode kept for the link's return.
    pub(super) fn on_link_down(&mut self, reason: &str) {
        warn!(%reason, "switch link down");
        self.link_up = false;
        self.link_down_reason = Some(reason.to_string());
        let Some(id) = self.config.workmodes.switch_unavailable else {
            return;
        };
        let shown = Workmode(id);
        let shown_reason = (shown == Workmode::NOT_READY)
            .then(|| WorkmodesConfig::SWITCH_UNAVAILABLE_REASON.to_string());
        let users: Vec<UserId> = self
            .agents
            .values()
            .filter(|agent| agent.outage.is_none())
            .map(|agent| agent.user.clone())
            .collect();
        for user in users {
            let Some(agent) = self.agents.get_mut(&user) else {
                continue;
            };
            let own = (agent.workmode, agent.reason.take());
            agent.outage = Some(own);
            agent.workmode = shown;
            agent.reason = shown_reason.clone();
            let extension = agent.extension.clone();
            let event = IciEvent::WorkmodeChanged {
                user: user.clone(),
                workmode: shown,
                reason: shown_reason.clone(),
            };
            self.publish(&user, extension.as_deref(), None, &event);
        }
    }

    /// The switch link is back: every agent is shown its own workmode again (as the switch
    /// reported it meanwhile); agent events that follow show any later change.
    pub(super) fn end_outage(&mut self) {
        self.link_down_reason = None;
        let users: Vec<UserId> = self
            .agents
            .values()
            .filter(|agent| agent.outage.is_some())
            .map(|agent| agent.user.clone())
            .collect();
        for user in users {
            let Some(agent) = self.agents.get_mut(&user) else {
                continue;
            };
            let Some((workmode, reason)) = agent.outage.take() else {
                continue;
            };
            agent.workmode = workmode;
            agent.reason = reason.clone();
            let extension = agent.extension.clone();
            let event = IciEvent::WorkmodeChanged {
                user: user.clone(),
                workmode,
                reason,
            };
            self.publish(&user, extension.as_deref(), None, &event);
        }
    }

    /// setAddresses naming `address` for `user`: refused when the switch does not know it;
    /// when another logged-in agent holds it, refused naming the holder, or (`take_over`)
    /// the holder's subscriptions end with a reason. A workcenter whose holder is logged
    /// off and has no IC session is free (free seating).
    pub(super) fn claim_workcenter(
        &mut self,
        user: &UserId,
        address: &str,
    ) -> Result<(), SessionError> {
        if self.switch.knows_extension(address) == Some(false) {
            return Err(SessionError::Switch(SwitchError::UnknownExtension(
                address.to_string(),
            )));
        }
        let Some(holder) = self
            .by_extension
            .get(address)
            .filter(|holder| *holder != user)
            .cloned()
        else {
            return Ok(());
        };
        let logged_in = self
            .agents
            .get(&holder)
            .is_some_and(|agent| own_workmode(agent) != Workmode::LOGGED_OFF)
            || self.has_session(&holder);
        if !logged_in {
            return Ok(());
        }
        match self.config.agents.workcenter_in_use {
            WorkcenterInUse::Refuse => {
                warn!(%user, %address, %holder, "setAddresses refused: workcenter in use");
                Err(SessionError::AddressInUse {
                    address: address.to_string(),
                    holder: holder.to_string(),
                })
            }
            WorkcenterInUse::TakeOver => {
                warn!(%user, %address, %holder, "workcenter taken over");
                self.end_subscriptions(&Target::User(holder), TAKEN_OVER_REASON);
                self.end_subscriptions(&Target::Container(address.to_string()), TAKEN_OVER_REASON);
                Ok(())
            }
        }
    }
}

/// The agent's workmode on the switch: during an outage, the one kept behind
/// `switch_unavailable`.
fn own_workmode(agent: &Agent) -> Workmode {
    agent.outage.as_ref().map_or(agent.workmode, |own| own.0)
}
