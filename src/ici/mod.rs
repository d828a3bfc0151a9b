//! The ICI layer: the operation catalog, typed operations and the one place where they
//! meet the wire.
//!
//! A parsed SOAP request is looked up in the [`catalog`], which names its [`OpKind`]; its
//! parameters are read by [`args::Args`] and converted into one [`Action`] (each interface
//! group in its own file); from then on everything is typed. [`execute`] answers the few
//! operations that need no state and hands the rest to the session manager. Whatever goes
//! wrong is an [`IciError`], which [`IciError::fault`] turns into what SAP is told.

pub mod args;
pub mod catalog;
mod error;
mod item;
mod line;
mod phonecall;
mod system;
mod user;

use crate::domain::{AppUrl, DomainError, UserId, Workmode};
use crate::session::{AttachedData, SessionHandle};
use crate::soap::{Request, Value};

use args::Args;
use catalog::{Match, OpKind, Param};

pub use error::IciError;

/// Who a subscription is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// All interactions of one agent (subscribeUser).
    User(UserId),
    /// All interactions of one address or agent (subscribeContainer).
    Container(String),
}

/// `user AGENT1`, `container C1`: how logs, the status page and faults name it.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::User(user) => write!(f, "user {user}"),
            Target::Container(container) => write!(f, "container {container}"),
        }
    }
}

/// What a resolved request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// exchangeProductInformation: facts about this product, answered here.
    ProductInformation,
    /// getMessages: there is no mail channel, so none, answered here.
    Messages,
    /// Everything that needs the agents' state: the session manager's.
    Session(Operation),
}

impl Action {
    /// The call or item id the request is about, for logs.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Action::Session(operation) => operation.call_id(),
            Action::ProductInformation | Action::Messages => None,
        }
    }
}

/// Every ICI operation the session manager runs, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    GetWorkcenterCapability,
    GetPresenceQueueInfo {
        channel: Option<String>,
    },
    GetAttributes {
        user: UserId,
    },
    SetCurrentWorkmode {
        user: UserId,
        workmode: Workmode,
        reason: Option<String>,
    },
    SetCurrentChannels {
        user: UserId,
        channels: Vec<String>,
    },
    SetCurrentQueues {
        user: UserId,
        queues: Vec<String>,
    },
    SetAddresses {
        user: UserId,
        addresses: Vec<String>,
    },
    Subscribe {
        target: Target,
        url: AppUrl,
        app_id: String,
    },
    Unsubscribe {
        target: Target,
        url: AppUrl,
        app_id: String,
    },
    Create {
        container: String,
    },
    Accept {
        item: String,
    },
    Reroute {
        item: String,
    },
    SetAttachedData {
        item: String,
        data: AttachedData,
    },
    GetAttachedData {
        item: String,
    },
    /// `None`: remove every application.
    DeleteAttachedData {
        item: String,
        applications: Option<Vec<String>>,
    },
    GetCalls {
        container: String,
    },
    DropCalls {
        container: String,
    },
    Dial {
        container: Option<String>,
        user: Option<UserId>,
        address: String,
        item: Option<String>,
    },
    Hold {
        call: String,
    },
    Unhold {
        call: String,
    },
    Drop {
        call: String,
    },
    Transfer {
        call: String,
        address: String,
    },
    Consult {
        call: String,
        address: String,
    },
    Conference {
        call: String,
        consult: String,
    },
    Alternate {
        call: String,
        consult: String,
    },
    Reconnect {
        call: String,
        consult: String,
    },
    DropParty {
        call: String,
        address: String,
    },
    Listen {
        call: String,
        user: UserId,
    },
    ListenEnd {
        call: String,
        user: UserId,
    },
    GetPhoneCallAttributes {
        call: String,
    },
}

