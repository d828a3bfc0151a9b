//! Line and Folder interfaces: the calls (and messages) of a container.

use crate::soap::Fault;

use super::args::Args;
use super::{Operation, text_arg};

pub(super) fn parse(name: &str, args: &Args<'_>) -> Result<Operation, Fault> {
    let container = text_arg(args, "containerId")?;
    Ok(match name {
        "getCalls" => Operation::GetCalls { container },
        "dropCalls" => Operation::DropCalls { container },
        "getMessages" => Operation::GetMessages { container },
        other => unreachable!("{other} is not a Line/Folder operation"),
    })
}
