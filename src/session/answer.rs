//! What the session manager answers, typed: the ICI layer renders these into SOAP values.

use std::sync::Arc;

use crate::domain::{AttachedData, UserId, Workmode};
use crate::switch::LegEvent;

/// The answer to one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The operation is done; the response has no result.
    Done,
    /// getWorkcenterCapability: whether free seating is on.
    WorkcenterCapability(bool),
    /// getPresenceQueueInfo.
    PresenceQueues(Vec<PresenceQueueView>),
    /// getAttributes.
    Attributes(Box<AttributesView>),
    /// create, dial, consult: the id of the new item or call.
    Id(String),
    /// getAttachedData (empty when the item has none).
    AttachedData(Arc<AttachedData>),
    /// getCalls: the calls SAP sees, in arrival order.
    Calls(Vec<PhoneCallView>),
    /// getPhoneCallAttributes.
    Call(PhoneCallView),
}

/// One agent's leg of a call as SAP sees it (ICI.md section 5, catalog type `PhoneCall`).
/// The switch's snapshot and the attached data are shared, not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneCallView {
    pub user: UserId,
    pub leg: Arc<LegEvent>,
    /// The remote party's number as SAP sees it (E.164 when configured), and raw.
    pub remote: Option<String>,
    pub remote_raw: Option<String>,
    /// The number dialed, as SAP sees it and raw.
    pub dialed: Option<String>,
    pub dialed_raw: Option<String>,
    /// The other parties as SAP sees them (like `remote`); raw in `leg.parties`.
    pub parties: Vec<String>,
    /// The call's attached data; `None` when it has none.
    pub attached: Option<Arc<AttachedData>>,
}

/// An agent's attributes (catalog type `UserAttributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributesView {
    pub user: UserId,
    /// Every channel the agent may work on, and the ones it does.
    pub channels: Vec<String>,
    pub current_channels: Vec<String>,
    /// Every queue the agent may serve, and the ones it does.
    pub queues: Vec<String>,
    pub current_queues: Vec<String>,
    pub workmodes: Vec<WorkmodeView>,
    pub current_workmode: Workmode,
    pub reasons: Vec<ReasonView>,
    pub addresses: Vec<String>,
    pub workcenter_capability: bool,
    pub max_interactions: usize,
    /// What the switch can do, by the capabilities' stable names.
    pub capabilities: Vec<&'static str>,
}

/// One workmode SAP may show (catalog type `Workmode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkmodeView {
    pub id: u32,
    pub text: String,
    pub selectable: bool,
}

/// One not-ready reason (catalog type `Reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonView {
    pub code: String,
    pub text: String,
}

/// One queue's presence (catalog type `PresenceQueue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceQueueView {
    pub queue: String,
    pub channel: String,
    /// The number callers dial (a transfer-to-queue destination), when the switch has one.
    pub number: Option<String>,
    pub waiting: usize,
    /// Whole seconds the longest-waiting caller has waited.
    pub longest_wait_seconds: u64,
    pub agents_logged_in: usize,
    pub agents_ready: usize,
}
