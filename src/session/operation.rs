//! The ICI operations the session manager runs, typed: what the ICI layer hands over once
//! a request is read and checked.

use crate::domain::{AppUrl, AttachedData, UserId, Workmode};

/// Who a subscription is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// All interactions of one agent (subscribeUser).
    User(UserId),
    /// All interactions of one address or agent (subscribeContainer).
    Container(String),
}

/// `user AGENT1`, `container C1`: how logs, the status page and faults name it.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::User(user) => write!(f, "user {user}"),
            Target::Container(container) => write!(f, "container {container}"),
        }
    }
}

/// Every ICI operation the session manager runs, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    GetWorkcenterCapability,
    GetPresenceQueueInfo {
        channel: Option<String>,
    },
    GetAttributes {
        user: UserId,
    },
    SetCurrentWorkmode {
        user: UserId,
        workmode: Workmode,
        reason: Option<String>,
    },
    SetCurrentChannels {
        user: UserId,
        channels: Vec<String>,
    },
    SetCurrentQueues {
        user: UserId,
        queues: Vec<String>,
    },
    SetAddresses {
        user: UserId,
        addresses: Vec<String>,
    },
    Subscribe {
        target: Target,
        url: AppUrl,
        app_id: String,
    },
    Unsubscribe {
        target: Target,
        url: AppUrl,
        app_id: String,
    },
    Create {
        container: String,
    },
    Accept {
        item: String,
    },
    Reroute {
        item: String,
    },
    SetAttachedData {
        item: String,
        data: AttachedData,
    },
    GetAttachedData {
        item: String,
    },
    /// `None`: remove every application.
    DeleteAttachedData {
        item: String,
        applications: Option<Vec<String>>,
    },
    GetCalls {
        container: String,
    },
    DropCalls {
        container: String,
    },
    Dial {
        container: Option<String>,
        user: Option<UserId>,
        address: String,
        item: Option<String>,
    },
    Hold {
        call: String,
    },
    Unhold {
        call: String,
    },
    Drop {
        call: String,
    },
    /// Blind transfer; during a consultation it completes it (`address` the consulted
    /// one, or none).
    Transfer {
        call: String,
        address: Option<String>,
    },
    Consult {
        call: String,
        address: String,
    },
    Conference {
        call: String,
        consult: String,
    },
    Alternate {
        call: String,
        consult: String,
    },
    Reconnect {
        call: String,
        consult: String,
    },
    DropParty {
        call: String,
        address: String,
    },
    Listen {
        call: String,
        user: UserId,
    },
    ListenEnd {
        call: String,
        user: UserId,
    },
    GetPhoneCallAttributes {
        call: String,
    },
}

impl Operation {
    /// The call or item id the operation is about, for logs.
    pub fn call_id(&self) -> Option<&str> {
        use Operation::*;
        match self {
            Accept { item }
            | Reroute { item }
            | SetAttachedData { item, .. }
            | GetAttachedData { item }
            | DeleteAttachedData { item, .. } => Some(item),
            Hold { call }
            | Unhold { call }
            | Drop { call }
            | Transfer { call, .. }
            | Consult { call, .. }
            | Conference { call, .. }
            | Alternate { call, .. }
            | Reconnect { call, .. }
            | DropParty { call, .. }
            | Listen { call, .. }
            | ListenEnd { call, .. }
            | GetPhoneCallAttributes { call } => Some(call),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_display_as_the_domain_names_them() {
        let user = Target::User(UserId::parse("agent1").unwrap());
        assert_eq!(user.to_string(), "user AGENT1");
        assert_eq!(Target::Container("C1".into()).to_string(), "container C1");
    }
}
