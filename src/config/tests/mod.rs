use super::*;

/// What agents are shown and put in when SAP or the switch goes away, and who holds a
/// workcenter.
mod presence;
/// `[tls]`, `[auth]` and `[access]`.
mod security;

/// The problems of `doc`, as `key: message` lines; panics when it is valid.
fn errors(doc: &str) -> ConfigErrors {
    match Config::from_toml_str(doc) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errs) => errs,
    }
}

/// The keys of `doc`'s problems.
fn error_keys(doc: &str) -> Vec<String> {
    errors(doc).iter().map(|e| e.key.clone()).collect()
}

fn ok(doc: &str) -> Config {
    Config::from_toml_str(doc).unwrap_or_else(|errs| panic!("expected valid, got:\n{errs}"))
}

const ASTERISK: &str = r#"
[switch]
kind = "asterisk"
[switch.asterisk]
host = "pbx"
username = "ami"
secret = "s3cret-value"
"#;

#[test]
fn empty_document_is_the_default() {
    assert_eq!(ok(""), Config::default());
}

#[test]
fn default_file_is_the_default() {
    assert_eq!(ok(DEFAULT_TOML), Config::default());
}

#[test]
fn defaults() {
    let c = Config::default();
    assert_eq!(c.soap.listen, "127.0.0.1:8080".parse().unwrap());
    assert!(c.soap.paths.is_empty());
    assert_eq!(c.admin.listen, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(c.limits.max_body_bytes, 1_048_576);
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.max_connections, 1024);
    assert_eq!(c.limits.request_timeout, Duration::from_secs(30));
    assert_eq!(c.limits.max_xml_depth, 32);
    assert_eq!(c.limits.max_xml_elements, 10_000);
    assert_eq!(c.switch.kind, SwitchKind::Sim);
    assert!(c.switch.asterisk.is_none());
    assert_eq!(c.switch.sim.extensions, ["2001", "2002", "2003"]);
    assert_eq!(
        c.switch.sim.remote_answer_after,
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        c.switch.sim.queue,
        [SimQueue {
            name: "support".into(),
            number: "600".into(),
            members: vec![],
            wrap_up: None,
        }]
    );
    assert_eq!(c.agents.max_interactions, 6);
    assert_eq!(c.agents.channels, ["phone"]);
    assert!(c.agents.queues.is_empty());
    assert!(!c.agents.free_seating);
    assert!(c.agents.users.is_empty());
    assert_eq!(c.workmodes.login, None);
    assert!(!c.workmodes.ignore_sap_login_workmode);
    assert_eq!(c.workmodes.reject, Some(3));
    assert!(!c.workmodes.view_non_selectable);
    assert!(c.workmodes.custom.is_empty() && c.workmodes.reasons.is_empty());
    assert!(c.numbers.e164);
    assert_eq!(c.numbers.remote_attributes, ["ani"]);
    assert_eq!(c.numbers.dialed_attributes, ["dnis"]);
    assert!(!c.numbers.reformat_make_call);
    assert!(c.numbers.dial_prefix.is_empty());
    assert_eq!(c.events.request_timeout, Duration::from_secs(10));
    assert_eq!(c.events.retry_min, Duration::from_millis(500));
    assert_eq!(c.events.retry_max, Duration::from_secs(30));
    assert_eq!(c.events.max_queue_per_subscription, 10_000);
    assert_eq!(c.events.max_queue_total, 1_000_000);
    assert_eq!(c.events.data_dir, PathBuf::from("data"));
    assert_eq!(c.events.overflow, OverflowPolicy::EndSubscription);
    assert_eq!(c.events.max_subscriptions_per_target, 16);
    assert_eq!(c.events.max_subscriptions, 10_000);
    assert!(c.events.allow.is_empty());
    assert_eq!(c.logging.level, "info");
    assert_eq!(c.logging.directory, None);
    assert_eq!(c.logging.rotation, LogRotation::Daily);
    assert_eq!(c.logging.retention, 14);
    assert_eq!(c.logging.format, LogFormat::Text);
    assert!(c.logging.capture_users.is_empty());
    assert!(c.validate().is_ok());
}

