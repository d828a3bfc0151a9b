//! The codec and the event → leg mapping, on AMI text a real Asterisk 22.10.1 printed
//! (testdata/queue_call.ami: agent 2001 logs in, pauses with reason Break, unpauses;
//! customer 2003 calls queue 600, 2001 answers, AMI hangs up; then an Originate from 2001
//! with `CTI_REF=demo-1`; logout).

use super::codec::{Action, Decoder, Frame, Message};
use super::model::{Interfaces, Model};
use crate::switch::{AgentState, Direction, LegState, SwitchEvent};

const CAPTURE: &str = include_str!("testdata/queue_call.ami");

fn frames(text: &str) -> Vec<Frame> {
    let mut decoder = Decoder::new();
    // Byte by byte: a frame split anywhere must still come out whole.
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(7) {
        decoder.feed(chunk);
        while let Some(frame) = decoder.next_frame().unwrap() {
            out.push(frame);
        }
    }
    out
}

fn replay(text: &str) -> Vec<SwitchEvent> {
    let mut model = Model::new("PJSIP/{extension}", vec![]);
    frames(text)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Message(m) => Some(m),
            Frame::Banner(_) => None,
        })
        .flat_map(|m| model.apply(&m))
        .collect()
}

#[test]
fn decoder_splits_banner_and_messages() {
    let frames = frames(CAPTURE);
    assert_eq!(
        frames[0],
        Frame::Banner("Asterisk Call Manager/11.0.0".into())
    );
    let Frame::Message(login) = &frames[1] else {
        panic!("a message after the banner")
    };
    assert!(login.is_response());
    assert_eq!(login.get("Response"), Some("Success"));
    assert_eq!(login.get("actionid"), Some("Login-1"));
    let events = frames
        .iter()
        .filter(|f| matches!(f, Frame::Message(m) if m.event() == Some("Newchannel")))
        .count();
    assert_eq!(events, 4);
}

#[test]
fn message_values_treat_placeholders_as_absent() {
    let m = Message::parse(
        "Event: Newchannel\r\nConnectedLineNum: <unknown>\r\nAccountCode: \r\nExten: 600\r\n",
    );
    assert_eq!(m.event(), Some("Newchannel"));
    assert_eq!(m.value("ConnectedLineNum"), None);
    assert_eq!(m.value("AccountCode"), None);
    assert_eq!(m.get("AccountCode"), Some(""));
    assert_eq!(m.value("exten"), Some("600"));
}

#[test]
fn actions_cannot_inject_headers() {
    let wire = Action::new("Originate")
        .with("Exten", "2002\r\nAction: Hangup")
        .encode("7");
    assert_eq!(
        wire,
        "Action: Originate\r\nActionID: 7\r\nExten: 2002  Action: Hangup\r\n\r\n"
    );
}

#[test]
fn action_display_never_shows_values() {
    let login = Action::new("Login").with("Secret", "ctipass");
    assert_eq!(login.to_string(), "Login");
}

#[test]
fn oversized_garbage_is_refused() {
    let mut decoder = Decoder::new();
    decoder.feed(b"Asterisk Call Manager/11.0.0\r\n");
    assert!(matches!(decoder.next_frame(), Ok(Some(Frame::Banner(_)))));
    decoder.feed(&vec![b'x'; super::codec::MAX_MESSAGE + 1]);
    assert!(decoder.next_frame().is_err());
}

#[test]
fn interfaces_follow_the_pattern() {
    let i = Interfaces::new("PJSIP/{extension}");
    assert_eq!(i.interface("2001"), "PJSIP/2001");
    assert_eq!(
        i.extension_of_channel("PJSIP/2001-0000001a"),
        Some("2001".into())
    );
    assert_eq!(
        i.extension_of_channel("Local/2002@internal-00000001;1"),
        None
    );
    assert_eq!(i.extension_of_interface("PJSIP/2001"), Some("2001".into()));
    let sip = Interfaces::new("SIP/agent-{extension}");
    assert_eq!(
        sip.extension_of_channel("SIP/agent-7-00000001"),
        Some("7".into())
    );
}

