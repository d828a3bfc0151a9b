//! The events the session manager emits, typed, and what it needs of the wire layer to
//! hand them to the notifier as envelopes.

use crate::domain::{AttachedData, DomainError, UserId, Workmode};

use super::answer::PhoneCallView;

/// Every kind of event we send to SAP (ICI.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    PhoneCallChanged,
    WorkmodeChanged,
    SubscriptionEnded,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [
        EventKind::PhoneCallChanged,
        EventKind::WorkmodeChanged,
        EventKind::SubscriptionEnded,
    ];

    /// The event's ICI name, e.g. `phoneCallChanged`: its operation on the wire, its
    /// `SOAPAction`, and how the spool remembers it.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::PhoneCallChanged => "phoneCallChanged",
            EventKind::WorkmodeChanged => "workmodeChanged",
            EventKind::SubscriptionEnded => "subscriptionEnded",
        }
    }

    /// The kind an ICI name names.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One event for the subscriptions of an agent, built once and written once per
/// subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IciEvent {
    /// A call of the agent changed.
    PhoneCallChanged(PhoneCallView),
    /// The agent's workmode changed on the switch.
    WorkmodeChanged {
        user: UserId,
        workmode: Workmode,
        reason: Option<String>,
    },
    /// We end the subscription; nothing follows.
    SubscriptionEnded { reason: &'static str },
}

impl IciEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            IciEvent::PhoneCallChanged(_) => EventKind::PhoneCallChanged,
            IciEvent::WorkmodeChanged { .. } => EventKind::WorkmodeChanged,
            IciEvent::SubscriptionEnded { .. } => EventKind::SubscriptionEnded,
        }
    }
}

/// What the session manager needs of the wire layer, handed in at start, so the session
/// never reads or writes XML itself. Plain functions: the actor calls them inline, without
/// waiting and without a lock.
#[derive(Debug, Clone, Copy)]
pub struct Wire {
    /// The envelope of one event for one subscription, with the subscription's app ids
    /// and the event's sequence number: what the notifier delivers.
    pub event: fn(&IciEvent, app_ids: &[String], sequence: u64) -> String,
    /// Reads the item attached data an IVR set on the switch (call attribute `sap_cad`).
    pub attached_data: fn(&str) -> Result<AttachedData, DomainError>,
    /// Writes item attached data as the document the switch keeps on the call
    /// ([`crate::switch::SwitchCommand::SetCallData`]).
    pub attached_document: fn(&AttachedData) -> String,
}
