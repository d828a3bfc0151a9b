//! User and Container interfaces: agent attributes, workmode, channels, queues, addresses,
//! and subscriptions to events.

use crate::domain::{AppUrl, Workmode};
use crate::soap::Fault;

use super::args::Args;
use super::{Operation, Target, text_arg, user_arg};

pub(super) fn parse(name: &str, args: &Args<'_>) -> Result<Operation, Fault> {
    Ok(match name {
        "getAttributes" | "getUserAttributes" => Operation::GetAttributes {
            user: user_arg(args, "userId")?,
        },
        "setCurrentWorkmode" => Operation::SetCurrentWorkmode {
            user: user_arg(args, "userId")?,
            workmode: Workmode::parse(args.int("workmode")?)?,
            reason: args.opt_text("reason").map(str::to_string),
        },
        "setCurrentChannels" => Operation::SetCurrentChannels {
            user: user_arg(args, "userId")?,
            channels: args.list("channels"),
        },
        "setCurrentQueues" => Operation::SetCurrentQueues {
            user: user_arg(args, "userId")?,
            queues: args.list("queues"),
        },
        "setAddresses" => Operation::SetAddresses {
            user: user_arg(args, "userId")?,
            addresses: args.list("addresses"),
        },
        "subscribeUser" | "unsubscribeUser" => subscription(
            name == "subscribeUser",
            Target::User(user_arg(args, "userId")?),
            args,
        )?,
        "subscribeContainer" | "unsubscribeContainer" => subscription(
            name == "subscribeContainer",
            Target::Container(text_arg(args, "containerId")?),
            args,
        )?,
        other => unreachable!("{other} is not a User/Container operation"),
    })
}

fn subscription(subscribe: bool, target: Target, args: &Args<'_>) -> Result<Operation, Fault> {
    let url = AppUrl::parse(args.text("appURL")?)?;
    let app_id = text_arg(args, "appId")?;
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
