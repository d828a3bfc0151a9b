//! What each command asks of Asterisk: the AMI actions in order, the answer, and the event
//! that must be seen before answering. Also the checks a command fails before any action.
//!
//! Separate from the link because it is pure planning over the model: adding a capability
//! (every toolbar button on Asterisk) means a new arm here and nothing else.

use std::time::Duration;

use super::link::Link;
use crate::switch::asterisk::codec::Action;
use crate::switch::asterisk::model::{CTI_REF_VARIABLE, Model, ORIGINATE_PREFIX};
use crate::switch::asterisk::{CONFERENCE_CONTEXT, DIAL_CONTEXT};
use crate::switch::{AgentState, SwitchCommand, SwitchError, SwitchReply};

/// What must have happened before a command is answered, so its events come first.
#[derive(Debug)]
pub(super) enum Waiter {
    /// The channel hung up or was transferred away.
    Left(String),
    /// The call has a channel (the originated agent leg exists).
    CallAppears(String),
    /// The agent reached this state.
    Agent(String, AgentState),
    /// An `Atxfer` from this channel (on this held call) started its consultation call;
    /// the command answers with its id.
    Consult { held: String, transferer: String },
    /// The consultation call ended.
    ConsultGone(String),
    /// The channel joined a ConfBridge (or is gone).
    Conferenced(String),
}

#[derive(Debug)]
pub(super) struct Step {
    pub(super) action: Action,
    /// An error response does not fail the command (`QueueAdd` of a member that is
    /// already there, `QueueRemove` of one that is not).
    pub(super) tolerate: bool,
    /// How often an error response is retried (after [`RETRY_PAUSE`]) before it fails the
    /// command: a transfer asked for right after the phone answered can find the channel
    /// not yet bridged ("Transfer invalid") for a few milliseconds.
    pub(super) retries: u8,
}

/// The pause before a failed step is sent again.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How often a transfer step refused by Asterisk is tried again: five pauses of
/// [`RETRY_PAUSE`] cover the moment between a phone answering and its channel being bridged.
const TRANSFER_RETRIES: u8 = 5;
/// Q.850 cause "normal call clearing", sent with the adapter's own hangups.
const NORMAL_CLEARING: &str = "16";

/// A command's plan: the actions in order, the answer once done, what to wait for.
type Plan = (Vec<Step>, SwitchReply, Option<Waiter>);

