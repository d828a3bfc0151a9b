//! The simulator driven as the session manager drives it (`SwitchAdapter::submit`) and as
//! the outside world does (`SimControl`), with a real event channel. Because of the ordering
//! contract every event of an action is in the channel when its answer arrives, so the tests
//! read events with `try_recv` after each answer, and never sleep.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::switch::{Direction, LegEvent, LegState, SwitchCommand as C, SwitchEvent, SwitchReply};

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
            },
            SimQueue {
                name: "vip".into(),
                number: "5001".into(),
                members: vec!["102".into()],
            },
        ],
        remote_answer_after: None,
    }
}

fn harness(settings: SimSettings) -> Harness {
    let (tx, events) = mpsc::channel(1000);
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

#[tokio::test]
async fn acd_offers_to_the_longest_idle_ready_agent() {
    let mut h = harness(settings());
    h.state("100", AgentState::Ready).await;
    h.state("101", AgentState::Ready).await;
    assert_eq!(h.drain_short(), ["agent 100 Ready", "agent 101 Ready"]);

    let mut attributes = BTreeMap::new();
    attributes.insert("Sap_Cad".to_owned(), "<ItemAttachedData/>".to_owned());
    let first = h
        .control
        .create_call(CreateCall {
            from: "sip:555@example.com".into(),
            queue: Some("sales".into()),
            attributes,
            ..CreateCall::default()
        })
        .await
        .unwrap();
    let legs = h.legs();
    assert_eq!(legs.len(), 1);
    let leg = &legs[0];
    assert_eq!(
        (leg.call.as_str(), leg.extension.as_str()),
        (first.as_str(), "100")
    );
    assert_eq!(leg.state, LegState::Alerting);
    assert_eq!(leg.direction, Direction::Inbound);
    assert_eq!(leg.queue.as_deref(), Some("sales"));
    assert_eq!(leg.parties, ["sip:555@example.com"]);
    assert_eq!(leg.attributes.get("ani"), Some("sip:555@example.com"));
    assert_eq!(leg.attributes.get("dnis"), Some("5000"));
    assert_eq!(leg.attributes.get("Sap_Cad"), Some("<ItemAttachedData/>"));

    // 100 has an alerting call: the next one goes to 101; the third waits.
    let second = h.inbound("+111", Some("5000"), None).await;
    assert_eq!(h.drain_short(), [format!("{second}@101 alerting")]);
    let third = h.inbound("+222", None, Some("sales")).await;
    assert!(h.drain().is_empty());
    let calls = h.control.list_calls().await;
    assert!(calls.iter().any(|c| c.id == third && c.waiting));

    // Once 100 answered it has no alerting call, so the waiting call is offered to it.
    h.ok(C::Answer {
        call: first.clone(),
        extension: "100".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{first}@100 connected"),
            format!("{third}@100 alerting")
        ]
    );
}

#[tokio::test]
async fn longest_idle_counts_from_the_end_of_the_last_call() {
    let mut h = harness(settings());
    h.state("100", AgentState::Ready).await;
    h.state("101", AgentState::Ready).await;
    let a = h.inbound("+1", None, Some("sales")).await;
    h.ok(C::Answer {
        call: a.clone(),
        extension: "100".into(),
    })
    .await;
    h.ok(C::Clear {
        call: a.clone(),
        extension: "100".into(),
    })
    .await;
    h.drain();
    // 101 has been idle since it became ready; 100 only since its call ended.
    let b = h.inbound("+2", None, Some("sales")).await;
    assert_eq!(h.drain_short(), [format!("{b}@101 alerting")]);
}

#[tokio::test]
async fn queue_membership_and_logged_out_agents() {
    let mut h = harness(settings());
    // 101 is not a member of vip; 102 is.
    h.state("101", AgentState::Ready).await;
    let vip = h.inbound("+1", Some("5001"), None).await;
    h.drain();
    h.state("102", AgentState::NotReady { reason: None }).await;
    assert_eq!(h.drain_short(), ["agent 102 NotReady { reason: None }"]);
    h.state("102", AgentState::Ready).await;
    assert_eq!(
        h.drain_short(),
        ["agent 102 Ready".to_owned(), format!("{vip}@102 alerting")]
    );
    let agents = h.control.list_agents().await;
    let a102 = agents.iter().find(|a| a.extension == "102").unwrap();
    assert_eq!(a102.queues, ["sales", "vip"]);
    assert_eq!(a102.calls, [vip]);

    // Free seating: an unknown extension logs in and gets calls.
    h.state("300", AgentState::Ready).await;
    assert_eq!(h.drain_short(), ["agent 300 Ready"]);
    let c = h.inbound("+2", None, Some("sales")).await;
    assert_eq!(h.drain_short(), [format!("{c}@101 alerting")]);
    // A changed-to-same state is no change: no event.
    h.state("300", AgentState::Ready).await;
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn direct_calls_alert_even_when_logged_out_with_call_waiting() {
    let mut h = harness(settings());
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(h.inbound(&format!("+49{i}"), Some("100"), None).await);
    }
    let legs = h.legs();
    assert_eq!(legs.len(), 8);
    assert!(
        legs.iter()
            .all(|l| l.extension == "100" && l.state == LegState::Alerting)
    );
    assert!(
        legs.iter()
            .all(|l| l.queue.is_none() && l.attributes.get("dnis") == Some("100"))
    );
    let mut seen: Vec<_> = legs.iter().map(|l| l.call.clone()).collect();
    seen.dedup();
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn reroute_sends_the_call_to_the_front_and_not_back_to_the_same_agent() {
    let mut h = harness(settings());
    h.state("100", AgentState::Ready).await;
    let first = h.inbound("+1", None, Some("sales")).await;
    let second = h.inbound("+2", None, Some("sales")).await;
    assert_eq!(
        h.drain_short(),
        [
            "agent 100 Ready".to_owned(),
            format!("{first}@100 alerting")
        ]
    );

    h.ok(C::Reroute {
        call: first.clone(),
        extension: "100".into(),
    })
    .await;
    // The rerouted call may not go back to 100, so 100 gets the one behind it.
    assert_eq!(
        h.drain_short(),
        [
            format!("{first}@100 dropped(rerouted)"),
            format!("{second}@100 alerting")
        ]
    );
    let calls = h.control.list_calls().await;
    assert!(calls.iter().any(|c| c.id == first && c.waiting));

    // The rerouted call is at the front: the next agent gets it before any later call.
    let third = h.inbound("+3", None, Some("sales")).await;
    assert!(h.drain().is_empty());
    h.state("101", AgentState::Ready).await;
    assert_eq!(
        h.drain_short(),
        [
            "agent 101 Ready".to_owned(),
            format!("{first}@101 alerting")
        ]
    );
    let calls = h.control.list_calls().await;
    assert!(calls.iter().any(|c| c.id == third && c.waiting));

    // Only alerting ACD calls can be rerouted.
    let direct = h.inbound("+4", Some("102"), None).await;
    h.drain();
    let err = h
        .cmd(C::Reroute {
            call: direct,
            extension: "102".into(),
        })
        .await;
    assert!(matches!(err, Err(SwitchError::InvalidState(_))), "{err:?}");
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn refused_commands_change_nothing_and_emit_nothing() {
    let mut h = harness(settings());
    let id = h.talking("+1", "100").await;
    let hold = |ext: &str, call: &str| C::Hold {
        call: call.into(),
        extension: ext.into(),
    };
    let retrieve = C::Retrieve {
        call: id.clone(),
        extension: "100".into(),
    };

    assert!(matches!(
        h.cmd(retrieve.clone()).await,
        Err(SwitchError::InvalidState(_))
    ));
    assert!(h.drain().is_empty());
    h.ok(hold("100", &id)).await;
    assert_eq!(h.drain_short(), [format!("{id}@100 held")]);
    assert!(matches!(
        h.cmd(hold("100", &id)).await,
        Err(SwitchError::InvalidState(_))
    ));
    assert!(h.drain().is_empty());
    h.ok(retrieve.clone()).await;
    assert_eq!(h.drain_short(), [format!("{id}@100 connected")]);
    assert!(matches!(
        h.cmd(retrieve).await,
        Err(SwitchError::InvalidState(_))
    ));

    assert_eq!(
        h.cmd(hold("100", "sim-99")).await,
        Err(SwitchError::UnknownCall("sim-99".into()))
    );
    assert_eq!(
        h.cmd(hold("100", "nonsense")).await,
        Err(SwitchError::UnknownCall("nonsense".into()))
    );
    assert_eq!(
        h.cmd(hold("999", &id)).await,
        Err(SwitchError::UnknownExtension("999".into()))
    );
    assert!(matches!(
        h.cmd(hold("101", &id)).await,
        Err(SwitchError::InvalidState(_))
    ));
    let answer = C::Answer {
        call: id.clone(),
        extension: "100".into(),
    };
    assert!(matches!(
        h.cmd(answer).await,
        Err(SwitchError::InvalidState(_))
    ));
    let self_call = C::MakeCall {
        extension: "100".into(),
        destination: "100".into(),
        correlation: "c".into(),
    };
    assert!(matches!(
        h.cmd(self_call).await,
        Err(SwitchError::InvalidState(_))
    ));
    let unknown_caller = C::MakeCall {
        extension: "999".into(),
        destination: "101".into(),
        correlation: "c".into(),
    };
    assert!(matches!(
        h.cmd(unknown_caller).await,
        Err(SwitchError::UnknownExtension(_))
    ));
    let drop_party = C::DropParty {
        call: id.clone(),
        extension: "100".into(),
        party: "+1".into(),
    };
    assert!(matches!(
        h.cmd(drop_party).await,
        Err(SwitchError::InvalidState(_))
    ));
    assert!(h.drain().is_empty());

    let calls = h.control.list_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].parties[1].state, "connected");
}

#[tokio::test]
async fn internal_call_and_clear_ends_it_for_both() {
    let mut h = harness(settings());
    let id = h
        .new_call(C::MakeCall {
            extension: "100".into(),
            destination: "101".into(),
            correlation: "corr-7".into(),
        })
        .await;
    let legs = h.legs();
    assert_eq!(legs.len(), 2);
    assert_eq!(
        (legs[0].extension.as_str(), legs[0].state),
        ("100", LegState::Dialing)
    );
    assert_eq!(legs[0].correlation.as_deref(), Some("corr-7"));
    assert_eq!(legs[0].parties, ["101"]);
    assert_eq!(
        (legs[1].extension.as_str(), legs[1].state),
        ("101", LegState::Alerting)
    );
    assert_eq!(legs[1].correlation, None);
    assert!(legs.iter().all(|l| l.direction == Direction::Internal));
    assert_eq!(legs[1].attributes.get("ani"), Some("100"));

    h.ok(C::Answer {
        call: id.clone(),
        extension: "101".into(),
    })
    .await;
    let legs = h.legs();
    assert_eq!(legs.len(), 2);
    assert!(
        legs.iter()
            .all(|l| l.state == LegState::Connected && l.correlation.is_none())
    );
    h.ok(C::Clear {
        call: id.clone(),
        extension: "100".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{id}@100 dropped(normal)"),
            format!("{id}@101 dropped(remote_hangup)")
        ]
    );
    assert!(h.control.list_calls().await.is_empty());
}

#[tokio::test]
async fn consult_then_conference_then_drop_party() {
    let mut h = harness(settings());
    let held = h.talking("sip:555@example.com", "100").await;
    let consult = h
        .new_call(C::Consult {
            call: held.clone(),
            extension: "100".into(),
            destination: "101".into(),
        })
        .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{held}@100 held"),
            format!("{consult}@100 dialing"),
            format!("{consult}@101 alerting"),
        ]
    );
    // Conference needs the consultation call answered.
    let conference = C::Conference {
        held: held.clone(),
        consult: consult.clone(),
        extension: "100".into(),
    };
    assert!(matches!(
        h.cmd(conference.clone()).await,
        Err(SwitchError::InvalidState(_))
    ));
    h.ok(C::Answer {
        call: consult.clone(),
        extension: "101".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{consult}@100 connected"),
            format!("{consult}@101 connected")
        ]
    );

    h.ok(conference).await;
    let events = h.drain();
    assert_eq!(
        events.iter().map(short).collect::<Vec<_>>(),
        [
            format!("{consult}@100 dropped(conferenced)"),
            format!("{consult}@101 dropped(conferenced)"),
            format!("{held}@100 conferenced"),
            format!("{held}@101 conferenced"),
        ]
    );
    let SwitchEvent::Leg(at101) = &events[3] else {
        panic!()
    };
    assert_eq!(at101.parties, ["sip:555@example.com", "100"]);
    assert_eq!(at101.direction, Direction::Inbound);

    // Hold is for two-party calls; a supervisor may listen in.
    let hold = C::Hold {
        call: held.clone(),
        extension: "100".into(),
    };
    assert!(matches!(
        h.cmd(hold).await,
        Err(SwitchError::InvalidState(_))
    ));
    h.ok(C::Listen {
        call: held.clone(),
        supervisor: "200".into(),
    })
    .await;
    let legs = h.legs();
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].state, LegState::Connected);
    assert_eq!(legs[0].parties, ["sip:555@example.com", "100", "101"]);

    h.ok(C::DropParty {
        call: held.clone(),
        extension: "100".into(),
        party: "101".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{held}@101 dropped(normal)"),
            format!("{held}@100 connected"),
            format!("{held}@200 connected"),
        ]
    );
    h.ok(C::ListenEnd {
        call: held.clone(),
        supervisor: "200".into(),
    })
    .await;
    assert_eq!(h.drain_short(), [format!("{held}@200 dropped(normal)")]);
    assert_eq!(h.control.list_calls().await.len(), 1);
}

