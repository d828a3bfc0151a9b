//! Plain calls: refused commands change nothing, an internal call end to end, call data.

use super::*;

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
