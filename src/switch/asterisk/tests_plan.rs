//! Command plans: which AMI actions a command becomes on a given picture of the PBX, and
//! what the command waits for before it is answered.

use super::actor::plan::{Planner, Waiter};
use super::codec::{Action, Message};
use super::model::Model;
use crate::config::AsteriskConfig;
use crate::switch::{Capability, SwitchCommand, SwitchError, SwitchReply};

fn config(extra: &str) -> AsteriskConfig {
    toml::from_str(&format!(
        "host = \"pbx\"\nusername = \"u\"\nsecret = \"s\"\n{extra}"
    ))
    .unwrap()
}

fn apply(m: &mut Model, text: &str) {
    m.apply(&Message::parse(&text.replace('|', "\r\n")));
}

/// Customer 2003 (1.1) and agent 2001 (1.2) bridged in b1.
fn bridged() -> Model {
    let mut m = Model::new("PJSIP/{extension}", vec![]);
    for (id, name) in [
        ("1.1", "PJSIP/2003-00000001"),
        ("1.2", "PJSIP/2001-00000002"),
    ] {
        apply(
            &mut m,
            &format!(
                "Event: Newchannel|Channel: {name}|Uniqueid: {id}|Linkedid: 1.1|ChannelState: 6|CallerIDNum: 2003|Exten: 600|"
            ),
        );
        apply(
            &mut m,
            &format!("Event: BridgeEnter|Uniqueid: {id}|BridgeUniqueid: b1|"),
        );
    }
    m
}

/// Plans `command`: (actions as `Name Key=Value ...`, reply, waiter).
fn plan(
    config: &AsteriskConfig,
    m: &mut Model,
    command: SwitchCommand,
) -> Result<(Vec<String>, SwitchReply, Option<Waiter>), SwitchError> {
    let mut originated = 0;
    let mut planner = Planner {
        config,
        originated: &mut originated,
        epoch: 7,
    };
    let (steps, reply, waiter) = planner.plan(command, m)?;
    let shown = steps.iter().map(|s| show(&s.action)).collect();
    Ok((shown, reply, waiter))
}

fn show(action: &Action) -> String {
    let mut out = action.name.to_owned();
    for (k, v) in &action.fields {
        out.push_str(&format!(" {k}={v}"));
    }
    out
}

fn hold() -> SwitchCommand {
    SwitchCommand::Hold {
        call: "1.1".into(),
        extension: "2001".into(),
    }
}

fn retrieve() -> SwitchCommand {
    SwitchCommand::Retrieve {
        call: "1.1".into(),
        extension: "2001".into(),
    }
}

#[test]
fn hold_redirects_both_parties_out_of_the_bridge_and_retrieve_bridges_them() {
    let c = config("");
    let mut m = bridged();
    let (actions, _, waiter) = plan(&c, &mut m, hold()).unwrap();
    assert_eq!(
        actions,
        [
            "Redirect Channel=PJSIP/2003-00000001 Context=ici-hold Exten=music Priority=1 \
          ExtraChannel=PJSIP/2001-00000002 ExtraContext=ici-hold ExtraExten=park ExtraPriority=1"
        ]
    );
    assert_eq!(waiter, Some(Waiter::Parked("1.2".into())));
    apply(
        &mut m,
        "Event: BridgeLeave|Uniqueid: 1.2|BridgeUniqueid: b1|",
    );
    // Held twice is a state error, not a second redirect.
    assert!(matches!(
        plan(&c, &mut m, hold()),
        Err(SwitchError::InvalidState(_))
    ));
    let (actions, _, waiter) = plan(&c, &mut m, retrieve()).unwrap();
    assert_eq!(
        actions,
        ["Bridge Channel1=PJSIP/2003-00000001 Channel2=PJSIP/2001-00000002 Tone=no"]
    );
    assert_eq!(waiter, Some(Waiter::Retrieved("1.2".into())));
}

#[test]
fn retrieve_of_a_talking_call_does_nothing_and_a_phone_hold_stays_the_phones() {
    let c = config("");
    let mut m = bridged();
    let (actions, reply, waiter) = plan(&c, &mut m, retrieve()).unwrap();
    assert!(actions.is_empty());
    assert_eq!((reply, waiter), (SwitchReply::Done, None));
    apply(&mut m, "Event: Hold|Uniqueid: 1.2|");
    let refused = plan(&c, &mut m, retrieve()).unwrap_err();
    assert!(refused.to_string().contains("on the phone"), "{refused}");
}

