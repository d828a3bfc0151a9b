//! The adapter's task: one AMI connection at a time, commands turned into actions, events
//! into [`SwitchEvent`]s, reconnect with backoff and a resync after every login.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::codec::{Action, Decoder, Frame, Message};
use super::model::{CTI_REF_VARIABLE, Model, ORIGINATE_PREFIX};
use super::{COMMAND_WAIT, CONFERENCE_CONTEXT, CONNECT_TIMEOUT, DIAL_CONTEXT};
use crate::config::AsteriskConfig;
use crate::switch::{
    AgentState, EventSink, SwitchCommand, SwitchError, SwitchEvent, SwitchReply, SwitchRequest,
};

type Reply = oneshot::Sender<Result<SwitchReply, SwitchError>>;

/// What must have happened before a command is answered, so its events come first.
#[derive(Debug)]
enum Waiter {
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
struct Step {
    action: Action,
    /// An error response does not fail the command (`QueueAdd` of a member that is
    /// already there, `QueueRemove` of one that is not).
    tolerate: bool,
    /// How often an error response is retried (after [`RETRY_PAUSE`]) before it fails the
    /// command: a transfer asked for right after the phone answered can find the channel
    /// not yet bridged ("Transfer invalid") for a few milliseconds.
    retries: u8,
}

/// The pause before a failed step is sent again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

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
}

/// Why a connection ended.
enum End {
    /// The session manager is gone: stop for good.
    Stop,
    /// The link failed: reconnect.
    Lost(String),
}

pub async fn run(config: AsteriskConfig, mut rx: mpsc::Receiver<SwitchRequest>, events: EventSink) {
    let mut model = Model::new(&config.interface_pattern, config.queues.clone());
    let hosts: Vec<String> = std::iter::once(config.host.clone())
        .chain(config.backup_host.clone())
        .collect();
    let mut attempt: usize = 0;
    let mut wait = config.reconnect_min;
    let mut originated: u64 = 0;
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    loop {
        let host = &hosts[attempt % hosts.len()];
        attempt += 1;
        let connected = while_down(&mut rx, connect(host, &config)).await;
        let (reader, writer, decoder) = match connected {
            None => return,
            Some(Ok(conn)) => conn,
            Some(Err(why)) => {
                warn!(host = %host, port = config.port, %why, "AMI connect failed");
                if while_down(&mut rx, tokio::time::sleep(wait))
                    .await
                    .is_none()
                {
                    return;
                }
                wait = (wait * 2).min(config.reconnect_max);
                continue;
            }
        };
        info!(host = %host, port = config.port, "AMI logged in");
        wait = config.reconnect_min;
        let mut link = Link {
            reader,
            writer,
            decoder,
            next_id: 0,
            jobs: Vec::new(),
            config: &config,
            originated: &mut originated,
            epoch,
        };
        let end = link.serve(&mut rx, &mut model, &events).await;
        for job in link.jobs.drain(..) {
            let _ = job
                .reply
                .send(Err(SwitchError::Unavailable("AMI connection lost".into())));
        }
        match end {
            End::Stop => return,
            End::Lost(reason) => {
                warn!(host = %host, %reason, "AMI connection lost");
                if !events.send(SwitchEvent::LinkDown { reason }).await {
                    return;
                }
            }
        }
        // Same host once more first, quickly: a restarted Asterisk is back in a second.
        attempt -= 1;
        if while_down(&mut rx, tokio::time::sleep(wait))
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Runs `fut` while answering every command with `Unavailable`; `None` once the session
/// manager is gone.
async fn while_down<F: Future>(
    rx: &mut mpsc::Receiver<SwitchRequest>,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            request = rx.recv() => match request {
                Some(request) => {
                    let _ = request.reply.send(Err(SwitchError::Unavailable(
                        "no connection to Asterisk (AMI)".into(),
                    )));
                }
                None => return None,
            },
        }
    }
}

