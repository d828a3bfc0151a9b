//! The simulator's control API over HTTP: the outside world of the simulated switch (callers,
//! remote parties, the agents' phone buttons), for people trying the connector and for
//! black-box tests. The admin listener mounts it under `/sim` and passes the rest of the
//! path here; this module only maps JSON to [`SimControl`] calls and results to statuses.
//!
//! Every action answers after the switch events it caused were sent to the session manager,
//! so the SAP events they produce are already on their way when curl returns.
//!
//! | Method | Path | Body | Answer |
//! |---|---|---|---|
//! | `POST` | `/sim/calls` | `{"from", "to"? \| "queue"?, "attributes"?, "hangup_after_ms"?}` | 201 `{"callId"}` |
//! | `POST` | `/sim/calls/{id}/answer` | – | 200 `{"callId"}` (outbound call: the far end answers) |
//! | `POST` | `/sim/calls/{id}/hangup` | – | 200 `{"callId"}` (the external party hangs up) |
//! | `GET` | `/sim/calls` | – | 200 `{"calls": [...]}` |
//! | `GET` | `/sim/agents` | – | 200 `{"agents": [...]}` |
//! | `POST` | `/sim/agents/{ext}/state` | `{"state": "ready"\|"not_ready"\|"logged_out"\|"custom", "reason"?, "custom"?}` | 200 `{"extension", "state"}` |
//! | `POST` | `/sim/link` | `{"up": false, "reason"?}` or `{"up": true}` | 200 `{"up"}` (the switch link drops or comes back) |
//!
//! Errors answer `{"error": "..."}`: 400 for a malformed body or an unknown destination,
//! 404 for an unknown call or path, 405 for a wrong method, 409 when the call's state does
//! not allow the action, 503 when the simulator has stopped.
//!
//! Examples (admin listener on `127.0.0.1:8081`):
//! ```text
//! # A customer calls the "sales" queue, with IVR data for SAP's account identification
//! curl -X POST http://127.0.0.1:8081/sim/calls -H 'content-type: application/json' \
//!   -d '{"from": "sip:555@example.com", "queue": "sales",
//!        "attributes": {"Sap_Cad": "<ItemAttachedData>...</ItemAttachedData>"}}'
//! # => {"callId":"sim-1"}
//!
//! # A call straight to extension 1001 that hangs up after 30 s if nobody answers it
//! curl -X POST http://127.0.0.1:8081/sim/calls \
//!   -d '{"from": "+4930123456", "to": "1001", "hangup_after_ms": 30000}'
//!
//! # The caller gives up (abandoned if nobody answered yet)
//! curl -X POST http://127.0.0.1:8081/sim/calls/sim-1/hangup
//!
//! # The far end of an outbound call (the agent dialled from SAP) picks up
//! curl -X POST http://127.0.0.1:8081/sim/calls/sim-2/answer
//!
//! # Agent 1001 presses "not ready" on the phone
//! curl -X POST http://127.0.0.1:8081/sim/agents/1001/state \
//!   -d '{"state": "not_ready", "reason": "lunch"}'
//!
//! # The switch link drops (SAP's agents see the switch_unavailable workmode) and comes back
//! curl -X POST http://127.0.0.1:8081/sim/link -d '{"up": false, "reason": "maintenance"}'
//! curl -X POST http://127.0.0.1:8081/sim/link -d '{"up": true}'
//!
//! # What the switch sees: calls (with the numbers it dialled) and agents
//! curl http://127.0.0.1:8081/sim/calls
//! curl http://127.0.0.1:8081/sim/agents
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CreateCall, LinkChange, SimControl, SimError};
use crate::switch::AgentState;

/// Body of `POST /calls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCallBody {
    from: String,
    to: Option<String>,
    queue: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(alias = "hangupAfterMs")]
    hangup_after_ms: Option<u64>,
}

/// Body of `POST /agents/{ext}/state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
    reason: Option<String>,
    custom: Option<String>,
}

/// Body of `POST /link`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    up: bool,
    reason: Option<String>,
}

