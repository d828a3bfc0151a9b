//! The session manager's commands ([`SwitchCommand`]) carried out on the model: placing,
//! answering, holding, clearing, transferring, conferencing, listening and call data.
//!
//! Separate from the outside world's actions and from event emission: each handler only
//! validates and changes the model; [`Sim::settle`] then reports what changed.

use std::sync::Arc;

use super::model::{CALL_ID_PREFIX, Call, OpResult, Party, Phase, RemotePhase, Sim, Target, Timer};
use crate::switch::{
    ATTACHED_DATA_ATTRIBUTE, Attributes, CallRef, LegState, SwitchCommand, SwitchError, SwitchReply,
};

/// Room a new call's party list starts with: the usual caller and callee, no more (a
/// conference grows it; most calls never need a third slot).
const USUAL_PARTIES: usize = 2;

impl Sim {
    /// Carries out one command and settles it; the events it caused wait in `out` for the
    /// actor to send before the answer.
    pub(super) fn command(&mut self, command: SwitchCommand) -> OpResult<SwitchReply> {
        use SwitchCommand as C;
        let result = match command {
            C::SetAgentState {
                extension,
                state,
                queues,
            } => {
                self.set_agent_state(&extension, state, &queues);
                Ok(SwitchReply::Done)
            }
            C::MakeCall {
                extension,
                destination,
                correlation,
            } => self
                .make_call(&extension, destination.trim(), Some(correlation))
                .map(SwitchReply::NewCall),
            C::Answer { call, extension } => self.answer(&call, &extension),
            C::Hold { call, extension } => self.hold(&call, &extension),
            C::Retrieve { call, extension } => self.retrieve(&call, &extension),
            C::Clear { call, extension } => self.clear(&call, &extension),
            C::SingleStepTransfer {
                call,
                extension,
                destination,
            } => self.single_step_transfer(&call, &extension, destination.trim()),
            C::Consult {
                call,
                extension,
                destination,
            } => self.consult(&call, &extension, destination.trim()),
            C::Conference {
                held,
                consult,
                extension,
            } => self.conference(&held, &consult, &extension),
            C::TransferConsult {
                held,
                consult,
                extension,
            } => self.transfer_consult(&held, &consult, &extension),
            C::Alternate {
                held,
                active,
                extension,
            } => self.alternate(&held, &active, &extension),
            C::Reconnect {
                held,
                consult,
                extension,
            } => self.reconnect(&held, &consult, &extension),
            C::DropParty {
                call,
                extension,
                party,
            } => self.drop_party(&call, &extension, &party),
            C::Listen { call, supervisor } => self.listen(&call, &supervisor),
            C::ListenEnd { call, supervisor } => self.listen_end(&call, &supervisor),
            C::Reroute { call, extension } => self.reroute(&call, &extension),
            C::SetCallData { call, key, value } => self.set_call_data(&call, key, value),
            C::QueueStatus => Ok(SwitchReply::Queues(self.queue_status())),
        };
        self.done(result.is_ok());
        result
    }

    pub(super) fn new_call(&mut self, inbound: bool, caller: Party, dnis: &str) -> u64 {
        let seq = self.next_call;
        self.next_call += 1;
        let attributes = Attributes::from([
            ("ani".to_owned(), caller.address().to_owned()),
            ("dnis".to_owned(), dnis.to_owned()),
        ]);
        let mut parties = Vec::with_capacity(USUAL_PARTIES);
        parties.push(caller);
        self.calls.insert(
            seq,
            Box::new(Call {
                id: format!("{CALL_ID_PREFIX}{seq}"),
                inbound,
                parties,
                queue: None,
                waiting: false,
                queued_at: None,
                attributes,
                extras: None,
            }),
        );
        self.touch(seq);
        seq
    }