async fn connect(
    host: &str,
    config: &AsteriskConfig,
) -> Result<(OwnedReadHalf, OwnedWriteHalf, Decoder), String> {
    let login = async {
        let stream = TcpStream::connect((host, config.port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut decoder = Decoder::new();
        let action = Action::new("Login")
            .with("Username", config.username.clone())
            .with("Secret", config.secret.expose().to_owned())
            .with("Events", "on");
        writer
            .write_all(action.encode("login").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let message = read_message(&mut reader, &mut decoder).await?;
            if message.is_response() && message.get("ActionID") == Some("login") {
                return if message.get("Response") == Some("Success") {
                    Ok((reader, writer, decoder))
                } else {
                    Err(format!(
                        "login refused: {}",
                        message.get("Message").unwrap_or("no reason")
                    ))
                };
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, login)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// The next message (banners skipped).
async fn read_message(
    reader: &mut OwnedReadHalf,
    decoder: &mut Decoder,
) -> Result<Message, String> {
    loop {
        match decoder.next_frame() {
            Ok(Some(Frame::Message(m))) => return Ok(m),
            Ok(Some(Frame::Banner(banner))) => {
                debug!(%banner, "AMI banner");
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_owned()),
        }
        let mut buf = [0u8; 8192];
        let n = reader.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed by Asterisk".into());
        }
        decoder.feed(&buf[..n]);
    }
}

struct Link<'a> {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    decoder: Decoder,
    next_id: u64,
    jobs: Vec<Job>,
    config: &'a AsteriskConfig,
    originated: &'a mut u64,
    epoch: u64,
}

impl Link<'_> {
    async fn send(&mut self, action: &Action) -> Result<String, End> {
        self.next_id += 1;
        let id = format!("ici-{}", self.next_id);
        debug!(%action, action_id = %id, "AMI action");
        self.writer
            .write_all(action.encode(&id).as_bytes())
            .await
            .map_err(|e| End::Lost(e.to_string()))?;
        Ok(id)
    }

    async fn serve(
        &mut self,
        rx: &mut mpsc::Receiver<SwitchRequest>,
        model: &mut Model,
        events: &EventSink,
    ) -> End {
        match self.resync(model, events).await {
            Ok(()) => {}
            Err(end) => return end,
        }
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                request = rx.recv() => {
                    let Some(request) = request else { return End::Stop };
                    if let Err(end) = self.command(request, model).await {
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
        if message.event().is_none() {
            if message.is_response() {
                self.on_response(&message, model).await?;
            }
            return Ok(());
        }
        if message.event() == Some("OriginateResponse") {
            self.on_originate_response(&message, model);
        }
        for event in model.apply(&message) {
            debug!(?event, "switch event");
            if !events.send(event).await {
                return Err(End::Stop);
            }
        }
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
            if let Some(Waiter::Consult { held, .. }) = &job.waiter {
                model.consult_failed(held);
            }
            let why = message.get("Message").unwrap_or("error").to_owned();
            let _ = job.reply.send(Err(SwitchError::Rejected(why)));
            return Ok(());
        }
        self.jobs[pos].current = None;
        if let Some(next) = self.jobs[pos].steps.front() {
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
                    Some(Waiter::Left(id)) => model.left(id),
                    Some(Waiter::CallAppears(call)) => model.has_call(call),
                    Some(Waiter::Agent(ext, state)) => model.agent_state(ext) == Some(state),
                    Some(Waiter::Consult { transferer, .. }) => {
                        match model.consult_by_transferer(transferer) {
                            Some((id, _)) => {
                                done = SwitchReply::NewCall(id.to_owned());
                                true
                            }
                            None => false,
                        }
                    }
                    Some(Waiter::ConsultGone(call)) => !model.has_consult(call),
                    Some(Waiter::Conferenced(id)) => {
                        model.conferenced(id) || !model.has_channel(id)
                    }
                };
            if ready {
                let job = self.jobs.remove(i);
                let _ = job.reply.send(Ok(done));
            } else {
                i += 1;
            }
        }
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
        let mut i = 0;
        while i < self.jobs.len() {
            if self.jobs[i].deadline.is_some_and(|d| d <= now) {
                let job = self.jobs.remove(i);
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

    async fn command(&mut self, request: SwitchRequest, model: &mut Model) -> Result<(), End> {
        let SwitchRequest { command, reply } = request;
        let plan = match self.plan(command, model) {
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
        };
        if let Some(first) = job.steps.front() {
            let action = first.action.clone();
            job.current = Some(self.send(&action).await?);
        }
        self.jobs.push(job);
        self.settle(model);
        Ok(())
    }

    /// The AMI actions for a command, what it answers and what to wait for.
    #[allow(clippy::type_complexity)]
    fn plan(
        &mut self,
        command: SwitchCommand,
        model: &mut Model,
    ) -> Result<(Vec<Step>, SwitchReply, Option<Waiter>), SwitchError> {
        let step = |action: Action| Step {
            action,
            tolerate: false,
            retries: 0,
        };
        // Transfers right after an answer can meet a channel not bridged yet: retried.
        let transfer_step = |action: Action| Step {
            action,
            tolerate: false,
            retries: 5,
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
#[allow(clippy::type_complexity)]
fn hang_up(id: String, name: String) -> (Vec<Step>, SwitchReply, Option<Waiter>) {
    let action = Action::new("Hangup")
        .with("Channel", name)
        .with("Cause", "16");
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
