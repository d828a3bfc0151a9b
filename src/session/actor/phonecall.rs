//! PhoneCall interface: dial and everything an agent does with a call.

use crate::domain::UserId;
use crate::numbers::E164;
use crate::switch::{Capability, LegState, SwitchCommand};

use tokio::time::Instant;

use super::super::{Answer, SessionError};
use super::Actor;
use super::execute::{Step, answer, expect_state, invalid_state};

impl Actor {
    /// dial: from the named user's phone, or the header's agent's, or the container's.
    pub(super) fn dial(
        &mut self,
        container: Option<String>,
        user: Option<UserId>,
        address: &str,
        item: Option<String>,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        if let (Some(user), Some(header)) = (&user, hint)
            && user != header
        {
            // Dialling from another agent's phone (see `leg_ref`).
            return Err(SessionError::UnknownUser(user.to_string()));
        }
        self.place_call(container, user.as_ref().or(hint), address, item)
    }

    fn place_call(
        &mut self,
        container: Option<String>,
        user: Option<&UserId>,
        address: &str,
        item: Option<String>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::MakeCall)?;
        let agent = match (&container, user) {
            (_, Some(user)) => self.ensure_agent(user)?,
            (Some(container), None) => self.agent_for_container(container)?,
            (None, None) => return Err(SessionError::UnknownContainer(String::new())),
        };
        let extension = agent
            .extension
            .clone()
            .ok_or_else(|| SessionError::NoAddress(agent.user.to_string()))?;
        let destination = self.destination(address)?;
        let correlation = match item {
            Some(item) => item,
            None => format!("dial-{}", self.next_id()),
        };
        self.pending_items
            .insert(correlation.clone(), Instant::now());
        Ok(Step::Switch(vec![SwitchCommand::MakeCall {
            extension,
            destination,
            correlation,
        }]))
    }

    pub(super) fn hold(&self, call: &str, hint: Option<&UserId>) -> Result<Step, SessionError> {
        self.on_leg_in(
            call,
            hint,
            Capability::Hold,
            &[LegState::Connected, LegState::Conferenced],
            |leg| SwitchCommand::Hold {
                call: leg.call.clone(),
                extension: leg.extension.clone(),
            },
        )
    }

    pub(super) fn unhold(&self, call: &str, hint: Option<&UserId>) -> Result<Step, SessionError> {
        self.on_leg_in(call, hint, Capability::Hold, &[LegState::Held], |leg| {
            SwitchCommand::Retrieve {
                call: leg.call.clone(),
                extension: leg.extension.clone(),
            }
        })
    }

    /// drop: the agent hangs up its side, whatever the leg's state.
    pub(super) fn drop_call(
        &self,
        call: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        self.on_leg_in(call, hint, Capability::Clear, &[], |leg| {
            SwitchCommand::Clear {
                call: leg.call.clone(),
                extension: leg.extension.clone(),
            }
        })
    }

    /// transfer: during a consultation, to the consulted address (or none) it completes
    /// the consultation and to any other address it is refused; otherwise blind, to the
    /// address as the switch dials it.
    pub(super) fn transfer(
        &self,
        call: &str,
        address: Option<&str>,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        let (_, leg) = self.find_leg_in(call, hint, &[LegState::Connected, LegState::Held])?;
        if let Some(ongoing) = self.consultation_on(&leg) {
            if let Some(address) = address
                && !self.is_consulted(address, &ongoing.destination)
            {
                return Err(SessionError::ConsultationInProgress {
                    call: call.to_string(),
                });
            }
            self.require(Capability::Consult)?;
            return Ok(Step::Switch(vec![SwitchCommand::TransferConsult {
                held: ongoing.held,
                consult: ongoing.consult,
                extension: leg.extension.clone(),
            }]));
        }
        let address = address.ok_or_else(|| SessionError::InvalidAddress(String::new()))?;
        let destination = self.destination(address)?;
        self.on_leg_in(
            call,
            hint,
            Capability::BlindTransfer,
            &[LegState::Connected, LegState::Held],
            |leg| SwitchCommand::SingleStepTransfer {
                call: leg.call.clone(),
                extension: leg.extension.clone(),
                destination,
            },
        )
    }

    /// consult: remembers which call the consulting extension holds for which address, so
    /// the consultation call inherits its attached data (see `adopt_consult_data`) and
    /// `transfer` completes it.
    pub(super) fn consult(
        &mut self,
        call: &str,
        address: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        let destination = self.destination(address)?;
        let step = self.on_leg_in(
            call,
            hint,
            Capability::Consult,
            &[LegState::Connected],
            |leg| SwitchCommand::Consult {
                call: leg.call.clone(),
                extension: leg.extension.clone(),
                destination,
            },
        )?;
        if let Step::Switch(commands) = &step
            && let Some(SwitchCommand::Consult {
                call,
                extension,
                destination,
            }) = commands.first()
        {
            self.consultation_asked(extension, call, destination);
        }
        Ok(step)
    }

    /// conference: the held call and the consultation call become one (the first call's
    /// id survives), in either order of which one is held.
    pub(super) fn conference(
        &self,
        call: &str,
        consult: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::Conference)?;
        let (first, other) = self.call_pair(call, consult, hint)?;
        match (first.state, other.state) {
            (LegState::Held, LegState::Connected | LegState::Dialing)
            | (LegState::Connected, LegState::Held) => {}
            (LegState::Held, _) => return Err(invalid_state(&other)),
            _ => return Err(invalid_state(&first)),
        }
        Ok(Step::Switch(vec![SwitchCommand::Conference {
            held: first.call.clone(),
            consult: other.call.clone(),
            extension: first.extension.clone(),
        }]))
    }

    /// alternate: hold the connected call, retrieve the held one.
    pub(super) fn alternate(
        &self,
        call: &str,
        consult: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::Alternate)?;
        let (a, b) = self.call_pair(call, consult, hint)?;
        let (held, active) = match (a.state, b.state) {
            (LegState::Held, LegState::Connected) => (a, b),
            (LegState::Connected, LegState::Held) => (b, a),
            _ => return Err(invalid_state(&a)),
        };
        Ok(Step::Switch(vec![SwitchCommand::Alternate {
            held: held.call.clone(),
            active: active.call.clone(),
            extension: held.extension.clone(),
        }]))
    }

    /// reconnect: end the consultation call, talk on the first call again (retrieved if
    /// it is held; after an alternate it is connected already).
    pub(super) fn reconnect(
        &self,
        call: &str,
        consult: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::Consult)?;
        let (held, other) = self.call_pair(call, consult, hint)?;
        expect_state(&held, &[LegState::Held, LegState::Connected])?;
        if held.state == LegState::Connected {
            expect_state(&other, &[LegState::Held])?;
        }
        Ok(Step::Switch(vec![SwitchCommand::Reconnect {
            held: held.call.clone(),
            consult: other.call.clone(),
            extension: held.extension.clone(),
        }]))
    }

    /// dropParty: one party leaves the conference; the agent may name itself.
    pub(super) fn drop_party(
        &self,
        call: &str,
        address: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        self.require(Capability::DropParty)?;
        let (_, leg) = self.find_leg(call, hint)?;
        expect_state(&leg, &[LegState::Conferenced, LegState::Connected])?;
        let wanted = E164::normalize(address);
        if address.trim() == leg.extension || E164::normalize(&leg.extension) == wanted {
            // The agent drops itself (the vendor allows it): it leaves, the others
            // stay in the conference.
            self.require(Capability::Clear)?;
            expect_state(&leg, &[LegState::Conferenced])?;
            return Ok(Step::Switch(vec![SwitchCommand::Clear {
                call: leg.call.clone(),
                extension: leg.extension.clone(),
            }]));
        }
        let party = leg
            .parties
            .iter()
            .find(|p| p.as_str() == address.trim() || E164::normalize(p) == wanted)
            .cloned()
            .ok_or_else(|| SessionError::InvalidAddress(address.to_string()))?;
        Ok(Step::Switch(vec![SwitchCommand::DropParty {
            call: leg.call.clone(),
            extension: leg.extension.clone(),
            party,
        }]))
    }

    pub(super) fn listen(
        &mut self,
        call: &str,
        supervisor: &UserId,
        start: bool,
    ) -> Result<Step, SessionError> {
        self.require(Capability::Listen)?;
        let extension = self
            .ensure_agent(supervisor)?
            .extension
            .clone()
            .ok_or_else(|| SessionError::NoAddress(supervisor.to_string()))?;
        let call = self.resolve(call);
        let known = self
            .agents
            .values()
            .any(|a| a.visible.iter().any(|l| l.call == call));
        if !known {
            return Err(SessionError::UnknownCall(call));
        }
        let command = if start {
            SwitchCommand::Listen {
                call,
                supervisor: extension,
            }
        } else {
            SwitchCommand::ListenEnd {
                call,
                supervisor: extension,
            }
        };
        Ok(Step::Switch(vec![command]))
    }

    pub(super) fn get_phone_call_attributes(
        &self,
        call: &str,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        let (user, leg) = self.leg_ref(call, hint, &[])?;
        answer(Answer::Call(self.phone_call(user, leg)))
    }

    /// The number to hand the switch for an address SAP dials or transfers to.
    fn destination(&self, address: &str) -> Result<String, SessionError> {
        let number = self.config.numbers.outbound_number(address);
        if number.is_empty() || number.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(SessionError::InvalidAddress(address.to_string()));
        }
        Ok(number)
    }
}