/// Right after the phone answered, Asterisk may not have bridged the two yet: the hold
/// still finds the other party.
#[test]
fn hold_right_after_the_answer_finds_the_other_party() {
    let c = config("");
    let mut m = ringing();
    apply(&mut m, "Event: Newstate|Uniqueid: 1.2|ChannelState: 6|");
    let (actions, ..) = plan(&c, &mut m, hold()).unwrap();
    assert!(
        actions[0].starts_with("Redirect Channel=PJSIP/2003-00000001 "),
        "{actions:?}"
    );
}

#[test]
fn hold_needs_a_two_party_bridge() {
    let c = config("");
    let mut m = bridged();
    apply(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2002-00000003|Uniqueid: 1.3|Linkedid: 1.1|ChannelState: 6|",
    );
    apply(
        &mut m,
        "Event: BridgeEnter|Uniqueid: 1.3|BridgeUniqueid: b1|",
    );
    assert!(matches!(
        plan(&c, &mut m, hold()),
        Err(SwitchError::InvalidState(_))
    ));
}

/// Ringing agent 2001 (1.2) on customer 2003's queue call.
fn ringing() -> Model {
    let mut m = Model::new("PJSIP/{extension}", vec![]);
    apply(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2003-00000001|Uniqueid: 1.1|Linkedid: 1.1|ChannelState: 6|CallerIDNum: 2003|Exten: 600|",
    );
    apply(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2001-00000002|Uniqueid: 1.2|Linkedid: 1.1|ChannelState: 5|",
    );
    m
}

#[test]
fn answer_sends_a_talk_notify_only_where_configured() {
    let answer = || SwitchCommand::Answer {
        call: "1.1".into(),
        extension: "2001".into(),
    };
    let mut m = ringing();
    assert_eq!(
        plan(&config(""), &mut m, answer()).unwrap_err(),
        SwitchError::NotSupported(Capability::Answer)
    );
    let notify = config("answer = \"phone\"\nanswer_by_extension = { \"2001\" = \"notify\" }");
    let (actions, _, waiter) = plan(&notify, &mut m, answer()).unwrap();
    assert_eq!(actions, ["PJSIPNotify Endpoint=2001 Variable=Event=talk"]);
    assert_eq!(waiter, Some(Waiter::Answered("1.2".into())));
    // Only a ringing phone is answered.
    let mut talking = bridged();
    assert!(matches!(
        plan(&notify, &mut talking, answer()),
        Err(SwitchError::InvalidState(_))
    ));
}

#[test]
fn capabilities_name_answer_only_when_some_phone_is_answered_by_notify() {
    let without = super::capabilities(&config(""));
    assert!(!without.contains(&Capability::Answer));
    for c in [
        Capability::Hold,
        Capability::Reroute,
        Capability::Listen,
        Capability::AttachData,
    ] {
        assert!(without.contains(&c), "{c}");
    }
    let with = super::capabilities(&config("answer = \"notify\""));
    assert!(with.contains(&Capability::Answer));
}

#[test]
fn dial_adds_auto_answer_headers_when_asked() {
    let dial = || SwitchCommand::MakeCall {
        extension: "2001".into(),
        destination: "2003".into(),
        correlation: "item-1".into(),
    };
    let mut m = Model::new("PJSIP/{extension}", vec![]);
    let (plain, ..) = plan(&config(""), &mut m, dial()).unwrap();
    assert!(!plain[0].contains("answer-after"), "{}", plain[0]);
    let (auto, ..) = plan(&config("auto_answer_on_dial = true"), &mut m, dial()).unwrap();
    assert!(
        auto[0].ends_with(
            "Variable=CTI_REF=item-1 \
             Variable=PJSIP_HEADER(add,Call-Info)=<sip:ici-connector>;answer-after=0 \
             Variable=PJSIP_HEADER(add,Alert-Info)=<http://localhost>;info=alert-autoanswer;delay=0"
        ),
        "{}",
        auto[0]
    );
}

#[test]
fn reroute_rejects_the_ring_and_the_queue_keeps_the_caller() {
    let reroute = || SwitchCommand::Reroute {
        call: "1.1".into(),
        extension: "2001".into(),
    };
    let mut m = ringing();
    let (actions, _, waiter) = plan(&config(""), &mut m, reroute()).unwrap();
    assert_eq!(actions, ["Hangup Channel=PJSIP/2001-00000002 Cause=21"]);
    assert_eq!(waiter, Some(Waiter::Left("1.2".into())));
    assert!(matches!(
        plan(&config(""), &mut bridged(), reroute()),
        Err(SwitchError::InvalidState(_))
    ));
}

