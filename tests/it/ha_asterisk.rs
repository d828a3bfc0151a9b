//! High availability against the real Asterisk (tests/asterisk/setup.sh): a call is up when
//! the active connector is killed with SIGKILL; the standby takes over, resynchronises from
//! the PBX and reports the call to SAP under the same call id (the call id is Asterisk's
//! `Linkedid`, so it does not depend on which connector saw the call first), its sequence
//! numbers continuing above everything the dead connector handed out; then hold, retrieve
//! and drop through HAProxy work on that call.
//!
//! Machinery as in `ha.rs` (three `nats-server`, HAProxy, two connectors as child
//! processes, the fake SAP receiver) plus the Asterisk lab, under the lab's machine-wide
//! lock. Without the lab, nats-server or HAProxy (outside CI) the test says SKIPPED.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ici_connector::notify::spool::SEQUENCE_RESERVE;

use crate::asterisk_flow::{AGENT1_PHONE, CUSTOMER_PHONE, STEP, Teardown, lab_lock, phone, setup};
use crate::common;
use common::cluster::{Backend, Haproxy, NatsCluster, http_get, soap_status};
use common::fake_sap::{FakeSap, Received};
use common::process::Process;
use common::server::{Endpoints, envelope, ns};

/// The lease of the test pair: short, so the takeover is quick; the default is 3 s.
const LEASE_TTL: &str = "2s";
/// How long a takeover (lease, AMI login and resync, HAProxy checks) may take at most here.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(30);

/// A connector of the pair on the lab's PBX: agent 2001 in queue `support`.
fn connector(dir: &Path, node: &str, nats: &NatsCluster) -> Process {
    let dir = dir.join(node);
    std::fs::create_dir_all(&dir).unwrap();
    let urls: Vec<String> = nats.urls().iter().map(|u| format!("{u:?}")).collect();
    let toml = format!(
        r#"
[events]
retry_min = "50ms"
retry_max = "200ms"
[switch]
kind = "asterisk"
[switch.asterisk]
host = "127.0.0.1"
username = "cti"
secret = "ctipass"
queues = ["support"]
reconnect_min = "200ms"
reconnect_max = "1s"
[agents]
queues = ["support"]
[agents.users]
AGENT1 = {{ extension = "2001" }}
[cluster]
nats = [{}]
node = {node:?}
lease_ttl = {LEASE_TTL:?}
replicas = 3
"#,
        urls.join(", ")
    );
    Process::start_in(&dir, &toml)
}

