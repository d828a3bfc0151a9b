//! Call flows end to end over real HTTP both ways: SAP's SOAP requests to the connector,
//! the built-in simulator driven through its control API (`/sim` on the admin listener),
//! and the events the connector pushes to fake SAP receivers. Every event of a subscription
//! is checked in order, with gapless sequence numbers; nothing waits on a clock.

use crate::common;

use std::time::Duration;

use common::fake_sap::{FakeSap, Mode, Received, WAIT};
use common::server::{SoapAnswer, TestServer, envelope, envelope_as, ns, params, text_of};
use ici_connector::soap::{Element, parse_request};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The simulator with three extensions and the `support` queue on 600; remote parties
/// answer only when told to; event retries are quick so a recovering SAP is seen soon.
const BASE: &str = r#"
[switch.sim]
extensions = ["2001", "2002", "2003"]
remote_answer_after = "off"

[[switch.sim.queue]]
name = "support"
number = "600"

[events]
retry_min = "10ms"
retry_max = "50ms"
"#;

const IVR: &str = r#"<Application id="IVR"><CRM_IC><BUPA>4711</BUPA></CRM_IC></Application>"#;

fn ivr_cad() -> String {
    format!("<ItemAttachedData>{IVR}</ItemAttachedData>")
}

async fn call_as(
    server: &TestServer,
    user: &str,
    interface: &str,
    op: &str,
    pairs: &[(&str, &str)],
) -> SoapAnswer {
    server
        .post(envelope_as(user, interface, op, &params(pairs)))
        .await
}

async fn sim(server: &TestServer, method: &str, path: &str, body: Value) -> Value {
    let (status, value) = server.sim(method, path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} /sim{path}: {status} {value}"
    );
    value
}

/// A caller rings in; returns the call id.
async fn ring(server: &TestServer, body: Value) -> String {
    let value = sim(server, "POST", "/calls", body).await;
    value["callId"].as_str().expect("callId").to_string()
}

async fn sim_agent(server: &TestServer, extension: &str) -> Value {
    let agents = sim(server, "GET", "/agents", Value::Null).await;
    agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["extension"] == extension)
        .cloned()
        .unwrap_or_else(|| panic!("no sim agent {extension} in {agents}"))
}

