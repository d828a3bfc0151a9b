//! What SAP and the status page see of the session state: the ICI phone call object
//! (ICI.md section 5) and a serialisable snapshot.

use std::sync::Arc;

use serde::Serialize;

use crate::config::NumbersConfig;
use crate::domain::{AttachedData, UserId};
use crate::numbers::{E164, Home, pick_attribute};
use crate::switch::{Direction, LegEvent};

use super::answer::PhoneCallView;

/// The remote party's and the dialed number, raw as the switch gave them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Numbers {
    pub remote: Option<String>,
    pub dialed: Option<String>,
}

/// Finds ANI and DNIS by the configured attribute lists. For a call the agent placed, the
/// remote party is the one dialed. Falls back to the first other party.
pub fn numbers(leg: &LegEvent, config: &NumbersConfig) -> Numbers {
    let attribute = |name: &str| leg.attributes.get(name);
    let dialed = pick_attribute(attribute, &config.dialed_attributes).map(str::to_string);
    let caller = pick_attribute(attribute, &config.remote_attributes).map(str::to_string);
    let placed_by_agent =
        leg.direction == Direction::Outbound || caller.as_deref() == Some(leg.extension.as_str());
    let remote = if placed_by_agent {
        dialed.clone()
    } else {
        caller
    }
    .filter(|r| *r != leg.extension)
    .or_else(|| leg.parties.first().cloned());
    Numbers { remote, dialed }
}

/// How SAP sees a number: E.164 when configured (ICI.md 7; national and local numbers
/// through the home dial plan when one is configured), raw otherwise.
fn for_sap(raw: &str, config: &NumbersConfig, home: Option<&Home>) -> String {
    if config.e164 {
        E164::normalize_at(raw, home).as_str().to_string()
    } else {
        raw.to_string()
    }
}

/// The PhoneCall object for one agent's leg of a call.
pub fn phone_call(
    user: &UserId,
    leg: &Arc<LegEvent>,
    attached: Option<&Arc<AttachedData>>,
    config: &NumbersConfig,
) -> PhoneCallView {
    let numbers = numbers(leg, config);
    let home = config.home();
    let sap = |raw: &str| for_sap(raw, config, home.as_ref());
    PhoneCallView {
        user: user.clone(),
        leg: Arc::clone(leg),
        remote: numbers.remote.as_deref().map(sap),
        remote_raw: numbers.remote,
        dialed: numbers.dialed.as_deref().map(sap),
        dialed_raw: numbers.dialed,
        parties: leg.parties.iter().map(|party| sap(party)).collect(),
        attached: attached.filter(|a| !a.is_empty()).cloned(),
    }
}

/// One interaction on the status page.
#[derive(Debug, Clone, Serialize)]
pub struct InteractionStatus {
    pub call_id: String,
    pub state: String,
    pub direction: String,
    pub remote: Option<String>,
    pub queue: Option<String>,
    /// Whether SAP sees it (false: waiting behind the interaction cap).
    pub visible: bool,
}

/// One agent on the status page.
#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub user_id: String,
    pub extension: Option<String>,
    pub workmode: u32,
    pub reason: Option<String>,
    pub interactions: Vec<InteractionStatus>,
}

/// One subscription on the status page.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionStatus {
    pub id: u64,
    pub target: String,
    pub app_url: String,
    pub app_ids: Vec<String>,
    /// The last sequence number handed to the notifier.
    pub sequence: u64,
    /// Events queued and not yet acknowledged by SAP.
    pub queue_depth: usize,
    /// The highest sequence number safely in the event spool.
    pub durable_sequence: u64,
    /// How the last delivery attempt ended (`"HTTP 200 phoneCallChanged #3"`, or
    /// `"failed ...: why"`); none before the first.
    pub last_delivery: Option<String>,
}

/// Everything the status page shows of the session manager.
#[derive(Debug, Clone, Serialize)]
pub struct StatusSnapshot {
    pub switch: &'static str,
    pub switch_link_up: bool,
    /// Why the switch link went down, while it is down (none before its first report).
    pub switch_link_reason: Option<String>,
    pub agents: Vec<AgentStatus>,
    pub subscriptions: Vec<SubscriptionStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::LegState;

    fn leg(direction: Direction, attrs: &[(&str, &str)], parties: &[&str]) -> LegEvent {
        LegEvent {
            call: "c1".into(),
            extension: "2001".into(),
            state: LegState::Alerting,
            direction,
            queue: None,
            parties: parties.iter().map(|p| p.to_string()).collect(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            correlation: None,
            cause: None,
        }
    }

    #[test]
    fn remote_is_the_caller_inbound_and_the_callee_outbound() {
        let config = NumbersConfig::default();
        let inbound = leg(
            Direction::Inbound,
            &[("ani", "sip:555@example.com"), ("dnis", "600")],
            &["sip:555@example.com"],
        );
        let n = numbers(&inbound, &config);
        assert_eq!(n.remote.as_deref(), Some("sip:555@example.com"));
        assert_eq!(n.dialed.as_deref(), Some("600"));

        let outbound = leg(
            Direction::Outbound,
            &[("ani", "2001"), ("dnis", "13172222222")],
            &[],
        );
        assert_eq!(
            numbers(&outbound, &config).remote.as_deref(),
            Some("13172222222")
        );

        let internal = leg(
            Direction::Internal,
            &[("ani", "2001"), ("dnis", "2002")],
            &["2002"],
        );
        assert_eq!(numbers(&internal, &config).remote.as_deref(), Some("2002"));

        let no_attrs = leg(Direction::Inbound, &[], &["4711"]);
        assert_eq!(numbers(&no_attrs, &config).remote.as_deref(), Some("4711"));
    }
}
