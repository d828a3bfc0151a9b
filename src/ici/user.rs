//! User and Container interfaces: agent attributes, workmode, channels, queues, addresses,
//! and subscriptions to events.

use crate::domain::{AppUrl, Workmode};

use super::args::Args;
use super::catalog::{ContainerOp, UserOp, param};
use super::error::IciError;
use super::{Operation, Target, invalid, text_arg, user_arg};

pub(super) fn parse(op: UserOp, args: &Args<'_>) -> Result<Operation, IciError> {
    let user = || user_arg(args, &param::USER_ID);
    Ok(match op {
        UserOp::GetAttributes | UserOp::GetUserAttributes => {
            Operation::GetAttributes { user: user()? }
        }
        UserOp::SetCurrentWorkmode => Operation::SetCurrentWorkmode {
            user: user()?,
            workmode: Workmode::parse(args.int(&param::WORKMODE)?).map_err(invalid(args))?,
            reason: args.opt_text(&param::REASON).map(str::to_string),
        },
        UserOp::SetCurrentChannels => Operation::SetCurrentChannels {
            user: user()?,
            channels: args.list(&param::CHANNELS),
        },
        UserOp::SetCurrentQueues => Operation::SetCurrentQueues {
            user: user()?,
            queues: args.list(&param::QUEUES),
        },
        UserOp::SetAddresses => Operation::SetAddresses {
            user: user()?,
            addresses: args.list(&param::ADDRESSES),
        },
        UserOp::SubscribeUser => subscription(true, Target::User(user()?), args)?,
        UserOp::UnsubscribeUser => subscription(false, Target::User(user()?), args)?,
    })
}

pub(super) fn parse_container(op: ContainerOp, args: &Args<'_>) -> Result<Operation, IciError> {
    let target = Target::Container(text_arg(args, &param::CONTAINER_ID)?);
    match op {
        ContainerOp::SubscribeContainer => subscription(true, target, args),
        ContainerOp::UnsubscribeContainer => subscription(false, target, args),
    }
}

fn subscription(subscribe: bool, target: Target, args: &Args<'_>) -> Result<Operation, IciError> {
    let url = AppUrl::parse(args.text(&param::APP_URL)?).map_err(invalid(args))?;
    let app_id = text_arg(args, &param::APP_ID)?;
    Ok(if subscribe {
        Operation::Subscribe {
            target,
            url,
            app_id,
        }
    } else {
        Operation::Unsubscribe {
            target,
            url,
            app_id,
        }
    })
}
