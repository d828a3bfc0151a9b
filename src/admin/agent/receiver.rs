//! The desktop's event receiver: `POST /agent/events/<token>`, the appURL the desktop
//! subscribes with, answering the connector's notifier as SAP's ICF service does:
//!
//! - a SOAP envelope whose operation is in `urn:IciEventInterface`, for the token of an
//!   open page: **200** with an empty SOAP envelope; the envelope goes to the page as it
//!   came;
//! - a token no open page holds: **401**, as SAP answers once the IC session behind an
//!   appURL has ended (the notifier ends the subscription);
//! - the page is behind: **503** with `Retry-After` (the notifier retries the same event);
//! - anything else (not SOAP, not an ICI event): **400**, refused, nothing reaches a page.
//!
//! Only the connector's own deliveries can get here with a live token: the token is
//! random, handed only to the page that opened the stream, and the notifier lets events
//! onto the admin listener only at this path ([`crate::notify::Destinations`]).

use http::{HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use tracing::{debug, warn};

use super::stream::{Delivery, Streams};
use crate::config::Config;
use crate::listener::{self, HttpResponse};
use crate::soap;

/// The receiver's path; a token completes it.
pub const EVENTS_PATH: &str = "/agent/events/";

/// The namespace every ICI event is in.
const EVENT_NAMESPACE: &str = "urn:IciEventInterface";

/// What SAP's ICF service answers to an event it took.
const EMPTY_SOAP_RESPONSE: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">"#,
    r#"<SOAP-ENV:Body/></SOAP-ENV:Envelope>"#
);

/// `Retry-After` of the 503 for a page that is behind, in seconds.
const BUSY_RETRY_AFTER_SECS: u32 = 1;

/// Answers a POST to [`EVENTS_PATH`]; any other request is handed back.
pub async fn receive(
    config: &Config,
    streams: &Streams,
    request: hyper::Request<Incoming>,
) -> Result<HttpResponse, hyper::Request<Incoming>> {
    let Some(token) = request
        .uri()
        .path()
        .strip_prefix(EVENTS_PATH)
        .map(str::to_string)
    else {
        return Err(request);
    };
    if request.method() != Method::POST {
        return Err(request);
    }
    // An unknown token costs no body read.
    if !streams.knows(&token) {
        return Ok(listener::closing(gone()));
    }
    let limits = &config.limits;
    let Ok(body) =
        listener::read_body(request, limits.max_body_bytes, limits.request_timeout).await
    else {
        return Ok(listener::closing(listener::text(
            StatusCode::BAD_REQUEST,
            "bad body\n",
        )));
    };
    let event = match soap::parse_request_with(&body, &limits.parse_limits()) {
        Ok(event) if event.namespace() == Some(EVENT_NAMESPACE) => event,
        _ => {
            warn!("agent desktop receiver: refused a POST that is not an ICI event envelope");
            return Ok(listener::text(
                StatusCode::BAD_REQUEST,
                "not an ICI event envelope\n",
            ));
        }
    };
    let envelope = String::from_utf8_lossy(&body);
    Ok(match streams.deliver(&token, &envelope) {
        Delivery::Sent => {
            debug!(
                event = event.operation_name(),
                "agent desktop: event received"
            );
            listener::response(
                StatusCode::OK,
                crate::server::SOAP_CONTENT_TYPE,
                EMPTY_SOAP_RESPONSE,
            )
        }
        Delivery::Unknown => gone(),
        Delivery::Busy => {
            let mut response = listener::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent desktop is behind\n",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(BUSY_RETRY_AFTER_SECS),
            );
            response
        }
    })
}

/// What SAP answers once the IC session behind an appURL has ended.
fn gone() -> HttpResponse {
    listener::text(
        StatusCode::UNAUTHORIZED,
        "no agent desktop holds this appURL (the page was closed)\n",
    )
}