#[test]
fn queue_call_becomes_alerting_connected_dropped() {
    let events = replay(CAPTURE);
    let legs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SwitchEvent::Leg(l) if l.call == "1795448825.0" => Some(l),
            _ => None,
        })
        .collect();
    let states: Vec<_> = legs
        .iter()
        .map(|l| (l.extension.as_str(), l.state))
        .collect();
    assert_eq!(
        states,
        [
            // The customer's own phone is a device too; the session ignores non-agents.
            ("2003", LegState::Dialing),
            ("2003", LegState::Connected),
            ("2001", LegState::Alerting),
            ("2001", LegState::Connected),
            // 2003's parties changed (2001 joined).
            ("2003", LegState::Connected),
            ("2003", LegState::Dropped),
            ("2001", LegState::Dropped),
        ]
    );
    let alerting = legs[2];
    assert_eq!(alerting.direction, Direction::Inbound);
    assert_eq!(alerting.queue.as_deref(), Some("support"));
    assert_eq!(alerting.attributes.get("ani"), Some("2003"));
    assert_eq!(alerting.attributes.get("dnis"), Some("600"));
    assert_eq!(alerting.parties, ["2003"]);
    assert_eq!(legs[5].cause.as_deref(), Some("normal"));
}

#[test]
fn agent_states_follow_queue_membership() {
    let agents: Vec<_> = replay(CAPTURE)
        .into_iter()
        .filter_map(|e| match e {
            SwitchEvent::Agent { extension, state } => Some((extension, state)),
            _ => None,
        })
        .collect();
    let ready = ("2001".to_owned(), AgentState::Ready);
    assert_eq!(
        agents,
        [
            ready.clone(),
            (
                "2001".into(),
                AgentState::NotReady {
                    reason: Some("Break".into())
                }
            ),
            ready,
            ("2001".into(), AgentState::LoggedOut),
        ]
    );
}

#[test]
fn originated_call_carries_the_correlation_and_dials() {
    let mut model = Model::new("PJSIP/{extension}", vec![]);
    model.expect_originate("cti-test-1", "item-9".into(), "2002");
    let mut legs = Vec::new();
    for frame in frames(CAPTURE) {
        if let Frame::Message(m) = frame {
            for event in model.apply(&m) {
                if let SwitchEvent::Leg(l) = event
                    && l.call == "cti-test-1"
                {
                    legs.push(l);
                }
            }
        }
    }
    // "cti-" is not the adapter's own prefix, so this replay sees a phone-originated call:
    // the first event still carries the correlation registered for the call.
    assert_eq!(legs[0].correlation.as_deref(), Some("item-9"));
    assert_eq!(legs[0].direction, Direction::Outbound);
    assert_eq!(legs[0].attributes.get("dnis"), Some("2002"));
    assert!(legs[1..].iter().all(|l| l.correlation.is_none()));
    assert_eq!(legs.last().unwrap().state, LegState::Dropped);
}

