//! The operations routes of the admin listener:
//!
//! - `GET /readyz`: one line per check (listeners, switch link, spool writable); 200 when
//!   all pass, 503 otherwise.
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]).
//! - `GET /status`: the live status page (HTML, [`super::status_page`]).
//! - `GET /api/problems`: the recent warn/error lines, JSON.
//! - `GET /api/capture`, `POST /api/capture {"users": [...]}`: who is under raw SOAP
//!   capture; the POST replaces the list (an empty list switches capture off).

use http::{Method, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::listener::{self, HttpResponse};
use crate::metrics::StateGauges;
use crate::session::{SessionHandle, StatusSnapshot};

/// The answer to `GET/POST /api/capture`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaptureUsers {
    pub users: Vec<String>,
}

/// Handles an operations route, or hands the request back.
pub(super) async fn handle(
    config: &Config,
    session: &SessionHandle,
    request: hyper::Request<Incoming>,
) -> Result<HttpResponse, hyper::Request<Incoming>> {
    let method = request.method().clone();
    Ok(match (method, request.uri().path()) {
        (Method::GET, "/readyz") => readyz(config, session).await,
        (Method::GET, "/metrics") => {
            let gauges = session.snapshot().await.map(|s| state_gauges(&s));
            listener::response(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render(gauges.as_ref(), &config.events.data_dir),
            )
        }
        (Method::GET, "/status") => listener::response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            super::status_page::HTML,
        ),
        (Method::GET, "/api/problems") => json(&crate::logging::recent_problems()),
        (Method::GET, "/api/capture") => json(&CaptureUsers {
            users: crate::logging::capture_users(),
        }),
        (Method::POST, "/api/capture") => {
            let limits = &config.limits;
            let Ok(body) =
                listener::read_body(request, limits.max_body_bytes, limits.request_timeout).await
            else {
                return Ok(listener::closing(listener::text(
                    StatusCode::BAD_REQUEST,
                    "bad body\n",
                )));
            };
            match serde_json::from_slice::<CaptureUsers>(&body) {
                Ok(wanted) => {
                    crate::logging::set_capture_users(wanted.users);
                    json(&CaptureUsers {
                        users: crate::logging::capture_users(),
                    })
                }
                Err(e) => listener::text(
                    StatusCode::BAD_REQUEST,
                    format!("expected {{\"users\": [\"USER\", ...]}}: {e}\n"),
                ),
            }
        }
        _ => return Err(request),
    })
}

async fn readyz(config: &Config, session: &SessionHandle) -> HttpResponse {
    let mut ok = true;
    let mut lines = Vec::new();
    let mut check = |name: &str, pass: bool, detail: String| {
        ok &= pass;
        lines.push(format!(
            "{name}: {} ({detail})",
            if pass { "ok" } else { "FAIL" }
        ));
    };
    // run() only starts with both listeners bound, and this answer comes through one.
    check(
        "listeners",
        true,
        format!("soap {}, admin {}", config.soap.listen, config.admin.listen),
    );
    match session.snapshot().await {
        Some(s) => check(
            "switch",
            s.switch_link_up,
            format!(
                "{} link {}",
                s.switch,
                if s.switch_link_up { "up" } else { "down" }
            ),
        ),
        None => check("switch", false, "session manager stopped".into()),
    }
    if let Some(cluster) = &config.cluster {
        // The spool is the replicated stream; this connector serves only while it holds
        // the leader lease, which needs that same NATS cluster.
        check("role", true, format!("active, node {}", cluster.node));
        check(
            "spool",
            true,
            format!("NATS JetStream stream {}", cluster.stream()),
        );
        return readyz_answer(ok, &lines);
    }
    let dir = &config.events.data_dir;
    let probe = dir.join(".readyz-probe");
    let writable = match tokio::fs::write(&probe, b"ok").await {
        Ok(()) => {
            let _ = tokio::fs::remove_file(&probe).await;
            Ok(())
        }
        Err(e) => Err(e),
    };
    check(
        "spool",
        writable.is_ok(),
        match writable {
            Ok(()) => format!("{} writable", dir.display()),
            Err(e) => format!("{}: {e}", dir.display()),
        },
    );
    readyz_answer(ok, &lines)
}

fn readyz_answer(ok: bool, lines: &[String]) -> HttpResponse {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let head = if ok { "ready" } else { "not ready" };
    listener::text(status, format!("{head}\n{}\n", lines.join("\n")))
}

fn json(value: &impl Serialize) -> HttpResponse {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    listener::response(StatusCode::OK, "application/json", body)
}

/// What the state gauges of `/metrics` show of the session manager's snapshot.
fn state_gauges(snapshot: &StatusSnapshot) -> StateGauges {
    let interactions = snapshot.agents.iter().flat_map(|a| &a.interactions);
    let visible = interactions.clone().filter(|i| i.visible).count();
    StateGauges {
        switch: snapshot.switch,
        switch_link_up: snapshot.switch_link_up,
        agent_workmodes: snapshot.agents.iter().map(|a| a.workmode).collect(),
        visible,
        waiting: interactions.count() - visible,
        subscriptions: snapshot.subscriptions.len(),
        spool_events: snapshot.subscriptions.iter().map(|s| s.queue_depth).sum(),
    }
}