#[test]
fn asterisk_defaults() {
    let c = ok(ASTERISK);
    let a = c.switch.asterisk.unwrap();
    assert_eq!(a.port, 5038);
    assert_eq!(a.interface_pattern, "PJSIP/{extension}");
    assert_eq!(a.interface("2001"), "PJSIP/2001");
    assert_eq!(a.reconnect_min, Duration::from_secs(1));
    assert_eq!(a.reconnect_max, Duration::from_secs(30));
    assert_eq!(a.backup_host, None);
    assert_eq!(a.secret.expose(), "s3cret-value");
}

#[test]
fn partial_table_keeps_other_defaults() {
    let c = ok("[limits]\nmax_connections = 10\n");
    assert_eq!(c.limits.max_connections, 10);
    assert_eq!(c.limits.max_body_bytes, 1_048_576);
    assert_eq!(c.soap, SoapConfig::default());
}

#[test]
fn durations_parse_human_strings() {
    let c = ok(r#"
[limits]
header_read_timeout = "500ms"
request_timeout = "2m"
[switch.sim]
remote_answer_after = "off"
"#);
    assert_eq!(c.limits.header_read_timeout, Duration::from_millis(500));
    assert_eq!(c.limits.request_timeout, Duration::from_secs(120));
    assert_eq!(c.switch.sim.remote_answer_after, None);
}

#[test]
fn off_spells_none_for_workmodes() {
    let c = ok("[workmodes]\nreject = \"off\"\nlogin = 2\n");
    assert_eq!(c.workmodes.reject, None);
    assert_eq!(c.workmodes.login, Some(2));
}

#[test]
fn unknown_keys_name_the_key_and_the_alternatives() {
    let e = errors("[soap]\nlisen = \"127.0.0.1:1\"\n");
    assert_eq!(
        e.to_string(),
        "soap.lisen: unknown key (expected one of listen, paths, listeners)"
    );
    assert_eq!(error_keys("colour = 1\n"), ["colour"]);
    assert_eq!(
        error_keys("[agents.users.\"jane.doe\"]\nextension = \"2001\"\nfoo = 1\n"),
        ["agents.users.\"jane.doe\".foo"]
    );
    let e = errors("[[workmodes.custom]]\nid = 4\ntext = \"a\"\nswitch_state = \"b\"\nx = 1\n");
    assert_eq!(e.0[0].key, "workmodes.custom[0].x");
}

#[test]
fn type_errors_name_the_key() {
    let e = errors("[agents]\nmax_interactions = \"six\"\n");
    assert_eq!(e.0[0].key, "agents.max_interactions");
    assert!(e.0[0].message.contains("integer"), "{e}");
    assert_eq!(error_keys("[soap]\nlisten = \"nope\"\n"), ["soap.listen"]);
    assert_eq!(
        error_keys("[limits]\nheader_read_timeout = \"5x\"\n"),
        ["limits.header_read_timeout"]
    );
    assert_eq!(error_keys("[switch]\nkind = \"pbx\"\n"), ["switch.kind"]);
    assert_eq!(
        error_keys("[logging]\nrotation = \"weekly\"\n"),
        ["logging.rotation"]
    );
}

#[test]
fn missing_required_key_is_named() {
    let doc = "[[workmodes.custom]]\nid = 4\ntext = \"a\"\nswitch_state = \"b\"\n\
               [[workmodes.custom]]\nid = 5\ntext = \"b\"\n";
    let e = errors(doc);
    assert_eq!(
        e.to_string(),
        "workmodes.custom[1].switch_state: required key is missing"
    );
}

#[test]
fn syntax_error_gives_the_position() {
    let e = errors("[soap]\nlisten = \n");
    assert_eq!(e.len(), 1);
    assert_eq!(e.0[0].key, "");
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn max_interactions_is_one_to_six() {
    for n in [1, 6] {
        ok(&format!("[agents]\nmax_interactions = {n}\n"));
    }
    for n in [0, 7] {
        let e = errors(&format!("[agents]\nmax_interactions = {n}\n"));
        assert_eq!(e.0[0].key, "agents.max_interactions");
        assert!(e.0[0].message.contains("six"), "{e}");
    }
}

#[test]
fn all_semantic_problems_are_reported_together() {
    let e = errors(
        r#"
[limits]
max_body_bytes = 0
max_connections = 0
[agents]
max_interactions = 7
[logging]
level = "info,=["
"#,
    );
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "limits.max_body_bytes",
            "limits.max_connections",
            "agents.max_interactions",
            "logging.level"
        ]
    );
    assert_eq!(e.to_string().lines().count(), 4);
}

