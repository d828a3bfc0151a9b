//! The ICI operation catalog: every interface, operation, parameter (with the aliases real
//! SAP releases and toolkits use), result type and structure we speak. The dispatcher, the
//! parameter reader and the WSDL files all derive from this one table, so they cannot
//! disagree.
//!
//! Each operation has a kind ([`OpKind`], [`EventKind`]): the dispatcher matches kinds,
//! never names, so the compiler checks that every operation is handled; and the parameter
//! reader is handed the [`param`] constants the table lists, never a name to look up.

use super::error::IciError;

mod kind;

pub use kind::{
    ContainerOp, EventKind, FolderOp, ItemOp, Kind, LineOp, OpKind, PhoneCallOp, SystemOp, UserOp,
};

/// An ICI interface: one SOAP namespace, one WSDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interface {
    System,
    User,
    Container,
    Item,
    Line,
    PhoneCall,
    Folder,
    /// The interface SAP implements and we call (events).
    Event,
}

impl Interface {
    /// Every interface, SAP-facing ones first.
    pub const ALL: [Interface; 8] = [
        Interface::System,
        Interface::User,
        Interface::Container,
        Interface::Item,
        Interface::Line,
        Interface::PhoneCall,
        Interface::Folder,
        Interface::Event,
    ];

    /// The interface name, e.g. `IciUserInterface`; also the WSDL file stem.
    pub fn name(self) -> &'static str {
        match self {
            Interface::System => "IciSystemInterface",
            Interface::User => "IciUserInterface",
            Interface::Container => "IciContainerInterface",
            Interface::Item => "IciItemInterface",
            Interface::Line => "IciLineInterface",
            Interface::PhoneCall => "IciPhoneCallInterface",
            Interface::Folder => "IciFolderInterface",
            Interface::Event => "IciEventInterface",
        }
    }

    /// The SOAP namespace, e.g. `urn:IciUserInterface` (ICI.md section 4).
    pub fn namespace(self) -> &'static str {
        match self {
            Interface::System => "urn:IciSystemInterface",
            Interface::User => "urn:IciUserInterface",
            Interface::Container => "urn:IciContainerInterface",
            Interface::Item => "urn:IciItemInterface",
            Interface::Line => "urn:IciLineInterface",
            Interface::PhoneCall => "urn:IciPhoneCallInterface",
            Interface::Folder => "urn:IciFolderInterface",
            Interface::Event => "urn:IciEventInterface",
        }
    }

    /// The interface a namespace names.
    pub fn from_namespace(namespace: &str) -> Option<Interface> {
        Interface::ALL
            .into_iter()
            .find(|i| i.namespace() == namespace)
    }

    /// The interface a name names: `IciUserInterface`, `User`, `user` all work (for `?wsdl=`).
    pub fn from_name(name: &str) -> Option<Interface> {
        Interface::ALL.into_iter().find(|i| {
            let full = i.name();
            let short = &full[3..full.len() - "Interface".len()];
            name.eq_ignore_ascii_case(full) || name.eq_ignore_ascii_case(short)
        })
    }
}

/// The type of a parameter, result or structure field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    String,
    Int,
    Boolean,
    /// An array of strings (`<item>` children, or repeated elements on input).
    StringList,
    /// A structure from [`TYPES`].
    Struct(&'static str),
    /// An array of structures from [`TYPES`].
    ListOf(&'static str),
}

/// One parameter of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Canonical name (what our WSDL says).
    pub name: &'static str,
    /// Other names accepted on input.
    pub aliases: &'static [&'static str],
    pub ty: Ty,
    /// Whether the parameter may be absent.
    pub optional: bool,
}

/// One operation or event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSpec {
    pub kind: Kind,
    /// The kind's interface.
    pub interface: Interface,
    /// The kind's name.
    pub name: &'static str,
    pub params: &'static [Param],
    /// The result in `<return>`; `None` for operations that only acknowledge.
    pub returns: Option<Ty>,
    /// One line for the WSDL documentation.
    pub doc: &'static str,
}

/// A structure used in results and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSpec {
    pub name: &'static str,
    /// Fields in order; every field may be nil.
    pub fields: &'static [(&'static str, Ty)],
}

const fn req(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        aliases: &[],
        ty,
        optional: false,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        aliases: &[],
        ty,
        optional: true,
    }
}

const fn aka(mut param: Param, aliases: &'static [&'static str]) -> Param {
    param.aliases = aliases;
    param
}

/// Every parameter of the table below, by name: what the parameter reader is given.
pub mod param;

use param::*;

const fn op(
    kind: Kind,
    params: &'static [Param],
    returns: Option<Ty>,
    doc: &'static str,
) -> OpSpec {
    OpSpec {
        kind,
        interface: kind.interface(),
        name: kind.name(),
        params,
        returns,
        doc,
    }
}