#[test]
fn listen_originates_chanspy_on_the_agents_channel_and_listen_end_hangs_it_up() {
    let c = config("");
    let mut m = bridged();
    let listen = SwitchCommand::Listen {
        call: "1.1".into(),
        supervisor: "2009".into(),
    };
    let (actions, _, waiter) = plan(&c, &mut m, listen).unwrap();
    assert_eq!(
        actions,
        [
            "Originate Channel=PJSIP/2009 Application=ChanSpy Data=PJSIP/2001-00000002,qE \
          Async=true ChannelId=ici-spy-7-1"
        ]
    );
    assert_eq!(waiter, Some(Waiter::CallAppears("ici-spy-7-1".into())));
    apply(
        &mut m,
        "Event: Newchannel|Channel: PJSIP/2009-00000004|Uniqueid: ici-spy-7-1|Linkedid: ici-spy-7-1|ChannelState: 0|",
    );
    let end = SwitchCommand::ListenEnd {
        call: "1.1".into(),
        supervisor: "2009".into(),
    };
    let (actions, _, waiter) = plan(&c, &mut m, end).unwrap();
    assert_eq!(actions, ["Hangup Channel=PJSIP/2009-00000004 Cause=16"]);
    assert_eq!(waiter, Some(Waiter::Left("ici-spy-7-1".into())));
}

#[test]
fn attached_data_goes_to_the_callers_channel_as_an_inherited_variable() {
    let c = config("");
    let mut m = bridged();
    let set = |key: &str| SwitchCommand::SetCallData {
        call: "1.1".into(),
        key: key.into(),
        value: "<PIN>1234</PIN>".into(),
    };
    let (actions, ..) = plan(&c, &mut m, set("Sap_Cad")).unwrap();
    assert_eq!(
        actions,
        ["Setvar Channel=PJSIP/2003-00000001 Variable=__SAP_CAD Value=<PIN>1234</PIN>"]
    );
    assert!(matches!(
        plan(&c, &mut m, set("X,Y=1")),
        Err(SwitchError::Rejected(_))
    ));
}

/// The agent leaves the consultation alone first (Asterisk completes its attended
/// transfer: customer and consulted party bridged, nobody alone), and only once it is in
/// the conference do both others follow in one action. Every other order raced Asterisk's
/// attended transfer, which hung up the agent or the customer (seen under load).
#[test]
fn conference_moves_the_agent_first_and_the_others_once_it_is_in() {
    let c = config("");
    let mut m = bridged();
    m.expect_consult("1.1", "1.2", "2002");
    for (id, name, state) in [
        ("1.3", "Local/2002@ici-connector-00000000;1", 6),
        ("1.4", "Local/2002@ici-connector-00000000;2", 6),
        ("1.5", "PJSIP/2002-00000003", 6),
    ] {
        apply(
            &mut m,
            &format!(
                "Event: Newchannel|Channel: {name}|Uniqueid: {id}|Linkedid: 1.1|ChannelState: {state}|"
            ),
        );
    }
    let conference = SwitchCommand::Conference {
        held: "1.1".into(),
        consult: "1.3".into(),
        extension: "2001".into(),
    };
    let mut originated = 0;
    let mut planner = Planner {
        config: &c,
        originated: &mut originated,
        epoch: 7,
    };
    let (steps, _, waiter) = planner.plan(conference, &mut m).unwrap();
    let shown: Vec<String> = steps.iter().map(|s| show(&s.action)).collect();
    assert_eq!(
        shown,
        [
            "Redirect Channel=PJSIP/2001-00000002 Context=ici-conference Exten=c11 Priority=1",
            "Redirect Channel=PJSIP/2002-00000003 Context=ici-conference Exten=c11 Priority=1 \
             ExtraChannel=PJSIP/2003-00000001 ExtraContext=ici-conference ExtraExten=c11 \
             ExtraPriority=1",
        ]
    );
    assert_eq!(steps[0].after, None);
    assert_eq!(steps[1].after, Some(Waiter::Conferenced("1.2".into())));
    assert_eq!(waiter, Some(Waiter::Conferenced("1.2".into())));
}
