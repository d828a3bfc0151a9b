//! Errors of the session manager. They say what went wrong in the session's own terms;
//! the ICI layer decides what SAP is told (`ici::IciError::fault`).

use crate::notify::DestinationError;
use crate::switch::{Capability, SwitchError};

/// Why the session manager refused or could not do an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
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
    /// A blind transfer elsewhere while the agent consults on the call: complete the
    /// consultation (transfer to the consulted party) or end it (reconnect) first.
    #[error("call {call} has a consultation in progress")]
    ConsultationInProgress { call: String },
    /// The call is not in a state that allows the operation.
    #[error("call {call} is {state}")]
    InvalidState { call: String, state: &'static str },
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