const fn system(op: SystemOp) -> Kind {
    Kind::Request(OpKind::System(op))
}
const fn user(op: UserOp) -> Kind {
    Kind::Request(OpKind::User(op))
}
const fn container(op: ContainerOp) -> Kind {
    Kind::Request(OpKind::Container(op))
}
const fn item(op: ItemOp) -> Kind {
    Kind::Request(OpKind::Item(op))
}
const fn line(op: LineOp) -> Kind {
    Kind::Request(OpKind::Line(op))
}
const fn phone_call(op: PhoneCallOp) -> Kind {
    Kind::Request(OpKind::PhoneCall(op))
}
const fn folder(op: FolderOp) -> Kind {
    Kind::Request(OpKind::Folder(op))
}
const fn event(event: EventKind) -> Kind {
    Kind::Event(event)
}

/// Every operation SAP may call (ICI.md section 4) and every event we send (section 5).
pub static OPERATIONS: &[OpSpec] = &[
    op(
        system(SystemOp::ExchangeProductInformation),
        &[PRODUCT_NAME, PRODUCT_VERSION, ICI_VERSION],
        Some(Ty::Struct("ProductInformation")),
        "Exchange product names and versions; returns ours and the ICI version we speak.",
    ),
    op(
        system(SystemOp::GetWorkcenterCapability),
        &[],
        Some(Ty::Boolean),
        "Whether free seating (workcenters) is on.",
    ),
    op(
        system(SystemOp::GetPresenceQueueInfo),
        &[CHANNEL],
        Some(Ty::ListOf("PresenceQueue")),
        "Queue presence for a channel.",
    ),
    op(
        user(UserOp::GetAttributes),
        &[USER_ID],
        Some(Ty::Struct("UserAttributes")),
        "Channels, queues, workmodes and addresses of an agent; ends earlier subscriptions.",
    ),
    op(
        user(UserOp::GetUserAttributes),
        &[USER_ID],
        Some(Ty::Struct("UserAttributes")),
        "Same as getAttributes.",
    ),
    op(
        user(UserOp::SetCurrentWorkmode),
        &[USER_ID, WORKMODE, REASON],
        None,
        "1 logged off, 2 ready, 3 not ready, 4 and above as configured.",
    ),
    op(
        user(UserOp::SetCurrentChannels),
        &[USER_ID, CHANNELS],
        None,
        "Channels the agent works on (phone, chat, actionitem).",
    ),
    op(
        user(UserOp::SetCurrentQueues),
        &[USER_ID, QUEUES],
        None,
        "Accepted and recorded; the switch assigns queues.",
    ),
    op(
        user(UserOp::SetAddresses),
        &[USER_ID, ADDRESSES],
        None,
        "The agent's extension(s) or workcenter.",
    ),
    op(
        user(UserOp::SubscribeUser),
        &[USER_ID, APP_URL, APP_ID],
        None,
        "Start events for this user to appURL.",
    ),
    op(
        user(UserOp::UnsubscribeUser),
        &[USER_ID, APP_URL, APP_ID],
        None,
        "Stop events for this user to appURL.",
    ),
    op(
        container(ContainerOp::SubscribeContainer),
        &[CONTAINER_ID, APP_URL, APP_ID],
        None,
        "Start events for the items of a container (an address) to appURL.",
    ),
    op(
        container(ContainerOp::UnsubscribeContainer),
        &[CONTAINER_ID, APP_URL, APP_ID],
        None,
        "Stop events for a container.",
    ),
    op(
        item(ItemOp::Create),
        &[CONTAINER_ID],
        Some(Ty::String),
        "A new outbound item id, to be used by dial.",
    ),
    op(
        item(ItemOp::Accept),
        &[ITEM_ID],
        None,
        "Answer an alerting item.",
    ),
    op(
        item(ItemOp::Reroute),
        &[ITEM_ID],
        None,
        "Reject an alerting ACD item back to its queue; the agent goes to the reject workmode.",
    ),
    op(
        item(ItemOp::SetAttachedData),
        &[ITEM_ID, ATTACHED_DATA],
        None,
        "Replace the named Application elements of the item's attached data.",
    ),
    op(
        item(ItemOp::GetAttachedData),
        &[ITEM_ID],
        Some(Ty::String),
        "The item's attached data document.",
    ),
    op(
        item(ItemOp::DeleteAttachedData),
        &[ITEM_ID, OPT_ATTACHED_DATA],
        None,
        "Remove the named Application elements (all of them when none is named).",
    ),
    op(
        line(LineOp::GetCalls),
        &[CONTAINER_ID],
        Some(Ty::ListOf("PhoneCall")),
        "The live calls of an address or agent.",
    ),
    op(
        line(LineOp::DropCalls),
        &[CONTAINER_ID],
        None,
        "Drop every live call of an address or agent.",
    ),
    op(
        phone_call(PhoneCallOp::Dial),
        &[DIAL_CONTAINER_ID, DIAL_USER_ID, ADDRESS, DIAL_ITEM_ID],
        Some(Ty::String),
        "Outbound call; returns the call id.",
    ),
    op(
        phone_call(PhoneCallOp::Hold),
        &[CALL_ID],
        None,
        "Hold a connected call.",
    ),
    op(
        phone_call(PhoneCallOp::Unhold),
        &[CALL_ID],
        None,
        "Retrieve a held call.",
    ),
    op(
        phone_call(PhoneCallOp::Drop),
        &[CALL_ID],
        None,
        "Hang up the agent's side.",
    ),
    op(
        phone_call(PhoneCallOp::Transfer),
        &[CALL_ID, TRANSFER_ADDRESS],
        None,
        "Blind transfer; during a consultation, to the consulted address or none: complete it.",
    ),
    op(
        phone_call(PhoneCallOp::Consult),
        &[CALL_ID, ADDRESS],
        Some(Ty::String),
        "Hold the call and call address; returns the consultation call id.",
    ),
    op(
        phone_call(PhoneCallOp::Conference),
        &[CALL_ID, CONSULT_CALL_ID],
        None,
        "Join the held call and the consultation call.",
    ),
    op(
        phone_call(PhoneCallOp::Alternate),
        &[CALL_ID, CONSULT_CALL_ID],
        None,
        "Swap between the held and the connected call.",
    ),
    op(
        phone_call(PhoneCallOp::Reconnect),
        &[CALL_ID, CONSULT_CALL_ID],
        None,
        "Drop the consultation call and retrieve the held one.",
    ),
    op(
        phone_call(PhoneCallOp::DropParty),
        &[CALL_ID, ADDRESS],
        None,
        "Remove one party from a conference.",
    ),
    op(
        phone_call(PhoneCallOp::Listen),
        &[CALL_ID, USER_ID],
        None,
        "Supervisor silent monitoring.",
    ),
    op(
        phone_call(PhoneCallOp::ListenEnd),
        &[CALL_ID, USER_ID],
        None,
        "End silent monitoring.",
    ),
    op(
        phone_call(PhoneCallOp::GetPhoneCallAttributes),
        &[CALL_ID],
        Some(Ty::Struct("PhoneCall")),
        "The call object.",
    ),
    op(
        folder(FolderOp::GetMessages),
        &[CONTAINER_ID],
        Some(Ty::ListOf("Message")),
        "Messages of a folder; empty, there is no mail channel.",
    ),
    op(
        event(EventKind::PhoneCallChanged),
        &[APP_IDS, SEQUENCE, PHONE_CALL, EVENT_ATTACHED_DATA],
        None,
        "A call of the subscribed user or container changed.",
    ),
    op(
        event(EventKind::WorkmodeChanged),
        &[
            APP_IDS,
            SEQUENCE,
            EVENT_USER_ID,
            EVENT_WORKMODE,
            EVENT_REASON,
        ],
        None,
        "The agent's workmode changed on the switch.",
    ),
    op(
        event(EventKind::SubscriptionEnded),
        &[APP_IDS, SEQUENCE, EVENT_REASON],
        None,
        "We end this subscription; no further events follow.",
    ),
];

