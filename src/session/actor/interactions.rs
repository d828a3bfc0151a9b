//! The interaction table: switch events in, at most `max_interactions` visible per agent
//! (the rest waiting in order), attached data following calls, ghost calls reaped, and a
//! resynchronisation after the switch link comes back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::switch::{
    ATTACHED_DATA_ATTRIBUTE, AgentState, Direction, LegEvent, LegState, SwitchEvent,
};

use super::super::IciEvent;
use super::super::workmodes;
use super::{Actor, LegKey};
use crate::domain::{UserId, Workmode};

impl Actor {
    pub(super) fn on_switch_event(&mut self, event: SwitchEvent) {
        match event {
            SwitchEvent::Leg(leg) => self.on_leg(leg),
            SwitchEvent::Agent { extension, state } => self.on_agent_state(&extension, &state),
            SwitchEvent::WrapUp { extension, active } => self.on_wrap_up(&extension, active),
            SwitchEvent::LinkUp { calls } => {
                self.end_outage();
                self.resync(calls);
            }
            SwitchEvent::LinkDown { reason } => self.on_link_down(&reason),
        }
    }

    pub(super) fn on_leg(&mut self, leg: Arc<LegEvent>) {
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
        if leg.state.is_final() {
            self.consultation_leg_ended(&leg);
        }
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
                self.attached.update(leg.call.clone(), |attached| {
                    attached.merge(Arc::unwrap_or_clone(data))
                });
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
        if !placed_here || leg.correlation.is_some() {
            return;
        }
        let Some(held) = self
            .consults
            .get(&leg.extension)
            .filter(|c| c.consult.is_none())
            .map(|c| c.held.clone())
        else {
            return;
        };
        let Some(agent) = self.agents.get(user) else {
            return;
        };
        let mut legs = agent.legs();
        if legs.clone().any(|l| l.call == leg.call) {
            return;
        }
        if held == leg.call || !legs.any(|l| l.call == held && l.state == LegState::Held) {
            self.consults.remove(&leg.extension);
            return;
        }
        if let Some(consultation) = self.consults.get_mut(&leg.extension) {
            consultation.consult = Some(leg.call.clone());
        }
        if !self.attached.contains_key(&leg.call)
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
            .find(|(k, v)| k.eq_ignore_ascii_case(ATTACHED_DATA_ATTRIBUTE) && !v.trim().is_empty());
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
        if !self.call_is_live(call) {
            self.attached.remove(call);
            self.aliases.retain(|_, c| c != call);
        }
    }

    fn on_agent_state(&mut self, extension: &str, state: &AgentState) {
        let Some(user) = self.by_extension.get(extension).cloned() else {
            return;
        };
        let (workmode, reason) = workmodes::from_switch(&self.config.workmodes, state);
        if let Some(agent) = self.agents.get_mut(&user)
            && let Some(before) = &agent.before_wrap_up
        {
            if before.0 == workmode && before.1 == reason {
                // The state under the wrap-up, reported again: wrap-up goes on.
                return;
            }
            // Another state set during wrap-up ends it.
            agent.before_wrap_up = None;
        }
        self.show_workmode(&user, extension, workmode, reason);
    }

    /// After-call work lies over the agent's workmode: SAP sees the wrap-up workmode while
    /// it lasts, then the workmode it saw before.
    fn on_wrap_up(&mut self, extension: &str, active: bool) {
        let Some(user) = self.by_extension.get(extension).cloned() else {
            return;
        };
        let wrap_up = workmodes::wrap_up(&self.config.workmodes);
        let Some(agent) = self.agents.get_mut(&user) else {
            return;
        };
        let (workmode, reason) = match (active, agent.before_wrap_up.take()) {
            (true, before) => {
                let before = before.unwrap_or((agent.workmode, agent.reason.clone()));
                agent.before_wrap_up = Some(before);
                wrap_up
            }
            (false, Some(before)) => before,
            (false, None) => return,
        };
        info!(%user, active, "after-call work");
        self.show_workmode(&user, extension, workmode, reason);
    }

    /// Tells SAP the agent's workmode, if it changed.
    fn show_workmode(
        &mut self,
        user: &UserId,
        extension: &str,
        workmode: Workmode,
        reason: Option<String>,
    ) {
        let Some(agent) = self.agents.get_mut(user) else {
            return;
        };
        if let Some(own) = agent.outage.as_mut() {
            // SAP sees `switch_unavailable` until the link is back; then this one.
            *own = (workmode, reason);
            return;
        }
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
        self.publish(user, Some(extension), None, &event);
    }

    /// Ends every leg of `call` toward SAP (`dropped` with `reason`).
    pub(super) fn end_call(&mut self, call: &str, reason: &str) {
        self.end_legs(|l| l.call == call, reason);
    }

    /// Ends the legs `which` selects toward SAP (`dropped` with `reason`).
    fn end_legs(&mut self, which: impl Fn(&Arc<LegEvent>) -> bool, reason: &str) {
        let legs: Vec<Arc<LegEvent>> = self
            .agents
            .values()
            .flat_map(|a| a.legs())
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
    pub(super) fn reap_older_than(&mut self, max_age: Duration) {
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
            .flat_map(|a| a.legs())
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
            .retain(|k| !(previous.contains(k) && self.orphans.contains(k)));
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
            .flat_map(|a| a.legs())
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
}
