//! The SAP-facing SOAP listener: POST on any path (or the configured ones) is a SOAP
//! request, `GET <path>?wsdl` serves the WSDL, everything else is 404/405. Every failure
//! becomes a SOAP fault or a fitting HTTP status on the same connection; nothing here can
//! take the server down.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use compact_str::CompactString;

use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, LiveConfig};
use crate::ici::{self, IciError, catalog::Match};
use crate::listener::{self, BodyError, ConnectionLimits, HttpResponse, ListenerSecurity, Peer};
use crate::ops::RequestLog;
use crate::security::{AuthOutcome, BasicAuth, SecurityCounters};
use crate::session::SessionHandle;
use crate::soap::{self, Fault, FaultCode, ParseLimits};
use crate::wsdl;

/// Content type of every SOAP message we write.
pub const SOAP_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

struct Soap {
    config: LiveConfig,
    session: SessionHandle,
    auth: Option<BasicAuth>,
    counters: Arc<SecurityCounters>,
    /// This listener serves HTTPS (the WSDL's address says so).
    https: bool,
}

/// Serves the SOAP listener until `stop`: TLS, the allow-list and counters come in
/// `security`, Basic auth from `[auth] soap_users`.
pub async fn serve(
    listener: TcpListener,
    config: LiveConfig,
    session: SessionHandle,
    security: ListenerSecurity,
    stop: watch::Receiver<bool>,
) {
    let first = config.borrow().clone();
    let limits = connection_limits(&first);
    let auth = BasicAuth::new(&first.auth, &first.auth.soap_users);
    let soap = Arc::new(Soap {
        config,
        session,
        auth,
        counters: Arc::clone(&security.counters),
        https: security.tls.is_some(),
    });
    listener::serve(listener, limits, security, stop, move |request, peer| {
        let soap = Arc::clone(&soap);
        async move { soap.handle(request, peer).await }
    })
    .await;
}

/// The connection limits of `[limits]`.
pub fn connection_limits(config: &Config) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: config.limits.max_connections,
        max_connections_per_peer: config.limits.max_connections_per_peer,
        header_read_timeout: config.limits.header_read_timeout,
        drain: config.limits.request_timeout,
        max_header_bytes: config.limits.max_header_bytes,
    }
}

impl Soap {
    /// The configuration in force now (limits and paths follow a reload).
    fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    async fn handle(&self, request: hyper::Request<Incoming>, peer: Peer) -> HttpResponse {
        let mut user = None;
        if let Some(auth) = &self.auth {
            match auth
                .check(request.headers(), peer.addr.ip(), &self.counters)
                .await
            {
                AuthOutcome::Allowed(name) => user = Some(name),
                refused => {
                    // SAP reads faults: the refusal is one.
                    let refusal = auth.refusal(&refused);
                    let fault = soap::write_fault(&Fault::client(refusal.text));
                    let mut response = listener::response(refusal.status, SOAP_CONTENT_TYPE, fault);
                    refusal.add_header(response.headers_mut());
                    return listener::closing(response);
                }
            }
        }
        let config = self.config();
        let paths = &config.soap.paths;
        let path = request.uri().path();
        if !paths.is_empty() && !paths.iter().any(|p| p == path) {
            return listener::text(StatusCode::NOT_FOUND, "not found\n");
        }
        let query = request.uri().query().unwrap_or("");
        match *request.method() {
            Method::POST => self.soap(request, peer, user).await,
            Method::GET | Method::HEAD if wsdl::is_wsdl_query(query) => {
                let uri = request.uri().clone();
                self.wsdl(&request, uri.path(), uri.query().unwrap_or(""))
            }
            _ => {
                let mut response = listener::text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "SOAP requests are POSTed; the WSDL is at ?wsdl\n",
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static("POST, GET"));
                response
            }
        }
    }

    fn wsdl(&self, request: &hyper::Request<Incoming>, path: &str, query: &str) -> HttpResponse {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| self.config().soap.listen.to_string());
        let scheme = if self.https { "https" } else { "http" };
        let base = format!("{scheme}://{host}{path}");
        match wsdl::interface_for_request(path, query) {
            Some(interface) => listener::response(
                StatusCode::OK,
                wsdl::WSDL_CONTENT_TYPE,
                wsdl::generate(interface, &base),
            ),
            None => {
                listener::response(StatusCode::OK, wsdl::INDEX_CONTENT_TYPE, wsdl::index(&base))
            }
        }
    }

    async fn soap(
        &self,
        request: hyper::Request<Incoming>,
        peer: Peer,
        auth_user: Option<String>,
    ) -> HttpResponse {
        answer(
            &self.config(),
            &self.session,
            request,
            peer,
            auth_user,
            Via::Sap,
        )
        .await
    }
}

/// Which door a SOAP request came through, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The SOAP listener: SAP (or whoever plays it).
    Sap,
    /// The agent desktop's same-origin route on the admin listener (`POST /agent/soap`),
    /// behind the admin listener's own access list and authentication.
    AgentDesktop,
}

