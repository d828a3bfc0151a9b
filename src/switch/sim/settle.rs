//! From state to events: after each successful operation, end the calls that lost their
//! parties, distribute waiting calls, and send one snapshot for every leg that changed.
//!
//! Separate because it is what makes events follow from the state for every operation
//! alike: command handlers and outside actions only change the model.

use std::sync::Arc;

use compact_str::CompactString;

use super::model::{Call, Party, Phase, Sim};
use crate::switch::{Extension, LegEvent, LegState, SwitchEvent};

impl Sim {
    /// Ends an operation: settles a successful one; a refused one must have changed nothing
    /// (validation comes before any change).
    pub(super) fn done(&mut self, ok: bool) {
        if ok {
            self.settle();
        } else {
            debug_assert!(self.out.is_empty() && self.dirty.is_empty());
        }
    }

    /// After a successful operation: end the touched calls that lost their parties,
    /// distribute waiting calls, then send the changed snapshots of the touched and offered
    /// calls (once per leg, with the final state).
    pub(super) fn settle(&mut self) {
        let touched = std::mem::take(&mut self.dirty);
        let mut alive = Vec::new();
        for seq in touched {
            if self.calls.contains_key(&seq) && !self.end_if_dead(seq) {
                alive.push(seq);
            }
        }
        self.distribute();
        for seq in std::mem::take(&mut self.dirty) {
            if !alive.contains(&seq) {
                alive.push(seq);
            }
        }
        for seq in alive {
            if self.calls.contains_key(&seq) {
                self.sync_call(seq);
            }
        }
    }

    /// End a call with fewer than two parties (unless one caller waits in a queue). Returns
    /// whether it ended.
    fn end_if_dead(&mut self, seq: u64) -> bool {
        let call = self.call(seq);
        if call.parties.len() >= 2 || (call.waiting && !call.parties.is_empty()) {
            return false;
        }
        let legs: Vec<(Extension, Phase)> = call
            .parties
            .iter()
            .filter_map(|p| match p {
                Party::Ext { ext, phase, .. } => Some((ext.clone(), *phase)),
                Party::Remote { .. } => None,
            })
            .collect();
        let listeners = call.listeners().to_vec();
        let call = self.calls.remove(&seq).expect("live call");
        for (ext, phase) in &legs {
            let cause = if *phase == Phase::Alerting {
                "abandoned"
            } else {
                "remote_hangup"
            };
            self.final_event(&call, seq, ext, LegState::Dropped, cause);
        }
        for ext in &listeners {
            self.final_event(&call, seq, ext, LegState::Dropped, "remote_hangup");
        }
        for queue in &mut self.queues {
            queue.waiting.retain(|s| *s != seq);
        }
        for (ext, _) in &legs {
            self.leg_ended(ext);
        }
        for ext in &listeners {
            self.leg_ended(ext);
        }
        tracing::debug!(call = %call.id, "sim call ended");
        true
    }

    /// Send a snapshot for every leg of the call that changed since its last one.
    fn sync_call(&mut self, seq: u64) {
        self.index_call(seq);
        let call = &self.calls[&seq];
        let mut changed = Vec::new();
        for (i, party) in call.parties.iter().enumerate() {
            if let Party::Ext {
                ext,
                phase,
                correlation,
                ..
            } = party
            {
                let event = call.leg_event(ext, call.reported(*phase), None);
                changed.push((Some(i), event, correlation.clone()));
            }
        }
        for ext in call.listeners() {
            changed.push((None, call.leg_event(ext, LegState::Connected, None), None));
        }
        for (index, event, correlation) in changed {
            let key = (seq, CompactString::from(event.extension.as_str()));
            if correlation.is_none() && self.sent.get(&key).is_some_and(|last| **last == event) {
                continue;
            }
            let event = Arc::new(event);
            self.sent.insert(key, Arc::clone(&event));
            // The correlation rides on this one event; the snapshot kept is without it.
            let event = match correlation {
                None => event,
                Some(_) => Arc::new(LegEvent {
                    correlation,
                    ..(*event).clone()
                }),
            };
            self.out.push(SwitchEvent::Leg(event));
            if let Some(i) = index
                && let Party::Ext { correlation, .. } = &mut self.call_mut(seq).parties[i]
            {
                *correlation = None;
            }
        }
    }

    /// Emit the final snapshot of a leg (whose call is `call`) and forget it. The parties are
    /// the ones the agent last saw, so a dropped call still names who was on it.
    pub(super) fn final_event(
        &mut self,
        call: &Call,
        seq: u64,
        ext: &str,
        state: LegState,
        cause: &str,
    ) {
        let mut event = call.leg_event(ext, state, Some(cause));
        if let Some(last) = self.sent.remove(&(seq, CompactString::from(ext))) {
            event.parties = Arc::unwrap_or_clone(last).parties;
        }
        self.out.push(SwitchEvent::Leg(Arc::new(event)));
        self.wrap_up_after(call, ext);
    }

    /// The extension leaves call `seq` (as a party or a listener) with a final event.
    pub(super) fn end_leg(&mut self, seq: u64, ext: &str, state: LegState, cause: &str) {
        let call = self.calls.remove(&seq).expect("live call");
        self.final_event(&call, seq, ext, state, cause);
        self.calls.insert(seq, call);
        let call = self.call_mut(seq);
        call.parties.retain(|p| p.address() != ext);
        if let Some(extras) = call.extras.as_deref_mut() {
            extras.listeners.retain(|l| l != ext);
        }
        self.touch(seq);
        self.leg_ended(ext);
    }

    pub(super) fn leg_ended(&mut self, ext: &str) {
        if !self.has_legs(ext) {
            let now = self.tick();
            if let Some(agent) = self.agents.get_mut(ext) {
                agent.idle_since = now;
            }
        }
    }
}
