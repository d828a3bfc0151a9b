//! The ICI layer's errors, and the one place where an error of any layer below becomes a
//! SOAP fault: [`IciError::fault`].
//!
//! A fault's string is short and stable (SAP shows it, support staff search for it); its
//! detail carries only values the client sent or can act on (the unknown call id, the
//! parameter that is missing, the capability the switch lacks), never the internal text
//! of an error (a switch's or a library's message, configuration names). That text goes
//! to the log, through the error's `Display`.

use crate::domain::DomainError;
use crate::notify::DestinationError;
use crate::session::SessionError;
use crate::soap::Fault;
use crate::switch::SwitchError;

use super::catalog::OpKind;

/// Why a SOAP request was not answered with a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IciError {
    /// No operation SAP may call has this name (in this namespace).
    #[error("unknown operation {{{}}}{name}", namespace.as_deref().unwrap_or(""))]
    UnknownOperation {
        namespace: Option<String>,
        name: String,
    },
    #[error("{} needs {parameter}", operation.name())]
    MissingParameter {
        operation: OpKind,
        parameter: &'static str,
    },
    /// A parameter that must be an integer is not one.
    #[error("{parameter}: {value:?} is not an integer")]
    NotAnInteger {
        operation: OpKind,
        parameter: &'static str,
        value: String,
    },
    /// A parameter (or the `user` header) is not a valid domain value (attached data
    /// included).
    #[error("{}: {error}", operation.name())]
    InvalidValue {
        operation: OpKind,
        error: DomainError,
    },
    /// The session manager refused or could not do the operation.
    #[error("{}: {error}", operation.name())]
    Session {
        operation: OpKind,
        error: SessionError,
    },
    /// The answer did not come within `[limits] request_timeout`.
    #[error("{} timed out", operation.name())]
    TimedOut { operation: OpKind },
}

impl IciError {
    /// The operation the request named, when it names one we know (the metrics label).
    pub fn operation(&self) -> Option<OpKind> {
        match self {
            IciError::UnknownOperation { .. } => None,
            IciError::MissingParameter { operation, .. }
            | IciError::NotAnInteger { operation, .. }
            | IciError::InvalidValue { operation, .. }
            | IciError::Session { operation, .. }
            | IciError::TimedOut { operation } => Some(*operation),
        }
    }

    /// The SOAP fault SAP is told: the one mapping of every error to the wire.
    pub fn fault(&self) -> Fault {
        match self {
            IciError::UnknownOperation { namespace, name } => Fault::client("unknown operation")
                .with_detail(format!("{{{}}}{name}", namespace.as_deref().unwrap_or(""))),
            IciError::MissingParameter {
                operation,
                parameter,
            } => Fault::client("missing parameter")
                .with_detail(format!("{} needs {parameter}", operation.name())),
            IciError::NotAnInteger {
                parameter, value, ..
            } => Fault::client("wrong parameter type")
                .with_detail(format!("{parameter}: {value:?} is not an integer")),
            IciError::InvalidValue { error, .. } => domain_fault(error),
            IciError::Session { operation, error } => session_fault(*operation, error),
            IciError::TimedOut { .. } => Fault::server("request timed out"),
        }
    }
}

fn domain_fault(error: &DomainError) -> Fault {
    match error {
        DomainError::InvalidUserId(raw) => {
            Fault::client("invalid user id").with_detail(format!("{raw:?}"))
        }
        DomainError::InvalidWorkmode(value) => {
            Fault::client("unknown workmode").with_detail(value.to_string())
        }
        DomainError::InvalidAppUrl(raw) => {
            Fault::client("invalid appURL").with_detail(format!("{raw:?}"))
        }
        DomainError::InvalidAttachedData(reason) => {
            Fault::client("invalid attached data").with_detail(reason.as_str())
        }
    }
}

