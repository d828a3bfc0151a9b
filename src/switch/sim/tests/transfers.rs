//! Consultation, conference, drop party, consultation and blind transfers.

use super::*;

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

/// A consultation answered at 101 from 100, which holds `held`: the consultation call.
async fn consulting(h: &mut Harness, held: &str) -> String {
    let consult = h
        .new_call(C::Consult {
            call: held.to_owned(),
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
    consult
}

/// Alternate swaps the two legs; the warm transfer completes in the swapped order too, and
/// the held call's id survives at the consulted extension.
#[tokio::test]
async fn alternate_then_transfer_consult() {
    let mut h = harness(settings());
    let held = h.talking("+4930", "100").await;
    let consult = consulting(&mut h, &held).await;
    let alternate = C::Alternate {
        held: held.clone(),
        active: consult.clone(),
        extension: "100".into(),
    };
    h.ok(alternate.clone()).await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{consult}@100 held"),
            format!("{held}@100 connected")
        ]
    );
    // The roles are swapped now: the same alternate is refused.
    assert!(matches!(
        h.cmd(alternate).await,
        Err(SwitchError::InvalidState(_))
    ));
    h.ok(C::TransferConsult {
        held: held.clone(),
        consult: consult.clone(),
        extension: "100".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{held}@100 transferred(transferred)"),
            format!("{consult}@100 transferred(transferred)"),
            format!("{consult}@101 dropped(transferred)"),
            format!("{held}@101 connected"),
        ]
    );
    let calls = h.control.list_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, held);
}

/// Reconnect ends the consultation, also before the consulted party answered, and takes
/// the held call back; with the customer already connected (after an alternate) it only
/// ends the consultation.
#[tokio::test]
async fn reconnect_before_and_after_the_answer() {
    let mut h = harness(settings());
    let held = h.talking("+4930", "100").await;
    let ringing = h
        .new_call(C::Consult {
            call: held.clone(),
            extension: "100".into(),
            destination: "101".into(),
        })
        .await;
    h.drain();
    h.ok(C::Reconnect {
        held: held.clone(),
        consult: ringing.clone(),
        extension: "100".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{ringing}@100 dropped(normal)"),
            format!("{ringing}@101 dropped(abandoned)"),
            format!("{held}@100 connected"),
        ]
    );

    let consult = consulting(&mut h, &held).await;
    h.ok(C::Alternate {
        held: held.clone(),
        active: consult.clone(),
        extension: "100".into(),
    })
    .await;
    h.drain();
    h.ok(C::Reconnect {
        held: held.clone(),
        consult: consult.clone(),
        extension: "100".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{consult}@100 dropped(normal)"),
            format!("{consult}@101 dropped(remote_hangup)"),
        ]
    );
}

/// Call data set on a call replaces the IVR's (whatever the case of its name) and rides on
/// to a consultation placed from it.
#[tokio::test]
async fn consultation_inherits_the_attached_data() {
    let mut h = harness(settings());
    let held = h
        .control
        .create_call(CreateCall {
            from: "+4930".into(),
            to: Some("100".into()),
            attributes: [("SAP_CAD".to_string(), "<ivr/>".to_string())].into(),
            ..CreateCall::default()
        })
        .await
        .unwrap();
    h.ok(C::Answer {
        call: held.clone(),
        extension: "100".into(),
    })
    .await;
    h.ok(C::SetCallData {
        call: held.clone(),
        key: crate::switch::ATTACHED_DATA_ATTRIBUTE.into(),
        value: "<ItemAttachedData/>".into(),
    })
    .await;
    let consult = consulting(&mut h, &held).await;
    let calls = h.control.list_calls().await;
    for call in [&held, &consult] {
        let view = calls.iter().find(|c| c.id == *call).unwrap();
        assert_eq!(
            view.attributes.get("SAP_CAD"),
            Some(&"<ItemAttachedData/>".to_string()),
            "{call}"
        );
        assert!(!view.attributes.contains_key("Sap_Cad"), "{call}");
    }
}

/// Conference after an alternate (the consultation held, the customer connected): the
/// customer's call survives with all three.
#[tokio::test]
async fn conference_after_alternate() {
    let mut h = harness(settings());
    let held = h.talking("+4930", "100").await;
    let consult = consulting(&mut h, &held).await;
    h.ok(C::Alternate {
        held: held.clone(),
        active: consult.clone(),
        extension: "100".into(),
    })
    .await;
    h.drain();
    h.ok(C::Conference {
        held: held.clone(),
        consult: consult.clone(),
        extension: "100".into(),
    })
    .await;
    assert_eq!(
        h.drain_short(),
        [
            format!("{consult}@100 dropped(conferenced)"),
            format!("{consult}@101 dropped(conferenced)"),
            format!("{held}@100 conferenced"),
            format!("{held}@101 conferenced"),
        ]
    );
}
