//! Automatic call distribution: agent states and queue membership, offering waiting calls to
//! the longest idle Ready agent, and sending an offered call back to its queue (reroute).
//!
//! Separate because it is the one policy a real switch would configure: who gets which call.

use std::collections::BTreeSet;

use super::model::{Agent, Call, OpResult, Party, Phase, Sim, Timer};
use crate::switch::{AgentState, LegState, QueueStatus, SwitchEvent, SwitchReply};

impl Sim {
    /// The agent's new state; unknown extensions are created (free seating). Logging in
    /// joins `queues`, or the extension's default queues if none are named.
    pub(super) fn set_agent_state(&mut self, ext: &str, state: AgentState, queues: &[String]) {
        let join: BTreeSet<String> = if queues.is_empty() {
            self.queues
                .iter()
                .filter(|q| q.members.is_empty() || q.members.iter().any(|m| m == ext))
                .map(|q| q.name.clone())
                .collect()
        } else {
            queues
                .iter()
                .filter_map(|key| match self.queue_by_name_or_number(key) {
                    Some(q) => Some(self.queues[q].name.clone()),
                    None => {
                        tracing::warn!(extension = ext, queue = %key, "sim: no such queue");
                        None
                    }
                })
                .collect()
        };
        let now = self.tick();
        let agent = self.agents.entry(ext.to_owned()).or_insert_with(Agent::new);
        // A state set during after-call work ends it (its timer goes stale); the state the
        // agent had is reported as the end of wrap-up.
        if agent.wrap_up.take().is_some() && agent.state == state {
            self.out.push(SwitchEvent::WrapUp {
                extension: ext.to_owned(),
                active: false,
            });
            return;
        }
        if agent.state == state {
            return;
        }
        if state == AgentState::LoggedOut {
            agent.queues.clear();
        } else if agent.state == AgentState::LoggedOut {
            agent.queues = join.into_iter().collect();
        }
        if state == AgentState::Ready {
            agent.idle_since = now;
        }
        agent.state = state.clone();
        self.out.push(SwitchEvent::Agent {
            extension: ext.to_owned(),
            state,
        });
    }

    /// Offer waiting calls, queue by queue in FIFO order, to eligible agents.
    pub(super) fn distribute(&mut self) {
        if self.queues.iter().all(|q| q.waiting.is_empty()) {
            return;
        }
        let mut alerting = BTreeSet::new();
        let mut busy = BTreeSet::new();
        for call in self.calls.values() {
            for party in &call.parties {
                if let Party::Ext { ext, phase, .. } = party {
                    busy.insert(ext.clone());
                    if *phase == Phase::Alerting {
                        alerting.insert(ext.clone());
                    }
                }
            }
            busy.extend(call.listeners().iter().cloned());
        }
        for qi in 0..self.queues.len() {
            let mut i = 0;
            while i < self.queues[qi].waiting.len() {
                let seq = self.queues[qi].waiting[i];
                let call = &self.calls[&seq];
                let name = &self.queues[qi].name;
                let best = self
                    .agents
                    .iter()
                    .filter(|(ext, agent)| {
                        agent.state == AgentState::Ready
                            && agent.wrap_up.is_none()
                            && agent.queues.contains(name)
                            && !alerting.contains(*ext)
                            && !call.rerouted_by(ext)
                            && !call.involves(ext)
                    })
                    .min_by_key(|(ext, agent)| (busy.contains(*ext), agent.idle_since))
                    .map(|(ext, _)| ext.clone());
                let Some(ext) = best else {
                    i += 1;
                    continue;
                };
                self.queues[qi].waiting.remove(i);
                let now = self.tick();
                if let Some(agent) = self.agents.get_mut(&ext) {
                    agent.idle_since = now;
                }
                let call = self.call_mut(seq);
                call.waiting = false;
                call.parties.push(Party::Ext {
                    ext: ext.clone(),
                    phase: Phase::Alerting,
                    correlation: None,
                    acd_offer: true,
                });
                alerting.insert(ext.clone());
                busy.insert(ext);
                self.touch(seq);
            }
        }
    }

