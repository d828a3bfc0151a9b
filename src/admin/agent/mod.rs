//! The agent desktop (`/agent/` on the admin listener): a stand-in for SAP's IC WebClient
//! that drives the connector over ICI exactly as SAP does, so an installation can be
//! proved against the switch before SAP is connected (docs/agent-desktop.md).
//!
//! - `GET /agent/`, `/agent/desktop.js`, `/agent/desktop.css`: the page, shipped in the
//!   binary (no CDN, no build step), with a content security policy that allows nothing
//!   but this origin.
//! - `POST /agent/soap`: a SOAP request, answered through [`crate::server::answer`], the
//!   very path of the SOAP listener (parse, resolve, execute, log line, metrics, capture).
//!   Same origin, so the browser needs no CORS and the SOAP listener's TLS, client
//!   certificates and Basic auth (meant for SAP) need no browser; the admin listener's
//!   access list and authentication guard it instead. A `SOAPAction` header is required:
//!   a form or a plain cross-site POST cannot set one, so another site open in the same
//!   browser cannot drive agents.
//! - `GET /agent/info`: what the page offers in its lists: whether the switch is the
//!   simulator (then it shows the caller panel, which uses `/sim`), the extensions and
//!   queues the configuration names.
//! - `GET /agent/stream`: Server-Sent Events. The first event (`hello`) hands the page
//!   its own appURL (`http://<admin address>/agent/events/<token>`); every ICI event the
//!   connector delivers there follows as it arrived (`ici`, the SOAP envelope).
//! - `POST /agent/events/<token>`: the event receiver, SAP's side of event delivery
//!   ([`receiver`]). It is reached by the connector's notifier, which has no admin
//!   credentials, so the unguessable token of an open stream is its only key.

mod receiver;
mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;

use crate::config::Config;
use crate::listener::{self, HttpResponse, Peer};
use crate::server::{self, Via};
use crate::session::SessionHandle;

pub use receiver::{EVENTS_PATH, receive};
pub use stream::Streams;

/// The body of every admin listener response: whole documents, or an event stream.
pub type AdminBody = BoxBody<Bytes, Infallible>;

/// Where the page lives.
const PREFIX: &str = "/agent/";

const INDEX_HTML: &str = include_str!("index.html");
const DESKTOP_JS: &str = include_str!("desktop.js");
const DESKTOP_CSS: &str = include_str!("desktop.css");

/// What the browser may load and contact: this origin only, no inline script, no frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Whether `path` belongs to the desktop (the event receiver aside).
pub fn is_desktop_path(path: &str) -> bool {
    path == "/agent" || path.starts_with(PREFIX)
}

/// Serves one request of the desktop, after the admin authentication let it through.
pub async fn handle(
    config: &Config,
    session: &SessionHandle,
    streams: &Streams,
    request: hyper::Request<Incoming>,
    peer: Peer,
    admin_user: Option<String>,
    simulator: bool,
) -> Response<AdminBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let whole = |response: HttpResponse| response.map(|body| body.boxed());
    match (&method, path.as_str()) {
        (&Method::GET, "/agent") => {
            let mut response = listener::text(StatusCode::MOVED_PERMANENTLY, "/agent/\n");
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static(PREFIX));
            whole(response)
        }
        (&Method::GET, "/agent/") => whole(page("text/html; charset=utf-8", INDEX_HTML)),
        (&Method::GET, "/agent/desktop.js") => {
            whole(page("text/javascript; charset=utf-8", DESKTOP_JS))
        }
        (&Method::GET, "/agent/desktop.css") => whole(page("text/css; charset=utf-8", DESKTOP_CSS)),
        (&Method::GET, "/agent/info") => whole(info(config, simulator)),
        (&Method::GET, "/agent/stream") => streams.open(),
        (&Method::POST, "/agent/soap") => {
            if !request.headers().contains_key("soapaction") {
                return whole(listener::closing(listener::text(
                    StatusCode::BAD_REQUEST,
                    "the agent desktop's SOAP route needs a SOAPAction header\n",
                )));
            }
            whole(
                server::answer(
                    config,
                    session,
                    request,
                    peer,
                    admin_user,
                    Via::AgentDesktop,
                )
                .await,
            )
        }
        _ => whole(listener::text(StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// `GET /agent/info`: the simulator flag, and extensions and queues for the page's lists.
fn info(config: &Config, simulator: bool) -> HttpResponse {
    let mut extensions: Vec<&str> = config
        .agents
        .users
        .values()
        .map(|user| user.extension.as_str())
        .collect();
    let mut queues: Vec<&str> = config.agents.queues.iter().map(String::as_str).collect();
    if simulator {
        let sim = &config.switch.sim;
        extensions.extend(sim.extensions.iter().map(String::as_str));
        queues.extend(sim.queue.iter().map(|queue| queue.name.as_str()));
    } else if let Some(asterisk) = &config.switch.asterisk {
        queues.extend(asterisk.queues.iter().map(String::as_str));
    }
    extensions.sort_unstable();
    extensions.dedup();
    queues.sort_unstable();
    queues.dedup();
    let body = serde_json::json!({
        "simulator": simulator,
        "extensions": extensions,
        "queues": queues,
    });
    listener::response(StatusCode::OK, "application/json", body.to_string())
}

/// One of the page's files, with headers that keep it from being framed, sniffed or
/// served stale after an upgrade.
fn page(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = listener::response(StatusCode::OK, content_type, body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The address the notifier reaches the admin listener at: its bound address, with a
/// wildcard replaced by loopback of the same family.
pub fn receiver_address(admin: SocketAddr) -> SocketAddr {
    let ip = match admin.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, admin.port())
}
