//! The ICI layer: the operation catalog, typed operations and the one place where they
//! meet the wire.
//!
//! A parsed SOAP request is looked up in the [`catalog`], its parameters are read by
//! [`args::Args`] and converted into one [`Operation`] (each interface group in its own
//! file); from then on everything is typed. [`execute`] answers the few operations that need
//! no state and hands the rest to the session manager.

pub mod args;
pub mod catalog;
mod item;
mod line;
mod phonecall;
mod system;
mod user;

use crate::domain::{AppUrl, UserId, Workmode};
use crate::session::{AttachedData, SessionHandle};
use crate::soap::{Fault, Request, Value};

use args::Args;
use catalog::{Interface, Match, OpSpec};

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

/// Every ICI operation SAP can call, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    ExchangeProductInformation,
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
    GetMessages {
        container: String,
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
    pub spec: &'static OpSpec,
    pub how: Match,
    pub operation: Operation,
    /// The `user` SOAP header (absent or empty: `None`; not a valid user id: a Client
    /// fault).
    pub user_header: Option<UserId>,
}

/// Looks the request up in the catalog and converts its parameters (a Client fault for an
/// unknown operation, a missing parameter or a wrong type).
pub fn resolve(request: &Request) -> Result<Resolved, Fault> {
    let (spec, how) = catalog::lookup(request.namespace(), request.operation_name())?;
    resolve_as(request, spec, how)
}

/// [`resolve`] for a request already looked up in the catalog (the SOAP listener labels
/// its metrics with the operation even when the parameters are wrong).
pub fn resolve_as(request: &Request, spec: &'static OpSpec, how: Match) -> Result<Resolved, Fault> {
    let args = Args::new(request, spec);
    let operation = match spec.interface {
        Interface::System => system::parse(spec.name, &args)?,
        Interface::User | Interface::Container => user::parse(spec.name, &args)?,
        Interface::Item => item::parse(spec.name, &args)?,
        Interface::Line | Interface::Folder => line::parse(spec.name, &args)?,
        Interface::PhoneCall => phonecall::parse(spec.name, &args)?,
        Interface::Event => unreachable!("lookup never returns events"),
    };
    // A header that names no valid user is refused rather than ignored: ignoring it would
    // lift the scoping of call operations to the header's agent.
    let user_header = match request.headers.user.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(user) => Some(UserId::parse(user)?),
    };
    Ok(Resolved {
        spec,
        how,
        operation,
        user_header,
    })
}

/// Product facts for exchangeProductInformation.
pub const PRODUCT_NAME: &str = "ici-connector";
/// The ICI version we speak.
pub const ICI_VERSION: &str = "3.06";

/// Runs an operation: the stateless ones here, the rest in the session manager. `Ok(None)`
/// is an empty response.
pub async fn execute(resolved: Resolved, session: &SessionHandle) -> Result<Option<Value>, Fault> {
    match resolved.operation {
        Operation::ExchangeProductInformation => Ok(Some(Value::Struct(vec![
            ("productName", Value::text(PRODUCT_NAME)),
            ("productVersion", Value::text(env!("CARGO_PKG_VERSION"))),
            ("iciVersion", Value::text(ICI_VERSION)),
        ]))),
        Operation::GetMessages { .. } => Ok(Some(Value::List(Vec::new()))),
        operation => session
            .execute(operation, resolved.user_header)
            .await
            .map_err(|e| e.to_fault(resolved.spec.name)),
    }
}

/// Reads a user id parameter.
fn user_arg(args: &Args<'_>, name: &str) -> Result<UserId, Fault> {
    UserId::parse(args.text(name)?)
}

/// Reads an optional user id parameter.
fn opt_user_arg(args: &Args<'_>, name: &str) -> Result<Option<UserId>, Fault> {
    args.opt_text(name).map(UserId::parse).transpose()
}

/// An owned required text parameter.
fn text_arg(args: &Args<'_>, name: &str) -> Result<String, Fault> {
    args.text(name).map(str::to_string)
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
