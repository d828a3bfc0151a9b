//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Map of the crate and its data flow:
//! ```text
//! SAP ──SOAP──▶ server ─▶ soap::parse_request ─▶ ici::resolve ─▶ session (actor) ─▶ switch adapter
//!                                                                    ▲                  │
//!                                                                    └──SwitchEvent─────┘
//! session ─▶ notify (one ordered outbox per subscription) ──SOAP POST──▶ SAP appURL
//! admin: /healthz /readyz /metrics /status /api/... /sim/...
//! ```
//! - [`config`]: TOML file → validated [`config::Config`] that every other module reads.
//! - [`listener`]: the accept loop both listeners share: connection cap, header timeout,
//!   graceful shutdown.
//! - [`server`]: the SAP-facing SOAP listener (limits, `?wsdl`, faults, Basic auth).
//! - [`tls`]: rustls for the SOAP listener (client certificates, reload without restart)
//!   and for events to `https://` appURLs.
//! - [`security`]: source-address allow-lists, Basic auth with a per-peer failure limit,
//!   counters of refusals.
//! - [`admin`]: health, readiness, metrics, the status page, capture switch, simulator
//!   control.
//! - [`logging`]: log files, levels, the per-user raw SOAP capture, recent problems.
//! - [`metrics`]: Prometheus counters, histograms and state gauges.
//! - [`ops`]: the hooks the listeners call to feed metrics and the capture.
//! - [`reload`]: SIGHUP: what of a changed configuration applies at once, what needs a
//!   restart.
//! - [`trace_cmd`]: the `trace` command: one user's story from the log files.
//! - [`soap`]: the SOAP 1.1 wire layer (pure): request bytes → element tree, envelopes out.
//! - [`ici`]: the ICI operation catalog and typed operations.
//! - [`domain`]: validated domain types (`UserId`, `Workmode`, `AppUrl`).
//! - [`session`]: the session manager actor: agents, interactions (six-cap), subscriptions.
//! - [`notify`]: event delivery to SAP, ordered per subscription, with retries.
//! - [`numbers`]: phone numbers: switch parties to SAP's E.164 form, ANI/DNIS attribute
//!   search, and the number SAP dials as sent to the switch.
//! - [`switch`]: the switch adapter vocabulary and its implementations (`sim`, `asterisk`
//!   over AMI).
//! - [`wsdl`]: WSDL 1.1 documents generated from the `ici` catalog, served on `GET ?wsdl`.

pub mod admin;
mod backoff;
pub mod config;
pub mod domain;
pub mod ici;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod numbers;
pub mod ops;
pub mod reload;
pub mod security;
pub mod server;
pub mod session;
pub mod soap;
pub mod switch;
pub mod tls;
pub mod trace_cmd;
pub mod wsdl;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::info;

use config::{Config, SwitchKind};

/// The two bound listeners. Binding is the caller's job, so tests can bind port 0 and
/// learn the addresses before the server runs.
#[derive(Debug)]
pub struct Listeners {
    pub soap: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds both listeners at their configured addresses.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        Ok(Listeners {
            soap: TcpListener::bind(config.soap.listen).await?,
            admin: TcpListener::bind(config.admin.listen).await?,
        })
    }

    /// The bound addresses (soap, admin).
    pub fn addresses(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.soap.local_addr()?, self.admin.local_addr()?))
    }
}

/// How long a graceful stop keeps delivering queued events before it leaves them in the
/// spool.
const SHUTDOWN_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Spool(notify::spool::SpoolError),
    #[error("switch kind {0} is not available in this build yet")]
    SwitchUnavailable(SwitchKind),
    #[error("[tls]: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot read a listener's address: {0}")]
    Listener(#[source] std::io::Error),
}

/// Runs the connector until `shutdown` completes (or fails at once when the TLS files in
/// `[tls]` cannot be loaded), then stops accepting, lets in-flight
/// requests finish within `limits.request_timeout`, and returns.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let (_keep, live) = watch::channel(Arc::new(config));
    run_live(live, listeners, shutdown).await
}

/// The configuration as it is now: a reload (SIGHUP) publishes a new one here, and the
/// parts that may change at run time (see [`reload`]) are read from it per request.
pub type LiveConfig = watch::Receiver<Arc<Config>>;