#[tokio::test]
async fn consult_transfer_connects_the_held_party_with_the_consulted_one() {
    let mut h = harness(settings());
    let held = h.talking("+4930123", "100").await;
    let consult = h
        .new_call(C::Consult {
            call: held.clone(),
            extension: "100".into(),
            destination: "101".into(),
        })
        .await;
    h.ok(C::Answer {
        call: consult.clone(),
        extension: "101".into(),
    })
    .await;
    h.drain();
    h.ok(C::TransferConsult {
        held: held.clone(),
        consult: consult.clone(),
        extension: "100".into(),
    })
    .await;
    let events = h.drain();
    assert_eq!(
        events.iter().map(short).collect::<Vec<_>>(),
        [
            format!("{held}@100 transferred(transferred)"),
            format!("{consult}@100 transferred(transferred)"),
            format!("{consult}@101 dropped(transferred)"),
            format!("{held}@101 connected"),
        ]
    );
    let SwitchEvent::Leg(at101) = &events[3] else {
        panic!()
    };
    assert_eq!(at101.parties, ["+4930123"]);
    assert_eq!(at101.direction, Direction::Inbound);
    assert_eq!(at101.attributes.get("ani"), Some("+4930123"));

    let calls = h.control.list_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, held);
    let agents = h.control.list_agents().await;
    assert!(
        agents
            .iter()
            .find(|a| a.extension == "100")
            .unwrap()
            .calls
            .is_empty()
    );

    // The caller hangs up on 101.
    h.control.remote_hangup(&held).await.unwrap();
    assert_eq!(
        h.drain_short(),
        [format!("{held}@101 dropped(remote_hangup)")]
    );
}

