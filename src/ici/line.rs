//! Line and Folder interfaces: the calls (and messages) of a container.

use super::args::Args;
use super::catalog::{FolderOp, LineOp, param};
use super::error::IciError;
use super::{Action, Operation, text_arg};

pub(super) fn parse(op: LineOp, args: &Args<'_>) -> Result<Operation, IciError> {
    let container = text_arg(args, &param::CONTAINER_ID)?;
    Ok(match op {
        LineOp::GetCalls => Operation::GetCalls { container },
        LineOp::DropCalls => Operation::DropCalls { container },
    })
}

/// There is no mail channel: a folder's messages are always none, answered here.
pub(super) fn parse_folder(op: FolderOp, args: &Args<'_>) -> Result<Action, IciError> {
    match op {
        FolderOp::GetMessages => {
            // The container is still required, as the WSDL says.
            text_arg(args, &param::CONTAINER_ID)?;
            Ok(Action::Messages)
        }
    }
}
