//! `[agents]` and `[workmodes]`: who the agents are and what SAP shows of their state.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::Workmode;

use super::{serde_util, yes};

/// `[agents]`: what every agent gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Most interactions per agent that SAP sees at once; more wait on the switch and are
    /// pushed to SAP as earlier ones end. Default 6, which is also the maximum: the IC has six
    /// session slots. Lower it to keep agents focused.
    pub max_interactions: u8,
    /// Channels reported to SAP (`getAttributes`). Default `["phone"]`.
    pub channels: Vec<String>,
    /// Queues every agent is logged into and reported in. Default empty: whatever the switch
    /// assigns.
    pub queues: Vec<String>,
    /// Free seating: the agent names a workcenter (extension) at login instead of having a
    /// fixed one; reported by `getWorkcenterCapability`. Default false.
    pub free_seating: bool,
    /// `[agents.users]`: SAP user id → fixed extension (and queues). Default empty: SAP sets
    /// addresses at runtime (`setAddresses`).
    pub users: BTreeMap<String, AgentUser>,
    /// Whether SAP users not listed in `[agents.users]` may log in (they name their
    /// extension with `setAddresses`). Default true; set false to allow only listed users,
    /// so a typo in SAP's user mapping fails loudly with "unknown user".
    pub accept_unlisted_users: bool,
    /// Longest an interaction may stay on an agent's screen without a switch event before
    /// it is ended toward SAP (`dropped`, reason `max age`): the last net for ghost calls a
    /// switch forgot to report. Default `"12h"`; `"off"` disables it.
    #[serde(with = "serde_util::duration_or_off")]
    pub max_interaction_age: Option<Duration>,
    /// What the switch is told when an agent's IC session is lost (SAP's appURL answers
    /// 401/404, `unsubscribeUser`, or the subscription ends on overflow) and the agent has
    /// no other subscription: an agent left ready would keep getting ACD calls whose screen
    /// never pops. Default `"not_ready"` (with `session_lost_reason`).
    pub on_session_lost: SessionLostAction,
    /// The not-ready reason code recorded on the switch with `on_session_lost =
    /// "not_ready"`. Default `"IC_SESSION_LOST"`.
    pub session_lost_reason: String,
    /// `setAddresses` for an extension another logged-in agent holds: `"refuse"` (default:
    /// a fault names the holder, so a mistyped extension never moves someone else's calls)
    /// or `"take_over"` (the holder's subscriptions end with `subscriptionEnded`).
    pub workcenter_in_use: WorkcenterInUse,
}

/// `[agents] on_session_lost`: the agent's state on the switch after its IC session is lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionLostAction {
    /// Not ready with `session_lost_reason`: logged in, but no ACD call rings.
    #[default]
    NotReady,
    /// Logged out of the switch's queues.
    LoggedOut,
    /// Left as it is.
    Keep,
}

/// `[agents] workcenter_in_use`: `setAddresses` for an extension another logged-in agent
/// holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkcenterInUse {
    /// Refused with a fault naming the holder.
    #[default]
    Refuse,
    /// Taken: the holder loses the extension and its subscriptions end.
    TakeOver,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            max_interactions: AgentsConfig::MAX_INTERACTIONS,
            channels: vec!["phone".into()],
            queues: Vec::new(),
            free_seating: false,
            accept_unlisted_users: true,
            max_interaction_age: Some(Duration::from_secs(12 * 3600)),
            users: BTreeMap::new(),
            on_session_lost: SessionLostAction::NotReady,
            session_lost_reason: AgentsConfig::SESSION_LOST_REASON.into(),
            workcenter_in_use: WorkcenterInUse::Refuse,
        }
    }
}

impl AgentsConfig {
    /// ICI's six-interaction cap (ICI.md section 8, "Agent rules"): the IC has six session
    /// slots, so at most six interactions per agent reach SAP and a seventh waits on the
    /// switch. The upper bound (and default) of `max_interactions`, which may only lower it.
    pub const MAX_INTERACTIONS: u8 = 6;
    /// Default of `session_lost_reason`.
    pub const SESSION_LOST_REASON: &'static str = "IC_SESSION_LOST";
}

/// One entry of `[agents.users]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentUser {
    /// The agent's extension on the switch. Required, unique among users.
    pub extension: String,
    /// Queues for this agent. Default empty: `agents.queues`.
    #[serde(default)]
    pub queues: Vec<String>,
}

