//! The admin listener: health and readiness, a JSON status snapshot, and the simulator's
//! control API (only when the switch is the simulator). Loopback by default. The
//! operations routes (`/readyz`, `/metrics`, `/status`, `/api/capture`, `/api/problems`)
//! live in [`ops`].

use std::sync::Arc;

use http::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::listener::{self, HttpResponse};
use crate::session::SessionHandle;
use crate::switch::sim::{SimControl, control};

mod ops;
pub mod status_page;

pub use ops::CaptureUsers;

struct Admin {
    config: Arc<Config>,
    session: SessionHandle,
    sim: Option<SimControl>,
}

/// Serves the admin listener until `stop`.
pub async fn serve(
    listener: TcpListener,
    config: Arc<Config>,
    session: SessionHandle,
    sim: Option<SimControl>,
    stop: watch::Receiver<bool>,
) {
    let limits = crate::server::connection_limits(&config);
    let admin = Arc::new(Admin {
        config,
        session,
        sim,
    });
    listener::serve(listener, limits, stop, move |request, _peer| {
        let admin = Arc::clone(&admin);
        async move { admin.handle(request).await }
    })
    .await;
}

impl Admin {
    async fn handle(&self, request: hyper::Request<hyper::body::Incoming>) -> HttpResponse {
        let request = match ops::handle(&self.config, &self.session, request).await {
            Ok(response) => return response,
            Err(request) => request,
        };
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        match (&method, path.as_str()) {
            (&Method::GET, "/healthz") => listener::text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/api/status") => match self.session.snapshot().await {
                Some(snapshot) => json(StatusCode::OK, &snapshot),
                None => listener::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
            },
            (_, p) if p == "/sim" || p.starts_with("/sim/") => {
                let Some(sim) = &self.sim else {
                    return listener::text(
                        StatusCode::NOT_FOUND,
                        "the switch is not the simulator\n",
                    );
                };
                let limits = &self.config.limits;
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