#[tokio::test]
async fn blind_transfer_to_an_extension_keeps_the_call_id() {
    let mut h = harness(settings());
    let id = h.talking("+1", "100").await;
    h.ok(C::SingleStepTransfer {
        call: id.clone(),
        extension: "100".into(),
        destination: "101".into(),
    })
    .await;
    let events = h.drain();
    assert_eq!(
        events.iter().map(short).collect::<Vec<_>>(),
        [
            format!("{id}@100 transferred(transferred)"),
            format!("{id}@101 alerting")
        ]
    );
    let SwitchEvent::Leg(at101) = &events[1] else {
        panic!()
    };
    assert_eq!(at101.parties, ["+1"]);
    assert_eq!(at101.direction, Direction::Inbound);
    h.ok(C::Answer {
        call: id.clone(),
        extension: "101".into(),
    })
    .await;
    assert_eq!(h.drain_short(), [format!("{id}@101 connected")]);
}

#[tokio::test]
async fn blind_transfer_to_external_leaves_the_other_party_talking() {
    let mut h = harness(settings());
    // 101 calls 100 internally; 100 transfers it out.
    let id = h
        .new_call(C::MakeCall {
            extension: "101".into(),
            destination: "100".into(),
            correlation: "x".into(),
        })
        .await;
    h.ok(C::Answer {
        call: id.clone(),
        extension: "100".into(),
    })
    .await;
    h.drain();
    h.ok(C::SingleStepTransfer {
        call: id.clone(),
        extension: "100".into(),
        destination: "13172222222".into(),
    })
    .await;
    let legs = h.legs();
    assert_eq!(legs.len(), 2);
    assert_eq!(
        (legs[0].extension.as_str(), legs[0].state),
        ("100", LegState::Transferred)
    );
    assert_eq!(legs[0].cause.as_deref(), Some("transferred"));
    assert_eq!(
        (legs[1].extension.as_str(), legs[1].state),
        ("101", LegState::Connected)
    );
    assert_eq!(legs[1].parties, ["13172222222"]);
    assert_eq!(legs[1].direction, Direction::Outbound);

    // An inbound caller transferred out: the call lives on without any agent leg.
    let inbound = h.talking("+2", "102").await;
    h.ok(C::SingleStepTransfer {
        call: inbound.clone(),
        extension: "102".into(),
        destination: "+4989".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [format!("{inbound}@102 transferred(transferred)")]
    );
    let calls = h.control.list_calls().await;
    let view = calls.iter().find(|c| c.id == inbound).unwrap();
    assert_eq!(view.dialled.as_deref(), Some("+4989"));
    let parties: Vec<_> = view.parties.iter().map(|p| p.address.as_str()).collect();
    assert_eq!(parties, ["+2", "+4989"]);
    let agents = h.control.list_agents().await;
    let a100 = agents.iter().find(|a| a.extension == "100").unwrap();
    assert_eq!(a100.last_dialled.as_deref(), Some("13172222222"));
}

#[tokio::test]
async fn abandoned_calls() {
    let mut h = harness(settings());
    // Waiting in the queue: nobody saw it, so nothing is emitted.
    let waiting = h.inbound("+1", None, Some("sales")).await;
    h.control.remote_hangup(&waiting).await.unwrap();
    assert!(h.drain().is_empty());
    assert!(h.control.list_calls().await.is_empty());
    h.state("100", AgentState::Ready).await;
    assert_eq!(h.drain_short(), ["agent 100 Ready"]);

    // Alerting: abandoned.
    let alerting = h.inbound("+2", None, Some("sales")).await;
    h.drain();
    h.control.remote_hangup(&alerting).await.unwrap();
    let legs = h.legs();
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].state, LegState::Dropped);
    assert_eq!(legs[0].cause.as_deref(), Some("abandoned"));
    assert_eq!(
        legs[0].parties,
        ["+2"],
        "the final event still names the caller"
    );

    // The call is gone.
    assert_eq!(
        h.control.remote_hangup(&alerting).await,
        Err(SimError::UnknownCall(alerting.clone()))
    );
}

