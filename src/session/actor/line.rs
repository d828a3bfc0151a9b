//! Line interface: the calls of a container.

use crate::domain::UserId;
use crate::switch::{Capability, SwitchCommand};

use super::super::{Answer, SessionError};
use super::Actor;
use super::execute::{Step, answer};

impl Actor {
    pub(super) fn get_calls(
        &self,
        container: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        let agent = self.own_container(container, hint)?;
        let calls = agent
            .visible
            .iter()
            .map(|leg| self.phone_call(&agent.user, leg))
            .collect();
        answer(Answer::Calls(calls))
    }

    pub(super) fn drop_calls(
        &self,
        container: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::Clear)?;
        let agent = self.own_container(container, hint)?;
        Ok(Step::Switch(
            agent
                .visible
                .iter()
                .map(|leg| SwitchCommand::Clear {
                    call: leg.call.clone(),
                    extension: leg.extension.clone(),
                })
                .collect(),
        ))
    }
}
