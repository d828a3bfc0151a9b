//! The operations hooks the listeners call: one place that turns a handled SOAP request
//! into metrics and, for captured users, full-body trace lines.

use std::time::Instant;

/// A SOAP request was answered: count it and, when its user is captured, log both bodies.
pub fn soap_answered(
    user: &Option<String>,
    operation: &Option<String>,
    call: &Option<String>,
    outcome: &'static str,
    started: Instant,
    request: &[u8],
    response: &str,
) {
    let op = operation.as_deref().unwrap_or("-");
    crate::metrics::soap_request(op, outcome, started.elapsed());
    if let Some(user) = user.as_deref() {
        let call = call.as_deref();
        crate::logging::capture(user, call, "request", op, request);
        crate::logging::capture(user, call, "response", op, response.as_bytes());
    }
}
