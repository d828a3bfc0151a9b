//! One live AMI connection: commands in, AMI responses and events in, [`SwitchEvent`]s out,
//! and the jobs that answer each command once its actions are done and its effect is seen.
//!
//! Separate from the connection's life (`actor.rs`) and from the command plans (`plan.rs`):
//! this is the part that keeps the ordering contract, whatever the commands are.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info};

use super::plan::{NORMAL_CLEARING, Planner, RETRY_PAUSE, Step, Waiter};
use super::{End, read_message};
use crate::config::AsteriskConfig;
use crate::switch::asterisk::COMMAND_WAIT;
use crate::switch::asterisk::codec::{Action, Decoder, Frame, Message};
use crate::switch::asterisk::model::{Model, SAP_CAD_VARIABLE};
use crate::switch::asterisk::queues::{self, Queries};
use crate::switch::{
    EventSink, SwitchCommand, SwitchError, SwitchEvent, SwitchReply, SwitchRequest,
};

/// How often the link checks command deadlines ([`COMMAND_WAIT`]), retry pauses
/// ([`RETRY_PAUSE`]) and the end of agents' wrap-up: the resolution of all three.
const JOB_TICK: Duration = Duration::from_millis(100);
/// Bytes one socket read takes while serving. Any size is correct (the decoder joins
/// frames across reads); a busy PBX sends events in bursts, so a read takes a burst.
const READ_BYTES: usize = 16 * 1024;
/// Prefix of the `ActionID`s the link gives its actions, to match responses to jobs.
const ACTION_ID_PREFIX: &str = "ici-";

type Reply = oneshot::Sender<Result<SwitchReply, SwitchError>>;

#[derive(Debug)]
struct Job {
    reply: Reply,
    steps: VecDeque<Step>,
    current: Option<String>,
    done: SwitchReply,
    waiter: Option<Waiter>,
    deadline: Option<Instant>,
    /// When the current step, refused by Asterisk, is sent again.
    retry_at: Option<Instant>,
    /// The next step waits for its `after` condition (see [`Link::release`]).
    gated: bool,
}

/// One logged-in AMI connection and the commands in progress on it.
pub(super) struct Link<'a> {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    decoder: Decoder,
    next_id: u64,
    jobs: Vec<Job>,
    /// getPresenceQueueInfo's `QueueStatus` queries in progress.
    queries: Queries,
    config: &'a AsteriskConfig,
    /// Calls originated so far, across connections: numbers the originated channels.
    originated: &'a mut u64,
    /// When the adapter started (seconds since 1970): keeps originated ids unique across
    /// restarts of the connector.
    epoch: u64,
}