impl Operation {
    /// The call or item id the operation is about, for logs.
    pub fn call_id(&self) -> Option<&str> {
        use Operation::*;
        match self {
            Accept { item }
            | Reroute { item }
            | SetAttachedData { item, .. }
            | GetAttachedData { item }
            | DeleteAttachedData { item, .. } => Some(item),
            Hold { call }
            | Unhold { call }
            | Drop { call }
            | Transfer { call, .. }
            | Consult { call, .. }
            | Conference { call, .. }
            | Alternate { call, .. }
            | Reconnect { call, .. }
            | DropParty { call, .. }
            | Listen { call, .. }
            | ListenEnd { call, .. }
            | GetPhoneCallAttributes { call } => Some(call),
            _ => None,
        }
    }
}

/// A request resolved against the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub kind: OpKind,
    pub how: Match,
    pub action: Action,
    /// The `user` SOAP header (absent or empty: `None`; not a valid user id: refused).
    pub user_header: Option<UserId>,
}

/// Looks the request up in the catalog and converts its parameters: one pass per request.
/// An unknown operation, a missing parameter or a wrong value is an [`IciError`] that still
/// names the operation when it was known ([`IciError::operation`]), for the metrics.
pub fn resolve(request: &Request) -> Result<Resolved, IciError> {
    let (kind, how) = catalog::lookup(request.namespace(), request.operation_name())?;
    let args = Args::new(request, kind);
    let session = Action::Session;
    let action = match kind {
        OpKind::System(op) => system::parse(op, &args)?,
        OpKind::User(op) => session(user::parse(op, &args)?),
        OpKind::Container(op) => session(user::parse_container(op, &args)?),
        OpKind::Item(op) => session(item::parse(op, &args)?),
        OpKind::Line(op) => session(line::parse(op, &args)?),
        OpKind::PhoneCall(op) => session(phonecall::parse(op, &args)?),
        OpKind::Folder(op) => line::parse_folder(op, &args)?,
    };
    // A header that names no valid user is refused rather than ignored: ignoring it would
    // lift the scoping of call operations to the header's agent.
    let user_header = match request.headers.user.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(user) => Some(UserId::parse(user).map_err(invalid(&args))?),
    };
    Ok(Resolved {
        kind,
        how,
        action,
        user_header,
    })
}

/// Product facts for exchangeProductInformation.
pub const PRODUCT_NAME: &str = "ici-connector";
/// The ICI version we speak.
pub const ICI_VERSION: &str = "3.06";

/// Runs an operation: the stateless ones here, the rest in the session manager. `Ok(None)`
/// is an empty response.
pub async fn execute(
    resolved: Resolved,
    session: &SessionHandle,
) -> Result<Option<Value>, IciError> {
    match resolved.action {
        Action::ProductInformation => Ok(Some(Value::Struct(vec![
            ("productName", Value::text(PRODUCT_NAME)),
            ("productVersion", Value::text(env!("CARGO_PKG_VERSION"))),
            ("iciVersion", Value::text(ICI_VERSION)),
        ]))),
        Action::Messages => Ok(Some(Value::List(Vec::new()))),
        Action::Session(operation) => session
            .execute(operation, resolved.user_header)
            .await
            .map_err(|error| IciError::Session {
                operation: resolved.kind,
                error,
            }),
    }
}

/// Turns a domain value's refusal into this request's error.
fn invalid(args: &Args<'_>) -> impl Fn(DomainError) -> IciError {
    let operation = args.operation();
    move |error| IciError::InvalidValue { operation, error }
}

/// Reads a user id parameter.
fn user_arg(args: &Args<'_>, param: &'static Param) -> Result<UserId, IciError> {
    UserId::parse(args.text(param)?).map_err(invalid(args))
}

/// Reads an optional user id parameter.
fn opt_user_arg(args: &Args<'_>, param: &'static Param) -> Result<Option<UserId>, IciError> {
    args.opt_text(param)
        .map(UserId::parse)
        .transpose()
        .map_err(invalid(args))
}

/// An owned required text parameter.
fn text_arg(args: &Args<'_>, param: &'static Param) -> Result<String, IciError> {
    args.text(param).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_display_as_the_domain_names_them() {
        let user = Target::User(UserId::parse("agent1").unwrap());
        assert_eq!(user.to_string(), "user AGENT1");
        assert_eq!(Target::Container("C1".into()).to_string(), "container C1");
    }
}