    /// Route call `seq` to `target`; `by` is the extension that dialled (for
    /// `last_dialled`), `remote` the state an external party starts in.
    pub(super) fn place(
        &mut self,
        seq: u64,
        target: Target,
        by: Option<&str>,
        remote: RemotePhase,
    ) {
        self.touch(seq);
        match target {
            Target::Ext(ext) => self
                .call_mut(seq)
                .parties
                .push(Party::ext(&ext, Phase::Alerting)),
            Target::Queue(q) => {
                let name = self.queues[q].name.clone();
                let call = self.call_mut(seq);
                call.queue = Some(name);
                call.waiting = true;
                call.queued_at.get_or_insert_with(tokio::time::Instant::now);
                self.queues[q].waiting.push_back(seq);
            }
            Target::Remote(address) => {
                if let Some(agent) = by.and_then(|ext| self.agents.get_mut(ext)) {
                    agent.last_dialled = Some(address.clone());
                }
                let call = self.call_mut(seq);
                call.extras_mut().dialled = Some(address.clone());
                call.parties.push(Party::Remote {
                    address,
                    phase: remote,
                });
                if remote == RemotePhase::Ringing
                    && let Some(after) = self.remote_answer_after
                {
                    self.schedule(after, Timer::RemoteAnswer(seq));
                }
            }
        }
    }

    fn make_call(
        &mut self,
        ext: &str,
        destination: &str,
        correlation: Option<String>,
    ) -> OpResult<CallRef> {
        self.known(ext)?;
        self.check_destination(destination, ext, None)?;
        let caller = Party::Ext {
            ext: ext.to_owned(),
            phase: Phase::Dialing,
            correlation,
            acd_offer: false,
        };
        let seq = self.new_call(false, caller, destination);
        let target = self.target(destination);
        self.place(seq, target, Some(ext), RemotePhase::Ringing);
        Ok(self.call(seq).id.clone())
    }

    fn answer(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (i, phase) = self.leg_of(seq, ext)?;
        if phase != Phase::Alerting {
            return Err(self.invalid(seq, ext, phase, "alerting"));
        }
        let call = self.call_mut(seq);
        for (j, party) in call.parties.iter_mut().enumerate() {
            match party {
                Party::Ext { phase, .. } if j == i || *phase == Phase::Dialing => {
                    *phase = Phase::Active
                }
                Party::Remote { phase, .. } if *phase == RemotePhase::Waiting => {
                    *phase = RemotePhase::Connected
                }
                _ => {}
            }
        }
        self.touch(seq);
        Ok(SwitchReply::Done)
    }

    fn set_phase(&mut self, seq: u64, i: usize, to: Phase) {
        if let Party::Ext { phase, .. } = &mut self.call_mut(seq).parties[i] {
            *phase = to;
        }
        self.touch(seq);
    }

    /// The extension's leg, which must be a two-party `Connected` one.
    fn connected_leg(&self, seq: u64, ext: &str) -> OpResult<usize> {
        let (i, phase) = self.leg_of(seq, ext)?;
        if self.call(seq).reported(phase) != LegState::Connected {
            return Err(self.invalid(seq, ext, phase, "connected"));
        }
        Ok(i)
    }

    fn hold(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let i = self.connected_leg(seq, ext)?;
        self.set_phase(seq, i, Phase::Held);
        Ok(SwitchReply::Done)
    }

    fn retrieve(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (i, phase) = self.leg_of(seq, ext)?;
        if phase != Phase::Held {
            return Err(self.invalid(seq, ext, phase, "held"));
        }
        self.set_phase(seq, i, Phase::Active);
        Ok(SwitchReply::Done)
    }

    fn clear(&mut self, id: &str, ext: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        if !self.call(seq).listeners().iter().any(|l| l == ext) {
            self.leg_of(seq, ext)?;
        }
        self.end_leg(seq, ext, LegState::Dropped, "normal");
        Ok(SwitchReply::Done)
    }