async fn status(server: &TestServer) -> Value {
    let answer = server.request(true, "GET", "/api/status", &[], "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

/// The app URLs of the live subscriptions.
async fn subscription_urls(server: &TestServer) -> Vec<String> {
    let status = status(server).await;
    status["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["app_url"].as_str().unwrap().to_string())
        .collect()
}

/// Waits for something only the status page shows (the end of a subscription after SAP's
/// 401 travels back from the notifier).
async fn wait_for_status(server: &TestServer, what: &str, mut ok: impl FnMut(&Value) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = status(server).await;
        if ok(&status) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {WAIT:?}: {what}; status {status}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn fault(answer: &SoapAnswer, string: &str) {
    let (code, text) = answer.fault();
    assert_eq!(code, "SOAP-ENV:Client", "{}", answer.body);
    assert_eq!(text, string, "{}", answer.body);
}

/// The `phoneCall` structure of a `phoneCallChanged` event (or a `return`).
fn phone_call(event: &Received) -> Element {
    let request = parse_request(event.body.as_bytes()).expect("event is a SOAP envelope");
    request
        .operation
        .child("phoneCall")
        .unwrap_or_else(|| panic!("no phoneCall in {}", event.body))
        .clone()
}

fn parties(call: &Element) -> Vec<String> {
    call.child("parties")
        .map(|p| p.children.iter().map(|c| c.text.to_string()).collect())
        .unwrap_or_default()
}

fn opt_text(element: &Element, name: &str) -> Option<String> {
    element
        .child(name)
        .filter(|e| !e.nil)
        .map(|e| e.text.to_string())
}

/// One SAP IC session: an agent logged in with one subscription to its own fake receiver.
struct Sap {
    user: String,
    extension: String,
    fake: FakeSap,
    /// The last sequence number received.
    sequence: u64,
}

impl Sap {
    fn app_id(&self) -> String {
        format!("app-{}", self.user)
    }

    /// The next event: it must continue the subscription's sequence without a gap.
    async fn next(&mut self) -> Received {
        let event = self.fake.next_event().await;
        self.sequence += 1;
        assert_eq!(
            event.sequence,
            Some(self.sequence),
            "{}: gapless sequence expected: {}",
            self.user,
            event.body
        );
        assert_eq!(event.app_ids, [self.app_id()], "{}", event.body);
        event
    }

    /// The next event must be `phoneCallChanged` for `call` in `state`; returns the call.
    async fn call_event(&mut self, call: &str, state: &str) -> (Received, Element) {
        let event = self.next().await;
        assert_eq!(
            event.name, "phoneCallChanged",
            "{}: {}",
            self.user, event.body
        );
        let pc = phone_call(&event);
        assert_eq!(
            text_of(&pc, "callId"),
            call,
            "{}: {}",
            self.user,
            event.body
        );
        assert_eq!(
            text_of(&pc, "state"),
            state,
            "{}: {}",
            self.user,
            event.body
        );
        assert_eq!(text_of(&pc, "userId"), self.user, "{}", event.body);
        assert_eq!(
            text_of(&pc, "containerId"),
            self.extension,
            "{}",
            event.body
        );
        (event, pc)
    }

    async fn workmode_event(&mut self, workmode: u32, reason: Option<&str>) {
        let event = self.next().await;
        assert_eq!(
            event.name, "workmodeChanged",
            "{}: {}",
            self.user, event.body
        );
        assert_eq!(event.field("userId").as_deref(), Some(self.user.as_str()));
        assert_eq!(
            event.field("workmode"),
            Some(workmode.to_string()),
            "{}",
            event.body
        );
        let got = event.field("reason").filter(|r| !r.is_empty());
        assert_eq!(got.as_deref(), reason, "{}", event.body);
    }

    /// Nothing more arrived for this session (checked after a later event of another one
    /// proved the connector had moved on).
    fn assert_quiet(&mut self) {
        if let Some(event) = self.fake.try_next_event() {
            panic!("{}: unexpected event {}", self.user, event.body);
        }
    }

    async fn op(
        &self,
        server: &TestServer,
        interface: &str,
        op: &str,
        pairs: &[(&str, &str)],
    ) -> SoapAnswer {
        call_as(server, &self.user, interface, op, pairs).await
    }
}

/// SAP's login sequence: getAttributes, setAddresses (a list parameter), subscribeUser,
/// setCurrentWorkmode (2 ready or 3 not ready), and the resulting workmodeChanged.
async fn login(server: &TestServer, user: &str, extension: &str, workmode: u32) -> Sap {
    let fake = FakeSap::start().await;
    let attributes = call_as(server, user, "User", "getAttributes", &[("userId", user)]).await;
    assert_eq!(text_of(attributes.ret(), "userId"), user);
    server
        .post(envelope_as(
            user,
            "User",
            "setAddresses",
            &format!("<userId>{user}</userId><addresses><item>{extension}</item></addresses>"),
        ))
        .await
        .ok();
    let mut sap = Sap {
        user: user.into(),
        extension: extension.into(),
        fake,
        sequence: 0,
    };
    subscribe(server, &sap.user, &sap.fake.url, &sap.app_id()).await;
    sap.op(
        server,
        "User",
        "setCurrentWorkmode",
        &[("userId", user), ("workmode", &workmode.to_string())],
    )
    .await
    .ok();
    sap.workmode_event(workmode, None).await;
    sap
}

async fn subscribe(server: &TestServer, user: &str, url: &str, app_id: &str) {
    call_as(
        server,
        user,
        "User",
        "subscribeUser",
        &[("userId", user), ("appURL", url), ("appId", app_id)],
    )
    .await
    .ok();
}

async fn get_calls(server: &TestServer, container: &str) -> Vec<Element> {
    let answer = server
        .call("Line", "getCalls", &[("containerId", container)])
        .await;
    answer.ret().children.clone()
}

async fn call_ids(server: &TestServer, container: &str) -> Vec<String> {
    get_calls(server, container)
        .await
        .iter()
        .map(|c| text_of(c, "callId"))
        .collect()
}

async fn call_state(server: &TestServer, call: &str) -> String {
    let answer = server
        .call("PhoneCall", "getPhoneCallAttributes", &[("callId", call)])
        .await;
    text_of(answer.ret(), "state")
}

async fn attached(server: &TestServer, item: &str) -> String {
    let answer = server
        .call("Item", "getAttachedData", &[("itemId", item)])
        .await;
    answer.ret().text.to_string()
}

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
    assert_eq!(parties(&pc), ["sip:555@example.com"]);
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
    assert_eq!(parties(&pc), ["sip:555@example.com", "2002"]);
    let (_, pc) = a2.call_event(&consult, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "conferenced");
    let (_, pc) = a2.call_event(&call, "conferenced").await;
    assert_eq!(parties(&pc), ["sip:555@example.com", "2001"]);
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
    assert_eq!(parties(&pc), ["sip:555@example.com"]);
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

/// At most six interactions reach SAP; the rest wait in arrival order, and one that ends
/// while waiting is never shown.
#[tokio::test]
async fn six_interactions_reach_sap_and_the_rest_wait_in_order() {
    let server = TestServer::start(BASE).await;
    let mut a1 = login(&server, "A1", "2001", 3).await;
    let mut calls = Vec::new();
    for i in 0..8 {
        calls.push(ring(&server, json!({"from": format!("471{i}"), "to": "2001"})).await);
    }
    for call in &calls[..6] {
        let (_, pc) = a1.call_event(call, "alerting").await;
        assert_eq!(text_of(&pc, "direction"), "inbound");
    }
    assert_eq!(call_ids(&server, "2001").await, calls[..6]);
    // The seventh and eighth are unknown to SAP.
    fault(
        &server
            .call(
                "PhoneCall",
                "getPhoneCallAttributes",
                &[("callId", &calls[6])],
            )
            .await,
        "unknown call",
    );

    // SAP drops the first: the oldest waiting one (the seventh) pops at once.
    a1.op(&server, "PhoneCall", "drop", &[("callId", &calls[0])])
        .await
        .ok();
    a1.call_event(&calls[0], "dropped").await;
    a1.call_event(&calls[6], "alerting").await;

    // The eighth caller gives up while waiting: SAP never hears of it.
    sim(
        &server,
        "POST",
        &format!("/calls/{}/hangup", calls[7]),
        Value::Null,
    )
    .await;
    // The second caller hangs up: its drop is the very next event, and nothing pops.
    sim(
        &server,
        "POST",
        &format!("/calls/{}/hangup", calls[1]),
        Value::Null,
    )
    .await;
    let (_, pc) = a1.call_event(&calls[1], "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "abandoned");
    let mut visible = calls[2..7].to_vec();
    assert_eq!(call_ids(&server, "2001").await, visible);

    // A new caller takes the free slot at once; then the cap holds again.
    let late = ring(&server, json!({"from": "4799", "to": "2001"})).await;
    a1.call_event(&late, "alerting").await;
    visible.push(late);
    let over = ring(&server, json!({"from": "4798", "to": "2001"})).await;
    sim(
        &server,
        "POST",
        &format!("/calls/{}/hangup", visible[0]),
        Value::Null,
    )
    .await;
    a1.call_event(&visible[0], "dropped").await;
    a1.call_event(&over, "alerting").await;
    a1.assert_quiet();
    server.stop().await;
}

/// `max_interactions` lowers the cap; the waiting order and the abandoned rule still hold.
#[tokio::test]
async fn configured_cap_of_two() {
    let server = TestServer::start(&format!("{BASE}\n[agents]\nmax_interactions = 2\n")).await;
    let mut a1 = login(&server, "A1", "2001", 3).await;
    let attributes = server
        .call("User", "getAttributes", &[("userId", "A1")])
        .await;
    assert_eq!(text_of(attributes.ret(), "maxInteractions"), "2");
    // getAttributes started a new IC session: the old subscription ended; subscribe again.
    a1.next().await;
    a1.fake = FakeSap::start().await;
    a1.sequence = 0;
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;

    let mut calls = Vec::new();
    for i in 0..4 {
        calls.push(ring(&server, json!({"from": format!("471{i}"), "to": "2001"})).await);
    }
    a1.call_event(&calls[0], "alerting").await;
    a1.call_event(&calls[1], "alerting").await;
    assert_eq!(call_ids(&server, "2001").await, calls[..2]);
    // The third caller gives up while waiting; dropping the first pops the fourth.
    sim(
        &server,
        "POST",
        &format!("/calls/{}/hangup", calls[2]),
        Value::Null,
    )
    .await;
    a1.op(&server, "PhoneCall", "drop", &[("callId", &calls[0])])
        .await
        .ok();
    a1.call_event(&calls[0], "dropped").await;
    a1.call_event(&calls[3], "alerting").await;
    assert_eq!(
        call_ids(&server, "2001").await,
        [calls[1].clone(), calls[3].clone()]
    );
    a1.assert_quiet();
    server.stop().await;
}

const WORKMODES: &str = r#"
[[workmodes.reasons]]
code = "BRK"
text = "Break"

[[workmodes.custom]]
id = 4
text = "Lunch"
switch_state = "Lunch"
"#;

/// Workmodes from SAP and from the phone, reasons, custom workmodes, and the reject
/// workmode after `reroute`.
#[tokio::test]
async fn workmodes_from_sap_and_from_the_phone() {
    let server = TestServer::start(&format!("{BASE}{WORKMODES}")).await;
    let mut a1 = login(&server, "A1", "2001", 2).await;
    let mut a2 = login(&server, "A2", "2002", 2).await;
    assert_eq!(sim_agent(&server, "2001").await["state"], "ready");

    // Not ready with a configured reason.
    let set = |workmode: &'static str, reason: Option<&'static str>| {
        let mut pairs = vec![("userId", "A1"), ("workmode", workmode)];
        if let Some(reason) = reason {
            pairs.push(("reason", reason));
        }
        pairs
    };
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &set("3", Some("BRK")),
    )
    .await
    .ok();
    a1.workmode_event(3, Some("BRK")).await;
    let agent = sim_agent(&server, "2001").await;
    assert_eq!(
        (agent["state"].as_str(), agent["reason"].as_str()),
        (Some("not_ready"), Some("BRK"))
    );

    // Custom workmode 4 is the switch state "Lunch".
    a1.op(&server, "User", "setCurrentWorkmode", &set("4", None))
        .await
        .ok();
    a1.workmode_event(4, None).await;
    let agent = sim_agent(&server, "2001").await;
    assert_eq!(
        (agent["state"].as_str(), agent["custom"].as_str()),
        (Some("custom"), Some("Lunch"))
    );

    // An unknown reason or workmode: Client fault, nothing changes.
    fault(
        &a1.op(
            &server,
            "User",
            "setCurrentWorkmode",
            &set("3", Some("XYZ")),
        )
        .await,
        "unknown reason",
    );
    fault(
        &a1.op(&server, "User", "setCurrentWorkmode", &set("9", None))
            .await,
        "unknown workmode",
    );
    assert_eq!(sim_agent(&server, "2001").await["custom"], "Lunch");

    // The agent presses buttons on the phone: SAP is told.
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "not_ready", "reason": "BRK"}),
    )
    .await;
    a1.workmode_event(3, Some("BRK")).await;
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "custom", "custom": "Lunch"}),
    )
    .await;
    a1.workmode_event(4, None).await;
    // A switch state nobody mapped shows as not ready with the state as reason.
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "custom", "custom": "Meeting"}),
    )
    .await;
    a1.workmode_event(3, Some("Meeting")).await;
    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "ready"}),
    )
    .await;
    a1.workmode_event(2, None).await;
    let attributes = server
        .call("User", "getAttributes", &[("userId", "A2")])
        .await;
    assert_eq!(text_of(attributes.ret(), "currentWorkmode"), "2");
    // That getAttributes began a new IC session for A2: its old subscription ends.
    let ended = a2.next().await;
    assert_eq!(ended.name, "subscriptionEnded");
    a2.fake = FakeSap::start().await;
    a2.sequence = 0;
    subscribe(&server, "A2", &a2.fake.url, &a2.app_id()).await;

    // Reroute: A2 became ready first after A1's break... A1 was ready last, so A2 (idle
    // the longest) gets the queue call; it rejects it, goes to the reject workmode (3), and
    // the call goes back to the queue and on to A1.
    let call = ring(&server, json!({"from": "+4930123456", "queue": "support"})).await;
    a2.call_event(&call, "alerting").await;
    a2.op(&server, "Item", "reroute", &[("itemId", &call)])
        .await
        .ok();
    let (_, pc) = a2.call_event(&call, "dropped").await;
    assert_eq!(text_of(&pc, "reason"), "rerouted");
    a2.workmode_event(3, None).await;
    let (_, pc) = a1.call_event(&call, "alerting").await;
    assert_eq!(text_of(&pc, "queue"), "support");
    assert_eq!(sim_agent(&server, "2002").await["state"], "not_ready");
    // reroute of a direct (non-ACD) or answered call is refused.
    a1.op(&server, "Item", "accept", &[("itemId", &call)])
        .await
        .ok();
    a1.call_event(&call, "connected").await;
    fault(
        &a1.op(&server, "Item", "reroute", &[("itemId", &call)])
            .await,
        "invalid call state",
    );
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// `ignore_sap_login_workmode`: SAP's first workmode is replaced by `login`; later ones are
/// applied as asked.
#[tokio::test]
async fn login_workmode_replaces_the_one_sap_asks_for_at_login() {
    let config =
        format!("{BASE}{WORKMODES}\n[workmodes]\nignore_sap_login_workmode = true\nlogin = 4\n");
    let server = TestServer::start(&config).await;
    let fake = FakeSap::start().await;
    let mut a1 = Sap {
        user: "A1".into(),
        extension: "2001".into(),
        fake,
        sequence: 0,
    };
    server
        .post(envelope(
            &ns("User"),
            "setAddresses",
            "<userId>A1</userId><addresses><item>2001</item></addresses>",
        ))
        .await
        .ok();
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &[("userId", "A1"), ("workmode", "2")],
    )
    .await
    .ok();
    a1.workmode_event(4, None).await;
    assert_eq!(sim_agent(&server, "2001").await["custom"], "Lunch");
    a1.op(
        &server,
        "User",
        "setCurrentWorkmode",
        &[("userId", "A1"), ("workmode", "2")],
    )
    .await
    .ok();
    a1.workmode_event(2, None).await;
    assert_eq!(sim_agent(&server, "2001").await["state"], "ready");
    a1.assert_quiet();
    server.stop().await;
}

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