#[test]
fn limits_rules() {
    assert_eq!(
        error_keys(
            "[limits]\nheader_read_timeout = \"0s\"\nrequest_timeout = \"0s\"\nmax_xml_depth = 3\nmax_xml_elements = 0\n"
        ),
        [
            "limits.header_read_timeout",
            "limits.request_timeout",
            "limits.max_xml_depth",
            "limits.max_xml_elements"
        ]
    );
}

#[test]
fn soap_paths_must_start_with_slash() {
    ok("[soap]\npaths = [\"/\", \"/SapIciWebConnector/IcSapWebService.asmx\"]\n");
    assert_eq!(
        error_keys("[soap]\npaths = [\"/ok\", \"ici\", \"/a?b\"]\n"),
        ["soap.paths[1]", "soap.paths[2]"]
    );
}

#[test]
fn listeners_must_differ() {
    assert_eq!(
        error_keys("[soap]\nlisten = \"127.0.0.1:9000\"\n[admin]\nlisten = \"127.0.0.1:9000\"\n"),
        ["admin.listen"]
    );
    // Port 0 (tests) picks two different ports.
    ok("[soap]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n");
}

#[test]
fn sim_rules() {
    let doc = r#"
[switch.sim]
extensions = ["2001", "2001", ""]
[[switch.sim.queue]]
name = "a"
number = "600"
members = ["2001", "2009"]
[[switch.sim.queue]]
name = "a"
number = "600"
[[switch.sim.queue]]
name = "b"
number = "2001"
"#;
    assert_eq!(
        error_keys(doc),
        [
            "switch.sim.extensions[1]",
            "switch.sim.extensions[2]",
            "switch.sim.queue[0].members[1]",
            "switch.sim.queue[1].name",
            "switch.sim.queue[1].number",
            "switch.sim.queue[2].number",
        ]
    );
    assert_eq!(
        error_keys("[switch.sim]\nextensions = []\n"),
        ["switch.sim.extensions"]
    );
}

#[test]
fn asterisk_kind_needs_its_table() {
    let e = errors("[switch]\nkind = \"asterisk\"\n");
    assert_eq!(
        e.to_string(),
        "switch.asterisk: required when switch.kind = \"asterisk\""
    );
    // The table may stay in the file while the simulator is used.
    ok(&ASTERISK.replace("kind = \"asterisk\"", "kind = \"sim\""));
}

#[test]
fn asterisk_rules() {
    let doc = r#"
[switch]
kind = "asterisk"
[switch.asterisk]
host = ""
port = 0
username = " "
secret = ""
backup_host = ""
queues = ["q", "q"]
interface_pattern = "PJSIP/2001"
answer_by_extension = { " " = "notify" }
wrap_up = "0s"
reconnect_min = "10s"
reconnect_max = "5s"
"#;
    assert_eq!(
        error_keys(doc),
        [
            "switch.asterisk.host",
            "switch.asterisk.port",
            "switch.asterisk.username",
            "switch.asterisk.secret",
            "switch.asterisk.backup_host",
            "switch.asterisk.queues[1]",
            "switch.asterisk.interface_pattern",
            "switch.asterisk.answer_by_extension[0]",
            "switch.asterisk.wrap_up",
            "switch.asterisk.reconnect_max",
        ]
    );
}

