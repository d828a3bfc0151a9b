//! System interface: workcenter capability and queue presence.

use crate::domain::Workmode;

use super::super::{Answer, PresenceQueueView, SessionError};
use super::Actor;
use super::execute::{Step, answer};

impl Actor {
    pub(super) fn workcenter_capability(&self) -> Result<Step, SessionError> {
        answer(Answer::WorkcenterCapability(
            self.config.agents.free_seating,
        ))
    }

    pub(super) fn presence_queue_info(
        &self,
        channel: Option<String>,
    ) -> Result<Step, SessionError> {
        answer(Answer::PresenceQueues(self.presence_queues(channel)))
    }

    fn presence_queues(&self, channel: Option<String>) -> Vec<PresenceQueueView> {
        let channel = channel.unwrap_or_else(|| "phone".to_string());
        let mut names: Vec<String> = self.config.agents.queues.clone();
        for user in self.config.agents.users.values() {
            names.extend(user.queues.iter().cloned());
        }
        for agent in self.agents.values() {
            names.extend(agent.queues.iter().cloned());
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|queue| {
                let agents_ready = self
                    .agents
                    .values()
                    .filter(|a| {
                        a.workmode == Workmode::READY
                            && (a.queues.is_empty() || a.queues.contains(&queue))
                    })
                    .count();
                let waiting = self
                    .agents
                    .values()
                    .flat_map(|a| a.waiting.iter())
                    .filter(|l| l.queue.as_deref() == Some(queue.as_str()))
                    .count();
                PresenceQueueView {
                    queue,
                    channel: channel.clone(),
                    waiting,
                    agents_ready,
                }
            })
            .collect()
    }
}