/// getAttributes again ends the old IC session's subscription (subscriptionEnded at the old
/// URL); a 401 from SAP's URL ends only that subscription.
#[tokio::test]
async fn subscriptions_end_on_a_new_session_and_on_401() {
    let server = TestServer::start(BASE).await;
    let mut a1 = login(&server, "A1", "2001", 3).await;
    let mut a2 = login(&server, "A2", "2002", 3).await;

    server
        .call("User", "getAttributes", &[("userId", "A1")])
        .await
        .ok();
    let ended = a1.next().await;
    assert_eq!(ended.name, "subscriptionEnded", "{}", ended.body);
    assert_eq!(ended.field("reason").as_deref(), Some("new session"));
    assert_eq!(subscription_urls(&server).await, [a2.fake.url.clone()]);

    // The new session: one URL answers 401 (SAP's session behind it is gone), one is fine.
    let gone = FakeSap::start().await;
    gone.set_mode(Mode::Status(401));
    let old_fake = std::mem::replace(&mut a1.fake, FakeSap::start().await);
    a1.sequence = 0;
    subscribe(&server, "A1", &gone.url, &a1.app_id()).await;
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;

    sim(
        &server,
        "POST",
        "/agents/2001/state",
        json!({"state": "ready"}),
    )
    .await;
    a1.workmode_event(2, None).await;
    gone.wait_requests(1).await;
    wait_for_status(&server, "the 401 ends the subscription", |s| {
        s["subscriptions"].as_array().unwrap().len() == 2
    })
    .await;
    let mut urls = subscription_urls(&server).await;
    urls.sort();
    let mut expected = vec![a1.fake.url.clone(), a2.fake.url.clone()];
    expected.sort();
    assert_eq!(urls, expected);

    // Both remaining subscriptions keep getting events; the gone URL hears nothing more.
    let call = ring(&server, json!({"from": "4711", "to": "2001"})).await;
    a1.call_event(&call, "alerting").await;
    let other = ring(&server, json!({"from": "4712", "to": "2002"})).await;
    a2.call_event(&other, "alerting").await;
    assert_eq!(gone.requests(), 1);
    drop(old_fake);
    a1.assert_quiet();
    a2.assert_quiet();
    server.stop().await;
}