/// `[workmodes]`: SAP workmodes (1 logged off, 2 ready, 3 not ready, ≥4 custom) and how they
/// map to switch agent states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkmodesConfig {
    /// Workmode applied at login when `ignore_sap_login_workmode` is true; `"off"` = not
    /// ready (3), so no ACD call reaches an agent who has not said so. Default `"off"`.
    #[serde(with = "serde_util::workmode_or_off")]
    pub login: Option<u32>,
    /// Ignore the workmode SAP asks for at login and apply `login` instead. Default false.
    pub ignore_sap_login_workmode: bool,
    /// Workmode the agent is put in after rejecting an ACD call (`reroute`), so the queue
    /// does not offer it straight back; `"off"` = unchanged. Default 3 (not ready).
    #[serde(with = "serde_util::workmode_or_off")]
    pub reject: Option<u32>,
    /// The custom workmode (a `[[workmodes.custom]]` id) SAP sees while the switch has the
    /// agent in after-call work (wrap-up after a queue call); it ends by itself. `"off"`:
    /// shown as not ready (3) with reason `wrap-up`. Default `"off"`.
    #[serde(with = "serde_util::workmode_or_off")]
    pub wrap_up: Option<u32>,
    /// Also show custom workmodes with `selectable = false` in the IC's list (the agent still
    /// cannot choose them). Default false.
    pub view_non_selectable: bool,
    /// `[[workmodes.custom]]`: extra workmodes (ids ≥ 4) mapped to switch states.
    /// Default none.
    pub custom: Vec<CustomWorkmode>,
    /// `[[workmodes.reasons]]`: not-ready reason codes offered with workmode 3.
    /// Default none.
    pub reasons: Vec<NotReadyReason>,
    /// Workmode SAP is shown (`workmodeChanged`) for every agent while the switch link is
    /// down, so agents see why their buttons fail; their own workmode is shown again when
    /// the link is back. 3 (the default) is not ready with reason
    /// [`WorkmodesConfig::SWITCH_UNAVAILABLE_REASON`]; a custom id (best with
    /// `selectable = false`) shows its own text and is always listed; `"off"`: SAP is not
    /// told.
    #[serde(with = "serde_util::workmode_or_off")]
    pub switch_unavailable: Option<u32>,
}

impl Default for WorkmodesConfig {
    fn default() -> Self {
        WorkmodesConfig {
            login: None,
            ignore_sap_login_workmode: false,
            reject: Some(WorkmodesConfig::NOT_READY),
            wrap_up: None,
            view_non_selectable: false,
            custom: Vec::new(),
            reasons: Vec::new(),
            switch_unavailable: Some(WorkmodesConfig::NOT_READY),
        }
    }
}

impl WorkmodesConfig {
    /// SAP workmode 1 ([`Workmode::LOGGED_OFF`]).
    pub const LOGGED_OFF: u32 = Workmode::LOGGED_OFF.0;
    /// SAP workmode 2 ([`Workmode::READY`]).
    pub const READY: u32 = Workmode::READY.0;
    /// SAP workmode 3 ([`Workmode::NOT_READY`]).
    pub const NOT_READY: u32 = Workmode::NOT_READY.0;
    /// Lowest id of a custom workmode ([`Workmode::FIRST_CUSTOM`]).
    pub const FIRST_CUSTOM: u32 = Workmode::FIRST_CUSTOM.0;
    /// The not-ready reason shown with `switch_unavailable = 3`.
    pub const SWITCH_UNAVAILABLE_REASON: &'static str = "SWITCH_UNAVAILABLE";

    /// The custom workmode with this id.
    pub fn custom_by_id(&self, id: u32) -> Option<&CustomWorkmode> {
        self.custom.iter().find(|w| w.id == id)
    }

    /// True for 1, 2, 3 and every configured custom id.
    pub fn is_defined(&self, id: u32) -> bool {
        (Self::LOGGED_OFF..=Self::NOT_READY).contains(&id) || self.custom_by_id(id).is_some()
    }
}

/// `[[workmodes.custom]]`: one custom workmode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomWorkmode {
    /// SAP workmode id. Required, ≥ 4 (1–3 are fixed by SAP), unique.
    pub id: u32,
    /// Text shown in the IC's workmode list. Required.
    pub text: String,
    /// The agent state name on the switch (e.g. an Asterisk pause reason). Required.
    pub switch_state: String,
    /// Agents may choose it themselves. Default true; false for states only the switch
    /// sets (e.g. "ACD no answer").
    #[serde(default = "yes")]
    pub selectable: bool,
}

/// `[[workmodes.reasons]]`: one not-ready reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotReadyReason {
    /// Code SAP sends with `setCurrentWorkmode` and the switch records. Required, unique.
    pub code: String,
    /// Text shown to the agent. Required.
    pub text: String,
}