/// Answers one SOAP request: body limits, parse, resolve, execute, the request's log line,
/// metrics and capture. The SOAP listener and the agent desktop's route both come here, so
/// the desktop exercises exactly what SAP does.
pub async fn answer(
    config: &Config,
    session: &SessionHandle,
    request: hyper::Request<Incoming>,
    peer: Peer,
    auth_user: Option<String>,
    via: Via,
) -> HttpResponse {
    let client_cert = peer.client_subject.clone();
    let peer = peer.addr;
    let limits = &config.limits;
    let body =
        match listener::read_body(request, limits.max_body_bytes, limits.request_timeout).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                warn!(%peer, max = limits.max_body_bytes, "request body too large");
                return listener::closing(listener::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {} bytes\n", limits.max_body_bytes),
                ));
            }
            Err(BodyError::TimedOut) => {
                warn!(%peer, "request body not received in time");
                return listener::closing(listener::text(
                    StatusCode::REQUEST_TIMEOUT,
                    "request timeout\n",
                ));
            }
            Err(BodyError::Broken) => {
                return listener::closing(listener::text(
                    StatusCode::BAD_REQUEST,
                    "broken request body\n",
                ));
            }
        };
    let started = Instant::now();
    let parse_limits = limits.parse_limits();
    let mut log = RequestLog::default();
    let outcome = dispatch(config, session, &body, &parse_limits, &mut log).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let kind = outcome_label(&outcome);
    let (status, xml, result, error) = match outcome {
        Ok((namespace, operation, value)) => (
            StatusCode::OK,
            soap::write_response(&namespace, operation, value.as_ref()),
            Cow::Borrowed("ok"),
            None,
        ),
        Err(Failed { fault, error }) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            soap::write_fault(&fault),
            Cow::Owned(fault.to_string()),
            error,
        ),
    };
    info!(
        target: "ici_connector::soap",
        %peer,
        // Only when configured: `None` fields are left out of the line.
        auth = auth_user.as_deref(),
        // Only for the agent desktop: SAP's lines stay as they were.
        via = (via == Via::AgentDesktop).then_some("agent-desktop"),
        cert = client_cert.as_deref(),
        user = log.user.as_deref().unwrap_or("-"),
        op = log.operation.as_deref().unwrap_or("-"),
        call = log.call.as_deref().unwrap_or("-"),
        result = %result,
        // What went wrong inside, in our words (SAP's fault says less).
        error = error.as_ref().map(tracing::field::display),
        duration_ms = format_args!("{duration_ms:.2}"),
        "soap request"
    );
    crate::ops::soap_answered(&log, kind, started, &body, &xml);
    listener::response(status, SOAP_CONTENT_TYPE, xml)
}

/// Parse, resolve, execute: (namespace, operation, result) or a fault.
async fn dispatch(
    config: &Config,
    session: &SessionHandle,
    body: &[u8],
    limits: &ParseLimits,
    log: &mut RequestLog,
) -> Result<(Cow<'static, str>, &'static str, Option<soap::Value>), Failed> {
    let request = soap::parse_envelope_with(body, limits)?;
    log.user = request.user().map(CompactString::from);
    log.operation = Some(CompactString::from(request.operation_name()));
    let resolved = ici::resolve(&request).inspect_err(|error| {
        log.known_operation = error.operation().map(|kind| kind.name());
    })?;
    log.known_operation = Some(resolved.kind.name());
    if resolved.how == Match::ByNameOnly {
        warn!(
            namespace = request.namespace().unwrap_or(""),
            op = resolved.kind.name(),
            "operation in an unknown namespace accepted by its name"
        );
    }
    log.call = resolved.action.call_id().map(CompactString::from);
    // Answer in the namespace the request used, so the client finds its response
    // (nearly always the catalog's own, which needs no copy).
    let catalog_namespace = resolved.kind.interface().namespace();
    let namespace = match request.namespace() {
        None => Cow::Borrowed(catalog_namespace),
        Some(ns) if ns == catalog_namespace => Cow::Borrowed(catalog_namespace),
        Some(ns) => Cow::Owned(ns.to_string()),
    };
    let operation = resolved.kind;
    let timeout = config.limits.request_timeout;
    let value = tokio::time::timeout(timeout, ici::execute(resolved, session))
        .await
        .map_err(|_| IciError::TimedOut { operation })??;
    Ok((namespace, operation.name(), value))
}

/// A request that got a fault: what SAP is told, and what went wrong in our terms when
/// the ICI layer refused it (for the log).
struct Failed {
    fault: Fault,
    error: Option<IciError>,
}

impl From<Fault> for Failed {
    /// The wire layer refused the envelope: its fault is all there is to say.
    fn from(fault: Fault) -> Failed {
        Failed { fault, error: None }
    }
}

impl From<IciError> for Failed {
    fn from(error: IciError) -> Failed {
        Failed {
            fault: error.fault(),
            error: Some(error),
        }
    }
}

/// The `outcome` label of a SOAP request's result.
fn outcome_label<T>(result: &Result<T, Failed>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(failed) if failed.fault.code == FaultCode::Client => "client_fault",
        Err(_) => "server_fault",
    }
}
