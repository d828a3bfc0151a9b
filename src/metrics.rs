//! Prometheus metrics on the admin listener's `/metrics`.
//!
//! Counters and histograms are recorded where things happen, through the `metrics` crate
//! and its Prometheus recorder (installed once per process by [`install`]); the state
//! gauges (switch link, agents by workmode, interactions, subscriptions, spool) are read from
//! the session manager's snapshot at scrape time and appended, so they are never stale.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `ici_soap_requests_total` | counter | `op`, `outcome` (`ok`, `client_fault`, `server_fault`) |
//! | `ici_soap_request_duration_seconds` | histogram | `op` |
//! | `ici_events_queued_total` | counter | |
//! | `ici_events_delivered_total` | counter | `event` |
//! | `ici_events_retried_total` | counter | `event` |
//! | `ici_events_dropped_total` | counter | `reason` (`overflow`, `coalesced`, `session_gone`, `gave_up`, `rejected`) |
//! | `ici_subscriptions_refused_total` | counter | `reason` (`app_url`, `max_subscriptions_per_target`, `max_subscriptions`) |
//! | `ici_event_delivery_duration_seconds` | histogram | `event` |
//! | `ici_xml_chars_replaced_total` | counter | | (characters XML 1.0 does not allow, from the switch) |
//! | `ici_connections_refused_total` | counter | `reason` (`peer_cap`, `max_connections`) |
//! | `ici_spool_quarantined_total` | counter | `table` (damaged spool records, never delivered) |
//! | `ici_spool_wait_seconds` | histogram | | (each time intake waited for the spool writer: the disk is the bottleneck) |
//! | `ici_spool_queue_depth` | gauge | | (changes waiting for the spool writer when it last took a batch) |
//! | `ici_sap_product_information_total` | counter | `ici_version` (SAP's, from exchangeProductInformation; `none` when absent) |
//! | `ici_switch_link_up` | gauge | `switch` |
//! | `ici_agents` | gauge | `workmode` |
//! | `ici_interactions` | gauge | `visibility` (`visible`, `waiting`) |
//! | `ici_subscriptions` | gauge | |
//! | `ici_spool_events` | gauge | | (events held until SAP takes them)
//! | `ici_spool_bytes` | gauge | | (size of the spool files)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::domain::Workmode;

/// Histogram buckets in seconds: SOAP answers are sub-millisecond to seconds, event
/// deliveries milliseconds to the 10 s request timeout.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return the same
/// handle). `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    spawn_upkeep(handle.clone());
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets (the exporter's own default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample (about 16 bytes each, one per SOAP request and
/// per event delivered) until upkeep folds it into the buckets. A scrape of `/metrics` runs
/// upkeep, but without Prometheus scraping the samples would pile up for as long as the
/// process runs; this thread bounds them.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "metrics upkeep thread not started");
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("ici_soap_requests_total", "SOAP requests from SAP");
    describe_histogram!(
        "ici_soap_request_duration_seconds",
        Unit::Seconds,
        "time to answer a SOAP request"
    );
    describe_counter!("ici_events_queued_total", "events queued for SAP");
    describe_counter!(
        // `ici::SAP_PRODUCT_METRIC` (ici is above this module in the layers).
        "ici_sap_product_information_total",
        "exchangeProductInformation calls, by the ICI version SAP speaks"
    );
    describe_counter!("ici_events_delivered_total", "events SAP acknowledged");
    describe_counter!(
        "ici_events_retried_total",
        "failed delivery attempts that will be retried"
    );
    describe_counter!("ici_events_dropped_total", "events that never reached SAP");
    describe_counter!(
        "ici_subscriptions_refused_total",
        "subscribe requests refused (appURL not allowed, or a subscription cap reached)"
    );
    describe_counter!(
        crate::soap::XML_CHARS_REPLACED,
        "characters XML 1.0 does not allow, replaced in what we wrote"
    );
    describe_counter!(
        "ici_spool_quarantined_total",
        "damaged spool records moved to quarantine instead of being delivered"
    );
    describe_histogram!(
        "ici_spool_wait_seconds",
        Unit::Seconds,
        "time intake waited because the spool writer's queue was full"
    );
    describe_gauge!(
        "ici_spool_queue_depth",
        "changes waiting for the spool writer when it last took a batch"
    );
    describe_histogram!(
        "ici_event_delivery_duration_seconds",
        Unit::Seconds,
        "time of one successful event POST"
    );
    describe_counter!(
        "ici_connections_refused_total",
        "connections answered 503 at a connection cap"
    );
}

/// One SOAP request answered. `op` is a catalog operation name (or `"other"`), so a
/// client cannot create label values at will.
pub fn soap_request(op: &'static str, outcome: &'static str, duration: Duration) {
    let handles = soap_handles(op);
    handles.requests(outcome).increment(1);
    handles.duration.record(duration.as_secs_f64());
}

/// The registered metrics of one operation. Looking a labelled metric up in the recorder
/// hashes its key on every call, a few per cent of a request's CPU at full load
/// (BENCHMARKS.md, benchmark 1); a handle is registered once, on the operation's first
/// request, so only the operations SAP uses appear in `/metrics`.
struct SoapHandles {
    op: &'static str,
    outcomes: [OnceLock<metrics::Counter>; 3],
    duration: metrics::Histogram,
}

const OUTCOMES: [&str; 3] = ["ok", "client_fault", "server_fault"];