async fn wait_ready(admin: SocketAddr, status: u16, what: &str) {
    common::poll(what, TAKEOVER_WITHIN, || async move {
        match http_get(admin, "/readyz").await {
            Some((s, _)) if s == status => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Waits until HAProxy passes SOAP to a connector (its health checks follow `/readyz`).
async fn through_haproxy(front: SocketAddr, what: &str) {
    let harmless = envelope(&ns("System"), "getWorkcenterCapability", "");
    common::poll(what, TAKEOVER_WITHIN, || {
        let harmless = harmless.clone();
        async move {
            match soap_status(front, &harmless).await {
                Some(200) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
}

/// SAP's side: every event received, by sequence number, to see that no number is handed
/// out twice for different events.
struct Sap {
    fake: FakeSap,
    /// sequence → (event name, call id, state).
    seen: BTreeMap<u64, (String, Option<String>, Option<String>)>,
}

impl Sap {
    /// The next event on `/a1` named `name` that satisfies `want`; others are recorded and
    /// skipped. A sequence number arriving again must carry the same event (a duplicate of
    /// a delivery the dead connector did not see acknowledged), never a different one.
    async fn expect(
        &mut self,
        name: &str,
        what: &str,
        want: impl Fn(&Received) -> bool,
    ) -> Received {
        let found = tokio::time::timeout(TAKEOVER_WITHIN, async {
            loop {
                let event = self.fake.next_event().await;
                let sequence = event.sequence.expect("every event has a sequence");
                let content = (
                    event.name.clone(),
                    event.field("callId"),
                    event.field("state"),
                );
                let earlier = self.seen.entry(sequence).or_insert_with(|| content.clone());
                assert_eq!(
                    *earlier, content,
                    "sequence {sequence} reused for a different event"
                );
                if event.path == "/a1" && event.name == name && want(&event) {
                    return event;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no {name} within {TAKEOVER_WITHIN:?}: {what}"))
    }
}

fn is(event: &Received, field: &str, value: &str) -> bool {
    event.field(field).as_deref() == Some(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_the_kill_of_the_active_connector_on_a_real_asterisk() {
    let (Some(nats_server), Some(haproxy)) =
        (common::tools::nats_server(), common::tools::haproxy())
    else {
        return;
    };
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

    let dir = tempfile::tempdir().unwrap();
    let nats = NatsCluster::start(&nats_server, dir.path()).await;
    let mut sap = Sap {
        fake: FakeSap::start().await,
        seen: BTreeMap::new(),
    };
    let a = connector(dir.path(), "connector-a", &nats);
    wait_ready(a.endpoints.admin, 200, "connector-a active, AMI link up").await;
    let b = connector(dir.path(), "connector-b", &nats);
    wait_ready(b.endpoints.admin, 503, "connector-b standby").await;
    let backend = |p: &Process| Backend {
        soap: p.endpoints.soap,
        admin: p.endpoints.admin,
    };
    let proxy = Haproxy::start(&haproxy, dir.path(), backend(&a), backend(&b)).await;
    let front = proxy.addr;
    through_haproxy(front, "SOAP through HAProxy").await;
    // SAP only ever talks to HAProxy (the admin address is for status pages only).
    let sap_side = Endpoints::new(front, a.endpoints.admin);

    // The agent subscribes and logs in through HAProxy.
    let url = sap.fake.url_for("/a1");
    sap_side
        .call(
            "User",
            "subscribeUser",
            &[("userId", "AGENT1"), ("appURL", &url), ("appId", "APP")],
        )
        .await
        .ok();
    sap_side
        .call(
            "User",
            "setCurrentWorkmode",
            &[("userId", "AGENT1"), ("workmode", "2")],
        )
        .await
        .ok();
    sap.expect("workmodeChanged", "ready", |e| is(e, "workmode", "2"))
        .await;

    // The customer calls the queue; the agent answers on the phone.
    phone(CUSTOMER_PHONE, "dial", "sip:600@127.0.0.1:5160").await;
    let alerting = sap
        .expect("phoneCallChanged", "queue call rings", |e| {
            is(e, "state", "alerting")
        })
        .await;
    let call = alerting.field("callId").unwrap();
    let connected = tokio::time::timeout(STEP, async {
        // The SIP INVITE may reach the phone a little after the AMI event.
        loop {
            phone(AGENT1_PHONE, "accept", "").await;
            let answered = tokio::time::timeout(
                Duration::from_millis(700),
                sap.expect("phoneCallChanged", "answered", |e| {
                    is(e, "callId", &call) && is(e, "state", "connected")
                }),
            )
            .await;
            if let Ok(event) = answered {
                return event;
            }
        }
    })
    .await
    .expect("the agent's phone answers the queue call");
    // Every number up to here is durable, and the spool keeps a reservation
    // SEQUENCE_RESERVE above the last: the standby numbers from there.
    let before = connected.sequence.unwrap();

    // The active dies mid-call; the standby takes over and resyncs from the PBX.
    a.kill();
    wait_ready(b.endpoints.admin, 200, "connector-b active after the kill").await;
    let resynced = sap
        .expect("phoneCallChanged", "the standby reports the call", |e| {
            e.sequence.unwrap() > before + SEQUENCE_RESERVE
                && is(e, "state", "connected")
                && e.field("callId").is_some()
        })
        .await;
    assert_eq!(
        resynced.field("callId").as_deref(),
        Some(call.as_str()),
        "the same call id after the takeover"
    );
    assert_eq!(resynced.field("remoteAddress").as_deref(), Some("+2003"));

    // Hold, retrieve and drop through HAProxy, now served by connector-b (once HAProxy's
    // health check has seen it ready).
    through_haproxy(front, "SOAP through HAProxy after the takeover").await;
    sap_side
        .call("PhoneCall", "hold", &[("callId", &call)])
        .await
        .ok();
    sap.expect("phoneCallChanged", "held after takeover", |e| {
        is(e, "callId", &call) && is(e, "state", "held")
    })
    .await;
    sap_side
        .call("PhoneCall", "unhold", &[("callId", &call)])
        .await
        .ok();
    sap.expect("phoneCallChanged", "retrieved after takeover", |e| {
        is(e, "callId", &call) && is(e, "state", "connected")
    })
    .await;
    sap_side
        .call("PhoneCall", "drop", &[("callId", &call)])
        .await
        .ok();
    let dropped = sap
        .expect("phoneCallChanged", "dropped after takeover", |e| {
            is(e, "callId", &call) && is(e, "state", "dropped")
        })
        .await;
    assert!(dropped.sequence.unwrap() > resynced.sequence.unwrap());
    b.stop();
}