    fn single_step_transfer(
        &mut self,
        id: &str,
        ext: &str,
        destination: &str,
    ) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (_, phase) = self.leg_of(seq, ext)?;
        if !matches!(phase, Phase::Active | Phase::Held) || self.call(seq).parties.len() > 2 {
            return Err(self.invalid(seq, ext, phase, "connected or held"));
        }
        self.check_destination(destination, ext, Some(seq))?;
        self.end_leg(seq, ext, LegState::Transferred, "transferred");
        let target = self.target(destination);
        self.place(seq, target, Some(ext), RemotePhase::Connected);
        Ok(SwitchReply::Done)
    }

    fn consult(&mut self, id: &str, ext: &str, destination: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let i = self.connected_leg(seq, ext)?;
        self.check_destination(destination, ext, Some(seq))?;
        self.set_phase(seq, i, Phase::Held);
        let new = self.make_call(ext, destination, None)?;
        // The attached data rides on to the consulted party (the warm transfer screen pop
        // also for an agent another connector serves).
        let data = self
            .call(seq)
            .attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(ATTACHED_DATA_ATTRIBUTE))
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        if let Some((key, value)) = data {
            let new_seq = self.find(&new)?;
            self.call_mut(new_seq).attributes.insert(key, value);
        }
        Ok(SwitchReply::NewCall(new))
    }

    /// The agent's two legs of a consultation: `(held call, its leg, other call, its leg)`,
    /// one of them held and the other connected, in either order.
    fn consult_legs(
        &self,
        held: &str,
        other: &str,
        ext: &str,
    ) -> OpResult<(u64, usize, Phase, u64, usize, Phase)> {
        let hs = self.find(held)?;
        let os = self.find(other)?;
        if hs == os {
            return Err(SwitchError::InvalidState(format!(
                "{held} is both the held and the consultation call"
            )));
        }
        let (hi, hp) = self.leg_of(hs, ext)?;
        let (oi, op) = self.leg_of(os, ext)?;
        let connected = |seq, phase| self.call(seq).reported(phase) == LegState::Connected;
        let one_held =
            hp == Phase::Held && connected(os, op) || op == Phase::Held && connected(hs, hp);
        if !one_held {
            return Err(self.invalid(hs, ext, hp, "held with the other call connected"));
        }
        Ok((hs, hi, hp, os, oi, op))
    }

    fn alternate(&mut self, held: &str, active: &str, ext: &str) -> OpResult<SwitchReply> {
        let (hs, hi, hp, as_, ai, _) = self.consult_legs(held, active, ext)?;
        if hp != Phase::Held {
            return Err(self.invalid(hs, ext, hp, "held"));
        }
        self.set_phase(as_, ai, Phase::Held);
        self.set_phase(hs, hi, Phase::Active);
        Ok(SwitchReply::Done)
    }

    /// Also before the consulted party answered (the consultation call still dialing).
    fn reconnect(&mut self, held: &str, consult: &str, ext: &str) -> OpResult<SwitchReply> {
        let hs = self.find(held)?;
        let ks = self.find(consult)?;
        if hs == ks {
            return Err(SwitchError::InvalidState(format!(
                "{held} is both the held and the consultation call"
            )));
        }
        let (hi, hp) = self.leg_of(hs, ext)?;
        let (_, kp) = self.leg_of(ks, ext)?;
        let held_ok = hp == Phase::Held || kp == Phase::Held && hp == Phase::Active;
        if !held_ok || self.call(hs).reported(hp) == LegState::Conferenced {
            return Err(self.invalid(hs, ext, hp, "held, or connected with the other held"));
        }
        self.end_leg(ks, ext, LegState::Dropped, "normal");
        if hp == Phase::Held {
            self.set_phase(hs, hi, Phase::Active);
        }
        Ok(SwitchReply::Done)
    }

    /// Checks for Conference / TransferConsult: the agent holds one of `held` and
    /// `consult` and talks on the other (after an alternate, the consultation is the held
    /// one), and nobody is on both.
    fn consult_pair(&self, held: &str, consult: &str, ext: &str) -> OpResult<(u64, u64)> {
        let (hs, _, _, ks, _, _) = self.consult_legs(held, consult, ext)?;
        let h = self.call(hs);
        let k = self.call(ks);
        if let Some(p) = k
            .parties
            .iter()
            .find(|p| p.address() != ext && h.has_party(p.address()))
        {
            return Err(SwitchError::InvalidState(format!(
                "{} is on both calls",
                p.address()
            )));
        }
        Ok((hs, ks))
    }

    /// Move everybody but `ext` from the consultation call into the held one; the
    /// consultation call's legs end (`ext`'s with `own`), its id disappears.
    fn merge(&mut self, hs: u64, ks: u64, ext: &str, own: LegState, cause: &str) {
        let consult = self.calls.remove(&ks).expect("live call");
        self.final_event(&consult, ks, ext, own, cause);
        for party in &consult.parties {
            if let Party::Ext { ext: other, .. } = party
                && other != ext
            {
                self.final_event(&consult, ks, other, LegState::Dropped, cause);
            }
        }
        for listener in consult.listeners() {
            self.final_event(&consult, ks, listener, LegState::Dropped, cause);
            self.leg_ended(listener);
        }
        for queue in &mut self.queues {
            queue.waiting.retain(|s| *s != ks);
        }
        let moved = consult.parties.into_iter().filter_map(|p| match p {
            Party::Ext { ext: e, .. } if e == ext => None,
            Party::Ext { ext, phase, .. } => Some(Party::Ext {
                ext,
                phase,
                correlation: None,
                acd_offer: false,
            }),
            remote => Some(remote),
        });
        self.call_mut(hs).parties.extend(moved);
        self.touch(hs);
    }

    fn conference(&mut self, held: &str, consult: &str, ext: &str) -> OpResult<SwitchReply> {
        let (hs, ks) = self.consult_pair(held, consult, ext)?;
        self.merge(hs, ks, ext, LegState::Dropped, "conferenced");
        let (i, _) = self.call(hs).leg(ext).expect("checked");
        self.set_phase(hs, i, Phase::Active);
        Ok(SwitchReply::Done)
    }

    fn transfer_consult(&mut self, held: &str, consult: &str, ext: &str) -> OpResult<SwitchReply> {
        let (hs, ks) = self.consult_pair(held, consult, ext)?;
        self.end_leg(hs, ext, LegState::Transferred, "transferred");
        self.merge(hs, ks, ext, LegState::Transferred, "transferred");
        self.leg_ended(ext);
        Ok(SwitchReply::Done)
    }

    fn drop_party(&mut self, id: &str, ext: &str, party: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        let (_, phase) = self.leg_of(seq, ext)?;
        let call = self.call(seq);
        if call.reported(phase) != LegState::Conferenced {
            return Err(self.invalid(seq, ext, phase, "conferenced"));
        }
        if party == ext {
            return Err(SwitchError::InvalidState(format!(
                "{ext} cannot drop itself; clear the call instead"
            )));
        }
        let Some(target) = call.parties.iter().find(|p| p.address() == party) else {
            return Err(SwitchError::InvalidState(format!(
                "{party} is not a party of call {id}"
            )));
        };
        if matches!(target, Party::Ext { .. }) {
            self.end_leg(seq, party, LegState::Dropped, "normal");
        } else {
            self.call_mut(seq).parties.retain(|p| p.address() != party);
            self.touch(seq);
        }
        Ok(SwitchReply::Done)
    }

    fn listen(&mut self, id: &str, supervisor: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        self.known(supervisor)?;
        let call = self.call(seq);
        if call.involves(supervisor) {
            return Err(SwitchError::InvalidState(format!(
                "{supervisor} is already on call {id}"
            )));
        }
        if !call.answered() {
            return Err(SwitchError::InvalidState(format!(
                "call {id} is not answered yet"
            )));
        }
        self.call_mut(seq)
            .extras_mut()
            .listeners
            .push(supervisor.to_owned());
        self.touch(seq);
        Ok(SwitchReply::Done)
    }

    fn listen_end(&mut self, id: &str, supervisor: &str) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        self.known(supervisor)?;
        if !self.call(seq).listeners().iter().any(|l| l == supervisor) {
            return Err(SwitchError::InvalidState(format!(
                "{supervisor} is not listening to call {id}"
            )));
        }
        self.end_leg(seq, supervisor, LegState::Dropped, "normal");
        Ok(SwitchReply::Done)
    }

    fn set_call_data(&mut self, id: &str, key: String, value: String) -> OpResult<SwitchReply> {
        let seq = self.find(id)?;
        // Carried by the legs' next events; no event of its own (nothing visible changed).
        let call = self.call_mut(seq);
        // Attribute names are matched without case (an IVR's `SAP_CAD` is `Sap_Cad`): the
        // new value replaces the old one under its name rather than standing beside it.
        let key = call
            .attributes
            .iter()
            .map(|(k, _)| k)
            .find(|k| k.eq_ignore_ascii_case(&key))
            .map_or(key, str::to_owned);
        call.attributes.insert(key, value);
        let attributes = call.attributes.clone();
        for ((s, _), event) in self.sent.iter_mut() {
            if *s == seq {
                // A copy if the session manager still holds this snapshot: it keeps what it
                // was sent.
                Arc::make_mut(event).attributes = attributes.clone();
            }
        }
        Ok(SwitchReply::Done)
    }
}