#[test]
fn sap_cad_and_transfer() {
    let text = "Event: Newchannel\r\nChannel: PJSIP/2003-00000009\r\nChannelState: 4\r\nCallerIDNum: +4930123\r\nExten: 600\r\nUniqueid: 10.0\r\nLinkedid: 10.0\r\n\r\n\
Event: VarSet\r\nChannel: PJSIP/2003-00000009\r\nVariable: __SAP_CAD\r\nValue: order=4711\r\nUniqueid: 10.0\r\nLinkedid: 10.0\r\n\r\n\
Event: Newchannel\r\nChannel: PJSIP/2001-0000000a\r\nChannelState: 0\r\nCallerIDNum: 2001\r\nExten: s\r\nUniqueid: 10.1\r\nLinkedid: 10.0\r\n\r\n\
Event: Newstate\r\nChannel: PJSIP/2001-0000000a\r\nChannelState: 6\r\nUniqueid: 10.1\r\nLinkedid: 10.0\r\n\r\n\
Event: Hold\r\nChannel: PJSIP/2001-0000000a\r\nUniqueid: 10.1\r\nLinkedid: 10.0\r\n\r\n\
Event: Unhold\r\nChannel: PJSIP/2001-0000000a\r\nUniqueid: 10.1\r\nLinkedid: 10.0\r\n\r\n\
Event: BlindTransfer\r\nResult: Success\r\nTransfererChannel: PJSIP/2001-0000000a\r\nTransfererUniqueid: 10.1\r\nExtension: 2002\r\n\r\n\
Event: Hangup\r\nChannel: PJSIP/2001-0000000a\r\nCause: 16\r\nUniqueid: 10.1\r\nLinkedid: 10.0\r\n\r\n";
    let legs: Vec<_> = replay(&format!("Asterisk Call Manager/11.0.0\r\n{text}"))
        .into_iter()
        .filter_map(|e| match e {
            SwitchEvent::Leg(l) if l.extension == "2001" => Some(l),
            _ => None,
        })
        .collect();
    let states: Vec<_> = legs.iter().map(|l| l.state).collect();
    assert_eq!(
        states,
        [
            LegState::Connected,
            LegState::Held,
            LegState::Connected,
            LegState::Transferred
        ]
    );
    assert_eq!(legs[0].attributes.get("Sap_Cad"), Some("order=4711"));
    assert_eq!(legs[3].cause.as_deref(), Some("transferred"));
}

#[test]
fn resync_lists_live_agent_legs() {
    let mut model = Model::new("PJSIP/{extension}", vec!["support".into()]);
    model.begin_resync();
    let list = "Event: CoreShowChannel\r\nActionID: ici-1\r\nChannel: PJSIP/2001-00000001\r\nChannelState: 6\r\nCallerIDNum: 2001\r\nExten: 600\r\nUniqueid: 1795448825.1\r\nLinkedid: 1795448825.0\r\nBridgeId: cfc787c6\r\n\r\n\
Event: CoreShowChannel\r\nActionID: ici-1\r\nChannel: PJSIP/2003-00000000\r\nChannelState: 6\r\nCallerIDNum: 2003\r\nExten: 600\r\nUniqueid: 1795448825.0\r\nLinkedid: 1795448825.0\r\nBridgeId: cfc787c6\r\n\r\n\
Event: QueueMember\r\nQueue: support\r\nName: agent2001\r\nLocation: PJSIP/2001\r\nPaused: 0\r\nPausedReason: \r\n\r\n\
Event: QueueMember\r\nQueue: other\r\nName: agent2002\r\nLocation: PJSIP/2002\r\nPaused: 0\r\n\r\n";
    for frame in frames(&format!("x\r\n{list}")) {
        if let Frame::Message(m) = frame {
            assert!(
                model.apply(&m).is_empty(),
                "nothing is reported during a resync"
            );
        }
    }
    let (legs, agents) = model.finish_resync();
    let agent_leg = legs.iter().find(|l| l.extension == "2001").unwrap();
    assert_eq!(agent_leg.state, LegState::Connected);
    assert_eq!(agent_leg.call, "1795448825.0");
    assert_eq!(agent_leg.attributes.get("ani"), Some("2003"));
    assert_eq!(
        agents,
        [SwitchEvent::Agent {
            extension: "2001".into(),
            state: AgentState::Ready
        }]
    );
}

fn ami(model: &mut Model, text: &str) -> Vec<String> {
    let text = text.replace('|', "\r\n");
    model
        .apply(&Message::parse(&text))
        .into_iter()
        .filter_map(|e| match e {
            SwitchEvent::Leg(l) => Some(format!(
                "{}@{} {}{}",
                l.call,
                l.extension,
                l.state.as_str(),
                l.cause
                    .as_ref()
                    .map(|c| format!("({c})"))
                    .unwrap_or_default()
            )),
            _ => None,
        })
        .collect()
}

