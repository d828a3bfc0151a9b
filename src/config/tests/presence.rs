use super::*;

#[test]
fn presence_defaults() {
    let c = Config::default();
    assert_eq!(c.agents.on_session_lost, SessionLostAction::NotReady);
    assert_eq!(c.agents.session_lost_reason, "IC_SESSION_LOST");
    assert_eq!(c.agents.workcenter_in_use, WorkcenterInUse::Refuse);
    assert_eq!(
        c.workmodes.switch_unavailable,
        Some(WorkmodesConfig::NOT_READY)
    );
}

#[test]
fn session_lost_settings_parse_and_are_checked() {
    let c = ok("[agents]\non_session_lost = \"logged_out\"\nworkcenter_in_use = \"take_over\"\n");
    assert_eq!(c.agents.on_session_lost, SessionLostAction::LoggedOut);
    assert_eq!(c.agents.workcenter_in_use, WorkcenterInUse::TakeOver);
    assert_eq!(
        ok("[agents]\non_session_lost = \"keep\"\nsession_lost_reason = \"\"\n")
            .agents
            .on_session_lost,
        SessionLostAction::Keep
    );
    assert_eq!(
        error_keys("[agents]\nsession_lost_reason = \" \"\n"),
        ["agents.session_lost_reason"]
    );
    let e = errors("[agents]\nsession_lost_reason = \"a\\r\\nAction: Logoff\"\n");
    assert_eq!(e.0[0].key, "agents.session_lost_reason");
    assert!(e.0[0].message.contains("control characters"), "{e}");
    for wrong in [
        "[agents]\non_session_lost = \"ready\"\n",
        "[agents]\nworkcenter_in_use = \"steal\"\n",
    ] {
        let e = errors(wrong);
        assert!(e.0[0].key.starts_with("agents."), "{e}");
    }
}

#[test]
fn switch_unavailable_must_be_a_defined_workmode_other_than_ready() {
    assert_eq!(
        error_keys("[workmodes]\nswitch_unavailable = 2\n"),
        ["workmodes.switch_unavailable"]
    );
    assert_eq!(
        error_keys("[workmodes]\nswitch_unavailable = 9\n"),
        ["workmodes.switch_unavailable"]
    );
    assert_eq!(
        ok("[workmodes]\nswitch_unavailable = \"off\"\n")
            .workmodes
            .switch_unavailable,
        None
    );
    let c = ok(
        "[workmodes]\nswitch_unavailable = 9\n[[workmodes.custom]]\nid = 9\ntext = \"Switch unavailable\"\nswitch_state = \"down\"\nselectable = false\n",
    );
    assert_eq!(c.workmodes.switch_unavailable, Some(9));
}
