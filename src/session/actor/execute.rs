//! Running an operation: the one exhaustive dispatch to the handlers per ICI interface,
//! switch commands sent from a task, and answers held back until what the operation
//! changed is durable.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::domain::UserId;
use crate::notify::{Spool, Ticket};
use crate::switch::{
    Capability, LegEvent, LegState, SwitchCommand, SwitchError, SwitchReply, SwitchRequest,
};

use super::super::{Answer, COMMAND_QUEUE, Command, Operation, SessionError};
use super::Actor;

pub(super) type Reply = oneshot::Sender<Result<Answer, SessionError>>;

impl Actor {
    pub(super) fn execute(&mut self, operation: Operation, hint: Option<UserId>, reply: Reply) {
        let before = self.notifier.spool().last_queued();
        let result = match self.dispatch(operation, hint.as_ref()) {
            Ok(Step::Switch(commands)) => return self.submit(commands, reply),
            Ok(Step::Answer(value)) => Ok(value),
            Err(e) => Err(e),
        };
        self.confirm.answer_after(before, result, reply);
    }

    /// The handler of each operation, by ICI interface.
    fn dispatch(
        &mut self,
        operation: Operation,
        hint: Option<&UserId>,
    ) -> Result<Step, SessionError> {
        use Operation::*;
        match operation {
            // System
            GetWorkcenterCapability => self.workcenter_capability(),
            GetPresenceQueueInfo { channel } => self.presence_queue_info(channel),
            // User and Container
            GetAttributes { user } => self.get_attributes(&user),
            SetCurrentWorkmode {
                user,
                workmode,
                reason,
            } => self.set_workmode(&user, workmode, reason),
            SetCurrentChannels { user, channels } => self.set_channels(&user, channels),
            SetCurrentQueues { user, queues } => self.set_queues(&user, queues),
            SetAddresses { user, addresses } => self.set_addresses(&user, addresses),
            Subscribe {
                target,
                url,
                app_id,
            } => self.subscribe(target, url, app_id),
            Unsubscribe {
                target,
                url,
                app_id,
            } => {
                self.unsubscribe(&target, &url, &app_id);
                done()
            }
            // Item
            Create { .. } => self.create(),
            Accept { item } => self.accept(&item, hint),
            Reroute { item } => self.reroute(&item, hint),
            SetAttachedData { item, data } => self.set_attached_data(&item, data, hint),
            GetAttachedData { item } => self.get_attached_data(&item, hint),
            DeleteAttachedData { item, applications } => {
                self.delete_attached_data(&item, applications, hint)
            }
            // Line
            GetCalls { container } => self.get_calls(&container, hint),
            DropCalls { container } => self.drop_calls(&container, hint),
            // PhoneCall
            Dial {
                container,
                user,
                address,
                item,
            } => self.dial(container, user, &address, item, hint),
            Hold { call } => self.hold(&call, hint),
            Unhold { call } => self.unhold(&call, hint),
            Drop { call } => self.drop_call(&call, hint),
            Transfer { call, address } => self.transfer(&call, address.as_deref(), hint),
            Consult { call, address } => self.consult(&call, &address, hint),
            Conference { call, consult } => self.conference(&call, &consult, hint),
            Alternate { call, consult } => self.alternate(&call, &consult, hint),
            Reconnect { call, consult } => self.reconnect(&call, &consult, hint),
            DropParty { call, address } => self.drop_party(&call, &address, hint),
            Listen { call, user } => self.listen(&call, &user, true),
            ListenEnd { call, user } => self.listen(&call, &user, false),
            GetPhoneCallAttributes { call } => self.get_phone_call_attributes(&call, hint),
        }
    }