/// Customer 2003 (channel 1.1, the Linkedid) talks to agent 2001 (1.2); the agent consults
/// 2002 through Atxfer (Local pair 1.3/1.4, phone 1.5), then hangs up: transfer completed.
#[test]
fn consultation_gets_its_own_call_id_and_moves_on_transfer() {
    let mut m = Model::new("PJSIP/{extension}", vec![]);
    let chan = |id: &str, name: &str, state: u8| {
        format!(
            "Event: Newchannel|Channel: {name}|Uniqueid: {id}|Linkedid: 1.1|ChannelState: {state}|CallerIDNum: 2003|Exten: 600|"
        )
    };
    ami(&mut m, &chan("1.1", "PJSIP/2003-00000001", 6));
    ami(&mut m, &chan("1.2", "PJSIP/2001-00000002", 6));
    m.expect_consult("1.1", "1.2", "2002");
    assert_eq!(ami(&mut m, "Event: Hold|Uniqueid: 1.2|"), ["1.1@2001 held"]);
    assert_eq!(
        ami(
            &mut m,
            &chan("1.3", "Local/2002@ici-connector-00000000;1", 0)
        ),
        ["1.3@2001 dialing"]
    );
    ami(
        &mut m,
        &chan("1.4", "Local/2002@ici-connector-00000000;2", 0),
    );
    ami(&mut m, &chan("1.5", "PJSIP/2002-00000003", 0));
    assert_eq!(
        ami(&mut m, "Event: Newstate|Uniqueid: 1.5|ChannelState: 5|"),
        ["1.3@2002 alerting"]
    );
    assert_eq!(
        ami(&mut m, "Event: Newstate|Uniqueid: 1.5|ChannelState: 6|"),
        ["1.3@2002 connected", "1.3@2001 connected"]
    );
    assert_eq!(m.consult_by_transferer("1.2"), Some(("1.3", "2002")));
    assert_eq!(
        ami(&mut m, "Event: Hangup|Uniqueid: 1.2|Cause: 16|"),
        [
            "1.1@2001 transferred(transferred)",
            "1.3@2001 transferred(transferred)",
            "1.3@2002 dropped(transferred)",
            "1.1@2002 connected",
        ]
    );
    assert!(!m.has_consult("1.3"));
}

/// The consulted party hangs up: the consultation ends, the agent is back on the call.
#[test]
fn consultation_ends_when_the_consulted_party_hangs_up() {
    let mut m = Model::new("PJSIP/{extension}", vec![]);
    let chan = |id: &str, name: &str, state: u8| {
        format!(
            "Event: Newchannel|Channel: {name}|Uniqueid: {id}|Linkedid: 1.1|ChannelState: {state}|CallerIDNum: 2003|Exten: 600|"
        )
    };
    ami(&mut m, &chan("1.1", "PJSIP/2003-00000001", 6));
    ami(&mut m, &chan("1.2", "PJSIP/2001-00000002", 6));
    m.expect_consult("1.1", "1.2", "2002");
    ami(
        &mut m,
        &chan("1.3", "Local/2002@ici-connector-00000000;1", 0),
    );
    ami(&mut m, &chan("1.5", "PJSIP/2002-00000003", 5));
    ami(&mut m, "Event: Hangup|Uniqueid: 1.3|Cause: 16|");
    assert_eq!(
        ami(&mut m, "Event: Hangup|Uniqueid: 1.5|Cause: 21|"),
        [
            "1.3@2002 dropped(abandoned)",
            "1.3@2001 dropped(normal)",
            "1.1@2001 connected"
        ]
    );
}