impl SoapHandles {
    fn requests(&self, outcome: &'static str) -> &metrics::Counter {
        // Anything else counts as the last outcome, a server fault.
        let index = OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(OUTCOMES.len() - 1);
        let op = self.op;
        self.outcomes[index].get_or_init(|| {
            metrics::counter!("ici_soap_requests_total", "op" => op, "outcome" => OUTCOMES[index])
        })
    }
}

fn soap_handles(op: &'static str) -> std::sync::Arc<SoapHandles> {
    use std::collections::HashMap;
    use std::sync::{Arc, RwLock};
    static HANDLES: OnceLock<RwLock<HashMap<&'static str, Arc<SoapHandles>>>> = OnceLock::new();
    let table = HANDLES.get_or_init(Default::default);
    if let Some(handles) = table.read().unwrap_or_else(|e| e.into_inner()).get(op) {
        return Arc::clone(handles);
    }
    let mut table = table.write().unwrap_or_else(|e| e.into_inner());
    Arc::clone(table.entry(op).or_insert_with(|| {
        Arc::new(SoapHandles {
            op,
            outcomes: Default::default(),
            duration: metrics::histogram!("ici_soap_request_duration_seconds", "op" => op),
        })
    }))
}

/// An event went onto an outbox.
pub fn event_queued() {
    metrics::counter!("ici_events_queued_total").increment(1);
}

/// SAP took an event.
pub fn event_delivered(event: &'static str, latency: Duration) {
    metrics::counter!("ici_events_delivered_total", "event" => event).increment(1);
    metrics::histogram!("ici_event_delivery_duration_seconds", "event" => event)
        .record(latency.as_secs_f64());
}

/// A delivery attempt failed and will be retried.
pub fn event_retried(event: &'static str) {
    metrics::counter!("ici_events_retried_total", "event" => event).increment(1);
}

/// `count` events were dropped for `reason`.
pub fn events_dropped(reason: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!("ici_events_dropped_total", "reason" => reason).increment(count);
    }
}

/// A `subscribe*` was refused for `reason`.
pub fn subscription_refused(reason: &'static str) {
    metrics::counter!("ici_subscriptions_refused_total", "reason" => reason).increment(1);
}

/// A connection got no slot: `reason` is `peer_cap` or `max_connections`.
pub fn connection_refused(reason: &'static str) {
    metrics::counter!("ici_connections_refused_total", "reason" => reason).increment(1);
}

/// A damaged record of the spool's `table` was moved to quarantine.
pub fn spool_record_quarantined(table: &'static str) {
    metrics::counter!("ici_spool_quarantined_total", "table" => table).increment(1);
}

/// Intake waited `waited` for room in the spool writer's queue.
pub fn spool_waited(waited: Duration) {
    metrics::histogram!("ici_spool_wait_seconds").record(waited.as_secs_f64());
}

/// `depth` changes wait for the spool writer.
pub fn spool_queue_depth(depth: usize) {
    metrics::gauge!("ici_spool_queue_depth").set(depth as f64);
}

/// The state the gauges show, read from the session manager at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateGauges {
    /// The switch's name and whether its link is up.
    pub switch: &'static str,
    pub switch_link_up: bool,
    /// The workmode of every agent SAP knows.
    pub agent_workmodes: Vec<u32>,
    /// Interactions SAP sees, and those waiting behind the cap.
    pub visible: usize,
    pub waiting: usize,
    pub subscriptions: usize,
    /// Events held until SAP takes them.
    pub spool_events: usize,
}

/// The whole `/metrics` page: recorded counters and histograms, then the state gauges of
/// `state` and the spool in `data_dir`.
pub fn render(state: Option<&StateGauges>, data_dir: &Path) -> String {
    let mut out = match install() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    };
    if let Some(s) = state {
        gauge_header(
            &mut out,
            "ici_switch_link_up",
            "1 when the switch link is up",
        );
        let _ = writeln!(
            out,
            "ici_switch_link_up{{switch=\"{}\"}} {}",
            s.switch,
            u8::from(s.switch_link_up)
        );
        // SAP's fixed workmodes are always listed, zero or not.
        let mut workmodes: BTreeMap<u32, usize> =
            [Workmode::LOGGED_OFF, Workmode::READY, Workmode::NOT_READY]
                .map(|w| (w.0, 0))
                .into();
        for workmode in &s.agent_workmodes {
            *workmodes.entry(*workmode).or_default() += 1;
        }
        gauge_header(&mut out, "ici_agents", "agents known to SAP by workmode");
        for (workmode, n) in workmodes {
            let _ = writeln!(out, "ici_agents{{workmode=\"{workmode}\"}} {n}");
        }
        gauge_header(
            &mut out,
            "ici_interactions",
            "interactions SAP sees (visible) or that wait behind the cap (waiting)",
        );
        let _ = writeln!(
            out,
            "ici_interactions{{visibility=\"visible\"}} {}",
            s.visible
        );
        let _ = writeln!(
            out,
            "ici_interactions{{visibility=\"waiting\"}} {}",
            s.waiting
        );
        gauge_header(&mut out, "ici_subscriptions", "live event subscriptions");
        let _ = writeln!(out, "ici_subscriptions {}", s.subscriptions);
        gauge_header(
            &mut out,
            "ici_spool_events",
            "events held (in the spool) until SAP takes them",
        );
        let _ = writeln!(out, "ici_spool_events {}", s.spool_events);
    }
    gauge_header(&mut out, "ici_spool_bytes", "size of the event spool files");
    let _ = writeln!(out, "ici_spool_bytes {}", dir_size(data_dir));
    out
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
