//! System interface: product information, workcenter capability, queue presence.

use super::args::Args;
use super::catalog::{SystemOp, param};
use super::error::IciError;
use super::version::{IciVersion, VersionProblem};
use super::{Action, Operation, SapProduct};

pub(super) fn parse(op: SystemOp, args: &Args<'_>) -> Result<Action, IciError> {
    Ok(match op {
        SystemOp::ExchangeProductInformation => Action::ProductInformation(sap_product(args)?),
        SystemOp::GetWorkcenterCapability => Action::Session(Operation::GetWorkcenterCapability),
        SystemOp::GetPresenceQueueInfo => Action::Session(Operation::GetPresenceQueueInfo {
            channel: args.opt_text(&param::CHANNEL).map(str::to_string),
        }),
    })
}

/// Reads what SAP says about itself; a version we cannot speak is refused here, before
/// anything is answered.
fn sap_product(args: &Args<'_>) -> Result<SapProduct, IciError> {
    let text = |param| args.opt_text(param);
    let ici_version = text(&param::ICI_VERSION)
        .map(|sent| {
            IciVersion::check(sent).map_err(|problem| IciError::IciVersion {
                operation: args.operation(),
                sent: sent.to_string(),
                problem,
            })
        })
        .transpose()?;
    Ok(SapProduct {
        name: text(&param::PRODUCT_NAME).map(str::to_string),
        version: text(&param::PRODUCT_VERSION).map(str::to_string),
        ici_version,
    })
}

/// The fault detail: what SAP sent and, when it is a version, the one we speak, so the
/// SAP administrator sees at once which side to change.
pub(super) fn version_fault_detail(sent: &str, problem: &VersionProblem) -> String {
    match problem {
        VersionProblem::Malformed => format!("{sent:?} is not an ICI version (major.minor)"),
        VersionProblem::Unsupported(_) => format!(
            "SAP speaks ICI {sent}; this connector speaks ICI {}",
            super::version::SPOKEN
        ),
    }
}
