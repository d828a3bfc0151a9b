//! The status page's snapshot of the session state.

use crate::logging::redact_credentials;
use crate::switch::LegEvent;

use super::super::view::{
    self, AgentStatus, InteractionStatus, StatusSnapshot, SubscriptionStatus,
};
use super::{Actor, Agent};

impl Actor {
    pub(super) fn snapshot(&self) -> StatusSnapshot {
        let legs = |agent: &Agent| {
            let numbers = &self.config.numbers;
            let status = |leg: &LegEvent, visible: bool| InteractionStatus {
                call_id: leg.call.clone(),
                state: leg.state.as_str().to_string(),
                direction: leg.direction.as_str().to_string(),
                remote: view::numbers(leg, numbers).remote,
                queue: leg.queue.clone(),
                visible,
            };
            agent
                .visible
                .iter()
                .map(|l| status(l, true))
                .chain(agent.waiting.iter().map(|l| status(l, false)))
                .collect()
        };
        StatusSnapshot {
            switch: self.switch.name(),
            switch_link_up: self.link_up,
            switch_link_reason: self.link_down_reason.clone(),
            agents: self
                .agents
                .values()
                .map(|a| AgentStatus {
                    user_id: a.user.to_string(),
                    extension: a.extension.clone(),
                    workmode: a.workmode.0,
                    reason: a.reason.clone(),
                    interactions: legs(a),
                })
                .collect(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|s| SubscriptionStatus {
                    id: s.id,
                    target: s.target.to_string(),
                    // SAP may put credentials in it: masked, `http://user:****@host/`.
                    app_url: redact_credentials(s.url.as_str()).into_owned(),
                    app_ids: s.app_ids.clone(),
                    sequence: s.sequence,
                    queue_depth: s.outbox.depth(),
                    durable_sequence: s.outbox.durable_sequence(),
                    last_delivery: s.outbox.last_delivery(),
                })
                .collect(),
        }
    }
}
