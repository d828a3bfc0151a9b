//! System interface: product information, workcenter capability, queue presence.

use super::args::Args;
use super::catalog::{SystemOp, param};
use super::error::IciError;
use super::{Action, Operation};

pub(super) fn parse(op: SystemOp, args: &Args<'_>) -> Result<Action, IciError> {
    Ok(match op {
        SystemOp::ExchangeProductInformation => Action::ProductInformation,
        SystemOp::GetWorkcenterCapability => Action::Session(Operation::GetWorkcenterCapability),
        SystemOp::GetPresenceQueueInfo => Action::Session(Operation::GetPresenceQueueInfo {
            channel: args.opt_text(&param::CHANNEL).map(str::to_string),
        }),
    })
}
