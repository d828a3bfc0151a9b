//! Item interface: outbound item ids, accept, reroute, and item attached data.

use tokio::time::Instant;

use crate::domain::{AttachedData, UserId, Workmode};
use crate::switch::{ATTACHED_DATA_ATTRIBUTE, Capability, LegState, SwitchCommand};

use super::super::workmodes;
use super::super::{Answer, SessionError};
use super::Actor;
use super::execute::{Step, answer, done, expect_state};

impl Actor {
    /// create: an item id for a call `dial` places later.
    pub(super) fn create(&mut self) -> Result<Step, SessionError> {
        let item = format!("item-{}", self.next_id());
        self.pending_items.insert(item.clone(), Instant::now());
        answer(Answer::Id(item))
    }

    pub(super) fn accept(&self, item: &str, hint: Option<&UserId>) -> Result<Step, SessionError> {
        self.on_leg_in(
            item,
            hint,
            Capability::Answer,
            &[LegState::Alerting],
            |leg| SwitchCommand::Answer {
                call: leg.call.clone(),
                extension: leg.extension.clone(),
            },
        )
    }

    pub(super) fn reroute(
        &mut self,
        item: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::Reroute)?;
        let (user, leg) = self.find_leg(item, hint)?;
        expect_state(&leg, &[LegState::Alerting])?;
        let mut commands = vec![SwitchCommand::Reroute {
            call: leg.call.clone(),
            extension: leg.extension.clone(),
        }];
        // The reject workmode keeps the call from coming straight back (applied after the
        // reroute succeeded, as the vendor does).
        if let Some(reject) = self.config.workmodes.reject
            && self.require(Capability::AgentState).is_ok()
        {
            let state = workmodes::to_switch(&self.config.workmodes, Workmode(reject), None)?;
            commands.push(SwitchCommand::SetAgentState {
                extension: leg.extension.clone(),
                state,
                queues: self.login_queues(&user),
            });
        }
        Ok(Step::Switch(commands))
    }

    pub(super) fn set_attached_data(
        &mut self,
        item: &str,
        data: AttachedData,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        let key = self.item_key(item, hint)?;
        self.attached
            .update(key.clone(), |attached| attached.merge(data));
        self.write_to_switch(key)
    }

    pub(super) fn get_attached_data(
        &self,
        item: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        let key = self.item_key(item, hint)?;
        let data = self.attached.get(&key).cloned().unwrap_or_default();
        answer(Answer::AttachedData(data))
    }

    /// deleteAttachedData: the named applications, or all of them (`None`).
    pub(super) fn delete_attached_data(
        &mut self,
        item: &str,
        applications: Option<Vec<String>>,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        let key = self.item_key(item, hint)?;
        if self.attached.contains_key(&key) {
            self.attached
                .update(key.clone(), |data| match applications {
                    Some(ids) => data.remove(&ids),
                    None => *data = AttachedData::default(),
                });
        }
        self.write_to_switch(key)
    }

    /// The item's attached data as it is now, written to its call on the switch, so it
    /// follows the call through transfers and reaches agents another connector serves;
    /// answered once the switch has it. Nothing to write for an item whose call does not
    /// exist yet (`dial` carries it over) or a switch that cannot keep call data.
    fn write_to_switch(&self, key: String) -> Result<Step, SessionError> {
        if !self.call_is_live(&key) || self.require(Capability::AttachData).is_err() {
            return done();
        }
        let value = self
            .attached
            .get(&key)
            .map(|data| (self.wire.attached_document)(data))
            .unwrap_or_default();
        Ok(Step::Switch(vec![SwitchCommand::SetCallData {
            call: key,
            key: ATTACHED_DATA_ATTRIBUTE.to_owned(),
            value,
        }]))
    }
}
