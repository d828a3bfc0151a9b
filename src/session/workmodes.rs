//! SAP workmodes ↔ switch agent states (ICI.md section 8): 1, 2, 3 fixed, 4 and above mapped
//! to custom switch states by `[workmodes]`.

use crate::config::WorkmodesConfig;
use crate::domain::Workmode;
use crate::switch::AgentState;

use super::answer::{ReasonView, WorkmodeView};
use super::error::SessionError;

/// The not-ready reason SAP sees for wrap-up when no workmode is configured for it.
pub const WRAP_UP_REASON: &str = "wrap-up";

/// The workmode (and reason) SAP is told while the agent is in after-call work: `[workmodes]
/// wrap_up`, or not ready with reason [`WRAP_UP_REASON`] when none is configured.
pub fn wrap_up(config: &WorkmodesConfig) -> (Workmode, Option<String>) {
    match config.wrap_up {
        Some(id) => (Workmode(id), None),
        None => (Workmode::NOT_READY, Some(WRAP_UP_REASON.to_owned())),
    }
}

/// The switch state for a workmode SAP asked for.
pub fn to_switch(
    config: &WorkmodesConfig,
    workmode: Workmode,
    reason: Option<String>,
) -> Result<AgentState, SessionError> {
    if let Some(reason) = &reason
        && !config.reasons.is_empty()
        && !config.reasons.iter().any(|r| r.code == *reason)
    {
        return Err(SessionError::UnknownReason(reason.clone()));
    }
    Ok(match workmode {
        Workmode::LOGGED_OFF => AgentState::LoggedOut,
        Workmode::READY => AgentState::Ready,
        Workmode::NOT_READY => AgentState::NotReady { reason },
        Workmode(id) => AgentState::Custom {
            state: config
                .custom_by_id(id)
                .ok_or(SessionError::UnknownWorkmode(id))?
                .switch_state
                .clone(),
        },
    })
}

/// The workmode (and reason) SAP is told for a switch state. A custom state nobody mapped
/// shows as not ready with the state as reason, so SAP never sees an id it cannot display.
pub fn from_switch(config: &WorkmodesConfig, state: &AgentState) -> (Workmode, Option<String>) {
    match state {
        AgentState::LoggedOut => (Workmode::LOGGED_OFF, None),
        AgentState::Ready => (Workmode::READY, None),
        AgentState::NotReady { reason } => (Workmode::NOT_READY, reason.clone()),
        AgentState::Custom { state } => config
            .custom
            .iter()
            .find(|c| c.switch_state == *state)
            .map(|c| (Workmode(c.id), None))
            .unwrap_or((Workmode::NOT_READY, Some(state.clone()))),
    }
}

/// The workmode list for getAttributes: the fixed three, then the custom ones (hidden when
/// not selectable, unless `view_non_selectable`).
pub fn list(config: &WorkmodesConfig) -> Vec<WorkmodeView> {
    let fixed = [
        (WorkmodesConfig::LOGGED_OFF, "Logged off"),
        (WorkmodesConfig::READY, "Ready"),
        (WorkmodesConfig::NOT_READY, "Not ready"),
    ]
    .into_iter()
    .map(|(id, text)| workmode_view(id, text, true));
    let custom = config
        .custom
        .iter()
        .filter(|c| c.selectable || config.view_non_selectable)
        .map(|c| workmode_view(c.id, &c.text, c.selectable));
    fixed.chain(custom).collect()
}

/// The not-ready reasons for getAttributes.
pub fn reasons(config: &WorkmodesConfig) -> Vec<ReasonView> {
    config
        .reasons
        .iter()
        .map(|r| ReasonView {
            code: r.code.clone(),
            text: r.text.clone(),
        })
        .collect()
}

fn workmode_view(id: u32, text: &str, selectable: bool) -> WorkmodeView {
    WorkmodeView {
        id,
        text: text.to_string(),
        selectable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CustomWorkmode, NotReadyReason};

    fn config() -> WorkmodesConfig {
        WorkmodesConfig {
            custom: vec![
                CustomWorkmode {
                    id: 4,
                    text: "Lunch".into(),
                    switch_state: "Lunch".into(),
                    selectable: true,
                },
                CustomWorkmode {
                    id: 5,
                    text: "Training".into(),
                    switch_state: "Training".into(),
                    selectable: false,
                },
            ],
            reasons: vec![NotReadyReason {
                code: "BRK".into(),
                text: "Break".into(),
            }],
            ..WorkmodesConfig::default()
        }
    }

    #[test]
    fn round_trip_through_the_switch() {
        let c = config();
        for (wm, reason) in [
            (Workmode(1), None),
            (Workmode(2), None),
            (Workmode(3), Some("BRK".to_string())),
            (Workmode(4), None),
        ] {
            let state = to_switch(&c, wm, reason.clone()).unwrap();
            assert_eq!(from_switch(&c, &state), (wm, reason));
        }
        assert_eq!(
            to_switch(&c, Workmode(9), None),
            Err(SessionError::UnknownWorkmode(9))
        );
        assert!(matches!(
            to_switch(&c, Workmode(3), Some("XXX".into())),
            Err(SessionError::UnknownReason(_))
        ));
        assert_eq!(wrap_up(&c), (Workmode(3), Some(WRAP_UP_REASON.to_string())));
        let mut wrap = config();
        wrap.wrap_up = Some(5);
        assert_eq!(wrap_up(&wrap), (Workmode(5), None));
        let unmapped = AgentState::Custom {
            state: "Gone".into(),
        };
        assert_eq!(
            from_switch(&c, &unmapped),
            (Workmode(3), Some("Gone".into()))
        );
    }

    #[test]
    fn non_selectable_hidden_unless_asked() {
        let count = |c: &WorkmodesConfig| list(c).len();
        let mut c = config();
        assert_eq!(count(&c), 4);
        c.view_non_selectable = true;
        assert_eq!(count(&c), 5);
    }
}
