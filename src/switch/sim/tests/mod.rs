//! The simulator driven as the session manager drives it (`SwitchAdapter::submit`) and as
//! the outside world does (`SimControl`), with a real event channel. Because of the ordering
//! contract every event of an action is in the channel when its answer arrives, so the tests
//! read events with `try_recv` after each answer, and never sleep.
//!
//! This module holds the harness; the scenarios are grouped by topic in its children.

mod acd;
mod adapter;
mod calls;
mod control_http;
mod outside;
mod transfers;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::switch::{Direction, LegEvent, LegState, SwitchCommand as C, SwitchEvent, SwitchReply};

/// Room in the harness's event channel: more than any scenario emits, so the simulator
/// never waits for a test that reads events only after each answer.
const EVENT_ROOM: usize = 1000;

struct Harness {
    switch: SimSwitch,
    control: SimControl,
    events: mpsc::Receiver<SwitchEvent>,
}

fn settings() -> SimSettings {
    SimSettings {
        extensions: ["100", "101", "102", "200"].map(String::from).to_vec(),
        queues: vec![
            SimQueue {
                name: "sales".into(),
                number: "5000".into(),
                members: vec![],
                wrap_up: None,
            },
            SimQueue {
                name: "vip".into(),
                number: "5001".into(),
                members: vec!["102".into()],
                wrap_up: None,
            },
        ],
        remote_answer_after: None,
    }
}

fn harness(settings: SimSettings) -> Harness {
    let (tx, events) = mpsc::channel(EVENT_ROOM);
    let (switch, control) = start(settings, EventSink::new(tx));
    Harness {
        switch,
        control,
        events,
    }
}

/// One line per event, so a scenario reads as a list.
fn short(event: &SwitchEvent) -> String {
    match event {
        SwitchEvent::Leg(leg) => match &leg.cause {
            Some(cause) => format!(
                "{}@{} {}({cause})",
                leg.call,
                leg.extension,
                leg.state.as_str()
            ),
            None => format!("{}@{} {}", leg.call, leg.extension, leg.state.as_str()),
        },
        SwitchEvent::Agent { extension, state } => format!("agent {extension} {state:?}"),
        other => format!("{other:?}"),
    }
}

impl Harness {
    async fn cmd(&self, command: C) -> Result<SwitchReply, SwitchError> {
        let (reply, rx) = oneshot::channel();
        self.switch.submit(SwitchRequest { command, reply });
        rx.await.expect("the simulator answers")
    }

    /// A command that creates a call: its id.
    async fn new_call(&self, command: C) -> String {
        match self.cmd(command).await {
            Ok(SwitchReply::NewCall(id)) => id,
            other => panic!("expected a new call, got {other:?}"),
        }
    }

    async fn ok(&self, command: C) {
        let reply = self.cmd(command.clone()).await;
        assert_eq!(reply, Ok(SwitchReply::Done), "{command:?}");
    }

    /// Events already sent (all of them, by the ordering contract).
    fn drain(&mut self) -> Vec<SwitchEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }

    fn drain_short(&mut self) -> Vec<String> {
        self.drain().iter().map(short).collect()
    }

    fn legs(&mut self) -> Vec<LegEvent> {
        self.drain()
            .into_iter()
            .filter_map(|e| match e {
                SwitchEvent::Leg(leg) => Some(Arc::unwrap_or_clone(leg)),
                _ => None,
            })
            .collect()
    }

    async fn state(&mut self, ext: &str, state: AgentState) {
        self.ok(C::SetAgentState {
            extension: ext.into(),
            state,
            queues: vec![],
        })
        .await;
    }

    async fn inbound(&self, from: &str, to: Option<&str>, queue: Option<&str>) -> String {
        self.control
            .create_call(CreateCall {
                from: from.into(),
                to: to.map(String::from),
                queue: queue.map(String::from),
                ..CreateCall::default()
            })
            .await
            .expect("call created")
    }

    /// An answered inbound call from `from` at `ext`.
    async fn talking(&mut self, from: &str, ext: &str) -> String {
        let id = self.inbound(from, Some(ext), None).await;
        self.ok(C::Answer {
            call: id.clone(),
            extension: ext.into(),
        })
        .await;
        self.drain();
        id
    }
}
