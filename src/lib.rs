//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Data flow: XML only between SAP and `ici`; typed ICI from `ici` to the switch and back.
//! ```text
//! SAP ─POST─▶ server ─▶ soap::parse_request ─▶ ici::resolve ─Operation─▶ session ─SwitchCommand─▶ switch
//! ▲                                                                       │ │ ▲                     │
//! └─ soap::write_response ◀─ ici::render ◀─Answer─────────────────────────┘ │ └──SwitchEvent────────┘
//!                                                                           └─IciEvent─▶ ici::render (Wire) ─▶ notify
//! SAP appURL ◀─POST─ notify: one ordered outbox per subscription, kept in the spool
//! admin: /healthz /readyz /metrics /status /api/... /sim/...
//! ```
//! Layer rules (checked by a test, `architecture.rs`, which lists every allowed edge):
//! - [`soap`] (bytes ⇄ XML values) uses nothing of ours. [`ici`] (catalog, typed requests,
//!   rendering of answers and events) is the only other module that knows XML.
//! - [`session`] speaks typed ICI: it takes an `Operation`, returns an `Answer` or a
//!   `SessionError`, emits `IciEvent`s written by the `Wire` it is given at start; it
//!   knows the switch vocabulary and the notifier's handle, never `soap`, `ici`, hyper or
//!   a concrete switch backend.
//! - [`switch`] backends (`sim`, `asterisk`) use the switch vocabulary, [`domain`],
//!   [`config`] and the backoff only, never each other.
//! - [`notify`] owns outbound HTTP and the spool: it delivers rendered envelopes and
//!   reports back typed `Feedback`.
//! - Errors: one enum per layer (`DomainError`, `SwitchError`, `SessionError`,
//!   `IciError`, ...); `IciError::fault` is the one mapping to a SOAP fault, whose detail
//!   carries only what the client sent or can act on.
//! - No import circles. Top to bottom: [`admin`], [`server`] → [`listener`] →
//!   [`security`], [`tls`]; [`server`] → [`ici`] → [`session`] → [`notify`] →
//!   [`switch`] → [`config`] → [`domain`], [`numbers`], [`soap`].
//!
//! The other modules: [`wsdl`] (WSDL files from the catalog), [`metrics`] (Prometheus),
//! [`logging`] (log files, the per-user SOAP capture), [`ops`] (what the listeners feed
//! metrics and the capture), [`reload`] (SIGHUP), [`trace_cmd`] (one user's story from the
//! logs).

pub mod admin;
#[cfg(test)]
mod architecture;
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

pub use config::LiveConfig;

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
                wrap_up: q.wrap_up,
            })
            .collect(),
        remote_answer_after: sim.remote_answer_after,
    }
}