#[tokio::test(start_paused = true)]
async fn remote_parties_answer_after_the_configured_delay() {
    let mut h = harness(SimSettings {
        remote_answer_after: Some(Duration::from_secs(5)),
        ..settings()
    });
    let start = tokio::time::Instant::now();
    let id = h
        .new_call(C::MakeCall {
            extension: "100".into(),
            destination: "13172222222".into(),
            correlation: "corr-1".into(),
        })
        .await;
    let legs = h.legs();
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].state, LegState::Dialing);
    assert_eq!(legs[0].direction, Direction::Outbound);
    assert_eq!(legs[0].correlation.as_deref(), Some("corr-1"));
    assert_eq!(legs[0].parties, ["13172222222"]);
    assert_eq!(legs[0].attributes.get("dnis"), Some("13172222222"));

    let Some(SwitchEvent::Leg(answered)) = h.events.recv().await else {
        panic!("expected a leg event")
    };
    assert_eq!(
        (answered.call.as_str(), answered.state),
        (id.as_str(), LegState::Connected)
    );
    assert_eq!(answered.correlation, None);
    assert!(start.elapsed() >= Duration::from_secs(5));

    // hangup_after: the scripted caller gives up while ringing.
    let call = h
        .control
        .create_call(CreateCall {
            from: "+9".into(),
            to: Some("101".into()),
            hangup_after: Some(Duration::from_secs(20)),
            ..CreateCall::default()
        })
        .await
        .unwrap();
    assert_eq!(h.drain_short(), [format!("{call}@101 alerting")]);
    let Some(event) = h.events.recv().await else {
        panic!()
    };
    assert_eq!(short(&event), format!("{call}@101 dropped(abandoned)"));
    assert!(start.elapsed() >= Duration::from_secs(25));
}