/// Customer 2003 (1.1) and agent 2001 (1.2) in one bridge, as a queue call leaves them.
fn bridged_call() -> Model {
    let mut m = Model::new("PJSIP/{extension}", vec![]);
    let chan = |id: &str, name: &str| {
        format!(
            "Event: Newchannel|Channel: {name}|Uniqueid: {id}|Linkedid: 1.1|ChannelState: 6|CallerIDNum: 2003|Exten: 600|"
        )
    };
    ami(&mut m, &chan("1.1", "PJSIP/2003-00000001"));
    ami(&mut m, &chan("1.2", "PJSIP/2001-00000002"));
    ami(
        &mut m,
        "Event: BridgeEnter|Uniqueid: 1.1|BridgeUniqueid: b1|",
    );
    ami(
        &mut m,
        "Event: BridgeEnter|Uniqueid: 1.2|BridgeUniqueid: b1|",
    );
    m
}

/// Server-side hold: Asterisk reports no Hold event for a Redirect out of the bridge, so
/// the agent's leg is held once its channel left the bridge, and connected again when the
/// AMI Bridge puts it back with its party.
#[test]
fn server_side_hold_is_reported_held_and_retrieved() {
    let mut m = bridged_call();
    assert_eq!(
        m.bridge_partner("1.2"),
        Some(("1.1".into(), "PJSIP/2003-00000001".into()))
    );
    m.expect_park("1.2", "1.1");
    assert!(!m.held("1.2"), "held only once it left the bridge");
    ami(
        &mut m,
        "Event: BridgeLeave|Uniqueid: 1.1|BridgeUniqueid: b1|",
    );
    assert_eq!(
        ami(
            &mut m,
            "Event: BridgeLeave|Uniqueid: 1.2|BridgeUniqueid: b1|"
        ),
        ["1.1@2001 held"]
    );
    assert!(m.held("1.2") && !m.held_on_phone("1.2"));
    assert_eq!(
        m.parked_partner("1.2"),
        Some(("1.1".into(), "PJSIP/2003-00000001".into()))
    );
    ami(
        &mut m,
        "Event: BridgeEnter|Uniqueid: 1.1|BridgeUniqueid: b2|",
    );
    assert_eq!(
        ami(
            &mut m,
            "Event: BridgeEnter|Uniqueid: 1.2|BridgeUniqueid: b2|"
        ),
        ["1.1@2001 connected"]
    );
    assert!(!m.held("1.2"));
    assert_eq!(m.parked_partner("1.2"), None);
}

/// A hold on the phone (re-INVITE) is reported as before and told apart from the server's.
#[test]
fn hold_on_the_phone_is_still_reported() {
    let mut m = bridged_call();
    assert_eq!(ami(&mut m, "Event: Hold|Uniqueid: 1.2|"), ["1.1@2001 held"]);
    assert!(m.held_on_phone("1.2"));
    assert_eq!(
        ami(&mut m, "Event: Unhold|Uniqueid: 1.2|"),
        ["1.1@2001 connected"]
    );
}

/// The customer hangs up in music on hold: the parked agent channel has nobody to come
/// back to and is hung up (and the other way round).
#[test]
fn a_hangup_during_server_side_hold_frees_the_other_channel() {
    let mut m = bridged_call();
    m.expect_park("1.2", "1.1");
    ami(
        &mut m,
        "Event: BridgeLeave|Uniqueid: 1.2|BridgeUniqueid: b1|",
    );
    ami(&mut m, "Event: Hangup|Uniqueid: 1.1|Cause: 16|");
    assert_eq!(m.take_orphans(), ["PJSIP/2001-00000002"]);
    assert!(m.take_orphans().is_empty());

    let mut m = bridged_call();
    m.expect_park("1.2", "1.1");
    ami(
        &mut m,
        "Event: BridgeLeave|Uniqueid: 1.2|BridgeUniqueid: b1|",
    );
    assert_eq!(
        ami(&mut m, "Event: Hangup|Uniqueid: 1.2|Cause: 16|"),
        ["1.1@2001 dropped(normal)"]
    );
    assert_eq!(m.take_orphans(), ["PJSIP/2003-00000001"]);
}