    /// After-call work for `ext`, whose leg of `call` just ended, if it answered the call
    /// as an ACD offer of a queue with wrap-up time and is ready: no queue call until the
    /// time is over (a later call restarts it).
    pub(super) fn wrap_up_after(&mut self, call: &Call, ext: &str) {
        let answered_offer = call.parties.iter().any(|p| {
            matches!(p, Party::Ext { ext: e, phase: Phase::Active | Phase::Held, acd_offer: true, .. } if e == ext)
        });
        let time = call
            .queue
            .as_deref()
            .and_then(|name| self.queues.iter().find(|q| q.name == name))
            .and_then(|q| q.wrap_up);
        let ready = self
            .agents
            .get(ext)
            .is_some_and(|a| a.state == AgentState::Ready);
        let (true, Some(time), true) = (answered_offer, time, ready) else {
            return;
        };
        self.next_timer += 1;
        let token = self.next_timer;
        if let Some(agent) = self.agents.get_mut(ext)
            && agent.wrap_up.replace(token).is_none()
        {
            self.out.push(SwitchEvent::WrapUp {
                extension: ext.to_owned(),
                active: true,
            });
        }
        self.schedule(time, Timer::WrapUpEnd(token));
    }

    /// The wrap-up timer `token` ran out: the agent is ready for queue calls again.
    pub(super) fn wrap_up_over(&mut self, token: u64) -> OpResult<()> {
        let now = self.tick();
        let Some((ext, agent)) = self
            .agents
            .iter_mut()
            .find(|(_, a)| a.wrap_up == Some(token))
        else {
            return Ok(());
        };
        agent.wrap_up = None;
        agent.idle_since = now;
        self.out.push(SwitchEvent::WrapUp {
            extension: ext.clone(),
            active: false,
        });
        Ok(())
    }

    pub(super) fn reroute(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (i, phase) = self.leg_of(seq, ext)?;
        let call = self.call(seq);
        let acd = matches!(
            call.parties[i],
            Party::Ext {
                acd_offer: true,
                ..
            }
        );
        let queue = call
            .queue
            .as_deref()
            .and_then(|name| self.queues.iter().position(|q| q.name == name));
        let (Phase::Alerting, true, Some(q)) = (phase, acd, queue) else {
            return Err(self.invalid(seq, ext, phase, "an alerting ACD call"));
        };
        self.end_leg(seq, ext, LegState::Dropped, "rerouted");
        let call = self.call_mut(seq);
        call.extras_mut().rerouted_by.insert(ext.to_owned());
        call.waiting = true;
        self.queues[q].waiting.push_front(seq);
        Ok(SwitchReply::Done)
    }

    /// Every queue as it is now, ordered by name: callers waiting and the longest wait,
    /// agents logged into it and the ready ones among them.
    pub(super) fn queue_status(&self) -> Vec<QueueStatus> {
        let now = tokio::time::Instant::now();
        let mut queues: Vec<QueueStatus> = self
            .queues
            .iter()
            .map(|queue| {
                let members = self
                    .agents
                    .values()
                    .filter(|agent| agent.queues.contains(&queue.name));
                let longest_wait = queue
                    .waiting
                    .iter()
                    .filter_map(|seq| self.calls.get(seq)?.queued_at)
                    .map(|since| now.saturating_duration_since(since))
                    .max()
                    .unwrap_or_default();
                QueueStatus {
                    name: queue.name.clone(),
                    number: Some(queue.number.clone()),
                    waiting: queue.waiting.len(),
                    longest_wait,
                    agents_logged_in: members.clone().count(),
                    agents_ready: members
                        .filter(|agent| agent.state == AgentState::Ready)
                        .count(),
                }
            })
            .collect();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        queues
    }
}