/// Every structure (ICI.md section 5 for PhoneCall).
pub static TYPES: &[TypeSpec] = &[
    TypeSpec {
        name: "ProductInformation",
        fields: &[
            ("productName", Ty::String),
            ("productVersion", Ty::String),
            ("iciVersion", Ty::String),
        ],
    },
    TypeSpec {
        name: "Workmode",
        fields: &[
            ("id", Ty::Int),
            ("text", Ty::String),
            ("selectable", Ty::Boolean),
        ],
    },
    TypeSpec {
        name: "Reason",
        fields: &[("code", Ty::String), ("text", Ty::String)],
    },
    TypeSpec {
        name: "UserAttributes",
        fields: &[
            ("userId", Ty::String),
            ("channels", Ty::StringList),
            ("currentChannels", Ty::StringList),
            ("queues", Ty::StringList),
            ("currentQueues", Ty::StringList),
            ("workmodes", Ty::ListOf("Workmode")),
            ("currentWorkmode", Ty::Int),
            ("reasons", Ty::ListOf("Reason")),
            ("addresses", Ty::StringList),
            ("workcenterCapability", Ty::Boolean),
            ("maxInteractions", Ty::Int),
            ("capabilities", Ty::StringList),
        ],
    },
    TypeSpec {
        name: "PhoneCall",
        fields: &[
            ("callId", Ty::String),
            ("containerId", Ty::String),
            ("userId", Ty::String),
            ("state", Ty::String),
            ("direction", Ty::String),
            ("remoteAddress", Ty::String),
            ("remoteAddressRaw", Ty::String),
            ("dialedAddress", Ty::String),
            ("dialedAddressRaw", Ty::String),
            ("queue", Ty::String),
            ("parties", Ty::StringList),
            ("attachedData", Ty::String),
            ("reason", Ty::String),
        ],
    },
    TypeSpec {
        name: "PresenceQueue",
        fields: &[
            ("queue", Ty::String),
            ("channel", Ty::String),
            ("waiting", Ty::Int),
            ("agentsReady", Ty::Int),
        ],
    },
    TypeSpec {
        name: "Message",
        fields: &[
            ("messageId", Ty::String),
            ("subject", Ty::String),
            ("from", Ty::String),
            ("state", Ty::String),
        ],
    },
];