impl Link<'_> {
    /// The AMI actions for a command, what it answers and what to wait for.
    pub(super) fn plan(
        &mut self,
        command: SwitchCommand,
        model: &mut Model,
    ) -> Result<Plan, SwitchError> {
        let step = |action: Action| Step {
            action,
            tolerate: false,
            retries: 0,
        };
        // Transfers right after an answer can meet a channel not bridged yet: retried.
        let transfer_step = |action: Action| Step {
            action,
            tolerate: false,
            retries: TRANSFER_RETRIES,
        };
        match command {
            SwitchCommand::SetAgentState {
                extension,
                state,
                queues,
            } => {
                let queues = if queues.is_empty() {
                    self.config.queues.clone()
                } else {
                    queues
                };
                if queues.is_empty() {
                    return Err(SwitchError::Rejected(
                        "no Asterisk queue configured for this agent ([switch.asterisk] queues)"
                            .into(),
                    ));
                }
                let interface = model.interfaces().interface(&extension);
                let custom = match &state {
                    AgentState::Custom { state } => Some(state.clone()),
                    _ => None,
                };
                model.set_custom(&extension, custom);
                let mut steps = Vec::new();
                for queue in &queues {
                    let base = |name| {
                        Action::new(name)
                            .with("Queue", queue.clone())
                            .with("Interface", interface.clone())
                    };
                    let (paused, reason) = match &state {
                        AgentState::LoggedOut => {
                            steps.push(Step {
                                action: base("QueueRemove"),
                                tolerate: true,
                                retries: 0,
                            });
                            continue;
                        }
                        AgentState::Ready => (false, None),
                        AgentState::NotReady { reason } => (true, reason.clone()),
                        AgentState::Custom { state } => (true, Some(state.clone())),
                    };
                    let flag = if paused { "true" } else { "false" };
                    steps.push(Step {
                        action: base("QueueAdd")
                            .with("MemberName", extension.clone())
                            .with("StateInterface", interface.clone())
                            .with("Paused", flag),
                        tolerate: true,
                        retries: 0,
                    });
                    let mut pause = base("QueuePause").with("Paused", flag);
                    if let Some(reason) = reason {
                        pause = pause.with("Reason", reason);
                    }
                    steps.push(Step {
                        action: pause,
                        tolerate: true,
                        retries: 0,
                    });
                }
                Ok((
                    steps,
                    SwitchReply::Done,
                    Some(Waiter::Agent(extension, state)),
                ))
            }
            SwitchCommand::MakeCall {
                extension,
                destination,
                correlation,
            } => {
                check_number(&destination)?;
                *self.originated += 1;
                let call = format!("{ORIGINATE_PREFIX}{}-{}", self.epoch, self.originated);
                model.expect_originate(&call, correlation.clone(), &destination);
                let action = Action::new("Originate")
                    .with("Channel", model.interfaces().interface(&extension))
                    .with("Context", DIAL_CONTEXT)
                    .with("Exten", destination)
                    .with("Priority", "1")
                    .with("Async", "true")
                    .with("ChannelId", call.clone())
                    .with("Variable", format!("{CTI_REF_VARIABLE}={correlation}"));
                Ok((
                    vec![step(action)],
                    SwitchReply::NewCall(call.clone()),
                    Some(Waiter::CallAppears(call)),
                ))
            }
            SwitchCommand::Clear { call, extension } => {
                if let Some((_, transferer, name)) = model.consult(&call)
                    && model.channel_extension(transferer) == Some(extension.as_str())
                {
                    // The consulting agent ends the consultation: back to the held call.
                    let action = Action::new("CancelAtxfer").with("Channel", name.to_owned());
                    return Ok((
                        vec![step(action)],
                        SwitchReply::Done,
                        Some(Waiter::ConsultGone(call)),
                    ));
                }
                let (id, name) = leg(model, &call, &extension)?;
                if model.consult_by_transferer(&id).is_some() {
                    // Hanging up the transferer would complete the transfer on Asterisk.
                    return Err(SwitchError::InvalidState(format!(
                        "{extension} is consulting on {call}: transfer it or drop the \
                         consultation call first"
                    )));
                }
                Ok(hang_up(id, name))
            }
            SwitchCommand::SingleStepTransfer {
                call,
                extension,
                destination,
            } => {
                check_number(&destination)?;
                let (id, name) = leg(model, &call, &extension)?;
                if let Some((_, consulted)) = model.consult_by_transferer(&id) {
                    if consulted != destination {
                        return Err(SwitchError::InvalidState(format!(
                            "{extension} is consulting {consulted} on {call}: transfer to \
                             {consulted} or drop the consultation call first"
                        )));
                    }
                    // Transfer to the consulted party: the transferer leaves, Asterisk
                    // completes the attended transfer.
                    return Ok(hang_up(id, name));
                }
                let action = Action::new("BlindTransfer")
                    .with("Channel", name.clone())
                    .with("Exten", destination)
                    .with("Context", DIAL_CONTEXT);
                // Asterisk may leave the transferer's phone in the call; the agent is done
                // with it, so it is hung up (an error means it was already gone).
                let hangup = Step {
                    action: Action::new("Hangup").with("Channel", name),
                    tolerate: true,
                    retries: 0,
                };
                Ok((
                    vec![transfer_step(action), hangup],
                    SwitchReply::Done,
                    Some(Waiter::Left(id)),
                ))
            }
            SwitchCommand::Consult {
                call,
                extension,
                destination,
            } => {
                check_number(&destination)?;
                let (id, name) = leg(model, &call, &extension)?;
                if model.consult_by_transferer(&id).is_some() {
                    return Err(SwitchError::InvalidState(format!(
                        "{extension} is already consulting on {call}"
                    )));
                }
                model.expect_consult(&call, &id, &destination);
                let action = Action::new("Atxfer")
                    .with("Channel", name)
                    .with("Exten", destination)
                    .with("Context", DIAL_CONTEXT);
                Ok((
                    vec![transfer_step(action)],
                    SwitchReply::Done,
                    Some(Waiter::Consult {
                        held: call,
                        transferer: id,
                    }),
                ))
            }
            SwitchCommand::TransferConsult {
                held,
                consult,
                extension,
            } => {
                let (id, name) = consult_legs(model, &held, &consult, &extension)?;
                Ok(hang_up(id, name))
            }
            SwitchCommand::Conference {
                held,
                consult,
                extension,
            } => {
                let (id, name) = consult_legs(model, &held, &consult, &extension)?;
                let phones = model.consult_phones(&consult);
                let customers = model.held_phones(&consult);
                if phones.is_empty() || customers.is_empty() {
                    return Err(SwitchError::InvalidState(format!(
                        "{held} and {consult} have nobody to conference with"
                    )));
                }
                model.expect_conference(&consult);
                // One ConfBridge per held call (named by its digits).
                let room: String = format!(
                    "c{}",
                    held.chars()
                        .filter(char::is_ascii_digit)
                        .collect::<String>()
                );
                let redirect = |name: &str| {
                    Action::new("Redirect")
                        .with("Channel", name.to_owned())
                        .with("Context", CONFERENCE_CONTEXT)
                        .with("Exten", room.clone())
                        .with("Priority", "1")
                };
                // The other parties first, then the agent: the agent leaving its bridge
                // first would complete the attended transfer.
                let mut steps: Vec<Step> = customers
                    .iter()
                    .chain(phones.iter())
                    .map(|(_, n)| step(redirect(n)))
                    .collect();
                steps.push(step(redirect(&name)));
                Ok((steps, SwitchReply::Done, Some(Waiter::Conferenced(id))))
            }
            SwitchCommand::DropParty {
                call,
                extension,
                party,
            } => {
                let (id, name) =
                    model
                        .party_channel(&call, &extension, &party)
                        .ok_or_else(|| {
                            SwitchError::InvalidState(format!("{party} is not a party of {call}"))
                        })?;
                Ok(hang_up(id, name))
            }
            other => Err(SwitchError::NotSupported(other.capability())),
        }
    }
}

