//! Call flows end to end over real HTTP both ways: SAP's SOAP requests to the connector,
//! the built-in simulator driven through its control API (`/sim` on the admin listener),
//! and the events the connector pushes to fake SAP receivers. Every event of a subscription
//! is checked in order, with gapless sequence numbers; nothing waits on a clock.

use crate::common;

use common::fake_sap::{FakeSap, Received};
use common::server::{SoapAnswer, TestServer, envelope, envelope_as, ns, params, text_of};
use ici_connector::soap::{Element, parse_request};
use serde_json::{Value, json};

mod calls;
mod consultation;
mod interactions;
mod refusals;
mod subscriptions;
mod workmodes;

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
