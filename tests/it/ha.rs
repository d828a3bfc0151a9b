//! High availability with real processes on loopback: a three-node NATS JetStream cluster,
//! HAProxy (both from the files in `packaging/`), two connectors on the simulator as child
//! processes, and the fake SAP receiver. One test runs the scenarios one after another on
//! the same machinery (starting it takes seconds):
//! 1. events of 20 calls wait in the spool while SAP answers 503; the active connector is
//!    killed with SIGKILL; the standby takes over and delivers every event in order, none
//!    lost, numbering continuing above them (duplicates counted);
//! 2. SOAP through HAProxy works again after the takeover (the gap is measured);
//! 3. one NATS node killed: nothing lost, nothing stops;
//! 4. the active connector SIGSTOPped past its lease, then SIGCONTed: it delivers nothing,
//!    drives no switch, and steps down to standby;
//! 5. the active stopped gracefully (SIGTERM): the standby takes over at once, numbering
//!    continuing without a gap.
//!
//! Without nats-server or HAProxy (outside CI) the test says SKIPPED; scripts/test.sh
//! installs both.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common;
use common::cluster::{Backend, Haproxy, NatsCluster, http_get, soap_status};
use common::fake_sap::{FakeSap, Mode};
use common::process::Process;
use common::server::{Endpoints, envelope, envelope_as, ns, params};

/// The lease of the test pair: short, so the test is quick; the default is 3 s.
const LEASE_TTL: &str = "2s";
const CALLS: usize = 20;
/// How long a takeover may take at most here (lease, HAProxy checks, a loaded machine).
const TAKEOVER_WITHIN: Duration = Duration::from_secs(30);

fn connector(dir: &Path, node: &str, nats: &NatsCluster) -> Process {
    let dir = dir.join(node);
    std::fs::create_dir_all(&dir).unwrap();
    let urls: Vec<String> = nats.urls().iter().map(|u| format!("{u:?}")).collect();
    let toml = format!(
        "[events]\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n\
         [switch.sim]\nremote_answer_after = \"off\"\n\
         [cluster]\nnats = [{}]\nnode = {node:?}\nlease_ttl = {LEASE_TTL:?}\nreplicas = 3\n",
        urls.join(", ")
    );
    Process::start_in(&dir, &toml)
}

/// `/readyz` of a connector: (status, body).
async fn readyz(admin: SocketAddr) -> Option<(u16, String)> {
    http_get(admin, "/readyz").await
}

