//! The outside world on the model: callers ringing in, remote parties answering or hanging
//! up, agents pressing their phones' buttons, as [`SimControl`](super::SimControl) asks.
//!
//! Separate from the commands because these are not the connector's requests: nothing here
//! is checked against an agent's leg, and a scripted caller's timers lead here too. The
//! actor answers them with [`SimError`] for the control API.

use super::model::{OpResult, Party, Phase, RemotePhase, Sim, Target, Timer};
use super::{CreateCall, SimError};
use crate::switch::{CallRef, SwitchError};

impl Sim {
    pub(super) fn create_call(&mut self, request: CreateCall) -> Result<CallRef, SimError> {
        let from = request.from.trim();
        if from.is_empty() {
            return Err(SimError::BadRequest("the caller (from) is required".into()));
        }
        let (target, dnis) = match (request.to.as_deref(), request.queue.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(SimError::BadRequest(
                    "give either to or queue, not both".into(),
                ));
            }
            (None, None) => return Err(SimError::BadRequest("to or queue is required".into())),
            (Some(to), None) => match self.target(to.trim()) {
                Target::Remote(_) => return Err(SimError::UnknownDestination(to.into())),
                Target::Ext(ext) => (Target::Ext(ext), to.trim().to_owned()),
                Target::Queue(q) => (Target::Queue(q), self.queues[q].number.clone()),
            },
            (None, Some(queue)) => match self.queue_by_name_or_number(queue.trim()) {
                Some(q) => (Target::Queue(q), self.queues[q].number.clone()),
                None => return Err(SimError::UnknownDestination(queue.into())),
            },
        };
        let caller = Party::Remote {
            address: from.to_owned(),
            phase: RemotePhase::Waiting,
        };
        let seq = self.new_call(true, caller, &dnis);
        self.call_mut(seq).attributes.extend(request.attributes);
        self.place(seq, target, None, RemotePhase::Waiting);
        if let Some(after) = request.hangup_after {
            self.schedule(after, Timer::RemoteHangup(seq));
        }
        Ok(self.call(seq).id.clone())
    }

    pub(super) fn remote_answer(&mut self, seq: u64) -> OpResult<()> {
        let call = self.call_mut(seq);
        let Some(i) = call.parties.iter().position(|p| {
            matches!(
                p,
                Party::Remote {
                    phase: RemotePhase::Ringing,
                    ..
                }
            )
        }) else {
            return Err(SwitchError::InvalidState(format!(
                "no external party of call {} is ringing",
                call.id
            )));
        };
        for (j, party) in call.parties.iter_mut().enumerate() {
            match party {
                Party::Remote { phase, .. } if j == i => *phase = RemotePhase::Connected,
                Party::Ext { phase, .. } if *phase == Phase::Dialing => *phase = Phase::Active,
                _ => {}
            }
        }
        self.touch(seq);
        Ok(())
    }

    pub(super) fn remote_hangup(&mut self, seq: u64) -> OpResult<()> {
        let call = self.call_mut(seq);
        if !call
            .parties
            .iter()
            .any(|p| matches!(p, Party::Remote { .. }))
        {
            return Err(SwitchError::InvalidState(format!(
                "call {} has no external party",
                call.id
            )));
        }
        call.parties.retain(|p| matches!(p, Party::Ext { .. }));
        self.touch(seq);
        Ok(())
    }
}
