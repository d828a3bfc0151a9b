//! Item interface: outbound item ids, accept, reroute, and item attached data.

use super::args::Args;
use super::catalog::{ItemOp, param};
use super::error::IciError;
use super::{Operation, attached, invalid, text_arg};

pub(super) fn parse(op: ItemOp, args: &Args<'_>) -> Result<Operation, IciError> {
    let item = || text_arg(args, &param::ITEM_ID);
    let attached = |document: &str| attached::parse(document).map_err(invalid(args));
    Ok(match op {
        ItemOp::Create => Operation::Create {
            container: text_arg(args, &param::CONTAINER_ID)?,
        },
        ItemOp::Accept => Operation::Accept { item: item()? },
        ItemOp::Reroute => Operation::Reroute { item: item()? },
        ItemOp::SetAttachedData => {
            let item = item()?;
            let document = args
                .opt_document(&param::ATTACHED_DATA)
                .ok_or_else(|| args.missing(&param::ATTACHED_DATA))?;
            Operation::SetAttachedData {
                item,
                data: attached(&document)?,
            }
        }
        ItemOp::GetAttachedData => Operation::GetAttachedData { item: item()? },
        ItemOp::DeleteAttachedData => {
            let item = item()?;
            let applications = args
                .opt_document(&param::OPT_ATTACHED_DATA)
                .map(|doc| attached(&doc).map(|d| d.ids()))
                .transpose()?;
            Operation::DeleteAttachedData { item, applications }
        }
    })
}
