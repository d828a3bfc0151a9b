//! The kinds of the catalog's entries: what the dispatcher matches, never a name.

use super::Interface;

/// The events are the session manager's vocabulary; the catalog describes them.
pub use crate::session::EventKind;

/// Every operation SAP may call, by interface. Lookup yields one; the dispatcher matches
/// it exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    System(SystemOp),
    User(UserOp),
    Container(ContainerOp),
    Item(ItemOp),
    Line(LineOp),
    PhoneCall(PhoneCallOp),
    Folder(FolderOp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemOp {
    ExchangeProductInformation,
    GetWorkcenterCapability,
    GetPresenceQueueInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserOp {
    GetAttributes,
    GetUserAttributes,
    SetCurrentWorkmode,
    SetCurrentChannels,
    SetCurrentQueues,
    SetAddresses,
    SubscribeUser,
    UnsubscribeUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerOp {
    SubscribeContainer,
    UnsubscribeContainer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemOp {
    Create,
    Accept,
    Reroute,
    SetAttachedData,
    GetAttachedData,
    DeleteAttachedData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineOp {
    GetCalls,
    DropCalls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhoneCallOp {
    Dial,
    Hold,
    Unhold,
    Drop,
    Transfer,
    Consult,
    Conference,
    Alternate,
    Reconnect,
    DropParty,
    Listen,
    ListenEnd,
    GetPhoneCallAttributes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FolderOp {
    GetMessages,
}

/// What a catalog entry is: an operation SAP calls, or an event we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Request(OpKind),
    Event(EventKind),
}

impl OpKind {
    /// The operation's name on the wire, e.g. `getAttributes`.
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::System(op) => match op {
                SystemOp::ExchangeProductInformation => "exchangeProductInformation",
                SystemOp::GetWorkcenterCapability => "getWorkcenterCapability",
                SystemOp::GetPresenceQueueInfo => "getPresenceQueueInfo",
            },
            OpKind::User(op) => match op {
                UserOp::GetAttributes => "getAttributes",
                UserOp::GetUserAttributes => "getUserAttributes",
                UserOp::SetCurrentWorkmode => "setCurrentWorkmode",
                UserOp::SetCurrentChannels => "setCurrentChannels",
                UserOp::SetCurrentQueues => "setCurrentQueues",
                UserOp::SetAddresses => "setAddresses",
                UserOp::SubscribeUser => "subscribeUser",
                UserOp::UnsubscribeUser => "unsubscribeUser",
            },
            OpKind::Container(op) => match op {
                ContainerOp::SubscribeContainer => "subscribeContainer",
                ContainerOp::UnsubscribeContainer => "unsubscribeContainer",
            },
            OpKind::Item(op) => match op {
                ItemOp::Create => "create",
                ItemOp::Accept => "accept",
                ItemOp::Reroute => "reroute",
                ItemOp::SetAttachedData => "setAttachedData",
                ItemOp::GetAttachedData => "getAttachedData",
                ItemOp::DeleteAttachedData => "deleteAttachedData",
            },
            OpKind::Line(op) => match op {
                LineOp::GetCalls => "getCalls",
                LineOp::DropCalls => "dropCalls",
            },
            OpKind::PhoneCall(op) => match op {
                PhoneCallOp::Dial => "dial",
                PhoneCallOp::Hold => "hold",
                PhoneCallOp::Unhold => "unhold",
                PhoneCallOp::Drop => "drop",
                PhoneCallOp::Transfer => "transfer",
                PhoneCallOp::Consult => "consult",
                PhoneCallOp::Conference => "conference",
                PhoneCallOp::Alternate => "alternate",
                PhoneCallOp::Reconnect => "reconnect",
                PhoneCallOp::DropParty => "dropParty",
                PhoneCallOp::Listen => "listen",
                PhoneCallOp::ListenEnd => "listenEnd",
                PhoneCallOp::GetPhoneCallAttributes => "getPhoneCallAttributes",
            },
            OpKind::Folder(FolderOp::GetMessages) => "getMessages",
        }
    }

    /// The interface the operation belongs to.
    pub const fn interface(self) -> Interface {
        match self {
            OpKind::System(_) => Interface::System,
            OpKind::User(_) => Interface::User,
            OpKind::Container(_) => Interface::Container,
            OpKind::Item(_) => Interface::Item,
            OpKind::Line(_) => Interface::Line,
            OpKind::PhoneCall(_) => Interface::PhoneCall,
            OpKind::Folder(_) => Interface::Folder,
        }
    }
}

impl Kind {
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Request(op) => op.name(),
            Kind::Event(event) => event.name(),
        }
    }

    pub const fn interface(self) -> Interface {
        match self {
            Kind::Request(op) => op.interface(),
            Kind::Event(_) => Interface::Event,
        }
    }
}
