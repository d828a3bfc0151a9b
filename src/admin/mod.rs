//! The admin listener: health and readiness, a JSON status snapshot, and the simulator's
//! control API (only when the switch is the simulator). Loopback by default. The
//! operations routes (`/readyz`, `/metrics`, `/status`, `/api/capture`, `/api/problems`)
//! live in [`ops`], the agent desktop (`/agent/...`) in [`agent`].

use std::sync::Arc;

use http::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::LiveConfig;
use crate::listener::{self, HttpResponse, ListenerSecurity, Peer};
use crate::security::{AuthOutcome, BasicAuth, SecurityCounters};
use crate::session::SessionHandle;
use crate::switch::sim::{SimControl, control};

pub mod agent;
mod ops;
pub mod status_page;

pub use ops::CaptureUsers;

struct Admin {
    config: LiveConfig,
    session: SessionHandle,
    sim: Option<SimControl>,
    auth: Option<BasicAuth>,
    counters: Arc<SecurityCounters>,
    desktops: agent::Streams,
}

/// Serves the admin listener until `stop`. The allow-list and counters come in `security`
/// (never TLS: it is meant for loopback or a management network); Basic auth from
/// `[auth] admin_users`, required for everything but `/healthz` and `/readyz`.
pub async fn serve(
    listener: TcpListener,
    config: LiveConfig,
    session: SessionHandle,
    sim: Option<SimControl>,
    security: ListenerSecurity,
    stop: watch::Receiver<bool>,
) {
    let first = config.borrow().clone();
    let limits = crate::server::connection_limits(&first);
    let auth = BasicAuth::new(&first.auth, &first.auth.admin_users);
    let desktops = match listener.local_addr() {
        Ok(addr) => agent::Streams::new(addr, stop.clone()),
        Err(e) => {
            tracing::error!(error = %e, "admin listener has no address");
            return;
        }
    };
    let admin = Arc::new(Admin {
        config,
        session,
        sim,
        auth,
        counters: Arc::clone(&security.counters),
        desktops,
    });
    listener::serve(listener, limits, security, stop, move |request, peer| {
        let admin = Arc::clone(&admin);
        async move { admin.route(request, peer).await }
    })
    .await;
}

impl Admin {
    /// The desktop's event receiver (its token is its key: the notifier has no admin
    /// credentials), then the admin authentication, then the routes.
    async fn route(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
        peer: Peer,
    ) -> hyper::Response<agent::AdminBody> {
        use http_body_util::BodyExt;
        let config = self.config.borrow().clone();
        let request = match agent::receive(&config, &self.desktops, request).await {
            Ok(response) => return response.map(|body| body.boxed()),
            Err(request) => request,
        };
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        // Probes stay open for load balancers; everything else is behind the admin auth.
        let probe = method == Method::GET && (path == "/healthz" || path == "/readyz");
        let mut admin_user = None;
        if let (Some(auth), false) = (&self.auth, probe) {
            let outcome = auth
                .check(request.headers(), peer.addr.ip(), &self.counters)
                .await;
            match outcome {
                AuthOutcome::Allowed(user) => admin_user = Some(user),
                outcome => {
                    let refusal = auth.refusal(&outcome);
                    let mut response =
                        listener::text(refusal.status, format!("{}\n", refusal.text));
                    refusal.add_header(response.headers_mut());
                    return listener::closing(response).map(|body| body.boxed());
                }
            }
        }
        if agent::is_desktop_path(&path) {
            let session = &self.session;
            let simulator = self.sim.is_some();
            return agent::handle(
                &config,
                session,
                &self.desktops,
                request,
                peer,
                admin_user,
                simulator,
            )
            .await;
        }
        self.handle(&config, request).await.map(|body| body.boxed())
    }

    async fn handle(
        &self,
        config: &crate::config::Config,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> HttpResponse {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let request = match ops::handle(config, &self.session, request).await {
            Ok(response) => return response,
            Err(request) => request,
        };
        match (&method, path.as_str()) {
            (&Method::GET, "/healthz") => listener::text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/api/status") => match self.session.snapshot().await {
                Some(snapshot) => {
                    let mut value = serde_json::to_value(&snapshot).unwrap_or_default();
                    if let Some(object) = value.as_object_mut() {
                        let mut security =
                            serde_json::to_value(self.counters.snapshot()).unwrap_or_default();
                        if let Some(security) = security.as_object_mut() {
                            security.insert(
                                "recent_tls_refusals".into(),
                                serde_json::to_value(self.counters.tls_refusals.recent())
                                    .unwrap_or_default(),
                            );
                        }
                        object.insert("security".into(), security);
                    }
                    json(StatusCode::OK, &value)
                }
                None => listener::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
            },
            (_, p) if p == "/sim" || p.starts_with("/sim/") => {
                let Some(sim) = &self.sim else {
                    return listener::text(
                        StatusCode::NOT_FOUND,
                        "the switch is not the simulator\n",
                    );
                };
                let limits = &config.limits;
                let body = match listener::read_body(
                    request,
                    limits.max_body_bytes,
                    limits.request_timeout,
                )
                .await
                {
                    Ok(body) => body,
                    Err(_) => {
                        return listener::closing(listener::text(
                            StatusCode::BAD_REQUEST,
                            "bad body\n",
                        ));
                    }
                };
                let (status, value) =
                    control::handle(sim, &method, &p["/sim".len()..], &body).await;
                json(status, &value)
            }
            _ => listener::text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> HttpResponse {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    listener::response(status, "application/json", body)
}
