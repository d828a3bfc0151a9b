//! Requests that make no sense for the state of the agent or the call: Client faults that
//! change nothing.

use super::*;

/// Requests that make no sense for the state of the agent or the call: a Client fault each,
/// and no state changes (no event, getCalls and getPhoneCallAttributes unchanged).
#[tokio::test]
async fn domain_errors_are_client_faults_and_change_nothing() {
    let config = format!(
        "{BASE}\n[agents]\naccept_unlisted_users = false\n\n[agents.users]\nA1 = {{ extension = \"2001\" }}\n"
    );
    let server = TestServer::start(&config).await;

    // Unknown users, whatever they ask.
    for (interface, op, pairs) in [
        ("User", "getAttributes", vec![("userId", "NOBODY")]),
        (
            "User",
            "setCurrentWorkmode",
            vec![("userId", "NOBODY"), ("workmode", "2")],
        ),
        (
            "User",
            "subscribeUser",
            vec![
                ("userId", "NOBODY"),
                ("appURL", "http://127.0.0.1:9/x"),
                ("appId", "x"),
            ],
        ),
        (
            "PhoneCall",
            "dial",
            vec![("userId", "NOBODY"), ("address", "4711")],
        ),
    ] {
        fault(&server.call(interface, op, &pairs).await, "unknown user");
    }
    assert!(
        status(&server).await["subscriptions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The listed user works with its static extension, no setAddresses needed.
    let fake = FakeSap::start().await;
    let mut a1 = Sap {
        user: "A1".into(),
        extension: "2001".into(),
        fake,
        sequence: 0,
    };
    let attributes = a1
        .op(&server, "User", "getAttributes", &[("userId", "A1")])
        .await;
    assert_eq!(
        attributes.ret().child("addresses").unwrap().children[0].text,
        "2001"
    );
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;

    fault(
        &a1.op(&server, "PhoneCall", "hold", &[("callId", "sim-999")])
            .await,
        "unknown call",
    );
    fault(
        &a1.op(&server, "Item", "accept", &[("itemId", "nonsense")])
            .await,
        "unknown call",
    );

    let call = ring(&server, json!({"from": "4711", "to": "2001"})).await;
    a1.call_event(&call, "alerting").await;
    // Hold of an alerting call, transfer of an alerting call.
    fault(
        &a1.op(&server, "PhoneCall", "hold", &[("callId", &call)])
            .await,
        "invalid call state",
    );
    a1.op(&server, "Item", "accept", &[("itemId", &call)])
        .await
        .ok();
    a1.call_event(&call, "connected").await;
    // Accept of a connected call.
    fault(
        &a1.op(&server, "Item", "accept", &[("itemId", &call)]).await,
        "invalid call state",
    );
    assert_eq!(call_state(&server, &call).await, "connected");
    a1.op(&server, "PhoneCall", "hold", &[("callId", &call)])
        .await
        .ok();
    a1.call_event(&call, "held").await;
    // Hold of a held call; unhold is the way back.
    fault(
        &a1.op(&server, "PhoneCall", "hold", &[("callId", &call)])
            .await,
        "invalid call state",
    );
    assert_eq!(call_state(&server, &call).await, "held");
    // A transfer to nowhere and a dropParty on a two-party call.
    fault(
        &a1.op(
            &server,
            "PhoneCall",
            "transfer",
            &[("callId", &call), ("address", "20 02")],
        )
        .await,
        "invalid address",
    );
    fault(
        &a1.op(
            &server,
            "PhoneCall",
            "dropParty",
            &[("callId", &call), ("address", "4711")],
        )
        .await,
        "invalid call state",
    );
    assert_eq!(call_state(&server, &call).await, "held");
    assert_eq!(call_ids(&server, "2001").await, vec![call.clone()]);

    // The caller hangs up; a transfer (or hold) of the dropped call is refused.
    sim(
        &server,
        "POST",
        &format!("/calls/{call}/hangup"),
        Value::Null,
    )
    .await;
    a1.call_event(&call, "dropped").await;
    fault(
        &a1.op(
            &server,
            "PhoneCall",
            "transfer",
            &[("callId", &call), ("address", "2002")],
        )
        .await,
        "unknown call",
    );
    fault(
        &a1.op(&server, "PhoneCall", "unhold", &[("callId", &call)])
            .await,
        "unknown call",
    );
    assert!(call_ids(&server, "2001").await.is_empty());
    assert!(
        sim(&server, "GET", "/calls", Value::Null).await["calls"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Nothing above produced an event: the next one continues the sequence.
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "ready"}),
    )
    .await;
    a1.workmode_event(2, None).await;
    a1.assert_quiet();
    server.stop().await;
}

/// A user who never named an address cannot dial or change workmode: "no address".
#[tokio::test]
async fn dial_without_an_address_is_refused() {
    let server = TestServer::start(BASE).await;
    server
        .call("User", "getAttributes", &[("userId", "A9")])
        .await
        .ok();
    fault(
        &server
            .call(
                "PhoneCall",
                "dial",
                &[("userId", "A9"), ("address", "4711")],
            )
            .await,
        "no address",
    );
    fault(
        &server
            .call(
                "User",
                "setCurrentWorkmode",
                &[("userId", "A9"), ("workmode", "2")],
            )
            .await,
        "no address",
    );
    let calls = sim(&server, "GET", "/calls", Value::Null).await;
    assert!(calls["calls"].as_array().unwrap().is_empty(), "{calls}");
    server.stop().await;
}
