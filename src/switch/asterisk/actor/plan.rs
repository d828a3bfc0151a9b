//! What each command asks of Asterisk: the AMI actions in order, the answer, and the event
//! that must be seen before answering. Also the checks a command fails before any action.
//!
//! Separate from the link because it is pure planning over the model: adding a capability
//! (every toolbar button on Asterisk) means a new arm here and nothing else.

use std::time::Duration;

use crate::config::AnswerMethod;
use crate::config::AsteriskConfig;
use crate::switch::asterisk::codec::Action;
use crate::switch::asterisk::model::{
    CTI_REF_VARIABLE, Model, ORIGINATE_PREFIX, SAP_CAD_ATTRIBUTE, SAP_CAD_VARIABLE, SPY_PREFIX,
};
use crate::switch::asterisk::{
    CONFERENCE_CONTEXT, DIAL_CONTEXT, HOLD_CONTEXT, HOLD_MUSIC_EXTEN, HOLD_PARK_EXTEN,
};
use crate::switch::{AgentState, Capability, SwitchCommand, SwitchError, SwitchReply};

/// What must have happened before a command is answered, so its events come first.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::switch::asterisk) enum Waiter {
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
    /// The agent's channel is held by the server (left its bridge) or gone.
    Parked(String),
    /// The agent's channel is bridged with its party again (or gone).
    Retrieved(String),
    /// The agent's ringing channel was answered (or is gone).
    Answered(String),
}

#[derive(Debug)]
pub(in crate::switch::asterisk) struct Step {
    pub(in crate::switch::asterisk) action: Action,
    /// An error response does not fail the command (`QueueAdd` of a member that is
    /// already there, `QueueRemove` of one that is not).
    pub(super) tolerate: bool,
    /// How often an error response is retried (after [`RETRY_PAUSE`]) before it fails the
    /// command: a transfer asked for right after the phone answered can find the channel
    /// not yet bridged ("Transfer invalid") for a few milliseconds.
    pub(super) retries: u8,
    /// Sent only once this has happened (and its answer still waits for the command's
    /// waiter): a step that must not race Asterisk's own reaction to the previous one.
    pub(in crate::switch::asterisk) after: Option<Waiter>,
}

/// The pause before a failed step is sent again.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How often a transfer step refused by Asterisk is tried again: five pauses of
/// [`RETRY_PAUSE`] cover the moment between a phone answering and its channel being bridged.
const TRANSFER_RETRIES: u8 = 5;
/// Q.850 cause "normal call clearing", sent with the adapter's own hangups.
pub(super) const NORMAL_CLEARING: &str = "16";
/// Q.850 cause "call rejected": a rerouted queue call's ring at the agent ends with it, and
/// the queue offers the call to the next member.
const CALL_REJECTED: &str = "21";
/// ChanSpy options for a supervisor's listening channel: `q` no beep or announcement of
/// the spied channel, `E` the supervisor's channel ends when the agent's does.
const SPY_OPTIONS: &str = "qE";
/// The auto-answer headers added to the agent's ring of a call SAP dials, when
/// `auto_answer_on_dial` is on: BroadSoft's `Call-Info` and the `Alert-Info` most other
/// phones understand.
const AUTO_ANSWER_HEADERS: [&str; 2] = [
    "PJSIP_HEADER(add,Call-Info)=<sip:ici-connector>;answer-after=0",
    "PJSIP_HEADER(add,Alert-Info)=<http://localhost>;info=alert-autoanswer;delay=0",
];

/// A command's plan: the actions in order, the answer once done, what to wait for.
pub(in crate::switch::asterisk) type Plan = (Vec<Step>, SwitchReply, Option<Waiter>);

/// What a plan needs besides the model: the settings and the numbering of the channels the
/// adapter originates (kept by the adapter across connections).
pub(in crate::switch::asterisk) struct Planner<'a> {
    pub(in crate::switch::asterisk) config: &'a AsteriskConfig,
    /// Calls originated so far: numbers the originated channels.
    pub(in crate::switch::asterisk) originated: &'a mut u64,
    /// When the adapter started (seconds since 1970): keeps originated ids unique across
    /// restarts of the connector.
    pub(in crate::switch::asterisk) epoch: u64,
}

