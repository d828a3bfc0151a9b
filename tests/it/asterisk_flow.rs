//! The connector against a real Asterisk 22 (tests/asterisk/setup.sh: a Debian sid chroot
//! and three baresip phones on loopback), driven from SAP's side through the FakeSap.
//!
//! Needs root (debootstrap, chroot, mount) and a Debian mirror. Without them the test
//! prints `SKIPPED: <reason>` and passes, except in CI (`CI` set), where it fails.

use crate::common;

mod lab;

use std::time::Duration;

use common::fake_sap::{FakeSap, Received};
use common::server::{TestServer, envelope_as, text_of};
use ici_connector::soap::Element;

pub(crate) use lab::{Teardown, lab_lock, pbx, phone, ready, setup};

/// baresip ctrl_tcp ports (tests/asterisk/setup.sh).
pub(crate) const AGENT1_PHONE: u16 = 4451;
const AGENT2_PHONE: u16 = 4452;
pub(crate) const CUSTOMER_PHONE: u16 = 4453;
pub(crate) const STEP: Duration = Duration::from_secs(15);

/// The next event on `path` named `name` that satisfies `want`; other events on the way are
/// skipped (they are asserted by the steps that care about them).
async fn expect(
    sap: &mut FakeSap,
    path: &str,
    name: &str,
    what: &str,
    want: impl Fn(&Received) -> bool,
) -> Received {
    let found = tokio::time::timeout(STEP, async {
        loop {
            let event = sap.next_event().await;
            if event.path == path && event.name == name && want(&event) {
                return event;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {name} on {path} within {STEP:?}: {what}"))
}

/// A check on one event: path, what it shows (for the failure message), predicate.
type Want<'a> = (
    &'a str,
    &'a str,
    Box<dyn Fn(&Received) -> bool + Send + Sync + 'a>,
);

/// Waits for one `phoneCallChanged` per entry, in any order: events to different agents
/// travel on different delivery queues, so their relative order is not fixed.
async fn expect_all(sap: &mut FakeSap, wants: Vec<Want<'_>>) -> Vec<Received> {
    expect_events(sap, Some("phoneCallChanged"), wants).await
}

/// Waits for one event per entry, in any order; `name`: only events so named are looked
/// at (`None`: every event, the predicates check the name).
async fn expect_events(
    sap: &mut FakeSap,
    name: Option<&str>,
    wants: Vec<Want<'_>>,
) -> Vec<Received> {
    let mut found: Vec<Option<Received>> = wants.iter().map(|_| None).collect();
    let done = tokio::time::timeout(STEP, async {
        while found.iter().any(Option::is_none) {
            let event = sap.next_event().await;
            if name.is_some_and(|name| event.name != name) {
                continue;
            }
            if let Some(i) = (0..wants.len())
                .find(|&i| found[i].is_none() && wants[i].0 == event.path && (wants[i].2)(&event))
            {
                found[i] = Some(event);
            }
        }
    })
    .await;
    if done.is_err() {
        let missing: Vec<String> = wants
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(w, _)| format!("{} on {}", w.1, w.0))
            .collect();
        let name = name.unwrap_or("event");
        panic!("no {name} within {STEP:?}: {missing:?}");
    }
    found.into_iter().map(Option::unwrap).collect()
}

/// Sends `accept` to phones (in order) until `expect`ed event arrives: the SIP INVITE may reach the
/// phone a little after the AMI event that announced the call.
async fn accept_until(
    sap: &mut FakeSap,
    ports: &[u16],
    path: &str,
    what: &str,
    want: impl Fn(&Received) -> bool,
) -> Received {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        for port in ports {
            phone(*port, "accept", "").await;
        }
        let found = tokio::time::timeout(Duration::from_millis(700), async {
            loop {
                let event = sap.next_event().await;
                if event.path == path && event.name == "phoneCallChanged" && want(&event) {
                    return event;
                }
            }
        })
        .await;
        if let Ok(event) = found {
            return event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no phoneCallChanged on {path} within {STEP:?}: {what}"
        );
    }
}

/// The customer calls the queue and agent 1 answers on the phone: the call id.
async fn queue_call(sap: &mut FakeSap) -> String {
    phone(CUSTOMER_PHONE, "dial", "sip:600@127.0.0.1:5160").await;
    let alerting = expect(sap, "/a1", "phoneCallChanged", "queue call", |e| {
        is(e, "state", "alerting")
    })
    .await;
    let call = alerting.field("callId").unwrap();
    accept_until(sap, &[AGENT1_PHONE], "/a1", "queue call answered", |e| {
        is(e, "callId", &call) && is(e, "state", "connected")
    })
    .await;
    call
}

/// SAP's consult from agent 1 to agent 2 on `call`, answered on agent 2's phone: the
/// consultation call's id.
async fn consult_agent2(server: &TestServer, sap: &mut FakeSap, call: &str) -> String {
    let answer = server
        .call(
            "PhoneCall",
            "consult",
            &[("callId", call), ("address", "2002")],
        )
        .await;
    let consult = answer.ok().ret().text.to_string();
    assert_ne!(consult, call);
    let seen = expect_all(
        sap,
        vec![
            (
                "/a1",
                "first call held",
                Box::new(|e: &Received| is(e, "callId", call) && is(e, "state", "held")),
            ),
            (
                "/a1",
                "consult dialing",
                Box::new(|e: &Received| is(e, "callId", &consult) && is(e, "state", "dialing")),
            ),
            (
                "/a2",
                "consult rings",
                Box::new(|e: &Received| is(e, "callId", &consult) && is(e, "state", "alerting")),
            ),
        ],
    )
    .await;
    assert_eq!(seen[2].field("remoteAddress").as_deref(), Some("+2001"));
    phone(AGENT2_PHONE, "accept", "").await;
    expect_all(
        sap,
        vec![
            (
                "/a2",
                "consult answered",
                Box::new(|e: &Received| is(e, "callId", &consult) && is(e, "state", "connected")),
            ),
            (
                "/a1",
                "consult connected",
                Box::new(|e: &Received| is(e, "callId", &consult) && is(e, "state", "connected")),
            ),
        ],
    )
    .await;
    consult
}

/// Sets a workmode from SAP and waits for SAP to be told.
async fn workmode(server: &TestServer, sap: &mut FakeSap, user: &str, path: &str, mode: &str) {
    server
        .call(
            "User",
            "setCurrentWorkmode",
            &[("userId", user), ("workmode", mode)],
        )
        .await
        .ok();
    expect(sap, path, "workmodeChanged", "workmode", |e| {
        is(e, "workmode", mode)
    })
    .await;
}

/// Waits until the connector has `user` in `workmode` (`/api/status`).
async fn until_workmode(server: &TestServer, user: &str, workmode: u64) {
    common::poll(&format!("{user} in workmode {workmode}"), STEP, || async {
        let status = server.status().await;
        let agent = status["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["user_id"] == user)
            .cloned()
            .unwrap_or_default();
        match agent["workmode"].as_u64() == Some(workmode) {
            true => Ok(()),
            false => Err(agent.to_string()),
        }
    })
    .await
}

/// A `workmodeChanged` showing `workmode` with `reason` (`None`: no reason, sent as nil).
fn is_workmode(event: &Received, workmode: &str, reason: Option<&str>) -> bool {
    event.name == "workmodeChanged"
        && is(event, "workmode", workmode)
        && event.field("reason").filter(|r| !r.is_empty()).as_deref() == reason
}

/// The `support` queue of getPresenceQueueInfo on the phone channel.
async fn support_presence(server: &TestServer) -> Element {
    let answer = server
        .call("System", "getPresenceQueueInfo", &[("channel", "phone")])
        .await;
    answer
        .ok()
        .ret()
        .children
        .iter()
        .find(|queue| text_of(queue, "queue") == "support")
        .cloned()
        .unwrap_or_else(|| panic!("no support queue in {}", answer.body))
}

fn int(queue: &Element, field: &str) -> u64 {
    text_of(queue, field)
        .parse()
        .unwrap_or_else(|_| panic!("{field} of {queue:?}"))
}

fn is(event: &Received, field: &str, value: &str) -> bool {
    event.field(field).as_deref() == Some(value)
}

const CONFIG: &str = r#"
[switch]
kind = "asterisk"
[switch.asterisk]
host = "127.0.0.1"
username = "cti"
secret = "ctipass"
queues = ["support"]
queue_numbers = { support = "600" }
reconnect_min = "200ms"
reconnect_max = "1s"
# queues.conf: wrapuptime=1
wrap_up = "1s"
[agents]
queues = ["support"]
[agents.users]
AGENT1 = { extension = "2001" }
AGENT2 = { extension = "2002" }
[workmodes]
wrap_up = 5
[[workmodes.custom]]
id = 5
text = "Wrap-up"
switch_state = "wrap-up"
selectable = false
[[workmodes.reasons]]
code = "10"
text = "Back office"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acd_call_transfer_dial_and_switchover_on_a_real_asterisk() {
    let _lock = lab_lock().await;
    if let Err(reason) = setup(None) {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Asterisk test must run in CI: {reason}"
        );
        println!("SKIPPED: {reason}");
        return;
    }
    let _teardown = Teardown;
    scenario().await;
}

/// The whole scenario through SAP's side, on a freshly started PBX.
async fn scenario() {
    let mut sap = FakeSap::start().await;
    let server = TestServer::start(CONFIG).await;

    // The adapter logs in and resyncs: /readyz turns ready.
    ready(&server, 200, "AMI link up").await;
    for (user, path) in [("AGENT1", "/a1"), ("AGENT2", "/a2")] {
        server
            .call(
                "User",
                "subscribeUser",
                &[
                    ("userId", user),
                    ("appURL", &sap.url_for(path)),
                    ("appId", "APP"),
                ],
            )
            .await
            .ok();
    }

    // Agent login + ready: QueueAdd.
    server
        .call(
            "User",
            "setCurrentWorkmode",
            &[("userId", "AGENT1"), ("workmode", "2")],
        )
        .await
        .ok();
    expect(&mut sap, "/a1", "workmodeChanged", "ready", |e| {
        is(e, "workmode", "2")
    })
    .await;

    // Queue presence from Asterisk's QueueStatus, with the configured number.
    let support = support_presence(&server).await;
    assert_eq!(text_of(&support, "number"), "600");
    assert_eq!(text_of(&support, "channel"), "phone");
    assert!(int(&support, "agentsLoggedIn") >= 1, "{support:?}");
    assert!(int(&support, "agentsReady") >= 1, "{support:?}");
    assert_eq!(int(&support, "waiting"), 0, "{support:?}");

    // Workcenter ownership: another user's setAddresses to agent 1's extension is refused,
    // naming the holder.
    server
        .call("User", "getAttributes", &[("userId", "AGENT3")])
        .await
        .ok();
    let taken = server
        .post(envelope_as(
            "AGENT3",
            "User",
            "setAddresses",
            "<userId>AGENT3</userId><addresses><item>2001</item></addresses>",
        ))
        .await;
    assert_eq!(taken.fault().1, "address in use", "{}", taken.body);
    assert!(
        taken.body.contains("2001 is held by AGENT1"),
        "{}",
        taken.body
    );

    // A customer calls the queue while agent 1 is not ready: the caller waits, and the
    // longest wait grows.
    workmode(&server, &mut sap, "AGENT1", "/a1", "3").await;
    phone(CUSTOMER_PHONE, "dial", "sip:600@127.0.0.1:5160").await;
    let waited = common::poll("the caller waits in support", STEP, || async {
        let support = support_presence(&server).await;
        match int(&support, "waiting") {
            1 => Ok(int(&support, "longestWait")),
            _ => Err(format!("{support:?}")),
        }
    })
    .await;
    common::poll(
        "the longest wait grows by the second while the caller waits",
        STEP,
        || async {
            let support = support_presence(&server).await;
            let wait = int(&support, "longestWait");
            match (int(&support, "waiting"), wait > waited) {
                (1, true) => Ok(()),
                _ => Err(format!("longestWait {wait} (was {waited}): {support:?}")),
            }
        },
    )
    .await;

    // Agent 1 goes ready: alerting at agent 1 with ANI and DNIS.
    workmode(&server, &mut sap, "AGENT1", "/a1", "2").await;
    let alerting = expect(&mut sap, "/a1", "phoneCallChanged", "queue call", |e| {
        is(e, "state", "alerting")
    })
    .await;
    let call = alerting.field("callId").unwrap();
    assert_eq!(alerting.field("remoteAddress").as_deref(), Some("+2003"));
    assert_eq!(alerting.field("dialedAddress").as_deref(), Some("+600"));
    assert_eq!(alerting.field("queue").as_deref(), Some("support"));
    assert_eq!(alerting.field("direction").as_deref(), Some("inbound"));

    // With `answer = "phone"` (the default, and all these phones can do) SAP's accept gets
    // a clear fault and the agent answers on the phone.
    let (_, fault) = server
        .call("Item", "accept", &[("itemId", &call)])
        .await
        .fault();
    assert!(fault.contains("asterisk"), "{fault}");
    phone(AGENT1_PHONE, "accept", "").await;
    expect(&mut sap, "/a1", "phoneCallChanged", "answered", |e| {
        is(e, "callId", &call) && is(e, "state", "connected")
    })
    .await;
    let support = support_presence(&server).await;
    assert_eq!(int(&support, "waiting"), 0, "{support:?}");

    // Hold and retrieve from SAP: server-side (customer to music on hold, the agent's
    // channel parked), reported like a hold on the phone.
    server
        .call("PhoneCall", "hold", &[("callId", &call)])
        .await
        .ok();
    expect(&mut sap, "/a1", "phoneCallChanged", "held from SAP", |e| {
        is(e, "callId", &call) && is(e, "state", "held")
    })
    .await;
    server
        .call("PhoneCall", "unhold", &[("callId", &call)])
        .await
        .ok();
    expect(
        &mut sap,
        "/a1",
        "phoneCallChanged",
        "retrieved from SAP",
        |e| is(e, "callId", &call) && is(e, "state", "connected"),
    )
    .await;
    // Hold pressed on the phone is still reported.
    phone(AGENT1_PHONE, "hold", "").await;
    expect(
        &mut sap,
        "/a1",
        "phoneCallChanged",
        "held on the phone",
        |e| is(e, "callId", &call) && is(e, "state", "held"),
    )
    .await;
    phone(AGENT1_PHONE, "resume", "").await;
    expect(
        &mut sap,
        "/a1",
        "phoneCallChanged",
        "resumed on the phone",
        |e| is(e, "callId", &call) && is(e, "state", "connected"),
    )
    .await;

    // Blind transfer to agent 2: same call id there.
    server
        .call(
            "PhoneCall",
            "transfer",
            &[("callId", &call), ("address", "2002")],
        )
        .await
        .ok();
    // Events to different agents travel on different queues: either may come first.
    expect_all(
        &mut sap,
        vec![
            (
                "/a1",
                "transferred away",
                Box::new(|e: &Received| is(e, "callId", &call) && is(e, "state", "transferred")),
            ),
            (
                "/a2",
                "transfer rings",
                Box::new(|e: &Received| is(e, "callId", &call) && is(e, "state", "alerting")),
            ),
        ],
    )
    .await;
    phone(AGENT2_PHONE, "accept", "").await;
    expect(
        &mut sap,
        "/a2",
        "phoneCallChanged",
        "agent 2 answered",
        |e| is(e, "callId", &call) && is(e, "state", "connected"),
    )
    .await;

    // Drop from SAP.
    server
        .call("PhoneCall", "drop", &[("callId", &call)])
        .await
        .ok();
    expect(&mut sap, "/a2", "phoneCallChanged", "dropped", |e| {
        is(e, "callId", &call) && is(e, "state", "dropped")
    })
    .await;

    // Consult transfer: the customer calls again, agent 1 consults agent 2 (Atxfer), then
    // transfers to the consulted agent.
    let call = queue_call(&mut sap).await;
    let consult = consult_agent2(&server, &mut sap, &call).await;
    server
        .call(
            "PhoneCall",
            "transfer",
            &[("callId", &call), ("address", "2002")],
        )
        .await
        .ok();
    let seen = expect_all(
        &mut sap,
        vec![
            (
                "/a1",
                "held call transferred",
                Box::new(|e: &Received| is(e, "callId", &call) && is(e, "state", "transferred")),
            ),
            (
                "/a2",
                "consult call ends",
                Box::new(|e: &Received| is(e, "callId", &consult) && is(e, "state", "dropped")),
            ),
            (
                "/a2",
                "customer at agent 2",
                Box::new(|e: &Received| is(e, "callId", &call) && is(e, "state", "connected")),
            ),
        ],
    )
    .await;
    assert_eq!(seen[2].field("remoteAddress").as_deref(), Some("+2003"));
    server
        .call("PhoneCall", "drop", &[("callId", &call)])
        .await
        .ok();
    expect(
        &mut sap,
        "/a2",
        "phoneCallChanged",
        "transferred call dropped",
        |e| is(e, "callId", &call) && is(e, "state", "dropped"),
    )
    .await;

    // Conference: consult again, then join all three in a ConfBridge; the held call's id
    // survives, the consultation call ends (cause conferenced).
    let call = queue_call(&mut sap).await;
    let consult = consult_agent2(&server, &mut sap, &call).await;
    server
        .call(
            "PhoneCall",
            "conference",
            &[("callId", &call), ("consultCallId", &consult)],
        )
        .await
        .ok();
    expect_all(
        &mut sap,
        vec![
            (
                "/a1",
                "consult call merged",
                Box::new(|e: &Received| is(e, "callId", &consult) && is(e, "state", "dropped")),
            ),
            (
                "/a2",
                "consult call merged",
                Box::new(|e: &Received| is(e, "callId", &consult) && is(e, "state", "dropped")),
            ),
            (
                "/a1",
                "agent 1 conferenced",
                Box::new(|e: &Received| is(e, "callId", &call) && is(e, "state", "conferenced")),
            ),
            (
                "/a2",
                "agent 2 conferenced",
                Box::new(|e: &Received| is(e, "callId", &call) && is(e, "state", "conferenced")),
            ),
        ],
    )
    .await;
    // Drop party: agent 2 leaves the conference, then the customer; agent 1 drops last.
    server
        .call(
            "PhoneCall",
            "dropParty",
            &[("callId", &call), ("address", "2002")],
        )
        .await
        .ok();
    expect(
        &mut sap,
        "/a2",
        "phoneCallChanged",
        "agent 2 dropped",
        |e| is(e, "callId", &call) && is(e, "state", "dropped"),
    )
    .await;
    server
        .call(
            "PhoneCall",
            "dropParty",
            &[("callId", &call), ("address", "2003")],
        )
        .await
        .ok();
    server
        .call("PhoneCall", "drop", &[("callId", &call)])
        .await
        .ok();
    expect(
        &mut sap,
        "/a1",
        "phoneCallChanged",
        "conference over",
        |e| is(e, "callId", &call) && is(e, "state", "dropped"),
    )
    .await;

    // Reroute: with both agents ready the queue rings both; agent 1 sends the call back
    // (and is put in the reject workmode), agent 2 takes it. Agent 1 must be out of its
    // wrap-up first, or the queue rings agent 2 alone.
    until_workmode(&server, "AGENT1", 2).await;
    workmode(&server, &mut sap, "AGENT2", "/a2", "2").await;
    phone(CUSTOMER_PHONE, "dial", "sip:600@127.0.0.1:5160").await;
    let alerting = expect(&mut sap, "/a1", "phoneCallChanged", "queue call", |e| {
        is(e, "state", "alerting")
    })
    .await;
    let call = alerting.field("callId").unwrap();
    server
        .call("Item", "reroute", &[("itemId", &call)])
        .await
        .ok();
    expect(&mut sap, "/a1", "phoneCallChanged", "rerouted", |e| {
        is(e, "callId", &call) && is(e, "state", "dropped")
    })
    .await;
    expect(&mut sap, "/a1", "workmodeChanged", "reject workmode", |e| {
        is(e, "workmode", "3")
    })
    .await;
    accept_until(&mut sap, &[AGENT2_PHONE], "/a2", "agent 2 took it", |e| {
        is(e, "callId", &call) && is(e, "state", "connected")
    })
    .await;

    // Listen: agent 1 (as supervisor) listens to agent 2's call; agent 1's phone rings
    // and, once answered, runs ChanSpy on agent 2's channel. listenEnd hangs it up.
    server
        .call(
            "PhoneCall",
            "listen",
            &[("callId", &call), ("userId", "AGENT1")],
        )
        .await
        .ok();
    common::poll("ChanSpy running at agent 1's phone", STEP, || async {
        phone(AGENT1_PHONE, "accept", "").await;
        let channels = pbx("core show channels concise")?;
        match channels.lines().any(|l| l.contains("ChanSpy")) {
            true => Ok(()),
            false => Err(channels),
        }
    })
    .await;
    server
        .call(
            "PhoneCall",
            "listenEnd",
            &[("callId", &call), ("userId", "AGENT1")],
        )
        .await
        .ok();
    let channels = pbx("core show channels concise").unwrap();
    assert!(!channels.contains("ChanSpy"), "{channels}");
    server
        .call("PhoneCall", "drop", &[("callId", &call)])
        .await
        .ok();
    expect(
        &mut sap,
        "/a2",
        "phoneCallChanged",
        "rerouted call over",
        |e| is(e, "callId", &call) && is(e, "state", "dropped"),
    )
    .await;
    // The queue has wrap-up time: agent 2's after-call work shows, then ends by itself.
    expect(&mut sap, "/a2", "workmodeChanged", "wrap-up", |e| {
        is(e, "workmode", "5")
    })
    .await;
    expect(&mut sap, "/a2", "workmodeChanged", "wrap-up over", |e| {
        is(e, "workmode", "2")
    })
    .await;
    workmode(&server, &mut sap, "AGENT2", "/a2", "1").await;
    workmode(&server, &mut sap, "AGENT1", "/a1", "2").await;

    // Dial from SAP: the agent's phone rings first (dialing), then the customer.
    let answer = server
        .call(
            "PhoneCall",
            "dial",
            &[("userId", "AGENT1"), ("address", "2003")],
        )
        .await;
    let dialled = answer.ok().ret().text.to_string();
    expect(
        &mut sap,
        "/a1",
        "phoneCallChanged",
        "dial rings the agent",
        |e| is(e, "callId", &dialled) && is(e, "state", "dialing"),
    )
    .await;
    // The agent answers (still dialing), then the customer answers.
    let phones = [AGENT1_PHONE, CUSTOMER_PHONE];
    let connected = accept_until(&mut sap, &phones, "/a1", "customer answered", |e| {
        is(e, "callId", &dialled) && is(e, "state", "connected")
    })
    .await;
    assert_eq!(connected.field("direction").as_deref(), Some("outbound"));

    // Not ready with a reason: QueuePause Reason=10.
    server
        .call(
            "User",
            "setCurrentWorkmode",
            &[("userId", "AGENT1"), ("workmode", "3"), ("reason", "10")],
        )
        .await
        .ok();
    expect(&mut sap, "/a1", "workmodeChanged", "not ready", |e| {
        is(e, "workmode", "3") && is(e, "reason", "10")
    })
    .await;

    // Switchover: Asterisk crashes mid-call (no hangup events), the link goes down: SAP
    // shows every agent `switch_unavailable` (not ready, reason SWITCH_UNAVAILABLE)...
    setup(Some("--kill-asterisk")).unwrap();
    let unavailable = |e: &Received| is_workmode(e, "3", Some("SWITCH_UNAVAILABLE"));
    expect_events(
        &mut sap,
        None,
        vec![
            ("/a1", "agent 1 switch unavailable", Box::new(unavailable)),
            ("/a2", "agent 2 switch unavailable", Box::new(unavailable)),
        ],
    )
    .await;
    ready(&server, 503, "LinkDown").await;
    let (code, fault) = server
        .call("System", "getPresenceQueueInfo", &[("channel", "phone")])
        .await
        .fault();
    assert!(code.ends_with("Server"), "{code}");
    assert_eq!(fault, "switch unavailable");
    let (_, fault) = server
        .call(
            "PhoneCall",
            "dial",
            &[("userId", "AGENT1"), ("address", "2003")],
        )
        .await
        .fault();
    assert!(
        fault.contains("unavailable") || fault.contains("link"),
        "{fault}"
    );
    // ... it comes back, the adapter reconnects, and the resync drops the dead call.
    // Each agent's own workmode is shown again first (agent 1: not ready, reason 10).
    setup(Some("--start-asterisk")).unwrap();
    let seen = expect_events(
        &mut sap,
        None,
        vec![
            (
                "/a1",
                "agent 1's own workmode back",
                Box::new(|e: &Received| is_workmode(e, "3", Some("10"))),
            ),
            (
                "/a2",
                "agent 2's own workmode back",
                Box::new(|e: &Received| is_workmode(e, "1", None)),
            ),
            (
                "/a1",
                "resync drop",
                Box::new(|e: &Received| {
                    e.name == "phoneCallChanged"
                        && is(e, "callId", &dialled)
                        && is(e, "state", "dropped")
                }),
            ),
            // Queue memberships did not survive the restart (persistentmembers=no). In the
            // same wait: each subscription is delivered on its own, so this one may arrive
            // before agent 2's event.
            (
                "/a1",
                "logged off by restart",
                Box::new(|e: &Received| e.name == "workmodeChanged" && is(e, "workmode", "1")),
            ),
        ],
    )
    .await;
    assert!(
        seen[0].sequence < seen[2].sequence && seen[2].sequence < seen[3].sequence,
        "own workmode, then the resync, then the switch's state: {:?} {:?} {:?}",
        seen[0].sequence,
        seen[2].sequence,
        seen[3].sequence
    );
    assert_eq!(seen[2].field("reason").as_deref(), Some("switch resync"));
    assert_eq!(
        server.request(true, "GET", "/readyz", &[], "").await.status,
        200
    );
    server.stop().await;
}
