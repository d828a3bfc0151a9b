//! Consultations: which call an agent holds for which consultation call, so that
//! `transfer` completes a consultation instead of transferring blind (ICI.md section 4,
//! "Completing a consultation"), and a blind transfer elsewhere is refused while one is up.
//!
//! The session knows this and the switch need not: `consult(X, address)` is asked here, and
//! the consultation call C is the first new call placed from that extension while X is
//! held there (see `interactions::adopt_consult_data`). The record ends with either leg.

use crate::numbers::E164;
use crate::switch::LegEvent;

use super::Actor;

/// One consultation of an agent's extension.
#[derive(Debug, Clone)]
pub(super) struct Consultation {
    /// The call the consultation was placed from (held while consulting, unless an
    /// alternate swapped them).
    pub(super) held: String,
    /// The consulted address, as the switch was asked to dial it.
    pub(super) destination: String,
    /// The consultation call, once the switch reported it.
    pub(super) consult: Option<String>,
}

/// The calls of an ongoing consultation.
pub(super) struct Ongoing {
    pub(super) held: String,
    pub(super) consult: String,
    pub(super) destination: String,
}

impl Actor {
    /// Records a consultation asked for from `extension` on `held`.
    pub(super) fn consultation_asked(&mut self, extension: &str, held: &str, destination: &str) {
        self.consults.insert(
            extension.to_owned(),
            Consultation {
                held: held.to_owned(),
                destination: destination.to_owned(),
                consult: None,
            },
        );
    }

    /// The ongoing consultation `leg` is part of (its held call or its consultation call),
    /// if both calls are still up at the agent.
    pub(super) fn consultation_on(&self, leg: &LegEvent) -> Option<Ongoing> {
        let record = self.consults.get(&leg.extension)?;
        let consult = record.consult.as_ref()?;
        if leg.call != record.held && leg.call != *consult {
            return None;
        }
        let agent = self.agents.get(self.by_extension.get(&leg.extension)?)?;
        let up = |call: &str| agent.legs().any(|l| l.call == call && !l.state.is_final());
        (up(&record.held) && up(consult)).then(|| Ongoing {
            held: record.held.clone(),
            consult: consult.clone(),
            destination: record.destination.clone(),
        })
    }

    /// Whether `address` (as SAP names it) is the consulted `destination` (as the switch
    /// was asked to dial it).
    pub(super) fn is_consulted(&self, address: &str, destination: &str) -> bool {
        let number = self.config.numbers.outbound_number(address);
        number == destination || E164::normalize(address) == E164::normalize(destination)
    }

    /// A leg of the held or the consultation call ended at the consulting extension: the
    /// consultation is over (transferred, conferenced, reconnected or hung up).
    pub(super) fn consultation_leg_ended(&mut self, leg: &LegEvent) {
        let ends = self
            .consults
            .get(&leg.extension)
            .is_some_and(|c| c.held == leg.call || c.consult.as_deref() == Some(leg.call.as_str()));
        if ends {
            self.consults.remove(&leg.extension);
        }
    }
}