/// A rerouted alerting leg ends with cause `rerouted`, not `abandoned`.
#[test]
fn rerouted_ring_ends_rerouted() {
    let mut m = Model::new("PJSIP/{extension}", vec![]);
    ami(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2003-00000001|Uniqueid: 1.1|Linkedid: 1.1|ChannelState: 6|CallerIDNum: 2003|Exten: 600|",
    );
    ami(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2001-00000002|Uniqueid: 1.2|Linkedid: 1.1|ChannelState: 0|",
    );
    assert_eq!(
        ami(&mut m, "Event: Newstate|Uniqueid: 1.2|ChannelState: 5|"),
        ["1.1@2001 alerting"]
    );
    assert!(m.ringing("1.2"));
    m.expect_reroute("1.2");
    assert_eq!(
        ami(&mut m, "Event: Hangup|Uniqueid: 1.2|Cause: 21|"),
        ["1.1@2001 dropped(rerouted)"]
    );
}

/// A supervisor's ChanSpy channel is never a call of the supervisor.
#[test]
fn listening_channel_is_not_a_leg() {
    let mut m = bridged_call();
    m.expect_spy("1.1", "2002", "ici-spy-1-1");
    let shown = ami(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2002-00000003|Uniqueid: ici-spy-1-1|Linkedid: ici-spy-1-1|ChannelState: 0|",
    );
    assert!(shown.is_empty(), "{shown:?}");
    assert!(
        ami(
            &mut m,
            "Event: Newstate|Uniqueid: ici-spy-1-1|ChannelState: 6|"
        )
        .is_empty()
    );
    assert_eq!(
        m.spy("1.1", "2002"),
        Some(("ici-spy-1-1".into(), "PJSIP/2002-00000003".into()))
    );
    assert_eq!(
        m.agent_channel_on("1.1", "2002").as_deref(),
        Some("PJSIP/2001-00000002")
    );
    ami(&mut m, "Event: Hangup|Uniqueid: ici-spy-1-1|Cause: 16|");
    assert_eq!(m.spy("1.1", "2002"), None);
}

/// The agent left its consultation for a conference: Asterisk reports the attended
/// transfer this completed only once the agent is in the ConfBridge. It stays there,
/// conferenced, not transferred away.
#[test]
fn a_transfer_reported_after_joining_the_conference_leaves_the_agent_there() {
    let mut m = bridged_call();
    m.expect_consult("1.1", "1.2", "2002");
    ami(
        &mut m,
        "Event: Newchannel|Channel: Local/2002@ici-connector-00000000;1|Uniqueid: 1.3|Linkedid: 1.1|ChannelState: 6|",
    );
    ami(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2002-00000003|Uniqueid: 1.5|Linkedid: 1.1|ChannelState: 6|",
    );
    m.expect_conference("1.3");
    let joined = ami(
        &mut m,
        "Event: ConfbridgeJoin|Uniqueid: 1.2|Conference: c11|",
    );
    assert!(
        joined.contains(&"1.1@2001 conferenced".to_owned()),
        "{joined:?}"
    );
    let after = ami(
        &mut m,
        "Event: AttendedTransfer|Result: Success|OrigTransfererUniqueid: 1.2|SecondTransfererUniqueid: 1.3|",
    );
    assert!(after.is_empty(), "{after:?}");
    assert!(!m.left("1.2"));
}