/// The reason `LinkDown` carries when `POST /link` names none.
const DEFAULT_LINK_DOWN_REASON: &str = "dropped through the simulator's control API";

/// Serve one control request. `path` is the part after `/sim` (a query string is ignored);
/// the answer is a status and a JSON body for the admin listener to write.
pub async fn handle(
    control: &SimControl,
    method: &Method,
    path: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["calls"] if method == Method::GET => {
            let calls = control.list_calls().await;
            (StatusCode::OK, json!({ "calls": calls }))
        }
        ["calls"] if method == Method::POST => create_call(control, body).await,
        ["calls", id, "answer"] if method == Method::POST => {
            let result = control.remote_answer(id).await;
            answer(result.map(|()| json!({ "callId": id })), StatusCode::OK)
        }
        ["calls", id, "hangup"] if method == Method::POST => {
            let result = control.remote_hangup(id).await;
            answer(result.map(|()| json!({ "callId": id })), StatusCode::OK)
        }
        ["agents"] if method == Method::GET => {
            let agents = control.list_agents().await;
            (StatusCode::OK, json!({ "agents": agents }))
        }
        ["agents", ext, "state"] if method == Method::POST => {
            set_agent_state(control, ext, body).await
        }
        ["link"] if method == Method::POST => set_link(control, body).await,
        ["calls"]
        | ["calls", _, "answer" | "hangup"]
        | ["agents"]
        | ["agents", _, "state"]
        | ["link"] => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on /sim{path}"),
        ),
        _ => error(StatusCode::NOT_FOUND, format!("no such path /sim{path}")),
    }
}

async fn create_call(control: &SimControl, body: &[u8]) -> (StatusCode, Value) {
    let body: NewCallBody = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {err}")),
    };
    let call = CreateCall {
        from: body.from,
        to: body.to,
        queue: body.queue,
        attributes: body.attributes,
        hangup_after: body.hangup_after_ms.map(Duration::from_millis),
    };
    let result = control.create_call(call).await;
    answer(
        result.map(|id| json!({ "callId": id })),
        StatusCode::CREATED,
    )
}

async fn set_agent_state(control: &SimControl, ext: &str, body: &[u8]) -> (StatusCode, Value) {
    let body: StateBody = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {err}")),
    };
    let state = match (body.state.as_str(), body.custom) {
        ("ready", _) => AgentState::Ready,
        ("not_ready", _) => AgentState::NotReady {
            reason: body.reason,
        },
        ("logged_out", _) => AgentState::LoggedOut,
        ("custom", Some(state)) => AgentState::Custom { state },
        ("custom", None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "state custom needs a \"custom\" state name".into(),
            );
        }
        (other, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown state {other:?} (ready, not_ready, logged_out or custom)"),
            );
        }
    };
    let result = control.set_agent_state(ext, state).await;
    answer(
        result.map(|()| json!({ "extension": ext, "state": body.state })),
        StatusCode::OK,
    )
}

async fn set_link(control: &SimControl, body: &[u8]) -> (StatusCode, Value) {
    let body: LinkBody = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {err}")),
    };
    let change = if body.up {
        LinkChange::Up
    } else {
        let reason = body
            .reason
            .unwrap_or_else(|| DEFAULT_LINK_DOWN_REASON.to_owned());
        LinkChange::Down { reason }
    };
    let result = control.set_link(change).await;
    answer(result.map(|()| json!({ "up": body.up })), StatusCode::OK)
}

fn answer(result: Result<Value, SimError>, ok: StatusCode) -> (StatusCode, Value) {
    match result {
        Ok(value) => (ok, value),
        Err(err) => {
            let status = match err {
                SimError::UnknownCall(_) => StatusCode::NOT_FOUND,
                SimError::UnknownDestination(_) | SimError::BadRequest(_) => {
                    StatusCode::BAD_REQUEST
                }
                SimError::InvalidState(_) => StatusCode::CONFLICT,
                SimError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, err.to_string())
        }
    }
}

fn error(status: StatusCode, message: String) -> (StatusCode, Value) {
    (status, json!({ "error": message }))
}
