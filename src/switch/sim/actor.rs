//! The simulator's actor: the loop that feeds the model one message or due timer at a time,
//! and sends the events each one caused before its answer (the ordering contract).
//!
//! Separate from the model so that the only `async` code of the simulator, and the only
//! code that knows about channels and time, is in one place: every handler elsewhere is a
//! plain function on the model.

use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use super::model::{OpResult, Sim, Timer};
use super::views::call_view;
use super::{ControlRequest, Msg, SimError};
use crate::switch::{EventSink, SwitchError};

/// The actor loop: one message or due timer at a time; events out before each answer.
pub(super) async fn run(mut sim: Sim, mut rx: mpsc::Receiver<Msg>, events: EventSink) {
    loop {
        let deadline = sim.timers.keys().next().map(|(at, _)| *at);
        let msg = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            () = sleep_until(deadline) => {
                sim.fire_timers(Instant::now());
                sim.flush(&events).await;
                continue;
            }
        };
        match msg {
            Msg::Command(request) => {
                let result = sim.command(request.command.clone());
                tracing::debug!(command = %request.command, ?result, "sim command");
                sim.flush(&events).await;
                let _ = request.reply.send(result);
            }
            Msg::Control(control) => sim.control(control, &events).await,
        }
    }
    tracing::debug!("switch simulator stopped");
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Sim {
    /// Carries out a control action, sends its events, then answers it.
    async fn control(&mut self, control: ControlRequest, events: &EventSink) {
        fn map<T>(result: OpResult<T>) -> Result<T, SimError> {
            result.map_err(|e| match e {
                SwitchError::UnknownCall(id) => SimError::UnknownCall(id),
                SwitchError::InvalidState(why) => SimError::InvalidState(why),
                other => SimError::BadRequest(other.to_string()),
            })
        }
        match control {
            ControlRequest::CreateCall(call, reply) => {
                let result = self.create_call(call);
                self.done(result.is_ok());
                self.flush(events).await;
                let _ = reply.send(result);
            }
            ControlRequest::RemoteAnswer(id, reply) => {
                let result = self.find(&id).and_then(|seq| self.remote_answer(seq));
                self.done(result.is_ok());
                self.flush(events).await;
                let _ = reply.send(map(result));
            }
            ControlRequest::RemoteHangup(id, reply) => {
                let result = self.find(&id).and_then(|seq| self.remote_hangup(seq));
                self.done(result.is_ok());
                self.flush(events).await;
                let _ = reply.send(map(result));
            }
            ControlRequest::SetAgentState(ext, state, reply) => {
                self.set_agent_state(&ext, state, &[]);
                self.done(true);
                self.flush(events).await;
                let _ = reply.send(Ok(()));
            }
            ControlRequest::ListCalls(reply) => {
                let _ = reply.send(self.calls.values().map(|c| call_view(c)).collect());
            }
            ControlRequest::ListAgents(reply) => {
                let _ = reply.send(self.agent_views());
            }
        }
    }

    async fn flush(&mut self, events: &EventSink) {
        for event in std::mem::take(&mut self.out) {
            if !events.send(event).await {
                tracing::debug!("switch event dropped: the session manager is gone");
            }
        }
    }

    pub(super) fn schedule(&mut self, after: Duration, timer: Timer) {
        self.next_timer += 1;
        self.timers
            .insert((Instant::now() + after, self.next_timer), timer);
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            // A timer whose call moved on (answered, ended) is simply stale.
            let result = match entry.remove() {
                Timer::RemoteAnswer(seq) if self.calls.contains_key(&seq) => {
                    self.remote_answer(seq)
                }
                Timer::RemoteHangup(seq) if self.calls.contains_key(&seq) => {
                    self.remote_hangup(seq)
                }
                Timer::WrapUpEnd(token) => self.wrap_up_over(token),
                _ => continue,
            };
            if result.is_ok() {
                self.settle();
            }
        }
    }
}
