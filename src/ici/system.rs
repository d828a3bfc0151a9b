//! System interface: product information, workcenter capability, queue presence.

use crate::soap::Fault;

use super::Operation;
use super::args::Args;

pub(super) fn parse(name: &str, args: &Args<'_>) -> Result<Operation, Fault> {
    Ok(match name {
        "exchangeProductInformation" => Operation::ExchangeProductInformation,
        "getWorkcenterCapability" => Operation::GetWorkcenterCapability,
        "getPresenceQueueInfo" => Operation::GetPresenceQueueInfo {
            channel: args.opt_text("channel").map(str::to_string),
        },
        other => unreachable!("{other} is not a System operation"),
    })
}
