//! One scenario, every backend: the agent's whole toolbar (`tests/fixtures/scenarios/
//! toolbar.toml`) sent through SOAP exactly as SAP sends it, against a switch backend, and
//! what SAP receives compared event by event with one expected file
//! (`toolbar.events`) that every backend must match.
//!
//! The runner ([`run`]) is backend-neutral. What happens outside the connector (a customer
//! calling the queue with IVR data, answering, hanging up; a phone that must pick up) is a
//! [`Backend`]'s job: [`sim::SimLab`] does it through the simulator's control API, an
//! Asterisk lab with SIP phones does it with its phones.
//!
//! Recording: every user of the scenario subscribes to its own path of one fake SAP
//! receiver. After each step the runner takes as many events per user as the expected
//! file lists for that step (events of different users travel on different delivery
//! queues, so only their order per user is fixed), renders them ([`record`]) and compares.
//! Call ids become `c1`, `c2`, ... in the order the scenario first sees them (a step's
//! answer first, then its events user by user), so backends with different call ids match.
//! After the last step the subscriptions' sequence numbers (`/api/status`) must equal the
//! last ones received: nothing more was sent.
//!
//! `ICI_UPDATE_GOLDEN=1` rewrites the expected file instead (from the simulator: a step's
//! events are all queued when its answer or control action returns, so the runner takes as
//! many as `/api/status` says were sent).

mod asterisk;
mod coverage;
mod record;
mod sim;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::common;
use common::fake_sap::{FakeSap, Received};
use common::server::TestServer;

pub use record::Recorder;
pub use steps::{Scenario, Step};

/// Set (to anything) to rewrite the expected file instead of comparing with it.
const UPDATE_ENV: &str = "ICI_UPDATE_GOLDEN";

/// How long one step may take to deliver the events the expected file lists for it: long
/// enough for a real PBX and SIP phones on a busy 2-core machine.
pub const STEP_WAIT: Duration = Duration::from_secs(20);

/// The lab's numbers: who is where. The defaults are the Asterisk lab's
/// (tests/asterisk/etc): agents 2001 and 2002, the customer's phone 2003, a supervisor's
/// phone 2004, queue `support` on 600.
#[derive(Debug, Clone)]
pub struct Lab {
    pub agent1: String,
    pub agent2: String,
    pub supervisor: String,
    /// The customer's number: the caller id of its calls and the number agents dial.
    pub customer: String,
    /// The ACD queue's name, as SAP sees it.
    pub queue: String,
    /// The number callers dial to reach the queue.
    pub queue_number: String,
}

impl Default for Lab {
    fn default() -> Lab {
        Lab {
            agent1: "2001".into(),
            agent2: "2002".into(),
            supervisor: "2004".into(),
            customer: "2003".into(),
            queue: "support".into(),
            queue_number: "600".into(),
        }
    }
}

impl Lab {
    /// The device a scenario's `device` names (`agent1`, `agent2`, `supervisor`).
    pub fn device(&self, name: &str) -> &str {
        match name {
            "agent1" => &self.agent1,
            "agent2" => &self.agent2,
            "supervisor" => &self.supervisor,
            other => panic!("scenario: no lab device {other:?}"),
        }
    }
}

/// Why the runner asks a backend to make a phone pick up: SAP asked for something that, on
/// some switches, needs the agent's own phone to answer (the simulator needs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickUp {
    /// SAP's `accept` of an alerting call at this device.
    Accept,
    /// SAP's `dial` from this device (a PBX may ring the agent's phone first).
    Dial,
    /// SAP's `listen`: the supervisor's device is connected to the call.
    Listen,
}

/// The world outside the connector, as one switch backend's lab provides it. Calls are
/// named by the switch's call ids (as SAP saw them in events).
///
/// For a real PBX (the Asterisk lab: tests/asterisk, baresip phones driven over ctrl_tcp):
/// [`Lab::default`] are its numbers (the supervisor's phone 2004 is one more phone); the
/// customer's phone places and takes the customer's calls; `pick_up` answers a phone only
/// where the configured answer mode does not (e.g. the supervisor's phone for `listen`).
/// Then `run("toolbar", &mut backend)` from the Asterisk test, inside the machine-wide lock.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Short name for messages and the recorded output's file (`sim`, `asterisk`).
    fn name(&self) -> &'static str;

    /// Who is where.
    fn lab(&self) -> &Lab;

    /// The connector configuration for this backend: `[switch]` and its subsections, and
    /// anything else the backend needs. The runner adds the scenario's users and
    /// workmodes ([`connector_config`]).
    fn switch_config(&self) -> String;

    /// Once the connector runs: waits until the switch link is up and the lab is idle.
    async fn ready(&mut self, server: &TestServer);

    /// The customer calls the queue; the IVR attaches `data` (an `ItemAttachedData`
    /// document) to the call. Returns once the call is on its way to the queue.
    async fn customer_calls_queue(&mut self, server: &TestServer, data: &str);

    /// The customer answers `call` (an agent dialled it).
    async fn customer_answers(&mut self, server: &TestServer, call: &str);

    /// The customer hangs up `call`.
    async fn customer_hangs_up(&mut self, server: &TestServer, call: &str);

    /// SAP's operation `why` (answered without a fault) may need the phone at `device` to
    /// pick up; do it if this switch needs it.
    async fn pick_up(&mut self, server: &TestServer, device: &str, why: PickUp);

    /// Whether `ICI_UPDATE_GOLDEN=1` may rewrite the expected file from this backend: only
    /// one whose events for a step are all sent when the step returns (the simulator). A
    /// real PBX reports some of them later, so it is always compared.
    fn records_expected(&self) -> bool {
        false
    }
}