/// The transferer of consultation `consult` on `held`: (uniqueid, channel name).
fn consult_legs(
    model: &Model,
    held: &str,
    consult: &str,
    extension: &str,
) -> Result<(String, String), SwitchError> {
    let (held_call, id, name) = model
        .consult(consult)
        .ok_or_else(|| SwitchError::UnknownCall(consult.to_owned()))?;
    if held_call != held || model.channel_extension(id) != Some(extension) {
        return Err(SwitchError::InvalidState(format!(
            "{consult} is not {extension}'s consultation of {held}"
        )));
    }
    Ok((id.to_owned(), name.to_owned()))
}

/// Hangs up one channel (normal clearing) and answers once it has left: the agent's
/// `Clear`, `DropParty`, and completing an attended transfer on Asterisk (the transferer
/// hangs up).
fn hang_up(id: String, name: String) -> Plan {
    let action = Action::new("Hangup")
        .with("Channel", name)
        .with("Cause", NORMAL_CLEARING);
    (
        vec![Step {
            action,
            tolerate: false,
            retries: 0,
        }],
        SwitchReply::Done,
        Some(Waiter::Left(id)),
    )
}

fn leg(model: &Model, call: &str, extension: &str) -> Result<(String, String), SwitchError> {
    model
        .channel_of(call, extension)
        .map(|(id, name)| (id.to_owned(), name.to_owned()))
        .ok_or_else(|| SwitchError::UnknownCall(call.to_owned()))
}

/// A dialplan extension to send a call to: no spaces, controls or separators that would
/// change the meaning of the action.
fn check_number(destination: &str) -> Result<(), SwitchError> {
    let ok = !destination.is_empty()
        && destination
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SwitchError::Rejected(format!(
            "{destination:?} is not a number Asterisk can dial"
        )))
    }
}
