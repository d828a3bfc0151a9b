//! PhoneCall interface: dial and everything an agent does with a call.

use crate::soap::Fault;

use super::args::Args;
use super::{Operation, opt_user_arg, text_arg, user_arg};

pub(super) fn parse(name: &str, args: &Args<'_>) -> Result<Operation, Fault> {
    let call = || text_arg(args, "callId");
    let address = || text_arg(args, "address");
    let consult = || text_arg(args, "consultCallId");
    Ok(match name {
        "dial" => Operation::Dial {
            container: args.opt_text("containerId").map(str::to_string),
            user: opt_user_arg(args, "userId")?,
            address: address()?,
            item: args.opt_text("itemId").map(str::to_string),
        },
        "hold" => Operation::Hold { call: call()? },
        "unhold" => Operation::Unhold { call: call()? },
        "drop" => Operation::Drop { call: call()? },
        "transfer" => Operation::Transfer {
            call: call()?,
            address: address()?,
        },
        "consult" => Operation::Consult {
            call: call()?,
            address: address()?,
        },
        "conference" => Operation::Conference {
            call: call()?,
            consult: consult()?,
        },
        "alternate" => Operation::Alternate {
            call: call()?,
            consult: consult()?,
        },
        "reconnect" => Operation::Reconnect {
            call: call()?,
            consult: consult()?,
        },
        "dropParty" => Operation::DropParty {
            call: call()?,
            address: address()?,
        },
        "listen" => Operation::Listen {
            call: call()?,
            user: user_arg(args, "userId")?,
        },
        "listenEnd" => Operation::ListenEnd {
            call: call()?,
            user: user_arg(args, "userId")?,
        },
        "getPhoneCallAttributes" => Operation::GetPhoneCallAttributes { call: call()? },
        other => unreachable!("{other} is not a PhoneCall operation"),
    })
}