/// How accept answers: by the phone (default) or by NOTIFY talk, per extension if needed;
/// an unknown method names the key.
#[test]
fn asterisk_answer_methods() {
    use crate::config::AnswerMethod;
    let config = ok(&format!(
        "{ASTERISK}answer = \"notify\"\nanswer_by_extension = {{ \"2002\" = \"phone\" }}\n"
    ));
    let ast = config.switch.asterisk.unwrap();
    assert_eq!(ast.answer_for("2001"), AnswerMethod::Notify);
    assert_eq!(ast.answer_for("2002"), AnswerMethod::Phone);
    assert!(ast.can_answer());
    let plain = ok(ASTERISK).switch.asterisk.unwrap();
    assert_eq!(plain.answer_for("2001"), AnswerMethod::Phone);
    assert!(!plain.can_answer());
    assert_eq!(plain.wrap_up, None);
    let e = errors(&format!("{ASTERISK}answer = \"shout\"\n"));
    assert!(e.to_string().contains("answer"), "{e}");
}

#[test]
fn agent_rules() {
    let doc = r#"
[agents]
channels = []
queues = ["support", "nope"]
[agents.users]
a = { extension = "2001" }
b = { extension = "2001" }
c = { extension = "2999", queues = ["nope"] }
d = { extension = "" }
"#;
    assert_eq!(
        error_keys(doc),
        [
            "agents.channels",
            "agents.queues[1]",
            "agents.users.b.extension",
            "agents.users.c.extension",
            "agents.users.c.queues[0]",
            "agents.users.d.extension",
        ]
    );
}

#[test]
fn asterisk_queue_references_checked_only_when_listed() {
    ok(&format!("{ASTERISK}\n[agents]\nqueues = [\"anything\"]\n"));
    let doc = format!("{ASTERISK}queues = [\"support\"]\n[agents]\nqueues = [\"sales\"]\n");
    assert_eq!(error_keys(&doc), ["agents.queues[0]"]);
}

#[test]
fn custom_workmode_ids() {
    let doc = r#"
[[workmodes.custom]]
id = 4
text = "Lunch"
switch_state = "lunch"
[[workmodes.custom]]
id = 4
text = "Break"
switch_state = "break"
[[workmodes.custom]]
id = 3
text = "Busy"
switch_state = ""
"#;
    let e = errors(doc);
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "workmodes.custom[1].id",
            "workmodes.custom[2].id",
            "workmodes.custom[2].switch_state"
        ]
    );
    assert!(e.0[0].message.contains("duplicate"), "{e}");
    assert!(e.0[1].message.contains("reserved"), "{e}");
}

#[test]
fn login_and_reject_must_be_defined_workmodes() {
    assert_eq!(
        error_keys("[workmodes]\nlogin = 9\nreject = 0\n"),
        ["workmodes.login", "workmodes.reject"]
    );
    let c = ok(
        "[workmodes]\nlogin = 7\nreject = 2\n[[workmodes.custom]]\nid = 7\ntext = \"x\"\nswitch_state = \"x\"\n",
    );
    assert!(c.workmodes.is_defined(7) && !c.workmodes.is_defined(8));
    assert_eq!(
        c.workmodes.custom_by_id(7).map(|w| w.selectable),
        Some(true)
    );
}

