//! The ICI operation catalog: every interface, operation, parameter (with the aliases real
//! SAP releases and toolkits use), result type and structure we speak. The dispatcher, the
//! parameter reader and the WSDL files all derive from this one table, so they cannot
//! disagree.

use crate::soap::Fault;

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

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSpec {
    pub interface: Interface,
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

const USER_ID: Param = aka(req("userId", Ty::String), &["user", "userID", "agentId"]);
const CONTAINER_ID: Param = aka(
    req("containerId", Ty::String),
    &["container", "containerID", "lineId"],
);
const ITEM_ID: Param = aka(
    req("itemId", Ty::String),
    &["callId", "item", "itemID", "id"],
);
const CALL_ID: Param = aka(
    req("callId", Ty::String),
    &["itemId", "call", "callID", "id"],
);
const CONSULT_CALL_ID: Param = aka(
    req("consultCallId", Ty::String),
    &["consultItemId", "secondCallId", "otherCallId"],
);
const ADDRESS: Param = aka(
    req("address", Ty::String),
    &["destination", "number", "phoneNumber", "to"],
);
const APP_URL: Param = aka(req("appURL", Ty::String), &["appUrl", "url", "URL"]);
const APP_ID: Param = aka(
    req("appId", Ty::String),
    &["applicationId", "appID", "applId", "applID"],
);

const fn op(
    interface: Interface,
    name: &'static str,
    params: &'static [Param],
    returns: Option<Ty>,
    doc: &'static str,
) -> OpSpec {
    OpSpec {
        interface,
        name,
        params,
        returns,
        doc,
    }
}

use Interface::*;

/// Every operation SAP may call (ICI.md section 4) and every event we send (section 5).
pub static OPERATIONS: &[OpSpec] = &[
    op(
        System,
        "exchangeProductInformation",
        &[
            opt("productName", Ty::String),
            opt("productVersion", Ty::String),
            opt("iciVersion", Ty::String),
        ],
        Some(Ty::Struct("ProductInformation")),
        "Exchange product names and versions; returns ours and the ICI version we speak.",
    ),
    op(
        System,
        "getWorkcenterCapability",
        &[],
        Some(Ty::Boolean),
        "Whether free seating (workcenters) is on.",
    ),
    op(
        System,
        "getPresenceQueueInfo",
        &[opt("channel", Ty::String)],
        Some(Ty::ListOf("PresenceQueue")),
        "Queue presence for a channel.",
    ),
    op(
        User,
        "getAttributes",
        &[USER_ID],
        Some(Ty::Struct("UserAttributes")),
        "Channels, queues, workmodes and addresses of an agent; ends earlier subscriptions.",
    ),
    op(
        User,
        "getUserAttributes",
        &[USER_ID],
        Some(Ty::Struct("UserAttributes")),
        "Same as getAttributes.",
    ),
    op(
        User,
        "setCurrentWorkmode",
        &[
            USER_ID,
            aka(
                req("workmode", Ty::Int),
                &["workMode", "workmodeId", "mode"],
            ),
            aka(opt("reason", Ty::String), &["reasonCode"]),
        ],
        None,
        "1 logged off, 2 ready, 3 not ready, 4 and above as configured.",
    ),
    op(
        User,
        "setCurrentChannels",
        &[USER_ID, aka(req("channels", Ty::StringList), &["channel"])],
        None,
        "Channels the agent works on (phone, chat, actionitem).",
    ),
    op(
        User,
        "setCurrentQueues",
        &[USER_ID, aka(req("queues", Ty::StringList), &["queue"])],
        None,
        "Accepted and recorded; the switch assigns queues.",
    ),
    op(
        User,
        "setAddresses",
        &[USER_ID, aka(req("addresses", Ty::StringList), &["address"])],
        None,
        "The agent's extension(s) or workcenter.",
    ),
    op(
        User,
        "subscribeUser",
        &[USER_ID, APP_URL, APP_ID],
        None,
        "Start events for this user to appURL.",
    ),
    op(
        User,
        "unsubscribeUser",
        &[USER_ID, APP_URL, APP_ID],
        None,
        "Stop events for this user to appURL.",
    ),
    op(
        Container,
        "subscribeContainer",
        &[CONTAINER_ID, APP_URL, APP_ID],
        None,
        "Start events for the items of a container (an address) to appURL.",
    ),
    op(
        Container,
        "unsubscribeContainer",
        &[CONTAINER_ID, APP_URL, APP_ID],
        None,
        "Stop events for a container.",
    ),
    op(
        Item,
        "create",
        &[CONTAINER_ID],
        Some(Ty::String),
        "A new outbound item id, to be used by dial.",
    ),
    op(Item, "accept", &[ITEM_ID], None, "Answer an alerting item."),
    op(
        Item,
        "reroute",
        &[ITEM_ID],
        None,
        "Reject an alerting ACD item back to its queue; the agent goes to the reject workmode.",
    ),
    op(
        Item,
        "setAttachedData",
        &[
            ITEM_ID,
            aka(
                req("attachedData", Ty::String),
                &["data", "itemAttachedData"],
            ),
        ],
        None,
        "Replace the named Application elements of the item's attached data.",
    ),
    op(
        Item,
        "getAttachedData",
        &[ITEM_ID],
        Some(Ty::String),
        "The item's attached data document.",
    ),
    op(
        Item,
        "deleteAttachedData",
        &[
            ITEM_ID,
            aka(
                opt("attachedData", Ty::String),
                &["data", "itemAttachedData"],
            ),
        ],
        None,
        "Remove the named Application elements (all of them when none is named).",
    ),
    op(
        Line,
        "getCalls",
        &[CONTAINER_ID],
        Some(Ty::ListOf("PhoneCall")),
        "The live calls of an address or agent.",
    ),
    op(
        Line,
        "dropCalls",
        &[CONTAINER_ID],
        None,
        "Drop every live call of an address or agent.",
    ),
    op(
        PhoneCall,
        "dial",
        &[
            aka(opt("containerId", Ty::String), &["container", "lineId"]),
            aka(opt("userId", Ty::String), &["user"]),
            ADDRESS,
            aka(opt("itemId", Ty::String), &["item"]),
        ],
        Some(Ty::String),
        "Outbound call; returns the call id.",
    ),
    op(
        PhoneCall,
        "hold",
        &[CALL_ID],
        None,
        "Hold a connected call.",
    ),
    op(
        PhoneCall,
        "unhold",
        &[CALL_ID],
        None,
        "Retrieve a held call.",
    ),
    op(
        PhoneCall,
        "drop",
        &[CALL_ID],
        None,
        "Hang up the agent's side.",
    ),
    op(
        PhoneCall,
        "transfer",
        &[CALL_ID, ADDRESS],
        None,
        "Blind transfer.",
    ),
    op(
        PhoneCall,
        "consult",
        &[CALL_ID, ADDRESS],
        Some(Ty::String),
        "Hold the call and call address; returns the consultation call id.",
    ),
    op(
        PhoneCall,
        "conference",
        &[CALL_ID, CONSULT_CALL_ID],
        None,
        "Join the held call and the consultation call.",
    ),
    op(
        PhoneCall,
        "alternate",
        &[CALL_ID, CONSULT_CALL_ID],
        None,
        "Swap between the held and the connected call.",
    ),
    op(
        PhoneCall,
        "reconnect",
        &[CALL_ID, CONSULT_CALL_ID],
        None,
        "Drop the consultation call and retrieve the held one.",
    ),
    op(
        PhoneCall,
        "dropParty",
        &[CALL_ID, ADDRESS],
        None,
        "Remove one party from a conference.",
    ),
    op(
        PhoneCall,
        "listen",
        &[CALL_ID, USER_ID],
        None,
        "Supervisor silent monitoring.",
    ),
    op(
        PhoneCall,
        "listenEnd",
        &[CALL_ID, USER_ID],
        None,
        "End silent monitoring.",
    ),
    op(
        PhoneCall,
        "getPhoneCallAttributes",
        &[CALL_ID],
        Some(Ty::Struct("PhoneCall")),
        "The call object.",
    ),
    op(
        Folder,
        "getMessages",
        &[CONTAINER_ID],
        Some(Ty::ListOf("Message")),
        "Messages of a folder; empty, there is no mail channel.",
    ),
    op(
        Event,
        "phoneCallChanged",
        &[
            req("appIds", Ty::StringList),
            req("sequence", Ty::Int),
            req("phoneCall", Ty::Struct("PhoneCall")),
            opt("attachedData", Ty::String),
        ],
        None,
        "A call of the subscribed user or container changed.",
    ),
    op(
        Event,
        "workmodeChanged",
        &[
            req("appIds", Ty::StringList),
            req("sequence", Ty::Int),
            req("userId", Ty::String),
            req("workmode", Ty::Int),
            opt("reason", Ty::String),
        ],
        None,
        "The agent's workmode changed on the switch.",
    ),
    op(
        Event,
        "subscriptionEnded",
        &[
            req("appIds", Ty::StringList),
            req("sequence", Ty::Int),
            opt("reason", Ty::String),
        ],
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
pub fn lookup(namespace: Option<&str>, name: &str) -> Result<(&'static OpSpec, Match), Fault> {
    let known = OPERATIONS.iter().filter(|o| o.interface != Event);
    if let Some(interface) = namespace.and_then(Interface::from_namespace)
        && let Some(spec) = known
            .clone()
            .find(|o| o.interface == interface && o.name == name)
    {
        return Ok((spec, Match::Exact));
    }
    let mut by_name = known.filter(|o| o.name == name);
    match (by_name.next(), by_name.next()) {
        (Some(spec), None) => Ok((spec, Match::ByNameOnly)),
        _ => Err(Fault::client("unknown operation")
            .with_detail(format!("{{{}}}{name}", namespace.unwrap_or("")))),
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
    fn lookup_by_namespace_and_by_unique_name() {
        let (spec, how) = lookup(Some("urn:IciUserInterface"), "getAttributes").unwrap();
        assert_eq!((spec.interface, how), (User, Match::Exact));
        let (spec, how) = lookup(Some("urn:somethingElse"), "hold").unwrap();
        assert_eq!((spec.interface, how), (PhoneCall, Match::ByNameOnly));
        let (_, how) = lookup(None, "dial").unwrap();
        assert_eq!(how, Match::ByNameOnly);
        assert_eq!(
            lookup(Some("urn:x"), "frobnicate").unwrap_err().string,
            "unknown operation"
        );
        // Events are ours to send, never an operation SAP may call.
        assert!(lookup(Some("urn:IciEventInterface"), "phoneCallChanged").is_err());
    }

    #[test]
    fn interface_names() {
        assert_eq!(Interface::from_name("user"), Some(User));
        assert_eq!(
            Interface::from_name("IciPhoneCallInterface"),
            Some(PhoneCall)
        );
        assert_eq!(Interface::from_name("nope"), None);
    }
}