    /// Sends commands to the switch one after another (stopping at the first failure) and
    /// answers the SOAP caller from a task once the events they caused are on disk, so the
    /// actor never waits for the switch or the spool.
    fn submit(&self, commands: Vec<SwitchCommand>, reply: Reply) {
        let switch = Arc::clone(&self.switch);
        let myself = self.myself.clone();
        let confirm = self.confirm.clone();
        tokio::spawn(async move {
            let mut result = Ok(Answer::Done);
            for command in commands {
                let (tx, rx) = oneshot::channel();
                switch.submit(SwitchRequest { command, reply: tx });
                result = match rx.await {
                    Ok(Ok(SwitchReply::Done)) => Ok(Answer::Done),
                    Ok(Ok(SwitchReply::NewCall(call))) => Ok(Answer::Id(call)),
                    Ok(Err(e)) => Err(SessionError::Switch(e)),
                    Err(_) => Err(SessionError::Switch(SwitchError::Unavailable(
                        "switch adapter stopped".into(),
                    ))),
                };
                if let Err(SessionError::Switch(SwitchError::UnknownCall(call))) = &result {
                    // Our view had a call the switch no longer knows: a ghost. End it.
                    if let Some(myself) = myself.upgrade() {
                        let _ = myself.send(Command::Reap { call: call.clone() }).await;
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            confirm.switch_events_durable().await;
            let _ = reply.send(result);
        });
    }

    pub(super) fn require(&self, capability: Capability) -> Result<(), SessionError> {
        if self.switch.capabilities().contains(&capability) {
            Ok(())
        } else {
            Err(SessionError::NotSupported {
                capability,
                switch: self.switch.name(),
            })
        }
    }

    /// The common shape of call operations: capability, the agent's leg, its state, one
    /// command.
    pub(super) fn on_leg_in(
        &self,
        call: &str,
        hint: Option<&UserId>,
        capability: Capability,
        states: &[LegState],
        command: impl FnOnce(&LegEvent) -> SwitchCommand,
    ) -> Result<Step, SessionError> {
        self.require(capability)?;
        let (_, leg) = self.find_leg_in(call, hint, states)?;
        if !states.is_empty() {
            expect_state(&leg, states)?;
        }
        Ok(Step::Switch(vec![command(&leg)]))
    }
}

/// Holds a SOAP answer back until what the operation changed is on disk, so an operation
/// SAP saw succeed never loses its events to a crash. Never makes the actor wait: the
/// waiting happens in the task that answers.
#[derive(Clone)]
pub(super) struct Confirm {
    /// Asks the actor for the spool ticket of everything it has queued so far.
    barriers: mpsc::Sender<oneshot::Sender<Ticket>>,
    /// The actor's spool handle (its ticket mark counts the actor's changes only).
    spool: Spool,
}

impl Confirm {
    /// A confirmer on the actor's spool handle, and the actor's end of the barrier
    /// requests it sends.
    pub(super) fn new(spool: Spool) -> (Confirm, mpsc::Receiver<oneshot::Sender<Ticket>>) {
        let (barriers, requests) = mpsc::channel(COMMAND_QUEUE);
        (Confirm { barriers, spool }, requests)
    }

    /// Answers an operation the actor ran itself: at once if it queued nothing for the
    /// spool (reads) or that is committed already, else from a task once it is.
    fn answer_after(&self, before: Ticket, result: Result<Answer, SessionError>, reply: Reply) {
        let ticket = self.spool.last_queued();
        if ticket == before || self.spool.is_committed(ticket) {
            let _ = reply.send(result);
            return;
        }
        let spool = self.spool.clone();
        tokio::spawn(async move {
            spool.committed(ticket).await;
            let _ = reply.send(result);
        });
    }

    /// After the switch answered a command: the adapters report a command's events before
    /// they answer it, so once the actor has taken those (its loop takes switch events
    /// before barrier requests) and the spool has committed what it queued, the events are
    /// durable.
    async fn switch_events_durable(&self) {
        if !self.spool.is_durable() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if self.barriers.send(tx).await.is_err() {
            return;
        }
        if let Ok(ticket) = rx.await {
            self.spool.committed(ticket).await;
        }
    }
}

/// What an operation leads to.
pub(super) enum Step {
    /// Answer now.
    Answer(Answer),
    /// Send these commands to the switch; answer with the last one's result.
    Switch(Vec<SwitchCommand>),
}

pub(super) fn answer(answer: Answer) -> Result<Step, SessionError> {
    Ok(Step::Answer(answer))
}

pub(super) fn done() -> Result<Step, SessionError> {
    Ok(Step::Answer(Answer::Done))
}

pub(super) fn invalid_state(leg: &LegEvent) -> SessionError {
    SessionError::InvalidState {
        call: leg.call.clone(),
        state: leg.state.as_str(),
    }
}

pub(super) fn expect_state(leg: &LegEvent, states: &[LegState]) -> Result<(), SessionError> {
    if states.contains(&leg.state) {
        Ok(())
    } else {
        Err(invalid_state(leg))
    }
}