/// Accepts connections and never answers: an appURL whose server hangs.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sap/events", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (url, task)
}

/// A dead or hanging callback URL never holds up SAP's requests: `dial` and `hold` answer
/// while their events are still undelivered; once SAP is back, every event arrives in order.
#[tokio::test]
async fn dead_callback_urls_do_not_slow_requests() {
    let server = TestServer::start(BASE).await;
    let (hanging, hole) = black_hole().await;
    let fake = FakeSap::start().await;
    fake.set_mode(Mode::Refuse);
    let mut a1 = Sap {
        user: "A1".into(),
        extension: "2001".into(),
        fake,
        sequence: 0,
    };
    server
        .post(envelope(
            &ns("User"),
            "setAddresses",
            "<userId>A1</userId><addresses><item>2001</item></addresses>",
        ))
        .await
        .ok();
    subscribe(&server, "A1", &hanging, &a1.app_id()).await;
    subscribe(&server, "A1", &a1.fake.url, &a1.app_id()).await;

    let answer = a1
        .op(
            &server,
            "PhoneCall",
            "dial",
            &[("userId", "A1"), ("address", "4711")],
        )
        .await;
    let call = answer.ret().text.to_string();
    sim(
        &server,
        "POST",
        &format!("/calls/{call}/answer"),
        Value::Null,
    )
    .await;
    a1.op(&server, "PhoneCall", "hold", &[("callId", &call)])
        .await
        .ok();
    // Both answers are in; the three events (dialing, connected, held) are still queued on
    // both subscriptions.
    let status = status(&server).await;
    for sub in status["subscriptions"].as_array().unwrap() {
        assert_eq!(sub["sequence"], 3, "{status}");
        assert!(sub["queue_depth"].as_u64().unwrap() >= 1, "{status}");
    }
    assert!(a1.fake.try_next_event().is_none());

    a1.fake.resume().await;
    a1.call_event(&call, "dialing").await;
    a1.call_event(&call, "connected").await;
    a1.call_event(&call, "held").await;
    hole.abort();
    server.stop().await;
}
