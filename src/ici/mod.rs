//! The ICI layer: the operation catalog, and the one place where typed operations, answers
//! and events meet the wire.
//!
//! A parsed SOAP request is looked up in the [`catalog`], which names its [`OpKind`]; its
//! parameters are read by [`args::Args`] and converted into one [`Action`] (each interface
//! group in its own file); from then on everything is typed. [`execute`] answers the few
//! operations that need no state and hands the rest to the session manager, whose typed
//! answers [`render`] turns into SOAP values; the session's events become envelopes
//! through [`WIRE`], which it is given at start. Whatever goes wrong is an [`IciError`],
//! which [`IciError::fault`] turns into what SAP is told.

pub mod args;
mod attached;
pub mod catalog;
mod error;
mod item;
mod line;
mod phonecall;
pub mod render;
mod system;
mod user;
pub mod version;

use crate::domain::{DomainError, UserId};
use crate::session::SessionHandle;
use crate::soap::{Envelope, Value};

pub use crate::session::{Operation, Target};
pub use render::WIRE;

use args::Args;
use catalog::{Match, OpKind, Param};

pub use error::IciError;

/// What a resolved request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// exchangeProductInformation: facts about this product, answered here, and what SAP
    /// said about itself, recorded.
    ProductInformation(SapProduct),
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
            Action::ProductInformation(_) | Action::Messages => None,
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
pub fn resolve(request: &Envelope<'_>) -> Result<Resolved, IciError> {
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
    let user_header = match request.user() {
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
/// The ICI version we speak ([`version::SPOKEN`] as SAP writes it).
pub const ICI_VERSION: &str = "3.06";

/// What SAP tells about itself in exchangeProductInformation (each part optional: older
/// BCB releases send none). The ICI version was checked: one we can speak, or absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SapProduct {
    pub name: Option<String>,
    pub version: Option<String>,
    pub ici_version: Option<version::IciVersion>,
}

/// The metric counting exchangeProductInformation calls by SAP's ICI version, so an
/// operator sees which version the SAP systems in front of this connector speak.
pub const SAP_PRODUCT_METRIC: &str = "ici_sap_product_information_total";

/// The `ici_version` label when SAP sent none.
const NO_VERSION: &str = "none";

/// Logs and counts what SAP said about itself.
fn record(sap: &SapProduct) {
    let ici_version = sap
        .ici_version
        .map_or_else(|| NO_VERSION.to_string(), |v| v.to_string());
    tracing::info!(
        sap_product = sap.name.as_deref().unwrap_or(""),
        sap_product_version = sap.version.as_deref().unwrap_or(""),
        sap_ici_version = %ici_version,
        our_ici_version = ICI_VERSION,
        "SAP product information"
    );
    metrics::counter!(SAP_PRODUCT_METRIC, "ici_version" => ici_version).increment(1);
}

/// Runs an operation: the stateless ones here, the rest in the session manager. `Ok(None)`
/// is an empty response.
pub async fn execute(
    resolved: Resolved,
    session: &SessionHandle,
) -> Result<Option<Value>, IciError> {
    match resolved.action {
        Action::ProductInformation(sap) => {
            record(&sap);
            Ok(Some(Value::Struct(vec![
                ("productName", Value::text(PRODUCT_NAME)),
                ("productVersion", Value::text(env!("CARGO_PKG_VERSION"))),
                ("iciVersion", Value::text(ICI_VERSION)),
            ])))
        }
        Action::Messages => Ok(Some(Value::List(Vec::new()))),
        Action::Session(operation) => session
            .execute(operation, resolved.user_header)
            .await
            .map(render::answer)
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