impl<'a> Link<'a> {
    pub(super) fn new(
        reader: OwnedReadHalf,
        writer: OwnedWriteHalf,
        decoder: Decoder,
        config: &'a AsteriskConfig,
        originated: &'a mut u64,
        epoch: u64,
    ) -> Link<'a> {
        Link {
            reader,
            writer,
            decoder,
            next_id: 0,
            jobs: Vec::new(),
            queries: Queries::default(),
            config,
            originated,
            epoch,
        }
    }

    /// Answers every command still in progress: the connection is gone.
    pub(super) fn abandon_jobs(&mut self) {
        self.queries.abandon();
        for job in self.jobs.drain(..) {
            let _ = job
                .reply
                .send(Err(SwitchError::Unavailable("AMI connection lost".into())));
        }
    }
    async fn send(&mut self, action: &Action) -> Result<String, End> {
        self.next_id += 1;
        let id = format!("{ACTION_ID_PREFIX}{}", self.next_id);
        debug!(%action, action_id = %id, "AMI action");
        self.writer
            .write_all(action.encode(&id).as_bytes())
            .await
            .map_err(|e| End::Lost(e.to_string()))?;
        Ok(id)
    }

    pub(super) async fn serve(
        &mut self,
        rx: &mut mpsc::Receiver<SwitchRequest>,
        model: &mut Model,
        events: &EventSink,
    ) -> End {
        match self.resync(model, events).await {
            Ok(()) => {}
            Err(end) => return end,
        }
        let mut tick = tokio::time::interval(JOB_TICK);
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            tokio::select! {
                request = rx.recv() => {
                    let Some(request) = request else { return End::Stop };
                    if let Err(end) = self.command(request, model, events).await {
                        return end;
                    }
                }
                read = self.reader.read(&mut buf) => {
                    match read {
                        Ok(0) => return End::Lost("connection closed by Asterisk".into()),
                        Err(e) => return End::Lost(e.to_string()),
                        Ok(n) => self.decoder.feed(&buf[..n]),
                    }
                    loop {
                        let frame = match self.decoder.next_frame() {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(e) => return End::Lost(e.to_owned()),
                        };
                        let Frame::Message(message) = frame else { continue };
                        if let Err(end) = self.on_message(message, model, events).await {
                            return end;
                        }
                    }
                }
                _ = tick.tick() => {
                    for extension in model.due_wrap_ups(Instant::now()) {
                        let end = SwitchEvent::WrapUp { extension, active: false };
                        if !events.send(end).await {
                            return End::Stop;
                        }
                    }
                    self.expire(model);
                    if let Err(end) = self.retry_due().await {
                        return end;
                    }
                }
            }
        }
    }

    /// Rebuilds the model from `CoreShowChannels` and `QueueStatus`, then reports `LinkUp`
    /// with every live agent leg and the agents' states.
    async fn resync(&mut self, model: &mut Model, events: &EventSink) -> Result<(), End> {
        model.begin_resync();
        self.send(&Action::new("CoreShowChannels")).await?;
        self.send(&Action::new("QueueStatus")).await?;
        let (mut channels_done, mut queues_done) = (false, false);
        while !(channels_done && queues_done) {
            let message = read_message(&mut self.reader, &mut self.decoder)
                .await
                .map_err(End::Lost)?;
            match message.event() {
                Some("CoreShowChannelsComplete") => channels_done = true,
                Some("QueueStatusComplete") => queues_done = true,
                // Changes during the resync only update the model: the snapshot at the end
                // carries them.
                Some(_) => {
                    model.apply(&message);
                }
                None => {
                    if message.get("Response") == Some("Error") {
                        return Err(End::Lost(format!(
                            "resync refused: {}",
                            message.get("Message").unwrap_or("")
                        )));
                    }
                }
            }
        }
        let (calls, agents) = model.finish_resync();
        info!(legs = calls.len(), "AMI resync done");
        if !events.send(SwitchEvent::LinkUp { calls }).await {
            return Err(End::Stop);
        }
        for event in agents {
            if !events.send(event).await {
                return Err(End::Stop);
            }
        }
        Ok(())
    }

    async fn on_message(
        &mut self,
        message: Message,
        model: &mut Model,
        events: &EventSink,
    ) -> Result<(), End> {
        if self.queries.take(&message) {
            return Ok(());
        }
        if message.event().is_none() {
            if message.is_response() {
                self.on_response(&message, model).await?;
            }
            return Ok(());
        }
        if message.event() == Some("OriginateResponse") {
            self.on_originate_response(&message, model);
        }
        if message.event() == Some("VarSet")
            && message.get("Variable").is_some_and(|v| {
                v.trim_start_matches('_')
                    .eq_ignore_ascii_case(SAP_CAD_VARIABLE)
            })
        {
            // Its length only: the value is the customer's data.
            debug!(
                call = message.get("Linkedid").unwrap_or("-"),
                bytes = message.get("Value").map_or(0, str::len),
                "call data from the PBX"
            );
        }
        for event in model.apply(&message) {
            match &event {
                // Another state during wrap-up ends it; SAP sees that state.
                SwitchEvent::Agent { extension, .. } => {
                    model.end_wrap_up(extension);
                }
                SwitchEvent::WrapUp {
                    extension,
                    active: true,
                } => {
                    let time = self.config.wrap_up.unwrap_or_default();
                    model.wrap_up_until(extension, Instant::now() + time);
                }
                _ => {}
            }
            debug!(%event, "switch event");
            if !events.send(event).await {
                return Err(End::Stop);
            }
        }
        for orphan in model.take_orphans() {
            // Its party hung up during a server-side hold: nobody to come back to.
            let hangup = Action::new("Hangup")
                .with("Channel", orphan)
                .with("Cause", NORMAL_CLEARING);
            self.send(&hangup).await?;
        }
        self.release(model).await?;
        self.settle(model);
        Ok(())
    }

    async fn on_response(&mut self, message: &Message, model: &mut Model) -> Result<(), End> {
        let Some(id) = message.get("ActionID") else {
            return Ok(());
        };
        let Some(pos) = self
            .jobs
            .iter()
            .position(|j| j.current.as_deref() == Some(id))
        else {
            return Ok(());
        };
        let failed = message.get("Response") == Some("Error");
        let (tolerate, retries) = self.jobs[pos]
            .steps
            .front()
            .map(|s| (s.tolerate, s.retries))
            .unwrap_or((false, 0));
        if failed && !tolerate && retries > 0 {
            let job = &mut self.jobs[pos];
            if let Some(step) = job.steps.front_mut() {
                step.retries -= 1;
            }
            debug!(
                why = message.get("Message").unwrap_or("error"),
                "AMI action refused; trying again"
            );
            job.current = None;
            job.retry_at = Some(Instant::now() + RETRY_PAUSE);
            return Ok(());
        }
        self.jobs[pos].steps.pop_front();
        if failed && !tolerate {
            let job = self.jobs.remove(pos);
            match &job.waiter {
                Some(Waiter::Consult { held, .. }) => model.consult_failed(held),
                Some(Waiter::Parked(id)) => model.park_failed(id),
                _ => {}
            }
            let why = message.get("Message").unwrap_or("error").to_owned();
            let _ = job.reply.send(Err(SwitchError::Rejected(why)));
            return Ok(());
        }
        self.jobs[pos].current = None;
        if let Some(next) = self.jobs[pos].steps.front() {
            if next.after.as_ref().is_some_and(|w| !reached(w, model)) {
                // Held back until Asterisk has shown the previous step's effect.
                self.jobs[pos].gated = true;
                self.jobs[pos].deadline = Some(Instant::now() + COMMAND_WAIT);
                return Ok(());
            }
            let action = next.action.clone();
            let id = self.send(&action).await?;
            self.jobs[pos].current = Some(id);
        } else {
            self.jobs[pos].deadline = Some(Instant::now() + COMMAND_WAIT);
        }
        Ok(())
    }

    fn on_originate_response(&mut self, message: &Message, model: &Model) {
        if message.get("Response") != Some("Failure") {
            return;
        }
        let Some(call) = message.value("Uniqueid") else {
            return;
        };
        if let Some(pos) = self.jobs.iter().position(|j| {
            matches!(&j.waiter, Some(Waiter::CallAppears(c)) if c == call) && !model.has_call(call)
        }) {
            let job = self.jobs.remove(pos);
            let _ = job.reply.send(Err(SwitchError::Rejected(format!(
                "the call could not be placed (reason {})",
                message.get("Reason").unwrap_or("?")
            ))));
        }
    }

    /// Answers the jobs whose actions are all done and whose waited-for event happened.
    fn settle(&mut self, model: &Model) {
        let mut i = 0;
        while i < self.jobs.len() {
            let job = &self.jobs[i];
            let mut done = job.done.clone();
            let ready = job.steps.is_empty()
                && match &job.waiter {
                    None => true,
                    Some(Waiter::Consult { transferer, .. }) => {
                        match model.consult_by_transferer(transferer) {
                            Some((id, _)) => {
                                done = SwitchReply::NewCall(id.to_owned());
                                true
                            }
                            None => false,
                        }
                    }
                    Some(waiter) => reached(waiter, model),
                };
            if ready {
                let job = self.jobs.remove(i);
                let _ = job.reply.send(Ok(done));
            } else {
                i += 1;
            }
        }
    }

    /// Sends the held-back steps whose condition (`Step::after`) is now met.
    async fn release(&mut self, model: &Model) -> Result<(), End> {
        for i in 0..self.jobs.len() {
            let job = &self.jobs[i];
            if !job.gated {
                continue;
            }
            let Some(step) = job.steps.front() else {
                continue;
            };
            if step.after.as_ref().is_some_and(|w| !reached(w, model)) {
                continue;
            }
            let action = step.action.clone();
            let id = self.send(&action).await?;
            let job = &mut self.jobs[i];
            job.gated = false;
            job.deadline = None;
            job.current = Some(id);
        }
        Ok(())
    }

    /// Sends again the refused steps whose pause is over.
    async fn retry_due(&mut self) -> Result<(), End> {
        let now = Instant::now();
        for i in 0..self.jobs.len() {
            if self.jobs[i].retry_at.is_some_and(|at| at <= now) {
                self.jobs[i].retry_at = None;
                if let Some(step) = self.jobs[i].steps.front() {
                    let action = step.action.clone();
                    let id = self.send(&action).await?;
                    self.jobs[i].current = Some(id);
                }
            }
        }
        Ok(())
    }

    /// A command Asterisk accepted whose event did not come in time is answered anyway:
    /// the events follow when they come.
    fn expire(&mut self, model: &mut Model) {
        let now = Instant::now();
        self.queries.expire(now);
        let mut i = 0;
        while i < self.jobs.len() {
            if self.jobs[i].deadline.is_some_and(|d| d <= now) {
                let job = self.jobs.remove(i);
                if job.gated {
                    // The rest of its actions were never sent.
                    let _ = job.reply.send(Err(SwitchError::Rejected(
                        "Asterisk did not carry out the command's first action in time".into(),
                    )));
                    continue;
                }
                if let Some(Waiter::Consult { held, .. }) = &job.waiter {
                    // Without its channel there is no call id to answer with.
                    model.consult_failed(held);
                    let _ = job.reply.send(Err(SwitchError::Rejected(
                        "Asterisk did not start the consultation call".into(),
                    )));
                    continue;
                }
                debug!(waiter = ?job.waiter, "answering a command without its event");
                let _ = job.reply.send(Ok(job.done));
            } else {
                i += 1;
            }
        }
    }

    async fn command(
        &mut self,
        request: SwitchRequest,
        model: &mut Model,
        events: &EventSink,
    ) -> Result<(), End> {
        let SwitchRequest { command, reply } = request;
        if command == SwitchCommand::QueueStatus {
            let id = self.send(&queues::action()).await?;
            self.queries.start(id, self.config, reply);
            return Ok(());
        }
        if let SwitchCommand::SetAgentState {
            extension, state, ..
        } = &command
            && model.end_wrap_up(extension)
            && model.agent_state(extension) == Some(state)
        {
            // The state the agent had under its wrap-up: no member change will show, so
            // the end of the wrap-up is the event (a new state ends it by itself).
            let end = SwitchEvent::WrapUp {
                extension: extension.clone(),
                active: false,
            };
            if !events.send(end).await {
                return Err(End::Stop);
            }
        }
        let mut planner = Planner {
            config: self.config,
            originated: &mut *self.originated,
            epoch: self.epoch,
        };
        let plan = match planner.plan(command, model) {
            Ok(plan) => plan,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        let (steps, done, waiter) = plan;
        let mut job = Job {
            reply,
            steps: steps.into(),
            current: None,
            done,
            waiter,
            deadline: None,
            retry_at: None,
            gated: false,
        };
        if let Some(first) = job.steps.front() {
            let action = first.action.clone();
            job.current = Some(self.send(&action).await?);
        }
        self.jobs.push(job);
        self.settle(model);
        Ok(())
    }
}

/// Whether what `waiter` waits for has happened (a consultation's start is checked where
/// its call id is needed, in [`Link::settle`]).
fn reached(waiter: &Waiter, model: &Model) -> bool {
    match waiter {
        Waiter::Left(id) => model.left(id),
        Waiter::CallAppears(call) => model.has_call(call),
        Waiter::Agent(ext, state) => model.agent_state(ext) == Some(state),
        Waiter::Consult { transferer, .. } => model.consult_by_transferer(transferer).is_some(),
        Waiter::ConsultGone(call) => !model.has_consult(call),
        Waiter::Conferenced(id) => model.conferenced(id) || !model.has_channel(id),
        Waiter::Parked(id) => model.held(id),
        Waiter::Retrieved(id) => !model.has_channel(id) || !model.held(id),
        Waiter::Answered(id) => model.answered(id),
    }
}