/// Like [`run`], with a configuration that can change while running.
pub async fn run_live(
    live: LiveConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let config = live.borrow().clone();
    metrics::install();
    for warning in config.warnings() {
        tracing::warn!(%warning, "configuration");
    }
    let (soap_addr, admin_addr) = listeners.addresses().map_err(RunError::Listener)?;
    // TLS files are read before anything starts, so a bad certificate stops the start.
    let server_tls = if config.tls.enabled {
        Some(tls::ServerTls::load(&config.tls)?)
    } else {
        None
    };
    let outbound_tls = tls::client_config(&config.tls.outbound)?;
    let (event_tx, event_rx) = mpsc::channel(session::SWITCH_EVENT_QUEUE);
    let sink = switch::EventSink::new(event_tx);
    let (adapter, sim_control): (Arc<dyn switch::SwitchAdapter>, _) = match config.switch.kind {
        SwitchKind::Sim => {
            let (sim, control) = switch::sim::start(sim_settings(&config), sink);
            (Arc::new(sim), Some(control))
        }
        kind @ SwitchKind::Asterisk => {
            let Some(asterisk) = config.switch.asterisk.clone() else {
                return Err(RunError::SwitchUnavailable(kind));
            };
            (Arc::new(switch::asterisk::start(asterisk, sink)), None)
        }
    };
    let store = notify::RedbStore::open(&config.events.data_dir).map_err(RunError::Spool)?;
    let (spool, restored) = notify::Spool::start(store).map_err(RunError::Spool)?;
    let (feedback_tx, feedback_rx) = mpsc::channel(session::FEEDBACK_QUEUE);
    let notifier = notify::Notifier::with_spool(
        notify::NotifierSettings {
            tls: Some(outbound_tls),
            // Events never go to our own listeners (as bound: port 0 is resolved here).
            destinations: Arc::new(notify::Destinations::new(
                [soap_addr, admin_addr],
                &config.events.allow,
            )),
            ..notify::NotifierSettings::from(&config.events)
        },
        feedback_tx,
        spool,
    );
    let (session, session_task) = session::start(session::Parts {
        config: Arc::clone(&config),
        switch: adapter,
        switch_events: event_rx,
        notifier: notifier.clone(),
        feedback: feedback_rx,
        restored,
        wire: ici::WIRE,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let counters = Arc::new(security::SecurityCounters::default());
    let reload_task = server_tls
        .clone()
        .map(|server_tls| tokio::spawn(server_tls.watch(config.tls.clone(), stop_rx.clone())));
    let reconfigure_task = tokio::spawn(forward_reloads(live.clone(), session.clone()));
    let soap_task = tokio::spawn(server::serve(
        listeners.soap,
        live.clone(),
        session.clone(),
        listener::ListenerSecurity {
            tls: server_tls,
            allow: security::AccessList::new(&config.access.soap_allow),
            counters: Arc::clone(&counters),
        },
        stop_rx.clone(),
    ));
    let admin_task = tokio::spawn(admin::serve(
        listeners.admin,
        live,
        session.clone(),
        sim_control,
        listener::ListenerSecurity {
            tls: None,
            allow: security::AccessList::new(&config.access.admin_allow),
            counters,
        },
        stop_rx,
    ));
    info!(switch = %config.switch.kind, "ici-connector running");
    shutdown.await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = soap_task.await;
    let _ = admin_task.await;
    if let Some(task) = reload_task {
        let _ = task.await;
    }
    reconfigure_task.abort();
    drop(session);
    let _ = session_task.await;
    // What SAP does not take in time stays in the spool for the next start.
    notifier.shutdown(SHUTDOWN_FLUSH).await;
    Ok(())
}

/// Hands every new configuration to the session manager (workmode mapping, numbers).
async fn forward_reloads(mut live: LiveConfig, session: session::SessionHandle) {
    while live.changed().await.is_ok() {
        let config = live.borrow_and_update().clone();
        session.reconfigure(config).await;
    }
}

fn sim_settings(config: &Config) -> switch::sim::SimSettings {
    let sim = &config.switch.sim;
    switch::sim::SimSettings {
        extensions: sim.extensions.clone(),
        queues: sim
            .queue
            .iter()
            .map(|q| switch::sim::SimQueue {
                name: q.name.clone(),
                number: q.number.clone(),
                members: q.members.clone(),
            })
            .collect(),
        remote_answer_after: sim.remote_answer_after,
    }
}
