//! Lookups: agents, containers, legs and items by the ids SAP names, scoped to the agent
//! of SAP's `user` header where there is one.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::AgentsConfig;
use crate::domain::{UserId, Workmode};
use crate::notify::SpoolOp;
use crate::switch::{LegEvent, LegState};

use super::super::view;
use super::super::{PhoneCallView, SessionError};
use super::{Actor, Agent};

impl Actor {
    /// The agent for a user, created on first use if the user may log in.
    pub(super) fn ensure_agent(&mut self, user: &UserId) -> Result<&mut Agent, SessionError> {
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
                Box::new(Agent {
                    user: user.clone(),
                    extension: None,
                    workmode: Workmode::LOGGED_OFF,
                    reason: None,
                    outage: None,
                    before_wrap_up: None,
                    channels: self.config.agents.channels.clone(),
                    queues,
                    visible: Vec::new(),
                    waiting: VecDeque::new(),
                }),
            );
            self.set_extension(user, extension);
        }
        self.agents
            .get_mut(user)
            .map(|agent| &mut **agent)
            .ok_or_else(|| SessionError::UnknownUser(user.to_string()))
    }

    pub(super) fn set_extension(&mut self, user: &UserId, extension: Option<String>) {
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
    pub(super) fn agent_for_container(&self, container: &str) -> Result<&Agent, SessionError> {
        let by_address = self.by_extension.get(container);
        let by_user = UserId::parse(container).ok();
        by_address
            .or(by_user.as_ref())
            .and_then(|user| self.agents.get(user))
            .map(|agent| &**agent)
            .ok_or_else(|| SessionError::UnknownContainer(container.to_string()))
    }

    /// [`Self::agent_for_container`] for an operation on the agent's calls: with a `user`
    /// header only that agent's own container counts, another's is unknown (see
    /// [`Self::leg_ref`]).
    pub(super) fn own_container(
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
    pub(super) fn resolve(&self, id: &str) -> String {
        self.aliases
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// A visible leg of the call, at the agent named by the `user` header when it has one.
    pub(super) fn find_leg(
        &self,
        id: &str,
        hint: Option<&UserId>,
    ) -> Result<(UserId, Arc<LegEvent>), SessionError> {
        self.find_leg_in(id, hint, &[])
    }

    /// Like [`Self::find_leg`]; without a `user` header naming an agent on the call, a leg
    /// in one of `states` wins: an internal call has a leg at both agents, and `accept`
    /// means the alerting one, not the caller's dialing one.
    pub(super) fn find_leg_in(
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
    pub(super) fn leg_ref(
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
            Some(user) => self.agents.get(user).map(|a| &**a).and_then(on_call),
            None => {
                let mut all = self.agents.values().map(|a| &**a).filter_map(on_call);
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
    pub(super) fn call_pair(
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
    pub(super) fn item_key(
        &self,
        item: &str,
        hint: Option<&UserId>,
    ) -> Result<String, SessionError> {
        let key = self.resolve(item);
        let live = self.call_is_live(&key);
        let known =
            live || self.pending_items.contains_key(&key) || self.attached.contains_key(&key);
        let theirs = match hint {
            Some(user) if live => self.agents.get(user).is_some_and(|a| a.has_call(&key)),
            _ => true,
        };
        if known && theirs {
            Ok(key)
        } else {
            Err(SessionError::UnknownItem(item.to_string()))
        }
    }

    pub(super) fn phone_call(&self, user: &UserId, leg: &Arc<LegEvent>) -> PhoneCallView {
        view::phone_call(
            user,
            leg,
            self.attached.get(&leg.call),
            &self.config.numbers,
        )
    }

    pub(super) fn max_interactions(&self) -> usize {
        usize::from(
            self.config
                .agents
                .max_interactions
                .clamp(1, AgentsConfig::MAX_INTERACTIONS),
        )
    }
}