/// The connector configuration of a scenario run: the backend's switch, the lab's agents
/// and the workmodes the scenario uses (reason `10`, the reject workmode 3).
pub fn connector_config(backend: &impl Backend, scenario: &Scenario) -> String {
    let lab = backend.lab();
    let users: String = scenario
        .users
        .iter()
        .map(|u| {
            format!(
                "{} = {{ extension = \"{}\" }}\n",
                u.id,
                lab.device(&u.device)
            )
        })
        .collect();
    format!(
        "{switch}\n[agents]\nqueues = [\"{queue}\"]\n[agents.users]\n{users}\n\
         [workmodes]\nreject = 3\n[[workmodes.reasons]]\ncode = \"10\"\ntext = \"Back office\"\n",
        switch = backend.switch_config(),
        queue = lab.queue,
    )
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scenarios")
        .join(name)
}

/// Runs scenario `name` (`tests/fixtures/scenarios/<name>.toml`) against `backend` and
/// compares what SAP received with `<name>.events` (or rewrites it with
/// [`UPDATE_ENV`]). The backend's lab must be up.
pub async fn run(name: &str, backend: &mut impl Backend) {
    let scenario = Scenario::load(&fixture(&format!("{name}.toml")));
    let expected_path = fixture(&format!("{name}.events"));
    let update = std::env::var_os(UPDATE_ENV).is_some() && backend.records_expected();
    let expected = if update {
        None
    } else {
        let text = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; {UPDATE_ENV}=1 cargo test --test it scenario writes it",
                expected_path.display()
            )
        });
        Some(record::parse(&text))
    };

    let mut sap = FakeSap::start().await;
    let server = TestServer::start(&connector_config(backend, &scenario)).await;
    backend.ready(&server).await;
    let mut recorder = Recorder::new(&scenario, backend.lab(), &sap);
    let mut inbox: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    let mut actual = String::new();

    for (index, step) in scenario.steps.iter().enumerate() {
        let header = recorder.header(index, step);
        let answer = steps::perform(step, &mut recorder, backend, &server).await;
        let counts = match &expected {
            Some(expected) => expected
                .get(index)
                .unwrap_or_else(|| panic!("{}: no step {index} in the expected file", name))
                .counts(),
            None => sent_counts(&server, &recorder, &inbox).await,
        };
        let events = take(&mut sap, &mut inbox, &counts, &recorder, &header).await;
        let block = recorder.block(&header, answer, events);
        if let Some(expected) = &expected {
            let want = &expected[index].text;
            if *want != block {
                let out = std::env::temp_dir().join(format!("{name}.{}.events", backend.name()));
                std::fs::write(&out, format!("{actual}{block}")).ok();
                panic!(
                    "{} on {}: step {index} differs\n--- expected\n{want}--- actual\n{block}\
                     (everything received so far: {})",
                    name,
                    backend.name(),
                    out.display()
                );
            }
        }
        actual.push_str(&block);
    }
    // Nothing beyond what the last step showed was sent to any subscription.
    let sent = sent_counts(&server, &recorder, &inbox).await;
    let extra: Vec<_> = sent.iter().filter(|(_, n)| **n > 0).collect();
    assert!(
        extra.is_empty(),
        "{name} on {}: events after the last step: {extra:?}",
        backend.name()
    );
    if update {
        std::fs::write(&expected_path, &actual).unwrap();
    } else if let Some(expected) = &expected {
        assert_eq!(
            expected.len(),
            scenario.steps.len(),
            "{name}: the expected file has more steps than the scenario"
        );
    }
    server.stop().await;
}

/// Per user: how many events were sent to its subscription and not yet received (or
/// buffered in `inbox`), as `/api/status` counts them.
async fn sent_counts(
    server: &TestServer,
    recorder: &Recorder,
    inbox: &BTreeMap<String, Vec<Received>>,
) -> BTreeMap<String, usize> {
    let status = server.status().await;
    let mut counts = BTreeMap::new();
    for sub in status["subscriptions"].as_array().into_iter().flatten() {
        let url = sub["app_url"].as_str().unwrap_or_default();
        let Some(user) = recorder.user_of_url(url) else {
            continue;
        };
        let sent = sub["sequence"].as_u64().unwrap_or(0);
        let seen = recorder.last_sequence(&user) + inbox.get(&user).map_or(0, Vec::len) as u64;
        counts.insert(user, sent.saturating_sub(seen) as usize);
    }
    counts
}

/// Takes `counts[user]` events per user, in each user's order; events of other users that
/// arrive meanwhile wait in `inbox` for their step.
async fn take(
    sap: &mut FakeSap,
    inbox: &mut BTreeMap<String, Vec<Received>>,
    counts: &BTreeMap<String, usize>,
    recorder: &Recorder,
    header: &str,
) -> BTreeMap<String, Vec<Received>> {
    let missing = |inbox: &BTreeMap<String, Vec<Received>>| {
        counts
            .iter()
            .filter(|(user, n)| inbox.get(*user).map_or(0, Vec::len) < **n)
            .map(|(user, n)| format!("{user}: {n}"))
            .collect::<Vec<_>>()
    };
    let filled = tokio::time::timeout(STEP_WAIT, async {
        while !missing(inbox).is_empty() {
            let event = sap.next_event().await;
            let user = recorder
                .user_of_path(&event.path)
                .unwrap_or_else(|| panic!("an event on an unknown path: {}", event.path));
            inbox.entry(user).or_default().push(event);
        }
    })
    .await;
    if filled.is_err() {
        panic!(
            "{header}: events still missing after {STEP_WAIT:?}: {:?}",
            missing(inbox)
        );
    }
    counts
        .iter()
        .map(|(user, n)| {
            let queue = inbox.entry(user.clone()).or_default();
            (user.clone(), queue.drain(..*n).collect())
        })
        .collect()
}
