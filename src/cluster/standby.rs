//! The standby's listeners: `/healthz` 200 (the process is fine), `/readyz` 503 with the
//! reason (HAProxy's check: SAP's requests go to the active connector), everything else,
//! SOAP included, 503. A connector is standby until it takes the leader lease, and again
//! after it stepped down.

use std::time::Duration;

use http::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use super::{Held, Lease};
use crate::config::Config;
use crate::listener::{self, ListenerSecurity};

/// The security of each listener, as the active connector has it.
pub struct StandbySecurity {
    pub soap: ListenerSecurity,
    pub admin: ListenerSecurity,
}

/// The standby's listeners, serving until [`Standby::stop`].
pub struct Standby {
    reason: watch::Sender<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Standby {
    /// Serves both listeners.
    pub fn serve(
        soap: TcpListener,
        admin: TcpListener,
        config: &Config,
        security: StandbySecurity,
    ) -> Standby {
        let (reason, reason_rx) = watch::channel("standby: starting".to_string());
        let (stop, stop_rx) = watch::channel(false);
        let limits = crate::server::connection_limits(config);
        let mut tasks = Vec::new();
        for (listener, security, admin) in
            [(soap, security.soap, false), (admin, security.admin, true)]
        {
            let reason = reason_rx.clone();
            tasks.push(tokio::spawn(listener::serve(
                listener,
                limits,
                security,
                stop_rx.clone(),
                move |request, _peer| {
                    let reason = reason.borrow().clone();
                    async move {
                        let probe = (request.method(), request.uri().path());
                        let response = match probe {
                            (&Method::GET, "/healthz") if admin => {
                                listener::text(StatusCode::OK, "ok\n")
                            }
                            (&Method::GET, "/readyz") if admin => listener::text(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("role: FAIL ({reason})\n"),
                            ),
                            _ => listener::text(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("this connector is not the active one ({reason})\n"),
                            ),
                        };
                        listener::closing(response)
                    }
                },
            )));
        }
        Standby {
            reason,
            stop,
            tasks,
        }
    }

    /// What `/readyz` says.
    pub fn set_reason(&self, reason: String) {
        self.reason.send_if_modified(|old| {
            let changed = *old != reason;
            *old = reason;
            changed
        });
    }

    /// Stops serving and waits until the listeners are let go (the active connector takes
    /// them over).
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }

    /// Waits until the lease is taken (`Some`) or `stop` turns true (`None`), telling
    /// `/readyz` meanwhile who holds it.
    pub async fn acquire(&self, lease: &Lease, stop: &mut watch::Receiver<bool>) -> Option<Held> {
        loop {
            // A request to an unreachable NATS may take its whole timeout: a stop does not
            // wait for it (a lease taken in that moment simply runs out).
            let attempt = tokio::select! {
                attempt = lease.try_acquire() => attempt,
                _ = stop.wait_for(|s| *s) => return None,
            };
            match attempt {
                Ok(Some(held)) => {
                    info!(
                        revision = held.revision,
                        "leader lease taken: becoming active"
                    );
                    return Some(held);
                }
                Ok(None) => {
                    let holder = lease.holder().await.ok().flatten();
                    let holder = holder.as_deref().unwrap_or("another connector");
                    self.set_reason(format!("standby: the leader lease is held by {holder}"));
                }
                Err(e) => {
                    debug!(error = %e, "leader lease: cannot take it");
                    self.set_reason(format!("standby: cannot reach the leader lease: {e}"));
                }
            }
            if wait(stop, lease.poll_interval()).await {
                return None;
            }
        }
    }
}

/// Dropped without [`Standby::stop`] (the process stops): the listeners stop as well.
impl Drop for Standby {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Sleeps `pause`; true when `stop` turned true meanwhile.
async fn wait(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}