impl Planner<'_> {
    /// The AMI actions for a command, what it answers and what to wait for.
    pub(in crate::switch::asterisk) fn plan(
        &mut self,
        command: SwitchCommand,
        model: &mut Model,
    ) -> Result<Plan, SwitchError> {
        let step = |action: Action| Step {
            action,
            tolerate: false,
            retries: 0,
            after: None,
        };
        // Transfers right after an answer can meet a channel not bridged yet: retried.
        let transfer_step = |action: Action| Step {
            action,
            tolerate: false,
            retries: TRANSFER_RETRIES,
            after: None,
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
                                after: None,
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
                        after: None,
                    });
                    let mut pause = base("QueuePause").with("Paused", flag);
                    if let Some(reason) = reason {
                        pause = pause.with("Reason", reason);
                    }
                    steps.push(Step {
                        action: pause,
                        tolerate: true,
                        retries: 0,
                        after: None,
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
                let mut action = Action::new("Originate")
                    .with("Channel", model.interfaces().interface(&extension))
                    .with("Context", DIAL_CONTEXT)
                    .with("Exten", destination)
                    .with("Priority", "1")
                    .with("Async", "true")
                    .with("ChannelId", call.clone())
                    .with("Variable", format!("{CTI_REF_VARIABLE}={correlation}"));
                if self.config.auto_answer_on_dial {
                    for header in AUTO_ANSWER_HEADERS {
                        action = action.with("Variable", header);
                    }
                }
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
                    after: None,
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
                // The agent alone first: its leaving makes Asterisk complete the attended
                // transfer (customer and consulted party bridged together, nobody alone),
                // and only once the agent is in the conference do the others follow, in
                // one action. Any other order races Asterisk's attended transfer, which
                // hangs up whoever it finds alone (the agent or the customer, seen under
                // load on Asterisk 22).
                let mut others = phones.iter().chain(customers.iter()).map(|(_, n)| n);
                let mut steps = vec![step(redirect(&name))];
                if let Some(first) = others.next() {
                    let mut together = redirect(first);
                    if let Some(extra) = others.next() {
                        together = together
                            .with("ExtraChannel", extra.clone())
                            .with("ExtraContext", CONFERENCE_CONTEXT)
                            .with("ExtraExten", room.clone())
                            .with("ExtraPriority", "1");
                    }
                    steps.push(Step {
                        after: Some(Waiter::Conferenced(id.clone())),
                        ..step(together)
                    });
                }
                steps.extend(others.map(|n| step(redirect(n))));
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
            SwitchCommand::Reconnect {
                held,
                consult,
                extension,
            } => {
                // Asterisk's attended transfer takes the agent back to the held call when
                // the consultation is cancelled.
                let (_, name) = consult_legs(model, &held, &consult, &extension)?;
                let action = Action::new("CancelAtxfer").with("Channel", name);
                Ok((
                    vec![step(action)],
                    SwitchReply::Done,
                    Some(Waiter::ConsultGone(consult)),
                ))
            }
            // Asterisk's attended transfer swaps only on the agent's own DTMF (atxferswap):
            // not offered (see `CAPABILITIES`).
            SwitchCommand::Alternate { .. } => {
                Err(SwitchError::NotSupported(Capability::Alternate))
            }
            // Answered by the link itself (one `QueueStatus` read into a query), never
            // planned as steps.
            SwitchCommand::QueueStatus => Err(SwitchError::NotSupported(
                SwitchCommand::QueueStatus.capability(),
            )),
            SwitchCommand::Answer { call, extension } => {
                let (id, name) = leg(model, &call, &extension)?;
                if !model.ringing(&id) {
                    return Err(SwitchError::InvalidState(format!(
                        "{call} is not ringing at {extension}"
                    )));
                }
                if self.config.answer_for(&extension) != AnswerMethod::Notify {
                    return Err(SwitchError::NotSupported(Capability::Answer));
                }
                let endpoint = endpoint(&name).ok_or_else(|| {
                    SwitchError::Rejected(format!(
                        "{name} is not a PJSIP channel: answer = \"notify\" needs PJSIP"
                    ))
                })?;
                // BroadSoft remote control: the phone answers its ringing call.
                let action = Action::new("PJSIPNotify")
                    .with("Endpoint", endpoint)
                    .with("Variable", "Event=talk");
                Ok((
                    vec![step(action)],
                    SwitchReply::Done,
                    Some(Waiter::Answered(id)),
                ))
            }
            SwitchCommand::Hold { call, extension } => {
                refuse_on_consult(model, &call, &extension)?;
                let (id, name) = leg(model, &call, &extension)?;
                if model.held(&id) {
                    return Err(SwitchError::InvalidState(format!(
                        "{call} is already held at {extension}"
                    )));
                }
                let (partner, partner_name) = model.call_partner(&id).ok_or_else(|| {
                    SwitchError::InvalidState(format!(
                        "{call} at {extension} is not a call between two parties"
                    ))
                })?;
                model.expect_park(&id, &partner);
                // Both out of their bridge in one step: the party to music on hold, the
                // agent's channel to a silent wait (Asterisk reports no Hold for this).
                let action = Action::new("Redirect")
                    .with("Channel", partner_name)
                    .with("Context", HOLD_CONTEXT)
                    .with("Exten", HOLD_MUSIC_EXTEN)
                    .with("Priority", "1")
                    .with("ExtraChannel", name)
                    .with("ExtraContext", HOLD_CONTEXT)
                    .with("ExtraExten", HOLD_PARK_EXTEN)
                    .with("ExtraPriority", "1");
                Ok((
                    vec![step(action)],
                    SwitchReply::Done,
                    Some(Waiter::Parked(id)),
                ))
            }
            SwitchCommand::Retrieve { call, extension } => {
                refuse_on_consult(model, &call, &extension)?;
                let (id, name) = leg(model, &call, &extension)?;
                if !model.held(&id) {
                    // Already talking (a reconnect after the consultation ended).
                    return Ok((Vec::new(), SwitchReply::Done, None));
                }
                if model.held_on_phone(&id) {
                    return Err(SwitchError::InvalidState(format!(
                        "{call} was held on the phone at {extension}: resume it there"
                    )));
                }
                let (_, partner_name) = model.parked_partner(&id).ok_or_else(|| {
                    SwitchError::InvalidState(format!("the other party of {call} is gone"))
                })?;
                let action = Action::new("Bridge")
                    .with("Channel1", partner_name)
                    .with("Channel2", name)
                    .with("Tone", "no");
                Ok((
                    vec![step(action)],
                    SwitchReply::Done,
                    Some(Waiter::Retrieved(id)),
                ))
            }
            SwitchCommand::Reroute { call, extension } => {
                let (id, name) = leg(model, &call, &extension)?;
                if !model.ringing(&id) {
                    return Err(SwitchError::InvalidState(format!(
                        "{call} is not an alerting call at {extension}"
                    )));
                }
                model.expect_reroute(&id);
                // The queue keeps the caller and offers the call to the next member.
                let action = Action::new("Hangup")
                    .with("Channel", name)
                    .with("Cause", CALL_REJECTED);
                Ok((
                    vec![step(action)],
                    SwitchReply::Done,
                    Some(Waiter::Left(id)),
                ))
            }
            SwitchCommand::Listen { call, supervisor } => {
                if model.spy(&call, &supervisor).is_some() {
                    return Err(SwitchError::InvalidState(format!(
                        "{supervisor} is already listening to {call}"
                    )));
                }
                let agent = model
                    .agent_channel_on(&call, &supervisor)
                    .ok_or_else(|| SwitchError::UnknownCall(call.clone()))?;
                *self.originated += 1;
                let spy = format!("{SPY_PREFIX}{}-{}", self.epoch, self.originated);
                model.expect_spy(&call, &supervisor, &spy);
                // The supervisor's phone rings; once answered it hears the agent's call.
                let action = Action::new("Originate")
                    .with("Channel", model.interfaces().interface(&supervisor))
                    .with("Application", "ChanSpy")
                    .with("Data", format!("{agent},{SPY_OPTIONS}"))
                    .with("Async", "true")
                    .with("ChannelId", spy.clone());
                Ok((
                    vec![step(action)],
                    SwitchReply::Done,
                    Some(Waiter::CallAppears(spy)),
                ))
            }
            SwitchCommand::ListenEnd { call, supervisor } => {
                let (id, name) = model.spy(&call, &supervisor).ok_or_else(|| {
                    SwitchError::InvalidState(format!("{supervisor} is not listening to {call}"))
                })?;
                Ok(hang_up(id, name))
            }
            SwitchCommand::SetCallData { call, key, value } => {
                let name = model
                    .root_channel(&call)
                    .ok_or_else(|| SwitchError::UnknownCall(call.clone()))?
                    .to_owned();
                let variable = if key.eq_ignore_ascii_case(SAP_CAD_ATTRIBUTE) {
                    SAP_CAD_VARIABLE.to_owned()
                } else {
                    check_variable(&key)?;
                    key
                };
                // Inherited (`__`): every channel the call creates later (transfer,
                // consultation) carries it too.
                let action = Action::new("Setvar")
                    .with("Channel", name)
                    .with("Variable", format!("__{variable}"))
                    .with("Value", value);
                Ok((vec![step(action)], SwitchReply::Done, None))
            }
        }
    }
}

