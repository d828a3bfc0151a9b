//! Legs as the agent sees them: a channel's snapshot (state, parties, attributes) and the
//! rule that one is sent only when it changed.
//!
//! Separate because it is the model's one output: every event handler ends by asking for
//! the snapshots of the channels it touched.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Channel, Model, SAP_CAD_ATTRIBUTE, STATE_DOWN, STATE_RINGING, STATE_UP, is_local};
use crate::switch::{Direction, LegEvent, LegState, SwitchEvent};

impl Model {
    pub(super) fn emit(&mut self, id: &str, cause: Option<&str>) -> Vec<SwitchEvent> {
        if self.resyncing {
            return Vec::new();
        }
        let Some(mut leg) = self.snapshot(id, cause) else {
            return Vec::new();
        };
        let previous = self.sent.get(id);
        if previous.is_some() {
            leg.correlation = None;
        }
        let mut out = Vec::new();
        if previous != Some(&leg) {
            if leg.state.is_final() {
                self.sent.remove(id);
            } else {
                self.sent.insert(id.to_owned(), leg.clone());
            }
            out.push(SwitchEvent::Leg(Arc::new(leg)));
        }
        if let Some(k) = self
            .consults
            .iter()
            .position(|k| k.transferer == id || k.members.contains(id))
        {
            out.extend(self.emit_consult(k));
        }
        out
    }

    /// The transferer's leg on consultation `k`, if it changed.
    pub(super) fn emit_consult(&mut self, k: usize) -> Vec<SwitchEvent> {
        if self.resyncing {
            return Vec::new();
        }
        let key = self.consults[k].leg_key();
        let Some(mut leg) = self.consult_snapshot(k) else {
            return Vec::new();
        };
        if let Some(previous) = self.sent.get(&key) {
            leg.correlation = None;
            if *previous == leg {
                return Vec::new();
            }
        }
        self.sent.insert(key, leg.clone());
        vec![SwitchEvent::Leg(Arc::new(leg))]
    }

    /// The transferer's leg on consultation `k`: dialing until a consulted phone answers.
    fn consult_snapshot(&self, k: usize) -> Option<LegEvent> {
        let consult = &self.consults[k];
        let extension = self.channels.get(&consult.transferer)?.extension.clone()?;
        let phones: Vec<&Channel> = consult
            .members
            .iter()
            .filter_map(|m| self.channels.get(m))
            .filter(|c| !is_local(&c.name))
            .collect();
        let state = if phones.iter().any(|c| c.state == STATE_UP) {
            LegState::Connected
        } else {
            LegState::Dialing
        };
        let call = self.calls.get(&consult.id).cloned().unwrap_or_default();
        let mut attributes = BTreeMap::new();
        if let Some(ani) = &call.ani {
            attributes.insert("ani".to_owned(), ani.clone());
        }
        if let Some(dnis) = &call.dnis {
            attributes.insert("dnis".to_owned(), dnis.clone());
        }
        let mut parties: Vec<String> = phones
            .iter()
            .filter_map(|c| c.extension.clone().or_else(|| c.caller.clone()))
            .collect();
        if parties.is_empty() {
            parties.push(consult.destination.clone());
        }
        Some(LegEvent {
            call: consult.id.clone(),
            extension,
            state,
            direction: Direction::Outbound,
            queue: None,
            parties,
            attributes: attributes.into(),
            correlation: None,
            cause: None,
        })
    }

    /// The leg of channel `id` as the agent sees it; `None` for channels that are not an
    /// agent device or not yet visible (a queue's agent channel before it rings).
    pub(super) fn snapshot(&self, id: &str, cause: Option<&str>) -> Option<LegEvent> {
        let channel = self.channels.get(id)?;
        let extension = channel.extension.clone()?;
        let call_id = self.call_of(id)?;
        let consult = self.consults.iter().find(|k| k.id == call_id);
        let transferring = self.consults.iter().any(|k| k.transferer == id);
        let state = if channel.transferred {
            LegState::Transferred
        } else if channel.conferenced {
            LegState::Conferenced
        } else if channel.held || transferring {
            LegState::Held
        } else {
            match channel.state {
                STATE_RINGING if !channel.originated => LegState::Alerting,
                STATE_UP if !channel.originated || channel.bridged => LegState::Connected,
                STATE_DOWN if !channel.originated => return None,
                _ => LegState::Dialing,
            }
        };
        let call = self.calls.get(&call_id).cloned().unwrap_or_default();
        let direction = if id == channel.linkedid {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let mut parties: Vec<String> = consult
            .and_then(|k| self.channels.get(&k.transferer))
            .and_then(|c| c.extension.clone())
            .into_iter()
            .collect();
        parties.extend(
            self.channels
                .iter()
                .filter(|(other, c)| {
                    other.as_str() != id
                        && !is_local(&c.name)
                        && !c.transferred
                        && self.call_of(other).as_deref() == Some(call_id.as_str())
                })
                .filter_map(|(_, c)| c.extension.clone().or_else(|| c.caller.clone())),
        );
        let mut attributes = BTreeMap::new();
        if let Some(ani) = &call.ani {
            attributes.insert("ani".to_owned(), ani.clone());
        }
        if let Some(dnis) = &call.dnis {
            attributes.insert("dnis".to_owned(), dnis.clone());
        }
        if let Some(cad) = &call.cad {
            attributes.insert(SAP_CAD_ATTRIBUTE.to_owned(), cad.clone());
        }
        Some(LegEvent {
            call: call_id,
            extension,
            state,
            direction,
            queue: call.queue.clone(),
            parties,
            attributes: attributes.into(),
            // Only the originating leg answers for the MakeCall; the dialled party's leg
            // (possibly another agent) is a different interaction.
            correlation: call.correlation.clone().filter(|_| id == channel.linkedid),
            cause: cause.map(str::to_owned),
        })
    }
}