/// `operation` names the ICI operation in faults such as "hold is not supported by the
/// asterisk switch".
fn session_fault(operation: OpKind, error: &SessionError) -> Fault {
    use SessionError as E;
    let operation = operation.name();
    match error {
        E::UnknownUser(user) => Fault::client("unknown user").with_detail(user.as_str()),
        E::UnknownCall(call) | E::Switch(SwitchError::UnknownCall(call)) => {
            Fault::client("unknown call").with_detail(call.as_str())
        }
        E::UnknownItem(item) => Fault::client("unknown item").with_detail(item.as_str()),
        E::UnknownContainer(container) => {
            Fault::client("unknown container").with_detail(container.as_str())
        }
        E::NoAddress(user) => Fault::client("no address").with_detail(user.as_str()),
        E::UnknownWorkmode(id) => Fault::client("unknown workmode").with_detail(id.to_string()),
        E::UnknownReason(code) => Fault::client("unknown reason").with_detail(code.as_str()),
        E::InvalidAddress(address) => {
            Fault::client("invalid address").with_detail(address.as_str())
        }
        E::InvalidState { state, .. } => Fault::client("invalid call state").with_detail(*state),
        E::ConsultationInProgress { call } => {
            Fault::client("consultation in progress").with_detail(call.as_str())
        }
        E::Switch(SwitchError::InvalidState(_)) => Fault::client("invalid call state"),
        E::NotSupported { capability, switch } => Fault::client(format!(
            "{operation} is not supported by the {switch} switch"
        ))
        .with_detail(capability.as_str()),
        E::Switch(SwitchError::NotSupported(capability)) => {
            Fault::client(format!("{operation} is not supported by this switch"))
                .with_detail(capability.as_str())
        }
        E::Switch(SwitchError::UnknownExtension(address)) => {
            Fault::client("unknown address").with_detail(address.as_str())
        }
        E::Switch(SwitchError::Unavailable(_)) => Fault::server("switch unavailable"),
        E::Switch(SwitchError::Rejected(_)) => Fault::server("switch rejected the request"),
        E::AppUrl(DestinationError::Unresolved { host, .. }) => {
            Fault::server("appURL host not resolvable").with_detail(host.as_str())
        }
        // Why, in fixed words: which of our addresses, or what the host resolved to, is
        // ours to know.
        E::AppUrl(DestinationError::OwnListener(_)) => {
            Fault::client("appURL refused").with_detail("it reaches the connector's own listener")
        }
        E::AppUrl(DestinationError::NotAllowed(_)) => {
            Fault::client("appURL refused").with_detail("its host is not in [events] allow")
        }
        E::AppUrl(DestinationError::NoHost) => {
            Fault::client("appURL refused").with_detail("it names no host")
        }
        E::TooManySubscriptionsFor { limit, .. } => {
            Fault::client("too many subscriptions").with_detail(limit.to_string())
        }
        E::TooManySubscriptions { limit } => {
            Fault::server("too many subscriptions").with_detail(limit.to_string())
        }
        E::ShuttingDown => Fault::server("shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ici::catalog::PhoneCallOp;
    use crate::soap::FaultCode;
    use crate::switch::Capability;

    const HOLD: OpKind = OpKind::PhoneCall(PhoneCallOp::Hold);
    /// Stands for text only the connector should know: a switch's message, an address.
    const INTERNAL: &str = "INTERNAL-TEXT";

    fn session(error: SessionError) -> IciError {
        IciError::Session {
            operation: HOLD,
            error,
        }
    }

    /// Every session error whose fields carry internal text, and every one that carries a
    /// value the client sent (`CLIENT-VALUE`).
    fn every_session_error() -> Vec<SessionError> {
        use SessionError as E;
        let client = || "CLIENT-VALUE".to_string();
        vec![
            E::UnknownUser(client()),
            E::UnknownCall(client()),
            E::UnknownItem(client()),
            E::UnknownContainer(client()),
            E::NoAddress(client()),
            E::UnknownWorkmode(9),
            E::UnknownReason(client()),
            E::InvalidAddress(client()),
            E::InvalidState {
                call: client(),
                state: "held",
            },
            E::ConsultationInProgress { call: client() },
            E::NotSupported {
                capability: Capability::Hold,
                switch: "asterisk",
            },
            E::Switch(SwitchError::UnknownCall(client())),
            E::Switch(SwitchError::UnknownExtension(client())),
            E::Switch(SwitchError::InvalidState(INTERNAL.into())),
            E::Switch(SwitchError::NotSupported(Capability::Hold)),
            E::Switch(SwitchError::Unavailable(INTERNAL.into())),
            E::Switch(SwitchError::Rejected(INTERNAL.into())),
            E::AppUrl(DestinationError::OwnListener(
                "127.0.0.1:8080".parse().unwrap(),
            )),
            E::AppUrl(DestinationError::NotAllowed(INTERNAL.into())),
            E::AppUrl(DestinationError::Unresolved {
                host: client(),
                reason: INTERNAL.into(),
            }),
            E::AppUrl(DestinationError::NoHost),
            E::TooManySubscriptionsFor {
                target: client(),
                limit: 4,
            },
            E::TooManySubscriptions { limit: 100 },
            E::ShuttingDown,
        ]
    }

    #[test]
    fn fault_details_never_carry_internal_text() {
        for error in every_session_error() {
            let internal = error.to_string();
            let fault = session(error.clone()).fault();
            let detail = fault.detail.unwrap_or_default();
            assert!(!detail.contains(INTERNAL), "{error:?}: {detail}");
            assert!(!detail.contains("127.0.0.1"), "{error:?}: {detail}");
            assert!(!detail.contains("max_subscriptions"), "{error:?}: {detail}");
            assert_ne!(detail, internal, "{error:?}: the error's own text");
            assert!(!fault.string.contains(INTERNAL), "{error:?}");
        }
    }

    #[test]
    fn fault_details_name_what_the_client_sent() {
        for error in every_session_error() {
            let sent = matches!(
                &error,
                SessionError::UnknownUser(_)
                    | SessionError::UnknownCall(_)
                    | SessionError::UnknownItem(_)
                    | SessionError::UnknownContainer(_)
                    | SessionError::NoAddress(_)
                    | SessionError::UnknownReason(_)
                    | SessionError::InvalidAddress(_)
                    | SessionError::ConsultationInProgress { .. }
                    | SessionError::Switch(SwitchError::UnknownCall(_))
                    | SessionError::Switch(SwitchError::UnknownExtension(_))
                    | SessionError::AppUrl(DestinationError::Unresolved { .. })
            );
            if sent {
                let fault = session(error.clone()).fault();
                assert_eq!(fault.detail.as_deref(), Some("CLIENT-VALUE"), "{error:?}");
            }
        }
    }

    #[test]
    fn faults_keep_their_stable_strings() {
        let hold_unsupported = session(SessionError::NotSupported {
            capability: Capability::Hold,
            switch: "asterisk",
        })
        .fault();
        assert_eq!(
            (hold_unsupported.code, hold_unsupported.string.as_ref()),
            (
                FaultCode::Client,
                "hold is not supported by the asterisk switch"
            )
        );
        assert_eq!(hold_unsupported.detail.as_deref(), Some("hold"));
        let down = session(SessionError::Switch(SwitchError::Unavailable(
            INTERNAL.into(),
        )))
        .fault();
        assert_eq!(
            (down.code, down.string.as_ref(), down.detail),
            (FaultCode::Server, "switch unavailable", None)
        );
        let missing = IciError::MissingParameter {
            operation: HOLD,
            parameter: "callId",
        }
        .fault();
        assert_eq!(missing.detail.as_deref(), Some("hold needs callId"));
    }
}
