//! System interface: workcenter capability and queue presence.

use crate::switch::{QueueStatus, SwitchCommand};

use super::super::{Answer, PresenceQueueView, SessionError};
use super::Actor;
use super::execute::{Step, answer};

impl Actor {
    pub(super) fn workcenter_capability(&self) -> Result<Step, SessionError> {
        answer(Answer::WorkcenterCapability(
            self.config.agents.free_seating,
        ))
    }

    /// getPresenceQueueInfo: the switch's own queues, asked at once (never our view of
    /// them: SAP shows real waiting calls and offers the numbers as transfer targets).
    /// ACD queues carry phone calls: another channel has none.
    pub(super) fn presence_queue_info(
        &self,
        channel: Option<String>,
    ) -> Result<Step, SessionError> {
        if channel
            .as_deref()
            .is_some_and(|c| !c.eq_ignore_ascii_case(PHONE_CHANNEL))
        {
            return answer(Answer::PresenceQueues(Vec::new()));
        }
        Ok(Step::Switch(vec![SwitchCommand::QueueStatus]))
    }
}

/// The channel ACD queues serve (and the one getPresenceQueueInfo means without one).
pub(super) const PHONE_CHANNEL: &str = "phone";

/// One queue as SAP sees it.
pub(super) fn presence_queue(queue: QueueStatus) -> PresenceQueueView {
    PresenceQueueView {
        queue: queue.name,
        channel: PHONE_CHANNEL.to_string(),
        number: queue.number,
        waiting: queue.waiting,
        longest_wait_seconds: queue.longest_wait.as_secs(),
        agents_logged_in: queue.agents_logged_in,
        agents_ready: queue.agents_ready,
    }
}
