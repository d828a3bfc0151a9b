//! Item interface: outbound item ids, accept, reroute, and item attached data.

use crate::session::AttachedData;
use crate::soap::Fault;

use super::args::Args;
use super::{Operation, text_arg};

pub(super) fn parse(name: &str, args: &Args<'_>) -> Result<Operation, Fault> {
    Ok(match name {
        "create" => Operation::Create {
            container: text_arg(args, "containerId")?,
        },
        "accept" => Operation::Accept {
            item: text_arg(args, "itemId")?,
        },
        "reroute" => Operation::Reroute {
            item: text_arg(args, "itemId")?,
        },
        "setAttachedData" => {
            let item = text_arg(args, "itemId")?;
            let document = args.opt_document("attachedData").ok_or_else(|| {
                Fault::client("missing parameter").with_detail("setAttachedData needs attachedData")
            })?;
            Operation::SetAttachedData {
                item,
                data: AttachedData::parse(&document)?,
            }
        }
        "getAttachedData" => Operation::GetAttachedData {
            item: text_arg(args, "itemId")?,
        },
        "deleteAttachedData" => {
            let item = text_arg(args, "itemId")?;
            let applications = args
                .opt_document("attachedData")
                .map(|doc| AttachedData::parse(&doc).map(|d| d.ids()))
                .transpose()?;
            Operation::DeleteAttachedData { item, applications }
        }
        other => unreachable!("{other} is not an Item operation"),
    })
}
