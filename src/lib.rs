//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Data flow: XML only between SAP and `ici`; typed ICI from `ici` to the switch and back.
//! ```text
//! SAP ─POST▶ server ─▶ soap::parse_envelope ─▶ ici::resolve ─Operation─▶ session ─SwitchCommand─▶ switch
//! ▲                                                                       │ │ ▲                     │
//! └─ soap::write_response ◀─ ici::render ◀─Answer─────────────────────────┘ │ └──SwitchEvent────────┘
//!                                                                           └─IciEvent─▶ ici::render (Wire) ─▶ notify
//! SAP appURL ◀─POST─ notify: one ordered outbox per subscription, kept in the spool
//! admin: /healthz /readyz /metrics /status /api/... /sim/... /agent/ (the agent desktop,
//!        which speaks SOAP like SAP and takes its events at an appURL of its own)
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
pub mod cluster;
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

/// The bound listeners. Binding is the caller's job, so tests can bind port 0 and
/// learn the addresses before the server runs.
#[derive(Debug)]
pub struct Listeners {
    /// `soap.listen`.
    pub soap: TcpListener,
    pub admin: TcpListener,
    /// `[[soap.listeners]]`, in the configuration's order.
    pub more_soap: Vec<TcpListener>,
}

impl Listeners {
    /// Binds every listener at its configured address.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let mut more_soap = Vec::with_capacity(config.soap.listeners.len());
        for listener in &config.soap.listeners {
            more_soap.push(TcpListener::bind(listener.listen).await?);
        }
        Ok(Listeners {
            soap: TcpListener::bind(config.soap.listen).await?,
            admin: TcpListener::bind(config.admin.listen).await?,
            more_soap,
        })
    }

    /// The bound addresses (soap, admin).
    pub fn addresses(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.soap.local_addr()?, self.admin.local_addr()?))
    }

    /// The bound addresses of `[[soap.listeners]]`.
    pub fn more_soap_addresses(&self) -> std::io::Result<Vec<SocketAddr>> {
        self.more_soap.iter().map(TcpListener::local_addr).collect()
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
    #[error("[cluster]: {0}")]
    Cluster(#[from] cluster::ClusterError),
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

/// Like [`run`], with a configuration that can change while running. With `[cluster]`
/// the connector is one of an active/standby pair ([`cluster`]).
pub async fn run_live(
    live: LiveConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let pair = live.borrow().cluster.clone();
    if let Some(pair) = pair {
        return run_pair(live, listeners, pair, shutdown).await;
    }
    let store = {
        let config = live.borrow();
        notify::RedbStore::open(&config.events.data_dir).map_err(RunError::Spool)?
    };
    run_active(live, listeners, store, notify::Fence::open(), shutdown).await
}

/// One connector of an active/standby pair: standby until it takes the leader lease, then
/// active on the replicated spool until the lease is lost (back to standby) or `shutdown`
/// (the spool marked clean and the lease released, so the standby takes over at once).
async fn run_pair(
    live: LiveConfig,
    listeners: Listeners,
    pair: config::ClusterConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    metrics::install();
    // Each phase serves the same sockets through its own handles.
    let soap = listeners.soap.into_std().map_err(RunError::Listener)?;
    let admin = listeners.admin.into_std().map_err(RunError::Listener)?;
    let more_soap = listeners
        .more_soap
        .into_iter()
        .map(|l| l.into_std().map_err(RunError::Listener))
        .collect::<Result<Vec<_>, _>>()?;
    let phase = || -> Result<Listeners, RunError> {
        let clone = |l: &std::net::TcpListener| {
            l.try_clone()
                .and_then(TcpListener::from_std)
                .map_err(RunError::Listener)
        };
        Ok(Listeners {
            soap: clone(&soap)?,
            admin: clone(&admin)?,
            more_soap: more_soap.iter().map(clone).collect::<Result<_, _>>()?,
        })
    };
    let (stop_tx, mut stop) = watch::channel(false);
    let forward = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        std::future::pending::<()>().await
    };
    // The standby's listeners on this phase's handles of the sockets.
    let serve_standby = |config: &Config| -> Result<cluster::Standby, RunError> {
        let listeners = phase()?;
        Ok(cluster::Standby::serve(
            listeners.soap,
            listeners.admin,
            config,
            cluster::StandbySecurity {
                soap: listener::ListenerSecurity {
                    tls: if config.tls.enabled {
                        Some(tls::ServerTls::load(&config.tls)?)
                    } else {
                        None
                    },
                    allow: security::AccessList::new(&config.access.soap_allow),
                    counters: Arc::default(),
                },
                admin: listener::ListenerSecurity {
                    tls: None,
                    allow: security::AccessList::new(&config.access.admin_allow),
                    counters: Arc::default(),
                },
            },
        ))
    };
    let pair = async move {
        // Standby from the start: /readyz says why while NATS is out of reach.
        let mut first = Some(serve_standby(&live.borrow().clone())?);
        let starting = first.as_ref().expect("just made");
        starting.set_reason(format!(
            "standby: connecting to NATS ({})",
            pair.nats.join(", ")
        ));
        let js = tokio::select! {
            js = cluster::connect(&pair) => js?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let lease = loop {
            // The NATS cluster may still be electing its leaders (all machines booting).
            let opened = tokio::select! {
                opened = cluster::Lease::open(&js, &pair) => opened,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            match opened {
                Ok(lease) => break Arc::new(lease),
                Err(e) => {
                    tracing::warn!(error = %e, "leader lease bucket not reachable yet");
                    starting.set_reason(format!("standby: {e}"));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pair.lease_ttl) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        };
        loop {
            let standby = match first.take() {
                Some(standby) => standby,
                None => serve_standby(&live.borrow().clone())?,
            };
            let held = standby.acquire(&lease, &mut stop).await;
            standby.stop().await;
            let Some(held) = held else { return Ok(()) };
            let (mut keeper, fence) = cluster::Keeper::start(Arc::clone(&lease), held);
            let taken =
                notify::JetStreamStore::take_over(js.clone(), &pair, held.revision, fence.clone())
                    .await;
            let store = match taken {
                Ok(store) => store,
                Err(e) => {
                    // NATS still electing the stream's leader, say: let the lease go and
                    // try again as standby (the other connector may do better).
                    tracing::error!(error = %e, "cannot take the spool over: back to standby");
                    lease.release(keeper.revision()).await;
                    drop(keeper);
                    tokio::select! {
                        _ = tokio::time::sleep(pair.lease_ttl) => continue,
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
            };
            let mut lost = None;
            let mut stopping = stop.clone();
            let ended = async {
                tokio::select! {
                    why = keeper.lost() => lost = Some(why),
                    _ = stopping.wait_for(|s| *s) => {}
                }
            };
            run_active(live.clone(), phase()?, store, fence, ended).await?;
            match lost {
                Some(why) => {
                    tracing::warn!(reason = %why, "leader lease lost: stepped down to standby")
                }
                None => {
                    lease.release(keeper.revision()).await;
                    return Ok(());
                }
            }
        }
    };
    tokio::select! {
        result = pair => result,
        _ = forward => unreachable!("the forwarder never ends"),
    }
}

/// The connector at work: the switch, the session, delivery, both listeners, on `store`;
/// it acts while `fence` allows.
async fn run_active(
    live: LiveConfig,
    listeners: Listeners,
    store: impl notify::spool::SpoolStore,
    fence: notify::Fence,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let config = live.borrow().clone();
    metrics::install();
    for warning in config.warnings() {
        tracing::warn!(%warning, "configuration");
    }
    let (soap_addr, admin_addr) = listeners.addresses().map_err(RunError::Listener)?;
    let more_soap_addrs = listeners
        .more_soap_addresses()
        .map_err(RunError::Listener)?;
    // TLS files are read before anything starts, so a bad certificate stops the start.
    let server_tls = if config.any_tls_listener() {
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
    let adapter: Arc<dyn switch::SwitchAdapter> = if fence.is_lease() {
        Arc::new(cluster::FencedSwitch::new(adapter, fence.clone()))
    } else {
        adapter
    };
    let (spool, restored) = notify::Spool::start(store).map_err(RunError::Spool)?;
    let (feedback_tx, feedback_rx) = mpsc::channel(session::FEEDBACK_QUEUE);
    let notifier = notify::Notifier::with_spool(
        notify::NotifierSettings {
            tls: Some(outbound_tls),
            // Events never go to our own listeners (as bound: port 0 is resolved here).
            // The one exception: the agent desktop's receiver on the admin listener.
            destinations: Arc::new(
                notify::Destinations::new(
                    [soap_addr, admin_addr].into_iter().chain(more_soap_addrs),
                    &config.events.allow,
                )
                .with_desktop_receiver(admin_addr, admin::agent::EVENTS_PATH),
            ),
            fence: fence.clone(),
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
    // One task per SOAP listener, each with its own transport and allow-list.
    let soap_sockets = std::iter::once(listeners.soap).chain(listeners.more_soap);
    let soap_tasks: Vec<_> = soap_sockets
        .zip(config.soap_listeners())
        .map(|(socket, plan)| {
            info!(listener = %plan.key, tls = plan.tls, "SOAP listener");
            tokio::spawn(server::serve(
                socket,
                live.clone(),
                session.clone(),
                listener::ListenerSecurity {
                    tls: server_tls.clone().filter(|_| plan.tls),
                    allow: security::AccessList::new(&plan.allow),
                    counters: Arc::clone(&counters),
                },
                stop_rx.clone(),
            ))
        })
        .collect();
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
    for task in soap_tasks {
        let _ = task.await;
    }
    let _ = admin_task.await;
    if let Some(task) = reload_task {
        let _ = task.await;
    }
    reconfigure_task.abort();
    drop(session);
    let _ = session_task.await;
    // What SAP does not take in time stays in the spool for the next start. A connector
    // that lost its lease delivers nothing more: the next active has it all.
    let flush = if fence.allows() {
        SHUTDOWN_FLUSH
    } else {
        std::time::Duration::ZERO
    };
    notifier.shutdown(flush).await;
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
