//! User and Container interfaces: attributes, workmode, channels, queues and addresses
//! (subscriptions are in `subscriptions`).

use std::sync::Arc;

use crate::domain::{UserId, Workmode};
use crate::switch::{Capability, SwitchCommand};

use super::super::workmodes;
use super::super::{Answer, AttributesView, SessionError, Target};
use super::execute::{Step, answer, done};
use super::subscriptions::NEW_SESSION_REASON;
use super::{Actor, Agent};

impl Actor {
    /// getAttributes: SAP opens an IC session, so the user's earlier subscriptions end.
    pub(super) fn get_attributes(&mut self, user: &UserId) -> Result<Step, SessionError> {
        self.ensure_agent(user)?;
        self.end_subscriptions(&Target::User(user.clone()), NEW_SESSION_REASON);
        let agent = self
            .agents
            .get(user)
            .ok_or(SessionError::UnknownUser(user.to_string()))?;
        answer(Answer::Attributes(Box::new(self.attributes(agent))))
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

    pub(super) fn set_workmode(
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

    pub(super) fn set_channels(
        &mut self,
        user: &UserId,
        channels: Vec<String>,
    ) -> Result<Step, SessionError> {
        self.ensure_agent(user)?.channels = channels;
        done()
    }

    pub(super) fn set_queues(
        &mut self,
        user: &UserId,
        queues: Vec<String>,
    ) -> Result<Step, SessionError> {
        self.ensure_agent(user)?.queues = queues;
        done()
    }

    /// setAddresses: the first address is the agent's extension, if the switch knows it and
    /// no other logged-in agent holds it (see `claim_workcenter`).
    pub(super) fn set_addresses(
        &mut self,
        user: &UserId,
        addresses: Vec<String>,
    ) -> Result<Step, SessionError> {
        self.ensure_agent(user)?;
        let address = addresses.into_iter().next();
        if let Some(address) = &address {
            self.claim_workcenter(user, address)?;
        }
        self.set_extension(user, address);
        done()
    }

    pub(super) fn login_queues(&self, user: &UserId) -> Vec<String> {
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
}