#[test]
fn wrap_up_must_be_a_custom_workmode() {
    assert_eq!(
        error_keys("[workmodes]\nwrap_up = 3\n"),
        ["workmodes.wrap_up"]
    );
    let c = ok(
        "[workmodes]\nwrap_up = 5\n[[workmodes.custom]]\nid = 5\ntext = \"Wrap-up\"\nswitch_state = \"wrap-up\"\n\
         [[switch.sim.queue]]\nname = \"q\"\nnumber = \"700\"\nwrap_up = \"30s\"\n",
    );
    assert_eq!(c.workmodes.wrap_up, Some(5));
    assert_eq!(c.switch.sim.queue[0].wrap_up, Some(Duration::from_secs(30)));
    assert_eq!(ok("").workmodes.wrap_up, None);
}

#[test]
fn reason_codes_unique() {
    let doc = "[[workmodes.reasons]]\ncode = \"1\"\ntext = \"a\"\n[[workmodes.reasons]]\ncode = \"1\"\ntext = \"\"\n";
    assert_eq!(
        error_keys(doc),
        ["workmodes.reasons[1].code", "workmodes.reasons[1].text"]
    );
}

#[test]
fn number_rules() {
    let doc = r#"
[numbers]
remote_attributes = []
dialed_attributes = ["dnis", "dnis"]
reformat_make_call = true
dial_prefix = [{ from = "", to = "0" }, { from = "+49", to = "0" }]
"#;
    assert_eq!(
        error_keys(doc),
        [
            "numbers.remote_attributes",
            "numbers.dialed_attributes[1]",
            "numbers.dial_prefix[0].from",
            "numbers.dial_prefix[1].from",
        ]
    );
}

#[test]
fn outbound_number_rewrites() {
    let mut n = NumbersConfig::default();
    assert_eq!(n.outbound_number("+13172222222"), "+13172222222");
    n.reformat_make_call = true;
    assert_eq!(n.outbound_number("+13172222222"), "13172222222");
    n.dial_prefix = vec![
        DialPrefix {
            from: "49".into(),
            to: "0".into(),
        },
        DialPrefix {
            from: "4".into(),
            to: "x".into(),
        },
    ];
    assert_eq!(n.outbound_number("+4930123"), "030123");
    assert_eq!(n.outbound_number("4130"), "x130");
    assert_eq!(n.outbound_number("2001"), "2001");
}

#[test]
fn event_rules() {
    let doc = r#"
[events]
request_timeout = "0s"
retry_min = "1m"
retry_max = "1s"
max_queue_per_subscription = 100
max_queue_total = 10
data_dir = ""
"#;
    assert_eq!(
        error_keys(doc),
        [
            "events.request_timeout",
            "events.retry_max",
            "events.max_queue_total",
            "events.data_dir"
        ]
    );
    assert_eq!(
        error_keys("[events]\nmax_queue_per_subscription = 0\n"),
        ["events.max_queue_per_subscription"]
    );
}

#[test]
fn subscription_caps_and_event_allow_list() {
    let c = ok(
        "[events]\nmax_subscriptions_per_target = 2\nmax_subscriptions = 5\n\
         allow = [\"sap.example.com\", \"SAP-2.example.com.\", \"10.0.0.0/8\", \"::1\"]\n",
    );
    assert_eq!(c.events.allow.len(), 4);
    let doc = r#"
[events]
max_subscriptions_per_target = 0
max_subscriptions = 0
allow = ["", "http://sap/", "sap:8000", "10.0.0.0/33", "under_score.example", "10.0.0.300"]
"#;
    assert_eq!(
        error_keys(doc),
        [
            "events.max_subscriptions_per_target",
            "events.max_subscriptions",
            "events.allow[0]",
            "events.allow[1]",
            "events.allow[2]",
            "events.allow[3]",
            "events.allow[4]",
            "events.allow[5]",
        ]
    );
    assert_eq!(
        error_keys("[events]\nmax_subscriptions_per_target = 20\nmax_subscriptions = 10\n"),
        ["events.max_subscriptions"]
    );
}

