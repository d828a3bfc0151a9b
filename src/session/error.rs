//! Errors of the session manager, mapped to SOAP faults in one place.

use crate::notify::DestinationError;
use crate::soap::Fault;
use crate::switch::{Capability, SwitchError};

/// Why the session manager refused or could not do an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IciError {
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error("unknown call {0}")]
    UnknownCall(String),
    #[error("unknown item {0}")]
    UnknownItem(String),
    #[error("unknown container {0}")]
    UnknownContainer(String),
    #[error("user {0} has no address: call setAddresses first")]
    NoAddress(String),
    #[error("unknown workmode {0}")]
    UnknownWorkmode(u32),
    #[error("unknown not-ready reason {0}")]
    UnknownReason(String),
    #[error("invalid address {0:?}")]
    InvalidAddress(String),
    /// The call is not in a state that allows the operation.
    #[error("call {call} is {state}")]
    InvalidState { call: String, state: String },
    #[error("{capability} is not supported by the {switch} switch")]
    NotSupported {
        capability: Capability,
        switch: &'static str,
    },
    #[error(transparent)]
    Switch(#[from] SwitchError),
    /// Events must not go to this appURL (our own listener, outside `[events] allow`, or
    /// its host does not resolve).
    #[error("appURL refused: {0}")]
    AppUrl(#[from] DestinationError),
    /// The user or container has `[events] max_subscriptions_per_target` subscriptions.
    #[error("{target} already has {limit} subscriptions ([events] max_subscriptions_per_target)")]
    TooManySubscriptionsFor { target: String, limit: usize },
    /// The connector has `[events] max_subscriptions` subscriptions.
    #[error("the connector already has {limit} subscriptions ([events] max_subscriptions)")]
    TooManySubscriptions { limit: usize },
    /// The session manager is gone (shutting down).
    #[error("shutting down")]
    ShuttingDown,
}

impl IciError {
    /// The SOAP fault for this error; `operation` names the ICI operation for messages such
    /// as "hold is not supported by the asterisk switch".
    pub fn to_fault(&self, operation: &str) -> Fault {
        let detail = self.to_string();
        let fault = match self {
            IciError::UnknownUser(_) => Fault::client("unknown user"),
            IciError::UnknownCall(_) | IciError::Switch(SwitchError::UnknownCall(_)) => {
                Fault::client("unknown call")
            }
            IciError::UnknownItem(_) => Fault::client("unknown item"),
            IciError::UnknownContainer(_) => Fault::client("unknown container"),
            IciError::NoAddress(_) => Fault::client("no address"),
            IciError::UnknownWorkmode(_) => Fault::client("unknown workmode"),
            IciError::UnknownReason(_) => Fault::client("unknown reason"),
            IciError::InvalidAddress(_) => Fault::client("invalid address"),
            IciError::InvalidState { .. } | IciError::Switch(SwitchError::InvalidState(_)) => {
                Fault::client("invalid call state")
            }
            IciError::NotSupported { switch, .. } => Fault::client(format!(
                "{operation} is not supported by the {switch} switch"
            )),
            IciError::Switch(SwitchError::NotSupported(_)) => {
                Fault::client(format!("{operation} is not supported by this switch"))
            }
            IciError::Switch(SwitchError::UnknownExtension(_)) => Fault::client("unknown address"),
            IciError::Switch(SwitchError::Unavailable(_)) => Fault::server("switch unavailable"),
            IciError::Switch(SwitchError::Rejected(_)) => {
                Fault::server("switch rejected the request")
            }
            IciError::AppUrl(DestinationError::Unresolved { .. }) => {
                Fault::server("appURL host not resolvable")
            }
            IciError::AppUrl(_) => Fault::client("appURL refused"),
            IciError::TooManySubscriptionsFor { .. } => Fault::client("too many subscriptions"),
            IciError::TooManySubscriptions { .. } => Fault::server("too many subscriptions"),
            IciError::ShuttingDown => Fault::server("shutting down"),
        };
        fault.with_detail(detail)
    }
}