#[tokio::test]
async fn without_a_delay_only_the_control_api_answers() {
    let mut h = harness(settings());
    let id = h
        .new_call(C::MakeCall {
            extension: "100".into(),
            destination: "+15550100".into(),
            correlation: "c".into(),
        })
        .await;
    assert_eq!(h.drain_short(), [format!("{id}@100 dialing")]);
    h.control.remote_answer(&id).await.unwrap();
    assert_eq!(h.drain_short(), [format!("{id}@100 connected")]);
    assert!(matches!(
        h.control.remote_answer(&id).await,
        Err(SimError::InvalidState(_))
    ));
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn set_call_data_rides_on_the_next_event() {
    let mut h = harness(settings());
    let id = h.talking("+1", "100").await;
    h.ok(C::SetCallData {
        call: id.clone(),
        key: "Sap_Cad".into(),
        value: "<ItemAttachedData/>".into(),
    })
    .await;
    assert!(h.drain().is_empty());
    h.ok(C::SingleStepTransfer {
        call: id.clone(),
        extension: "100".into(),
        destination: "101".into(),
    })
    .await;
    let legs = h.legs();
    assert_eq!(legs[1].extension, "101");
    assert_eq!(
        legs[1].attributes.get("Sap_Cad"),
        Some("<ItemAttachedData/>")
    );
}

#[tokio::test]
async fn events_are_sent_before_the_answer() {
    // Room for one event: the simulator must wait for the reader before it answers.
    let (tx, mut events) = mpsc::channel(1);
    let (switch, _control) = start(settings(), EventSink::new(tx));
    let (reply, mut answer) = oneshot::channel();
    switch.submit(SwitchRequest {
        command: C::MakeCall {
            extension: "100".into(),
            destination: "101".into(),
            correlation: "c".into(),
        },
        reply,
    });
    let first = events.recv().await.unwrap();
    assert_eq!(short(&first), "sim-1@100 dialing");
    assert!(
        answer.try_recv().is_err(),
        "answered before all events were sent"
    );
    let second = events.recv().await.unwrap();
    assert_eq!(short(&second), "sim-1@101 alerting");
    assert_eq!(
        answer.await.unwrap(),
        Ok(SwitchReply::NewCall("sim-1".into()))
    );
}

#[tokio::test]
async fn a_full_command_queue_answers_unavailable() {
    // The session manager never reads events: the simulator blocks on the second one, and
    // its command queue fills up.
    let (tx, _events) = mpsc::channel(1);
    let (switch, _control) = start(settings(), EventSink::new(tx));
    let mut answers = Vec::new();
    for i in 0..SIM_QUEUE_DEPTH + 10 {
        let (reply, rx) = oneshot::channel();
        let state = if i % 2 == 0 {
            AgentState::Ready
        } else {
            AgentState::LoggedOut
        };
        switch.submit(SwitchRequest {
            command: C::SetAgentState {
                extension: "100".into(),
                state,
                queues: vec![],
            },
            reply,
        });
        answers.push(rx);
    }
    let last = answers.pop().unwrap().await.unwrap();
    assert!(matches!(last, Err(SwitchError::Unavailable(_))), "{last:?}");
    assert_eq!(switch.name(), "sim");
    assert_eq!(switch.capabilities(), Capability::ALL);
}

async fn http(h: &Harness, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    control::handle(&h.control, &method, path, &body).await
}

#[tokio::test]
async fn control_http_routes() {
    let mut h = harness(settings());
    let (status, body) = http(
        &h,
        Method::POST,
        "/agents/100/state",
        json!({"state": "ready"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.drain_short(), ["agent 100 Ready"]);

    let (status, body) = http(
        &h,
        Method::POST,
        "/calls",
        json!({"from": "sip:555@example.com", "queue": "sales",
               "attributes": {"Sap_Cad": "<x/>"}, "hangup_after_ms": 60000}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["callId"].as_str().unwrap().to_owned();
    assert_eq!(h.drain_short(), [format!("{id}@100 alerting")]);

    let (status, body) = http(&h, Method::GET, "/calls", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["calls"][0]["id"], id);
    assert_eq!(body["calls"][0]["attributes"]["Sap_Cad"], "<x/>");
    assert_eq!(body["calls"][0]["parties"][1]["state"], "alerting");
    let (status, body) = http(&h, Method::GET, "/agents/", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["agents"][0]["extension"], "100");
    assert_eq!(body["agents"][0]["state"], "ready");
    assert_eq!(body["agents"][0]["calls"][0], id);

    // Nobody dials out on this call, so the far end cannot "answer" it.
    let (status, _) = http(
        &h,
        Method::POST,
        &format!("/calls/{id}/answer"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = http(
        &h,
        Method::POST,
        &format!("/calls/{id}/hangup"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.drain_short(), [format!("{id}@100 dropped(abandoned)")]);

    let (status, body) = http(
        &h,
        Method::POST,
        "/agents/100/state",
        json!({"state": "custom", "custom": "backoffice"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        h.drain_short(),
        [r#"agent 100 Custom { state: "backoffice" }"#]
    );

    // Errors.
    let errors = [
        (
            Method::POST,
            "/calls/sim-42/hangup",
            Value::Null,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/calls/sim-42/answer",
            Value::Null,
            StatusCode::NOT_FOUND,
        ),
        (Method::POST, "/calls", Value::Null, StatusCode::BAD_REQUEST),
        (
            Method::POST,
            "/calls",
            json!({"from": "+1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/calls",
            json!({"from": "+1", "to": "777"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/calls",
            json!({"from": "+1", "queue": "sales", "bogus": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/agents/100/state",
            json!({"state": "custom"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/agents/100/state",
            json!({"state": "asleep"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/calls",
            Value::Null,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/nothing", Value::Null, StatusCode::NOT_FOUND),
    ];
    for (method, path, body, expected) in errors {
        let (status, answer) = http(&h, method.clone(), path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
    }
    let (status, _) = control::handle(&h.control, &Method::POST, "/calls", b"{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn agents_can_dial_and_transfer_into_a_queue() {
    let mut h = harness(settings());
    h.state("100", AgentState::Ready).await;
    h.state("101", AgentState::Ready).await;
    h.drain();
    // 100 dials the sales queue: it is a member, but never gets its own call.
    let id = h
        .new_call(C::MakeCall {
            extension: "100".into(),
            destination: "5000".into(),
            correlation: "q".into(),
        })
        .await;
    let legs = h.legs();
    assert_eq!(legs.len(), 2);
    assert_eq!(
        (legs[0].extension.as_str(), legs[0].state),
        ("100", LegState::Dialing)
    );
    assert_eq!(
        (legs[1].extension.as_str(), legs[1].state),
        ("101", LegState::Alerting)
    );
    assert_eq!(legs[1].queue.as_deref(), Some("sales"));
    assert_eq!(legs[1].direction, Direction::Internal);
    let listen = C::Listen {
        call: id.clone(),
        supervisor: "200".into(),
    };
    assert!(matches!(
        h.cmd(listen).await,
        Err(SwitchError::InvalidState(_))
    ));
    h.ok(C::Answer {
        call: id.clone(),
        extension: "101".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [format!("{id}@100 connected"), format!("{id}@101 connected")]
    );

    // A caller that 102 sends to the queue is offered like any queued call: 100 and 101
    // are both on a call, and 100 has been idle longer.
    let inbound = h.talking("+7", "102").await;
    h.ok(C::SingleStepTransfer {
        call: inbound.clone(),
        extension: "102".into(),
        destination: "5000".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{inbound}@102 transferred(transferred)"),
            format!("{inbound}@100 alerting"),
        ]
    );
}