async fn wait_ready(admin: SocketAddr, status: u16, what: &str) -> Instant {
    common::poll(what, TAKEOVER_WITHIN, || async move {
        match readyz(admin).await {
            Some((s, _)) if s == status => Ok(Instant::now()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Rings 2001 `calls` times, each caller hanging up: two events per call.
async fn make_calls(sim: &Endpoints, calls: usize) -> u64 {
    for _ in 0..calls {
        let (status, body) = sim
            .sim("POST", "/calls", json!({"from": "4711", "to": "2001"}))
            .await;
        assert_eq!(status, 201, "{body}");
        let call = body["callId"].as_str().unwrap().to_string();
        let (status, _) = sim
            .sim("POST", &format!("/calls/{call}/hangup"), json!(null))
            .await;
        assert_eq!(status, 200);
    }
    2 * calls as u64
}

/// Waits until the connector's spool holds every event up to `sequence` (the status page
/// is the only place that says).
async fn wait_durable(api: &Endpoints, sequence: u64) {
    common::poll("events durable", TAKEOVER_WITHIN, || async {
        let status = api.status().await;
        let durable = status["subscriptions"][0]["durable_sequence"]
            .as_u64()
            .unwrap_or(0);
        if durable >= sequence {
            Ok(())
        } else {
            Err(format!("durable up to {durable}"))
        }
    })
    .await;
}

/// What SAP received of a run of events.
#[derive(Debug, Default)]
struct Received {
    /// Every sequence number, first arrivals, in arrival order.
    first: Vec<u64>,
    duplicates: usize,
    seen: BTreeSet<u64>,
}

impl Received {
    /// Takes events until every number of `wanted` has arrived; a number arriving again
    /// counts as a duplicate.
    async fn until(&mut self, fake: &mut FakeSap, wanted: impl IntoIterator<Item = u64>) {
        let wanted: BTreeSet<u64> = wanted.into_iter().collect();
        while !wanted.is_subset(&self.seen) {
            let event = fake.next_event().await;
            let sequence = event.sequence.expect("every event has a sequence");
            if self.seen.insert(sequence) {
                self.first.push(sequence);
            } else {
                self.duplicates += 1;
            }
        }
    }

    fn assert_in_order(&self) {
        let mut sorted = self.first.clone();
        sorted.sort_unstable();
        assert_eq!(self.first, sorted, "new sequence numbers arrive in order");
    }
}

/// A SOAP operation the session answers without changing anything (getAttributes would
/// end the user's subscriptions: a new IC session).
fn harmless() -> String {
    envelope(&ns("System"), "getWorkcenterCapability", "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_standby_pair_loses_nothing() {
    let (Some(nats_server), Some(haproxy)) =
        (common::tools::nats_server(), common::tools::haproxy())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsCluster::start(&nats_server, dir.path()).await;
    let mut fake = FakeSap::start().await;
    fake.set_mode(Mode::Status(503));

    let a = connector(dir.path(), "connector-a", &nats);
    wait_ready(a.endpoints.admin, 200, "connector-a active").await;
    let b = connector(dir.path(), "connector-b", &nats);
    let b_admin = b.endpoints.admin;
    common::poll(
        "connector-b standby, saying why",
        TAKEOVER_WITHIN,
        || async move {
            match readyz(b_admin).await {
                Some((503, reason))
                    if reason.contains("standby: the leader lease is held by connector-a") =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let backend = |p: &Process| Backend {
        soap: p.endpoints.soap,
        admin: p.endpoints.admin,
    };
    let proxy = Haproxy::start(&haproxy, dir.path(), backend(&a), backend(&b)).await;
    let front = proxy.addr;
    common::poll("SOAP through HAProxy", TAKEOVER_WITHIN, || async move {
        match soap_status(front, &harmless()).await {
            Some(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // ---- 1 and 2: kill -9 of the active with 41 events waiting ----------------------------
    Endpoints::new(front, a.endpoints.admin)
        .log_in("A1", "2001", &fake.url, "IC-1", 2)
        .await;
    let count = 1 + make_calls(&a.endpoints, CALLS).await;
    wait_durable(&a.endpoints, count).await;

    let (soap_tx, soap_back) = tokio::sync::oneshot::channel();
    let killed = Instant::now();
    let poller = tokio::spawn(async move {
        // The first SOAP answer 200 through HAProxy after the kill.
        loop {
            if soap_status(front, &harmless()).await == Some(200) {
                let _ = soap_tx.send(Instant::now());
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    a.kill();
    fake.set_mode(Mode::Ok);
    let mut received = Received::default();
    let first_event = async {
        let event = fake.next_event().await;
        (Instant::now(), event)
    };
    let (active_at, (event_at, first)) = tokio::join!(
        wait_ready(b.endpoints.admin, 200, "connector-b active after the kill"),
        first_event
    );
    let sequence = first.sequence.unwrap();
    received.seen.insert(sequence);
    received.first.push(sequence);
    received.until(&mut fake, 1..=count).await;
    received.assert_in_order();
    assert_eq!(received.first, (1..=count).collect::<Vec<_>>(), "none lost");
    let soap_at = tokio::time::timeout(TAKEOVER_WITHIN, soap_back)
        .await
        .expect("SOAP through HAProxy works again")
        .unwrap();
    poller.await.unwrap();
    let ms = |at: Instant| at.duration_since(killed).as_millis();
    eprintln!(
        "FAILOVER kill -> standby active: {} ms; kill -> first SOAP 200 through HAProxy: {} ms; \
         kill -> first event delivered: {} ms; events {count}, duplicates {} (lease_ttl {LEASE_TTL})",
        ms(active_at),
        ms(soap_at),
        ms(event_at),
        received.duplicates
    );
    // Numbering continues above everything the dead connector may have handed out.
    b.endpoints
        .sim("POST", "/agents/2001/state", json!({"state": "not_ready"}))
        .await;
    let next = fake.next_event().await;
    assert_eq!(next.name, "workmodeChanged");
    let continued = next.sequence.unwrap();
    assert!(continued > count, "{continued} continues above {count}");

    // ---- 3: one NATS node dies ---------------------------------------------------------
    let a = connector(dir.path(), "connector-a", &nats);
    wait_ready(a.endpoints.admin, 503, "connector-a back as standby").await;
    nats.kill(0);
    let more = make_calls(&b.endpoints, 5).await;
    let mut received = Received::default();
    received
        .until(&mut fake, continued + 1..=continued + more)
        .await;
    received.assert_in_order();
    assert_eq!(received.duplicates, 0);
    assert_eq!(soap_status(front, &harmless()).await, Some(200));
    assert_eq!(
        readyz(b.endpoints.admin).await.unwrap().0,
        200,
        "B still active"
    );
    assert_eq!(
        readyz(a.endpoints.admin).await.unwrap().0,
        503,
        "A still standby"
    );
    let last = continued + more;

    // ---- 4: the active paused past its lease -------------------------------------------
    fake.set_mode(Mode::Status(503));
    let pending = make_calls(&b.endpoints, 2).await;
    wait_durable(&b.endpoints, last + pending).await;
    b.signal("STOP");
    wait_ready(
        a.endpoints.admin,
        200,
        "connector-a takes over from the paused one",
    )
    .await;
    // A request that waits in the paused connector's socket for it to wake up.
    let paused_soap = b.endpoints.soap;
    let dial = tokio::spawn(async move {
        let body = envelope_as(
            "A1",
            "PhoneCall",
            "dial",
            &params(&[("userId", "A1"), ("address", "4712")]),
        );
        soap_status(paused_soap, &body).await
    });
    fake.set_mode(Mode::Ok);
    let mut received = Received::default();
    received.until(&mut fake, last + 1..=last + pending).await;
    received.assert_in_order();
    b.signal("CONT");
    let lines = b.lines_until("stepped down to standby");
    // It never delivered these (SAP answered 503 until it was paused): a line saying so
    // now would be a delivery after it lost the lease.
    let late: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("event delivered"))
        .filter(|l| {
            (last + 1..=last + pending).any(|s| {
                l.contains(&format!("sequence={s} ")) || l.ends_with(&format!("sequence={s}"))
            })
        })
        .collect();
    assert!(late.is_empty(), "the paused connector delivered: {late:?}");
    assert_ne!(
        dial.await.unwrap(),
        Some(200),
        "the paused connector drove the switch"
    );
    wait_ready(b.endpoints.admin, 503, "connector-b back as standby").await;
    // Whatever the paused connector might still have sent has arrived before the event
    // the active one delivers now.
    a.endpoints
        .sim("POST", "/agents/2001/state", json!({"state": "ready"}))
        .await;
    let next = fake.next_event().await;
    assert_eq!(
        next.name, "workmodeChanged",
        "no duplicate from the paused connector"
    );
    let last = next.sequence.unwrap();
    assert!(
        last > 1000 + 41 + pending,
        "numbering continued above the reservation"
    );

    // ---- 5: a graceful handover (SIGTERM) continues the numbering without a gap ---------
    let stopped = Instant::now();
    a.stop();
    wait_ready(b.endpoints.admin, 200, "connector-b takes over at once").await;
    let handover = stopped.elapsed();
    b.endpoints
        .sim("POST", "/agents/2001/state", json!({"state": "not_ready"}))
        .await;
    let next = fake.next_event().await;
    assert_eq!(
        (next.name.as_str(), next.sequence),
        ("workmodeChanged", Some(last + 1)),
        "after a clean stop nothing was reserved in vain"
    );
    eprintln!(
        "HANDOVER SIGTERM -> standby active: {} ms",
        handover.as_millis()
    );
    drop(proxy);
    b.kill();
}

// ---- the replicated spool itself --------------------------------------------------------

mod spool {
    use std::time::Duration;

    use ici_connector::config::ClusterConfig;
    use ici_connector::notify::spool::SpoolStore;
    use ici_connector::notify::{Fence, JetStreamStore, SpoolOp, StoredEvent, StoredSubscription};

    use super::common;
    use common::cluster::NatsCluster;

    fn pair_config(nats: &NatsCluster, node: &str, prefix: &str) -> ClusterConfig {
        ClusterConfig {
            nats: nats.urls(),
            node: node.into(),
            lease_ttl: Duration::from_secs(2),
            replicas: 3,
            prefix: prefix.into(),
        }
    }

    fn subscription() -> StoredSubscription {
        StoredSubscription {
            id: 1,
            kind: "user".into(),
            target: "A1".into(),
            url: "http://127.0.0.1:9/sap/events".into(),
            app_ids: vec!["IC-1".into()],
            sequence: 0,
        }
    }

    fn event(sequence: u64) -> SpoolOp {
        SpoolOp::Append(
            1,
            StoredEvent {
                name: "phoneCallChanged".into(),
                sequence,
                user: "A1".into(),
                call: Some(format!("sim-{sequence}")),
                body: format!("<event sequence=\"{sequence}\"/>"),
            },
        )
    }

    /// The connector that holds lease revision `lease` takes the spool over.
    async fn take_over(config: &ClusterConfig, lease: u64) -> JetStreamStore {
        let js = ici_connector::cluster::connect(config).await.unwrap();
        JetStreamStore::take_over(js, config, lease, Fence::open())
            .await
            .unwrap()
    }

    /// `store.apply(ops)` on a blocking thread, as the spool's writer thread calls it.
    async fn apply(
        mut store: JetStreamStore,
        ops: Vec<SpoolOp>,
    ) -> (JetStreamStore, Result<(), String>) {
        tokio::task::spawn_blocking(move || {
            let result = store.apply(&ops).map_err(|e| e.to_string());
            (store, result)
        })
        .await
        .unwrap()
    }

    /// Sequences of the pending events of subscription 1, and where numbering continues.
    fn pending(store: &mut JetStreamStore) -> (Vec<u64>, u64) {
        let contents = store.load().unwrap();
        let (sub, events) = &contents.subscriptions[0];
        (events.iter().map(|e| e.sequence).collect(), sub.sequence)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stream_refuses_a_stale_active() {
        let Some(binary) = common::tools::nats_server() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let nats = NatsCluster::start(&binary, dir.path()).await;
        // A fence that never closes: only the stream can refuse the stale writer here.
        let old = take_over(&pair_config(&nats, "old", "fence"), 1).await;
        let (old, result) = apply(
            old,
            vec![SpoolOp::PutSubscription(subscription()), event(1)],
        )
        .await;
        result.unwrap();

        let mut new = take_over(&pair_config(&nats, "new", "fence"), 2).await;
        let (events, next) = pending(&mut new);
        assert_eq!(events, [1]);
        assert!(
            next > 1,
            "after a takeover numbering continues above the reservation"
        );

        let (old, result) = apply(old, vec![event(2)]).await;
        let error = result.expect_err("the stale writer is refused");
        assert!(
            error.contains("another connector has taken the spool over"),
            "{error}"
        );
        assert!(old.fenced());
        let (_, result) = apply(old, vec![event(3)]).await;
        assert!(result.is_err(), "and stays refused");

        let (_, result) = apply(new, vec![event(next + 1)]).await;
        result.unwrap();
        let mut third = take_over(&pair_config(&nats, "third", "fence"), 3).await;
        assert_eq!(
            pending(&mut third).0,
            [1, next + 1],
            "nothing of the stale writer"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_compacted_log_holds_the_same_spool() {
        let Some(binary) = common::tools::nats_server() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let nats = NatsCluster::start(&binary, dir.path()).await;
        let config = pair_config(&nats, "a", "compact");
        let mut store = take_over(&config, 1).await;
        let commits = ici_connector::notify::spool::COMPACT_AFTER + 10;
        // SAP-set attached data: one call's stays, the other's leaves with its call.
        let data = |v: &str| Some(vec![("SAP-IC".to_owned(), v.to_owned())]);
        let (s, result) = apply(
            store,
            vec![
                SpoolOp::PutSubscription(subscription()),
                SpoolOp::Attached("call-1".into(), data("<kept/>")),
                SpoolOp::Attached("call-2".into(), data("<gone/>")),
            ],
        )
        .await;
        result.unwrap();
        store = s;
        let (s, result) = apply(store, vec![SpoolOp::Attached("call-2".into(), None)]).await;
        result.unwrap();
        store = s;
        // One event per commit; every one but each hundredth is acknowledged at once.
        for sequence in 1..=commits {
            let mut ops = vec![event(sequence)];
            if sequence % 100 != 0 {
                ops.push(SpoolOp::Remove(1, sequence));
            }
            let (s, result) = apply(store, ops).await;
            result.unwrap();
            store = s;
        }
        let js = ici_connector::cluster::connect(&config).await.unwrap();
        let mut stream = js.get_stream(config.stream()).await.unwrap();
        let first = stream.info().await.unwrap().state.first_sequence;
        assert!(
            first > commits / 2,
            "the log before the compaction was purged: first {first}"
        );
        let mut next = take_over(&pair_config(&nats, "b", "compact"), 2).await;
        let contents = next.load().unwrap();
        let events: Vec<u64> = contents.subscriptions[0]
            .1
            .iter()
            .map(|e| e.sequence)
            .collect();
        let wanted: Vec<u64> = (1..=commits).filter(|s| s % 100 == 0).collect();
        assert_eq!(events, wanted);
        assert_eq!(
            contents.attached.into_iter().collect::<Vec<_>>(),
            vec![("call-1".to_owned(), data("<kept/>").unwrap())],
            "attached data survives the compaction; removed data stays removed"
        );
    }
}

// ---- the leader lease --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_has_one_holder_and_outlives_its_deadline() {
    use ici_connector::cluster::{Lease, connect};
    use ici_connector::config::ClusterConfig;

    let Some(binary) = common::tools::nats_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsCluster::start(&binary, dir.path()).await;
    let config = |node: &str, ttl_ms: u64| ClusterConfig {
        nats: nats.urls(),
        node: node.into(),
        lease_ttl: Duration::from_millis(ttl_ms),
        replicas: 3,
        prefix: "lease".into(),
    };
    let (a, b) = (config("a", 2000), config("b", 1000));
    let js = connect(&a).await.unwrap();
    let first = Lease::open(&js, &a).await.unwrap();
    let second = Lease::open(&js, &b).await.unwrap();
    let held = first
        .try_acquire()
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert!(second.try_acquire().await.unwrap().is_none(), "one holder");
    assert_eq!(second.holder().await.unwrap().as_deref(), Some("a"));

    // Not renewed, it runs out; the other can take it only after the holder's deadline.
    let taken = common::poll("the lease runs out", TAKEOVER_WITHIN, || async {
        match second.try_acquire().await {
            Ok(Some(held)) => Ok((Instant::now(), held)),
            // NATS is up: an error is a fault of the lease code, not a state to wait out.
            Err(e) => panic!("{e}"),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        taken.0 >= held.until,
        "taken {:?} before the holder's deadline",
        held.until - taken.0
    );
    assert!(taken.1.revision > held.revision);
    // The new holder's lease_ttl is the bucket's now.
    let mut stream = js.get_stream("KV_lease_lease").await.unwrap();
    let max_age = stream.info().await.unwrap().config.max_age;
    assert_eq!(max_age, Duration::from_secs(1));
}

/// Without NATS the connector of a pair is up, standby, and says why.
#[tokio::test]
async fn without_nats_a_pair_connector_is_standby_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = common::cluster::free_port();
    let toml =
        format!("[cluster]\nnats = [\"nats://127.0.0.1:{closed}\"]\nnode = \"connector-a\"\n");
    let connector = Process::start_in(dir.path(), &toml);
    let admin = connector.endpoints.admin;
    common::poll("the standby's reason", TAKEOVER_WITHIN, || async move {
        match readyz(admin).await {
            Some((503, reason)) if reason.contains("standby: connecting to NATS") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(http_get(admin, "/healthz").await.map(|a| a.0), Some(200));
    assert_eq!(
        soap_status(connector.endpoints.soap, &harmless()).await,
        Some(503),
        "no SOAP on a standby"
    );
    connector.stop();
}