/// With wrap-up time configured, the end of an agent's answered queue call starts its
/// after-call work; without, nothing is reported.
#[test]
fn a_completed_queue_call_starts_wrap_up_when_queues_have_it() {
    let complete = "Event: AgentComplete|Queue: support|Interface: PJSIP/2001|MemberName: agent2001|TalkTime: 2|Reason: caller|";
    let parse = |t: &str| Message::parse(&t.replace('|', "\r\n"));
    let mut m = Model::new("PJSIP/{extension}", vec!["support".into()]);
    assert!(m.apply(&parse(complete)).is_empty());
    m.set_wrap_up(true);
    assert_eq!(
        m.apply(&parse(complete)),
        [SwitchEvent::WrapUp {
            extension: "2001".into(),
            active: true
        }]
    );
    let other = complete.replace("support", "sales");
    assert!(m.apply(&parse(&other)).is_empty(), "unwatched queue");
    let now = tokio::time::Instant::now();
    m.wrap_up_until("2001", now + std::time::Duration::from_secs(10));
    assert!(m.due_wrap_ups(now).is_empty());
    assert_eq!(
        m.due_wrap_ups(now + std::time::Duration::from_secs(10)),
        ["2001"]
    );
    assert!(!m.end_wrap_up("2001"), "already over");
}

/// A hold asked for right after the answer can move the agent's channel before Asterisk
/// bridged it: no BridgeLeave comes, its arrival in the park context holds it; a late
/// BridgeEnter before that is no retrieve.
#[test]
fn server_side_hold_before_the_bridge_is_held_on_arrival_in_the_park() {
    let mut m = Model::new("PJSIP/{extension}", vec![]);
    ami(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2003-00000001|Uniqueid: 1.1|Linkedid: 1.1|ChannelState: 6|CallerIDNum: 2003|Exten: 600|",
    );
    ami(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2001-00000002|Uniqueid: 1.2|Linkedid: 1.1|ChannelState: 6|",
    );
    m.expect_park("1.2", "1.1");
    assert!(
        ami(
            &mut m,
            "Event: BridgeEnter|Uniqueid: 1.2|BridgeUniqueid: b1|"
        )
        .is_empty()
    );
    assert_eq!(
        ami(
            &mut m,
            "Event: Newexten|Uniqueid: 1.2|Context: ici-hold|Exten: park|Priority: 1|"
        ),
        ["1.1@2001 held"]
    );
    assert!(m.parked_partner("1.2").is_some());
}

/// Asterisk reports AgentComplete before the agent's channel hangs up: SAP hears of the
/// ended call first, then of the wrap-up.
#[test]
fn wrap_up_follows_the_end_of_the_agents_leg() {
    let mut m = bridged_call();
    m.set_wrap_up(true);
    let complete = Message::parse(
        &"Event: AgentComplete|Queue: support|Interface: PJSIP/2001|DestUniqueid: 1.2|Reason: caller|"
            .replace('|', "\r\n"),
    );
    assert!(m.apply(&complete).is_empty());
    let events = m.apply(&Message::parse(
        "Event: Hangup\r\nUniqueid: 1.2\r\nCause: 16\r\n",
    ));
    assert!(
        matches!(&events[..], [SwitchEvent::Leg(l), SwitchEvent::WrapUp { extension, active: true }]
            if l.state == LegState::Dropped && extension == "2001"),
        "{events:?}"
    );
}

/// Asterisk 22 escapes quotes in a VarSet value (seen with an IVR setting SAP_CAD to an
/// ItemAttachedData document): the call attribute is the document as set.
#[test]
fn call_data_from_the_pbx_loses_asterisks_escapes() {
    let mut m = bridged_call();
    ami(
        &mut m,
        r#"Event: VarSet|Channel: PJSIP/2003-00000001|Variable: __SAP_CAD|Value: <A id=\"IVR\">x\\y</A>|Uniqueid: 1.1|Linkedid: 1.1|"#,
    );
    let events = m.apply(&Message::parse("Event: Hold\r\nUniqueid: 1.2\r\n"));
    let [SwitchEvent::Leg(leg)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        leg.attributes.get("Sap_Cad"),
        Some(r#"<A id="IVR">x\y</A>"#)
    );
}