/// Hold and retrieve of a call in a consultation (`Atxfer`): Asterisk's attended transfer
/// holds the first call itself and completes the transfer when the agent's channel leaves
/// the consultation, so server-side hold cannot be used there.
fn refuse_on_consult(model: &Model, call: &str, extension: &str) -> Result<(), SwitchError> {
    let consulting = model.consult(call).is_some()
        || model
            .channel_of(call, extension)
            .is_some_and(|(id, _)| model.consult_by_transferer(id).is_some());
    if consulting {
        return Err(SwitchError::InvalidState(format!(
            "{call} is part of a consultation at {extension}: Asterisk holds the first call \
             itself; drop the consultation call (reconnect) or transfer"
        )));
    }
    Ok(())
}

/// The PJSIP endpoint of a channel name (`PJSIP/2001-0000001a` → `2001`).
fn endpoint(channel: &str) -> Option<String> {
    let rest = channel.strip_prefix("PJSIP/")?;
    let (endpoint, _) = rest.rsplit_once('-')?;
    (!endpoint.is_empty()).then(|| endpoint.to_owned())
}

/// A channel variable name SAP may set: letters, digits and `_`, not starting with `_`
/// (inheritance is the adapter's choice).
fn check_variable(name: &str) -> Result<(), SwitchError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SwitchError::Rejected(format!(
            "{name:?} is not a channel variable name"
        )))
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
            after: None,
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
