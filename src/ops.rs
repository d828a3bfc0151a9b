//! The operations hooks the listeners call: one place that turns a handled SOAP request
//! into metrics and, for captured users, full-body trace lines.

use std::time::Instant;

use compact_str::CompactString;

/// What the trace line and the metrics say about one SOAP request; filled in as the
/// request is parsed and resolved. `CompactString`s: user ids, operation names and call
/// ids fit inline (24 bytes), so filling this in allocates nothing.
#[derive(Default)]
pub struct RequestLog {
    pub user: Option<CompactString>,
    pub operation: Option<CompactString>,
    /// The catalog's name of the operation once resolved: the metrics label, so an
    /// unknown operation is counted as "other" and cannot grow the label set.
    pub known_operation: Option<&'static str>,
    pub call: Option<CompactString>,
}

/// A SOAP request was answered: count it and, when its user is captured, log both bodies.
pub fn soap_answered(
    log: &RequestLog,
    outcome: &'static str,
    started: Instant,
    request: &[u8],
    response: &str,
) {
    let metric_op = log.known_operation.unwrap_or("other");
    crate::metrics::soap_request(metric_op, outcome, started.elapsed());
    if let Some(user) = log.user.as_deref() {
        let op = log.operation.as_deref().unwrap_or("-");
        let call = log.call.as_deref();
        crate::logging::capture(user, call, "request", op, request);
        crate::logging::capture(user, call, "response", op, response.as_bytes());
    }
}
