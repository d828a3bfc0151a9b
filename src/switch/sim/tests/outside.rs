//! The outside world: abandoned calls, remote parties answering on a timer or when told.

use std::time::Duration;

use super::*;

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

/// The link drops: `LinkDown`, commands refused, nothing reported while the switch goes on.
/// Back up: every agent's state, then `LinkUp` with the live legs only.
#[tokio::test]
async fn the_link_drops_and_comes_back_with_the_switch_as_it_is_then() {
    let mut h = harness(settings());
    let ended = h.talking("+1", "100").await;
    let lasting = h.talking("+2", "101").await;
    let down = LinkChange::Down {
        reason: "maintenance".into(),
    };
    h.control.set_link(down.clone()).await.unwrap();
    assert_eq!(h.drain_short(), ["LinkDown { reason: \"maintenance\" }"]);
    h.control.set_link(down).await.unwrap();
    assert!(h.drain().is_empty(), "already down: nothing new");

    let refused = h
        .cmd(C::Hold {
            call: lasting.clone(),
            extension: "101".into(),
        })
        .await;
    assert!(
        matches!(refused, Err(SwitchError::Unavailable(_))),
        "{refused:?}"
    );
    h.control.remote_hangup(&ended).await.unwrap();
    h.control
        .set_agent_state("102", AgentState::Ready)
        .await
        .unwrap();
    assert!(h.drain().is_empty(), "nothing is reported while down");

    h.control.set_link(LinkChange::Up).await.unwrap();
    let events = h.drain();
    let (last, agents) = events.split_last().unwrap();
    assert_eq!(
        agents.iter().map(short).collect::<Vec<_>>(),
        [
            "agent 100 LoggedOut",
            "agent 101 LoggedOut",
            "agent 102 Ready",
            "agent 200 LoggedOut"
        ]
    );
    let SwitchEvent::LinkUp { calls } = last else {
        panic!("LinkUp last, got {last:?}");
    };
    let legs: Vec<(&str, &str, LegState)> = calls
        .iter()
        .map(|l| (l.call.as_str(), l.extension.as_str(), l.state))
        .collect();
    assert_eq!(legs, [(lasting.as_str(), "101", LegState::Connected)]);
    h.ok(C::Hold {
        call: lasting,
        extension: "101".into(),
    })
    .await;
}
