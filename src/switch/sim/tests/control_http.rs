//! The control API over HTTP (`control::handle`): every route and its errors.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

async fn http(h: &Harness, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    control::handle(&h.control, &method, path, &body).await
}

#[tokio::test]
async fn control_http_routes() {
    let mut h = harness(settings());
    let (status, body) = http(
        &h,
        Method::POST,
        "/agents/100/state",
        json!({"state": "ready"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.drain_short(), ["agent 100 Ready"]);

    let (status, body) = http(
        &h,
        Method::POST,
        "/calls",
        json!({"from": "sip:555@example.com", "queue": "sales",
               "attributes": {"Sap_Cad": "<x/>"}, "hangup_after_ms": 60000}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["callId"].as_str().unwrap().to_owned();
    assert_eq!(h.drain_short(), [format!("{id}@100 alerting")]);

    let (status, body) = http(&h, Method::GET, "/calls", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["calls"][0]["id"], id);
    assert_eq!(body["calls"][0]["attributes"]["Sap_Cad"], "<x/>");
    assert_eq!(body["calls"][0]["parties"][1]["state"], "alerting");
    let (status, body) = http(&h, Method::GET, "/agents/", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["agents"][0]["extension"], "100");
    assert_eq!(body["agents"][0]["state"], "ready");
    assert_eq!(body["agents"][0]["calls"][0], id);

    // Nobody dials out on this call, so the far end cannot "answer" it.
    let (status, _) = http(
        &h,
        Method::POST,
        &format!("/calls/{id}/answer"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = http(
        &h,
        Method::POST,
        &format!("/calls/{id}/hangup"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.drain_short(), [format!("{id}@100 dropped(abandoned)")]);

    let (status, body) = http(
        &h,
        Method::POST,
        "/agents/100/state",
        json!({"state": "custom", "custom": "backoffice"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        h.drain_short(),
        [r#"agent 100 Custom { state: "backoffice" }"#]
    );

    // Errors.
    let errors = [
        (
            Method::POST,
            "/calls/sim-42/hangup",
            Value::Null,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/calls/sim-42/answer",
            Value::Null,
            StatusCode::NOT_FOUND,
        ),
        (Method::POST, "/calls", Value::Null, StatusCode::BAD_REQUEST),
        (
            Method::POST,
            "/calls",
            json!({"from": "+1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/calls",
            json!({"from": "+1", "to": "777"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/calls",
            json!({"from": "+1", "queue": "sales", "bogus": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/agents/100/state",
            json!({"state": "custom"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/agents/100/state",
            json!({"state": "asleep"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/calls",
            Value::Null,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/nothing", Value::Null, StatusCode::NOT_FOUND),
    ];
    for (method, path, body, expected) in errors {
        let (status, answer) = http(&h, method.clone(), path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
    }
    let (status, _) = control::handle(&h.control, &Method::POST, "/calls", b"{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn control_http_link() {
    let mut h = harness(settings());
    let (status, body) = http(&h, Method::POST, "/link", json!({"up": false})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"up": false})));
    let reason = "dropped through the simulator's control API";
    assert_eq!(
        h.drain_short(),
        [format!("LinkDown {{ reason: {reason:?} }}")]
    );
    let (status, _) = http(&h, Method::GET, "/link", Value::Null).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = http(&h, Method::POST, "/link", json!({"down": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = http(&h, Method::POST, "/link", json!({"up": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(
        h.drain().last(),
        Some(SwitchEvent::LinkUp { calls }) if calls.is_empty()
    ));
}
