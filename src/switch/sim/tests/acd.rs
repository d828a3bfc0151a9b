//! ACD: who is offered a waiting call, queue membership, reroute, dialling into a queue.

use std::collections::BTreeMap;

use super::*;

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

/// After an answered call of a queue with wrap-up time the agent is in wrap-up: no queue
/// call is offered until the time is over (tokio's paused clock moves it), then the
/// waiting call rings. A state set during wrap-up ends it.
#[tokio::test(start_paused = true)]
async fn wrap_up_after_an_acd_call() {
    let mut settings = settings();
    settings.queues[0].wrap_up = Some(Duration::from_secs(30));
    let mut h = harness(settings);
    h.state("100", AgentState::Ready).await;
    h.drain();
    let first = h.inbound("+4930", None, Some("sales")).await;
    h.ok(C::Answer {
        call: first.clone(),
        extension: "100".into(),
    })
    .await;
    h.drain();
    h.control.remote_hangup(&first).await.unwrap();
    assert_eq!(
        h.drain_short(),
        [
            format!("{first}@100 dropped(remote_hangup)"),
            "WrapUp { extension: \"100\", active: true }".to_string(),
        ]
    );
    let second = h.inbound("+4931", None, Some("sales")).await;
    assert!(h.drain().is_empty(), "no offer during wrap-up");
    tokio::time::sleep(Duration::from_secs(31)).await;
    // The end of wrap-up and the offer come from the timer: ask the actor for anything
    // to be sure it ran.
    h.control.list_agents().await;
    assert_eq!(
        h.drain_short(),
        [
            "WrapUp { extension: \"100\", active: false }".to_string(),
            format!("{second}@100 alerting"),
        ]
    );
    h.ok(C::Answer {
        call: second.clone(),
        extension: "100".into(),
    })
    .await;
    h.ok(C::Clear {
        call: second.clone(),
        extension: "100".into(),
    })
    .await;
    h.drain();
    // Ready again during wrap-up: its end, and the agent takes calls at once.
    h.state("100", AgentState::Ready).await;
    assert_eq!(
        h.drain_short(),
        ["WrapUp { extension: \"100\", active: false }"]
    );
    let third = h.inbound("+4932", None, Some("sales")).await;
    assert_eq!(h.drain_short(), [format!("{third}@100 alerting")]);
}
