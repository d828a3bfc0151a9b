//! PhoneCall interface: dial and everything an agent does with a call.

use super::args::Args;
use super::catalog::{PhoneCallOp, param};
use super::error::IciError;
use super::{Operation, opt_user_arg, text_arg, user_arg};

pub(super) fn parse(op: PhoneCallOp, args: &Args<'_>) -> Result<Operation, IciError> {
    let call = || text_arg(args, &param::CALL_ID);
    let address = || text_arg(args, &param::ADDRESS);
    let consult = || text_arg(args, &param::CONSULT_CALL_ID);
    let user = || user_arg(args, &param::USER_ID);
    Ok(match op {
        PhoneCallOp::Dial => Operation::Dial {
            container: args.opt_text(&param::DIAL_CONTAINER_ID).map(str::to_string),
            user: opt_user_arg(args, &param::DIAL_USER_ID)?,
            address: address()?,
            item: args.opt_text(&param::DIAL_ITEM_ID).map(str::to_string),
        },
        PhoneCallOp::Hold => Operation::Hold { call: call()? },
        PhoneCallOp::Unhold => Operation::Unhold { call: call()? },
        PhoneCallOp::Drop => Operation::Drop { call: call()? },
        PhoneCallOp::Transfer => Operation::Transfer {
            call: call()?,
            address: args.opt_text(&param::TRANSFER_ADDRESS).map(str::to_string),
        },
        PhoneCallOp::Consult => Operation::Consult {
            call: call()?,
            address: address()?,
        },
        PhoneCallOp::Conference => Operation::Conference {
            call: call()?,
            consult: consult()?,
        },
        PhoneCallOp::Alternate => Operation::Alternate {
            call: call()?,
            consult: consult()?,
        },
        PhoneCallOp::Reconnect => Operation::Reconnect {
            call: call()?,
            consult: consult()?,
        },
        PhoneCallOp::DropParty => Operation::DropParty {
            call: call()?,
            address: address()?,
        },
        PhoneCallOp::Listen => Operation::Listen {
            call: call()?,
            user: user()?,
        },
        PhoneCallOp::ListenEnd => Operation::ListenEnd {
            call: call()?,
            user: user()?,
        },
        PhoneCallOp::GetPhoneCallAttributes => Operation::GetPhoneCallAttributes { call: call()? },
    })
}
