//! The adapter contract: events before the answer, a full queue answers `Unavailable`.

use super::*;

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
