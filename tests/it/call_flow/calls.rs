//! Calls from ringing to their end: an ACD call through consultation, conference and
//! transfer; an internal call shared by two agents; outbound dials and items.

use super::*;

/// An inbound ACD call from the IVR through accept, hold, consultation, conference, drop
/// party and blind transfer, as the two agents' IC sessions see it.
///
/// What SAP sees around the consultation is a product choice, fixed here:
/// - `consult` holds the customer's call (A1: `held`) and places a new internal call
///   (A1: `dialing`, A2: `alerting`); its id is the answer. The consultation call inherits
///   the customer's attached data, so A2's IC pops the customer's account before it
///   answers (the vendor's "warm transfer screen pop").
/// - `conference` ends the consultation call for both agents (`dropped`, reason
///   `conferenced`) and puts both on the customer's call (`conferenced`); A2 sees the
///   customer's call for the first time then, with the IVR's attached data, so its IC can
///   show the customer's account.
/// - `dropParty` of A2 leaves A1 `connected` with the customer; A2's leg is `dropped`.
/// - `transfer` ends A1's leg as `transferred`; the call alerts at the destination with the
///   same call id and the attached data SAP last set (the screen follows the call).
#[tokio::test]
async fn inbound_acd_call_from_alerting_to_transfer() {
    let server = TestServer::start(BASE).await;
    let mut a1 = login(&server, "A1", "2001", 2).await;
    // Not ready: the queue must offer the call to A1; 2002 still rings for direct calls.
    let mut a2 = login(&server, "A2", "2002", 3).await;

    let call = ring(
        &server,
        json!({"from": "sip:555@example.com", "queue": "support",
               "attributes": {"Sap_Cad": ivr_cad()}}),
    )
    .await;

    // Alerting, with the caller normalised for SAP's account lookup and the raw value beside.
    let (event, pc) = a1.call_event(&call, "alerting").await;
    assert_eq!(text_of(&pc, "direction"), "inbound");
    assert_eq!(text_of(&pc, "remoteAddress"), "+555");
    assert_eq!(text_of(&pc, "remoteAddressRaw"), "sip:555@example.com");
    assert_eq!(text_of(&pc, "dialedAddress"), "+600");
    assert_eq!(text_of(&pc, "dialedAddressRaw"), "600");
    assert_eq!(text_of(&pc, "queue"), "support");
    assert_eq!(parties(&pc), ["+555"]);
    // The IVR's data rides on the first event, in the call and as the event parameter.
    assert_eq!(text_of(&pc, "attachedData"), ivr_cad());
    let request = parse_request(event.body.as_bytes()).unwrap();
    assert_eq!(text_of(&request.operation, "attachedData"), ivr_cad());

    // getCalls and getPhoneCallAttributes agree with the event.
    let calls = get_calls(&server, "2001").await;
    assert_eq!(calls.len(), 1);
    assert_eq!(text_of(&calls[0], "callId"), call);
    assert_eq!(text_of(&calls[0], "state"), "alerting");
    let attrs = a1
        .op(
            &server,
            "PhoneCall",
            "getPhoneCallAttributes",
            &[("callId", &call)],
        )
        .await;
    assert_eq!(text_of(attrs.ret(), "remoteAddress"), "+555");
    assert_eq!(
        text_of(attrs.ret(), "remoteAddressRaw"),
        "sip:555@example.com"
    );
    assert_eq!(text_of(attrs.ret(), "userId"), "A1");
    // getCalls by user id works too.
    assert_eq!(call_ids(&server, "A1").await, vec![call.clone()]);

    // Attached data: SAP adds its application, replaces the IVR's, then deletes its own.
    assert_eq!(attached(&server, &call).await, ivr_cad());
    let sap_app = r#"<Application id="SAP-IC"><CRM_IC><BUPA>0815</BUPA></CRM_IC></Application>"#;
    let new_ivr = r#"<Application id="IVR"><pin>1234</pin></Application>"#;
    a1.op(
        &server,
        "Item",
        "setAttachedData",
        &[
            ("itemId", &call),
            (
                "attachedData",
                &format!("<ItemAttachedData>{sap_app}</ItemAttachedData>"),
            ),
        ],
    )
    .await
    .ok();
    assert_eq!(
        attached(&server, &call).await,
        format!("<ItemAttachedData>{IVR}{sap_app}</ItemAttachedData>")
    );
    a1.op(
        &server,
        "Item",
        "setAttachedData",
        &[
            ("itemId", &call),
            (
                "attachedData",
                &format!("<ItemAttachedData>{new_ivr}</ItemAttachedData>"),
            ),
        ],
    )
    .await
    .ok();
    let both = format!("<ItemAttachedData>{new_ivr}{sap_app}</ItemAttachedData>");
    assert_eq!(attached(&server, &call).await, both);
    a1.op(
        &server,
        "Item",
        "deleteAttachedData",
        &[
            ("itemId", &call),
            (
                "attachedData",
                r#"<ItemAttachedData><Application id="SAP-IC"/></ItemAttachedData>"#,
            ),
        ],
    )
    .await
    .ok();
    let ivr_only = format!("<ItemAttachedData>{new_ivr}</ItemAttachedData>");
    assert_eq!(attached(&server, &call).await, ivr_only);

    // Accept, hold, unhold.
    a1.op(&server, "Item", "accept", &[("itemId", &call)])
        .await
        .ok();
    let (_, pc) = a1.call_event(&call, "connected").await;
    assert_eq!(text_of(&pc, "attachedData"), ivr_only);
    a1.op(&server, "PhoneCall", "hold", &[("callId", &call)])
        .await
        .ok();
    a1.call_event(&call, "held").await;
    a1.op(&server, "PhoneCall", "unhold", &[("callId", &call)])
        .await
        .ok();
    a1.call_event(&call, "connected").await;
    assert_eq!(call_state(&server, &call).await, "connected");

    // Consultation with A2.
    let answer = a1
        .op(
            &server,
            "PhoneCall",
            "consult",
            &[("callId", &call), ("address", "2002")],
        )
        .await;
    let consult = answer.ret().text.to_string();
    assert_ne!(consult, call);
    a1.call_event(&call, "held").await;
    let (_, pc) = a1.call_event(&consult, "dialing").await;
    assert_eq!(text_of(&pc, "direction"), "internal");
    assert_eq!(text_of(&pc, "remoteAddress"), "+2002");
    let (_, pc) = a2.call_event(&consult, "alerting").await;
    assert_eq!(text_of(&pc, "direction"), "internal");
    assert_eq!(text_of(&pc, "remoteAddressRaw"), "2001");
    // Warm transfer screen pop: the consultation call inherits the customer's data.
    assert_eq!(text_of(&pc, "attachedData"), ivr_only);
    assert_eq!(attached(&server, &consult).await, ivr_only);
    assert_eq!(
        call_ids(&server, "2001").await,
        [call.clone(), consult.clone()]
    );

    // A2 answers the consultation call (the user header picks A2's leg of the shared id).
    a2.op(&server, "Item", "accept", &[("itemId", &consult)])
        .await
        .ok();
    a1.call_event(&consult, "connected").await;
    a2.call_event(&consult, "connected").await;

    // Conference: the consultation call ends, both agents are on the customer's call.
    a1.op(
        &server,
        "PhoneCall",
        "conference",
        &[("callId", &call), ("consultCallId", &consult)],
    )
    .await
    .ok();
    let (_, pc) = a1.call_event(&consult, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "conferenced");
    let (_, pc) = a1.call_event(&call, "conferenced").await;
    assert_eq!(parties(&pc), ["+555", "+2002"]);
    let (_, pc) = a2.call_event(&consult, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "conferenced");
    let (_, pc) = a2.call_event(&call, "conferenced").await;
    assert_eq!(parties(&pc), ["+555", "+2001"]);
    assert_eq!(text_of(&pc, "remoteAddress"), "+555");
    assert_eq!(text_of(&pc, "attachedData"), ivr_only);
    assert_eq!(call_ids(&server, "2001").await, vec![call.clone()]);
    assert_eq!(call_ids(&server, "2002").await, vec![call.clone()]);

    // A1 drops A2 from the conference.
    a1.op(
        &server,
        "PhoneCall",
        "dropParty",
        &[("callId", &call), ("address", "2002")],
    )
    .await
    .ok();
    a2.call_event(&call, "dropped").await;
    let (_, pc) = a1.call_event(&call, "connected").await;
    assert_eq!(parties(&pc), ["+555"]);
    assert!(call_ids(&server, "2002").await.is_empty());

    // SAP stores its data, then A1 transfers the customer blind to A2.
    a1.op(
        &server,
        "Item",
        "setAttachedData",
        &[
            ("itemId", &call),
            (
                "attachedData",
                &format!("<ItemAttachedData>{sap_app}</ItemAttachedData>"),
            ),
        ],
    )
    .await
    .ok();
    a1.op(
        &server,
        "PhoneCall",
        "transfer",
        &[("callId", &call), ("address", "2002")],
    )
    .await
    .ok();
    let (_, pc) = a1.call_event(&call, "transferred").await;
    assert_eq!(text_of(&pc, "reason"), "transferred");
    let (_, pc) = a2.call_event(&call, "alerting").await;
    assert_eq!(text_of(&pc, "remoteAddress"), "+555");
    assert_eq!(text_of(&pc, "attachedData"), both);
    assert!(call_ids(&server, "2001").await.is_empty());
    assert_eq!(call_ids(&server, "2002").await, vec![call.clone()]);

    // A2 takes it; the customer hangs up.
    a2.op(&server, "Item", "accept", &[("itemId", &call)])
        .await
        .ok();
    a2.call_event(&call, "connected").await;
    sim(
        &server,
        "POST",
        &format!("/calls/{call}/hangup"),
        Value::Null,
    )
    .await;
    let (_, pc) = a2.call_event(&call, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "remote_hangup");
    assert!(call_ids(&server, "2002").await.is_empty());
    // The call is gone: its id and its data are unknown now.
    fault(
        &server
            .call("PhoneCall", "getPhoneCallAttributes", &[("callId", &call)])
            .await,
        "unknown call",
    );
    fault(
        &server
            .call("Item", "getAttachedData", &[("itemId", &call)])
            .await,
        "unknown item",
    );
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// An internal call shares one call id between two agents. Without SAP's `user` header the
/// connector picks the leg the operation fits (accept: the alerting one). In a conference
/// an agent may drop itself with `dropParty` (the vendor's rule): the others stay.
#[tokio::test]
async fn internal_call_without_user_header_and_leaving_a_conference() {
    let server = TestServer::start(BASE).await;
    let mut a1 = login(&server, "A1", "2001", 3).await;
    let mut a2 = login(&server, "A2", "2002", 3).await;

    let customer = ring(&server, json!({"from": "+4930123456", "to": "2001"})).await;
    a1.call_event(&customer, "alerting").await;
    server
        .call("Item", "accept", &[("itemId", &customer)])
        .await
        .ok();
    a1.call_event(&customer, "connected").await;
    let consult = server
        .call(
            "PhoneCall",
            "consult",
            &[("callId", &customer), ("address", "2002")],
        )
        .await
        .ret()
        .text
        .clone();
    a1.call_event(&customer, "held").await;
    a1.call_event(&consult, "dialing").await;
    a2.call_event(&consult, "alerting").await;
    // No user header: A1's leg is dialing, A2's alerting; accept means A2's.
    server
        .call("Item", "accept", &[("itemId", &consult)])
        .await
        .ok();
    a1.call_event(&consult, "connected").await;
    a2.call_event(&consult, "connected").await;
    server
        .call(
            "PhoneCall",
            "conference",
            &[("callId", &customer), ("consultCallId", &consult)],
        )
        .await
        .ok();
    a1.call_event(&consult, "dropped").await;
    a1.call_event(&customer, "conferenced").await;
    a2.call_event(&consult, "dropped").await;
    a2.call_event(&customer, "conferenced").await;

    // A1 leaves with dropParty of its own address: A2 stays with the customer.
    a1.op(
        &server,
        "PhoneCall",
        "dropParty",
        &[("callId", &customer), ("address", "2001")],
    )
    .await
    .ok();
    let (_, pc) = a1.call_event(&customer, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "normal");
    let (_, pc) = a2.call_event(&customer, "connected").await;
    assert_eq!(parties(&pc), ["+4930123456"]);
    assert_eq!(text_of(&pc, "remoteAddress"), "+4930123456");
    assert!(call_ids(&server, "2001").await.is_empty());
    assert_eq!(call_ids(&server, "2002").await, vec![customer.clone()]);
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// `dial` with an E.164 number: the switch gets it without `+` (`reformat_make_call`); SAP
/// sees dialing, then connected once the far end answers. An item created first carries its
/// attached data onto the call placed for it.
#[tokio::test]
async fn outbound_dial_reformats_the_number_and_items_carry_data() {
    let server =
        TestServer::start(&format!("{BASE}\n[numbers]\nreformat_make_call = true\n")).await;
    let mut a1 = login(&server, "A1", "2001", 3).await;

    let answer = a1
        .op(
            &server,
            "PhoneCall",
            "dial",
            &[("userId", "A1"), ("address", "+13172222222")],
        )
        .await;
    let call = answer.ret().text.to_string();
    assert_eq!(
        sim_agent(&server, "2001").await["lastDialled"],
        "13172222222"
    );
    let (_, pc) = a1.call_event(&call, "dialing").await;
    assert_eq!(text_of(&pc, "direction"), "outbound");
    assert_eq!(text_of(&pc, "remoteAddress"), "+13172222222");
    assert_eq!(text_of(&pc, "remoteAddressRaw"), "13172222222");
    assert_eq!(opt_text(&pc, "attachedData"), None);
    sim(
        &server,
        "POST",
        &format!("/calls/{call}/answer"),
        Value::Null,
    )
    .await;
    a1.call_event(&call, "connected").await;
    a1.op(&server, "PhoneCall", "drop", &[("callId", &call)])
        .await
        .ok();
    let (_, pc) = a1.call_event(&call, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "normal");

    // create → setAttachedData on the item → dial(itemId): the data is on the new call.
    let item = a1
        .op(&server, "Item", "create", &[("containerId", "2001")])
        .await
        .ret()
        .text
        .clone();
    a1.op(
        &server,
        "Item",
        "setAttachedData",
        &[("itemId", &item), ("attachedData", &ivr_cad())],
    )
    .await
    .ok();
    assert_eq!(attached(&server, &item).await, ivr_cad());
    let answer = a1
        .op(
            &server,
            "PhoneCall",
            "dial",
            &[
                ("containerId", "2001"),
                ("address", "+4930123456"),
                ("itemId", &item),
            ],
        )
        .await;
    let call = answer.ret().text.to_string();
    assert_eq!(
        sim_agent(&server, "2001").await["lastDialled"],
        "4930123456"
    );
    let (_, pc) = a1.call_event(&call, "dialing").await;
    assert_eq!(text_of(&pc, "attachedData"), ivr_cad());
    // The item id keeps working for the call.
    assert_eq!(attached(&server, &call).await, ivr_cad());
    assert_eq!(attached(&server, &item).await, ivr_cad());
    assert_eq!(
        text_of(
            server
                .call("PhoneCall", "getPhoneCallAttributes", &[("callId", &item)])
                .await
                .ret(),
            "callId"
        ),
        call
    );
    sim(
        &server,
        "POST",
        &format!("/calls/{call}/answer"),
        Value::Null,
    )
    .await;
    let (_, pc) = a1.call_event(&call, "connected").await;
    assert_eq!(text_of(&pc, "attachedData"), ivr_cad());
    a1.assert_quiet();
    server.stop().await;
}