/// The operations of one interface.
pub fn operations(interface: Interface) -> impl Iterator<Item = &'static OpSpec> {
    OPERATIONS.iter().filter(move |o| o.interface == interface)
}

/// A structure by name.
pub fn type_spec(name: &str) -> Option<&'static TypeSpec> {
    TYPES.iter().find(|t| t.name == name)
}

/// How an operation element was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Namespace and name both ours.
    Exact,
    /// Unknown (or no) namespace, but the local name is unique among SAP-facing operations
    /// (ICI.md 3.1: accept and warn).
    ByNameOnly,
}

/// Finds the SAP-facing operation for an operation element.
pub fn lookup(namespace: Option<&str>, name: &str) -> Result<(OpKind, Match), IciError> {
    let known = OPERATIONS.iter().filter_map(|o| match o.kind {
        Kind::Request(kind) => Some(kind),
        Kind::Event(_) => None,
    });
    if let Some(interface) = namespace.and_then(Interface::from_namespace)
        && let Some(kind) = known
            .clone()
            .find(|k| k.interface() == interface && k.name() == name)
    {
        return Ok((kind, Match::Exact));
    }
    let mut by_name = known.filter(|k| k.name() == name);
    match (by_name.next(), by_name.next()) {
        (Some(kind), None) => Ok((kind, Match::ByNameOnly)),
        _ => Err(IciError::UnknownOperation {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_struct_reference_is_defined() {
        let referenced = OPERATIONS
            .iter()
            .flat_map(|o| o.params.iter().map(|p| p.ty).chain(o.returns))
            .chain(TYPES.iter().flat_map(|t| t.fields.iter().map(|f| f.1)));
        for ty in referenced {
            if let Ty::Struct(name) | Ty::ListOf(name) = ty {
                assert!(type_spec(name).is_some(), "{name} is not defined");
            }
        }
    }

    #[test]
    fn operation_names_are_unique_per_interface() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            for b in &OPERATIONS[i + 1..] {
                assert!(
                    a.interface != b.interface || a.name != b.name,
                    "{} twice",
                    a.name
                );
            }
        }
    }

    #[test]
    fn every_operation_looks_up_to_its_own_kind() {
        for spec in OPERATIONS {
            if let Kind::Request(kind) = spec.kind {
                let namespace = Some(spec.interface.namespace());
                assert_eq!(lookup(namespace, spec.name).unwrap(), (kind, Match::Exact));
                assert_eq!((kind.name(), kind.interface()), (spec.name, spec.interface));
            }
        }
    }

    #[test]
    fn lookup_by_namespace_and_by_unique_name() {
        let (kind, how) = lookup(Some("urn:IciUserInterface"), "getAttributes").unwrap();
        assert_eq!((kind.interface(), how), (Interface::User, Match::Exact));
        let (kind, how) = lookup(Some("urn:somethingElse"), "hold").unwrap();
        assert_eq!(
            (kind.interface(), how),
            (Interface::PhoneCall, Match::ByNameOnly)
        );
        let (_, how) = lookup(None, "dial").unwrap();
        assert_eq!(how, Match::ByNameOnly);
        assert_eq!(
            lookup(Some("urn:x"), "frobnicate")
                .unwrap_err()
                .fault()
                .string,
            "unknown operation"
        );
        // Events are ours to send, never an operation SAP may call.
        assert!(lookup(Some("urn:IciEventInterface"), "phoneCallChanged").is_err());
    }

    #[test]
    fn the_wire_layer_reads_every_ici_namespace_without_a_copy() {
        for interface in Interface::ALL {
            assert!(
                crate::soap::INTERNED_NAMESPACES.contains(&interface.namespace()),
                "{}",
                interface.namespace()
            );
        }
    }

    #[test]
    fn interface_names() {
        assert_eq!(Interface::from_name("user"), Some(Interface::User));
        assert_eq!(
            Interface::from_name("IciPhoneCallInterface"),
            Some(Interface::PhoneCall)
        );
        assert_eq!(Interface::from_name("nope"), None);
    }
}