#[test]
fn soap_beyond_loopback_without_an_event_allow_list_is_a_warning() {
    // Only this check's key: an open SOAP listener is also warned about on its own.
    let warning_keys = |doc: &str| -> Vec<String> {
        let keys = ok(doc).warnings().into_iter().map(|w| w.key);
        keys.filter(|k| k == "events.allow").collect()
    };
    assert!(warning_keys("").is_empty(), "loopback by default");
    assert!(warning_keys("[soap]\nlisten = \"[::1]:8080\"\n").is_empty());
    assert_eq!(
        warning_keys("[soap]\nlisten = \"0.0.0.0:8080\"\n"),
        ["events.allow"]
    );
    assert_eq!(
        warning_keys("[soap]\nlisten = \"10.1.2.3:8080\"\n"),
        ["events.allow"]
    );
    assert!(
        warning_keys("[soap]\nlisten = \"0.0.0.0:8080\"\n[events]\nallow = [\"10.0.0.0/8\"]\n")
            .is_empty()
    );
}

#[test]
fn logging_rules() {
    ok("[logging]\nlevel = \"info,ici_connector::soap=trace\"\n");
    let e =
        errors("[logging]\nlevel = \"info,=[\"\nretention = 0\ncapture_users = [\"u\", \"u\"]\n");
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "logging.level",
            "logging.retention",
            "logging.capture_users[1]"
        ]
    );
    assert_eq!(error_keys("[logging]\nlevel = \"\"\n"), ["logging.level"]);
}

#[test]
fn secret_is_masked_in_debug_display_and_effective_toml() {
    let c = ok(ASTERISK);
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret-value"), "{debug}");
    assert!(debug.contains(MASK));
    let secret = &c.switch.asterisk.as_ref().unwrap().secret;
    assert_eq!(secret.to_string(), MASK);
    assert_eq!(format!("{secret:?}"), MASK);
    let effective = c.effective_toml();
    assert!(!effective.contains("s3cret-value"), "{effective}");
    assert!(effective.contains("secret = \"********\""), "{effective}");
}

#[test]
fn effective_toml_reparses_to_the_same_config() {
    assert_eq!(ok(&Config::default().effective_toml()), Config::default());

    let doc = r#"
[soap]
paths = ["/ici"]
[switch.sim]
remote_answer_after = "off"
[[switch.sim.queue]]
name = "sales"
number = "601"
members = ["2001"]
[agents]
max_interactions = 3
queues = ["sales"]
[agents.users]
"jane.doe" = { extension = "2002", queues = ["sales"] }
[workmodes]
reject = "off"
login = 4
[[workmodes.custom]]
id = 4
text = "Lunch"
switch_state = "lunch"
selectable = false
[[workmodes.reasons]]
code = "10"
text = "Back office"
[numbers]
dial_prefix = [{ from = "+49", to = "0" }]
[events]
retry_max = "1m 30s"
overflow = "coalesce"
[logging]
directory = "/var/log/ici"
rotation = "never"
format = "json"
"#;
    let c = ok(doc);
    assert_eq!(c.events.retry_max, Duration::from_secs(90));
    assert_eq!(ok(&c.effective_toml()), c);

    // With a secret, everything but the secret survives the round trip.
    let c = ok(ASTERISK);
    let mut again = ok(&c.effective_toml());
    let ast = again.switch.asterisk.as_mut().unwrap();
    assert_eq!(ast.secret.expose(), MASK);
    ast.secret = Secret::new("s3cret-value");
    assert_eq!(again, c);
}

#[test]
fn load_reads_a_file_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[agents]\nmax_interactions = 2\n").unwrap();
    assert_eq!(Config::load(&path).unwrap().agents.max_interactions, 2);

    let e = Config::load(&dir.path().join("missing.toml")).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e.0[0].key, "");
    assert!(e.to_string().contains("missing.toml"), "{e}");
}
