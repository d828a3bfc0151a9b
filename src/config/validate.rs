//! Semantic checks of a parsed [`Config`]. Every rule adds a problem and carries on, so an
//! admin sees all of them in one `check-config` run.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::error::quote_key;
use super::{
    AsteriskConfig, ClientAuth, Config, ConfigError, Limits, SwitchKind, WorkmodesConfig,
    serde_util::OFF,
};

/// Collects problems.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(key, message));
    }

    fn positive(&mut self, key: &str, value: usize) {
        if value == 0 {
            self.add(key, "must be greater than 0");
        }
    }

    fn nonzero_duration(&mut self, key: &str, value: Duration) {
        if value.is_zero() {
            self.add(key, "must be longer than 0s");
        }
    }

    /// Each entry non-empty (after trimming) and unique.
    fn names(&mut self, key: &str, values: &[String]) {
        let mut seen = HashMap::new();
        for (i, value) in values.iter().enumerate() {
            if value.trim().is_empty() {
                self.add(format!("{key}[{i}]"), "must not be empty");
            } else if let Some(first) = seen.insert(value.as_str(), i) {
                self.add(
                    format!("{key}[{i}]"),
                    format!("duplicate \"{value}\" (also {key}[{first}])"),
                );
                seen.insert(value.as_str(), first);
            }
        }
    }

    fn required(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(key, "must not be empty");
        }
    }
}

/// Every problem with `config`; empty when it is usable.
pub(super) fn validate(config: &Config) -> Vec<ConfigError> {
    let mut p = Problems::default();
    soap_and_admin(config, &mut p);
    limits(config, &mut p);
    let queues = switch(config, &mut p);
    agents(config, queues.as_ref(), &mut p);
    workmodes(&config.workmodes, &mut p);
    numbers(config, &mut p);
    events(config, &mut p);
    logging(config, &mut p);
    tls(config, &mut p);
    auth(config, &mut p);
    access(config, &mut p);
    super::listeners::validate(config, &mut p.0);
    if let Some(cluster) = &config.cluster {
        p.0.extend(super::cluster::validate(cluster));
    }
    p.0
}

fn soap_and_admin(config: &Config, p: &mut Problems) {
    for (i, path) in config.soap.paths.iter().enumerate() {
        if !path.starts_with('/') {
            p.add(
                format!("soap.paths[{i}]"),
                format!("\"{path}\" must start with \"/\""),
            );
        } else if path.contains(|c: char| c == '?' || c == '#' || c.is_whitespace()) {
            p.add(
                format!("soap.paths[{i}]"),
                format!("\"{path}\" must be a plain path (no query, fragment or spaces)"),
            );
        }
    }
    let (soap, admin) = (config.soap.listen, config.admin.listen);
    if soap == admin && soap.port() != 0 {
        p.add("admin.listen", format!("{admin} is already soap.listen"));
    }
}

fn limits(config: &Config, p: &mut Problems) {
    let l = &config.limits;
    p.positive("limits.max_body_bytes", l.max_body_bytes);
    p.nonzero_duration("limits.header_read_timeout", l.header_read_timeout);
    p.positive("limits.max_connections", l.max_connections);
    p.positive(
        "limits.max_connections_per_peer",
        l.max_connections_per_peer,
    );
    p.nonzero_duration("limits.request_timeout", l.request_timeout);
    if l.max_xml_depth < Limits::MIN_XML_DEPTH {
        p.add(
            "limits.max_xml_depth",
            format!(
                "must be at least {} (Envelope, Body, operation, parameter)",
                Limits::MIN_XML_DEPTH
            ),
        );
    }
    p.positive("limits.max_xml_elements", l.max_xml_elements);
    p.positive("limits.max_xml_text_bytes", l.max_xml_text_bytes);
    p.positive("limits.max_xml_attribute_bytes", l.max_xml_attribute_bytes);
    if l.max_header_bytes < Limits::MIN_HEADER_BYTES {
        p.add(
            "limits.max_header_bytes",
            format!(
                "must be at least {} (the HTTP parser's smallest buffer)",
                Limits::MIN_HEADER_BYTES
            ),
        );
    }
}

fn tls(config: &Config, p: &mut Problems) {
    let tls = &config.tls;
    if config.any_tls_listener() {
        let when = "required when tls.enabled = true or a [[soap.listeners]] has tls = true";
        if tls.cert.is_none() {
            p.add("tls.cert", when);
        }
        if tls.key.is_none() {
            p.add("tls.key", when);
        }
        if tls.client_auth != ClientAuth::Off && tls.client_ca.is_none() {
            p.add(
                "tls.client_ca",
                format!(
                    "required when tls.client_auth = \"{}\"",
                    tls.client_auth.as_str()
                ),
            );
        }
        if !tls.allowed_subjects.is_empty() && tls.client_auth == ClientAuth::Off {
            p.add(
                "tls.allowed_subjects",
                "needs tls.client_auth = \"require\" or \"optional\"",
            );
        }
    } else if tls.cert.is_some() || tls.key.is_some() || tls.client_auth != ClientAuth::Off {
        p.add(
            "tls.enabled",
            "tls.cert, tls.key or tls.client_auth are set but tls.enabled = false and no \
             [[soap.listeners]] has tls = true",
        );
    }
    p.names("tls.allowed_subjects", &tls.allowed_subjects);
    if tls.reload_interval.is_some_and(|d| d.is_zero()) {
        p.add(
            "tls.reload_interval",
            format!("must be longer than 0s or \"{OFF}\""),
        );
    }
    let out = &tls.outbound;
    if out.cert.is_some() != out.key.is_some() {
        p.add("tls.outbound", "cert and key must be given together");
    }
}

fn auth(config: &Config, p: &mut Problems) {
    let auth = &config.auth;
    p.required("auth.realm", &auth.realm);
    if auth.realm.contains('"') {
        p.add("auth.realm", "must not contain '\"'");
    }
    for (table, users) in [
        ("auth.soap_users", &auth.soap_users),
        ("auth.admin_users", &auth.admin_users),
    ] {
        let names: Vec<String> = users.iter().map(|u| u.name.clone()).collect();
        for (i, user) in users.iter().enumerate() {
            if user.name.contains(':') {
                p.add(format!("{table}[{i}].name"), "must not contain ':'");
            } else if user.name.trim().is_empty() {
                p.add(format!("{table}[{i}].name"), "must not be empty");
            }
            if let Err(why) = check_password_hash(user.password_hash.expose()) {
                p.add(format!("{table}[{i}].password_hash"), why);
            }
        }
        let mut seen = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            if let Some(first) = seen.insert(name.as_str(), i) {
                p.add(
                    format!("{table}[{i}].name"),
                    format!("duplicate \"{name}\" (also {table}[{first}])"),
                );
            }
        }
    }
    if auth.failure_burst == 0 {
        p.add("auth.failure_burst", "must be greater than 0");
    }
    p.nonzero_duration("auth.failure_refill", auth.failure_refill);
    let admin = config.admin.listen.ip();
    let admin_allow = &config.access.admin_allow;
    if !admin.is_loopback() && auth.admin_users.is_empty() {
        if admin_allow.is_empty() {
            p.add(
                "admin.listen",
                format!(
                    "{admin} is not loopback: set [[auth.admin_users]] or access.admin_allow to \
                     protect the admin listener"
                ),
            );
        } else if admits_every_address(admin_allow) {
            p.add(
                "access.admin_allow",
                format!(
                    "admits every address, so it does not protect the admin listener on \
                     {admin} (not loopback): list only the operators' and monitoring \
                     networks, or set [[auth.admin_users]]"
                ),
            );
        }
    }
}

/// Whether an allow-list admits every IPv4 or every IPv6 address (`0.0.0.0/0`, `::/0`, or
/// networks that add up to one of them): such a list protects nothing. Entries that do
/// not parse are reported by [`access`] and left out here.
fn admits_every_address(entries: &[String]) -> bool {
    let networks: Vec<ipnet::IpNet> = entries
        .iter()
        .filter_map(|entry| super::parse_network(entry).ok())
        .collect();
    ipnet::IpNet::aggregate(&networks)
        .iter()
        .any(|network| network.prefix_len() == 0)
}

/// Settings that are valid but leave a door open: `check-config` prints them, the server
/// logs them at start.
pub(super) fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut p = Problems::default();
    open_soap_listener(config, &mut p);
    open_event_destinations(config, &mut p);
    p.0
}

/// SOAP beyond loopback with nothing that limits who may use it: whoever reaches the port
/// can log agents in and out, dial and read call data. TLS counts only when it requires a
/// client certificate (otherwise it encrypts, but admits anyone).
fn open_soap_listener(config: &Config, p: &mut Problems) {
    p.0.extend(super::listeners::open_listeners(
        config,
        admits_every_address,
    ));
}

/// The password hash must be an Argon2 PHC string; the message never contains the hash.
fn check_password_hash(hash: &str) -> Result<(), &'static str> {
    let parsed = argon2::PasswordHash::new(hash)
        .map_err(|_| "must be an Argon2 hash in PHC form ($argon2id$v=19$m=...)")?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err("must be an Argon2 hash (argon2id, argon2i or argon2d)");
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the Argon2 hash has no salt or no hash value");
    }
    Ok(())
}

fn access(config: &Config, p: &mut Problems) {
    for (table, entries) in [
        ("access.soap_allow", &config.access.soap_allow),
        ("access.admin_allow", &config.access.admin_allow),
    ] {
        for (i, entry) in entries.iter().enumerate() {
            if let Err(why) = super::parse_network(entry) {
                p.add(format!("{table}[{i}]"), why);
            }
        }
    }
}

/// Checks `[switch]`; returns the queue names agents may refer to, when the switch's
/// configuration lists them exhaustively.
fn switch(config: &Config, p: &mut Problems) -> Option<BTreeSet<String>> {
    let sw = &config.switch;
    match sw.kind {
        SwitchKind::Sim => {
            let sim = &sw.sim;
            if sim.extensions.is_empty() {
                p.add("switch.sim.extensions", "must list at least one extension");
            }
            p.names("switch.sim.extensions", &sim.extensions);
            let extensions: BTreeSet<&str> = sim.extensions.iter().map(String::as_str).collect();
            let mut names = HashMap::new();
            let mut numbers = HashMap::new();
            for (i, q) in sim.queue.iter().enumerate() {
                let key = format!("switch.sim.queue[{i}]");
                if q.name.trim().is_empty() {
                    p.add(format!("{key}.name"), "must not be empty");
                } else if let Some(first) = names.insert(q.name.as_str(), i) {
                    p.add(
                        format!("{key}.name"),
                        format!(
                            "duplicate queue name \"{}\" (also switch.sim.queue[{first}])",
                            q.name
                        ),
                    );
                }
                if q.number.trim().is_empty() {
                    p.add(format!("{key}.number"), "must not be empty");
                } else if let Some(first) = numbers.insert(q.number.as_str(), i) {
                    p.add(
                        format!("{key}.number"),
                        format!(
                            "duplicate queue number \"{}\" (also switch.sim.queue[{first}])",
                            q.number
                        ),
                    );
                } else if extensions.contains(q.number.as_str()) {
                    p.add(
                        format!("{key}.number"),
                        format!("\"{}\" is also an extension", q.number),
                    );
                }
                for (j, member) in q.members.iter().enumerate() {
                    if !extensions.contains(member.as_str()) {
                        p.add(
                            format!("{key}.members[{j}]"),
                            format!("\"{member}\" is not one of switch.sim.extensions"),
                        );
                    }
                }
            }
            Some(sim.queue.iter().map(|q| q.name.clone()).collect())
        }
        SwitchKind::Asterisk => match &sw.asterisk {
            None => {
                p.add(
                    "switch.asterisk",
                    "required when switch.kind = \"asterisk\"",
                );
                None
            }
            Some(ast) => {
                asterisk(ast, p);
                (!ast.queues.is_empty()).then(|| ast.queues.iter().cloned().collect())
            }
        },
    }
}

fn asterisk(ast: &AsteriskConfig, p: &mut Problems) {
    p.required("switch.asterisk.host", &ast.host);
    if ast.port == 0 {
        p.add("switch.asterisk.port", "must not be 0");
    }
    p.required("switch.asterisk.username", &ast.username);
    if ast.secret.expose().is_empty() {
        p.add("switch.asterisk.secret", "must not be empty");
    }
    if let Some(backup) = &ast.backup_host {
        if backup.trim().is_empty() {
            p.add(
                "switch.asterisk.backup_host",
                "must not be empty (leave it out for no backup)",
            );
        } else if backup == &ast.host {
            p.add(
                "switch.asterisk.backup_host",
                "is the same as switch.asterisk.host",
            );
        }
    }
    p.names("switch.asterisk.queues", &ast.queues);
    for (queue, number) in &ast.queue_numbers {
        let key = format!("switch.asterisk.queue_numbers.{}", quote_key(queue));
        if !ast.queues.is_empty() && !ast.queues.contains(queue) {
            p.add(
                key.clone(),
                format!("\"{queue}\" is not in switch.asterisk.queues"),
            );
        }
        p.required(&key, number);
    }
    if !ast
        .interface_pattern
        .contains(AsteriskConfig::EXTENSION_PLACEHOLDER)
    {
        p.add(
            "switch.asterisk.interface_pattern",
            format!(
                "\"{}\" must contain {}",
                ast.interface_pattern,
                AsteriskConfig::EXTENSION_PLACEHOLDER
            ),
        );
    }
    let answered: Vec<String> = ast.answer_by_extension.keys().cloned().collect();
    p.names("switch.asterisk.answer_by_extension", &answered);
    if let Some(wrap_up) = ast.wrap_up {
        p.nonzero_duration("switch.asterisk.wrap_up", wrap_up);
    }
    p.nonzero_duration("switch.asterisk.reconnect_min", ast.reconnect_min);
    if ast.reconnect_min > ast.reconnect_max {
        p.add(
            "switch.asterisk.reconnect_max",
            "must not be shorter than switch.asterisk.reconnect_min",
        );
    }
}

fn check_queue_refs(
    key: &str,
    queues: &[String],
    known: Option<&BTreeSet<String>>,
    p: &mut Problems,
) {
    p.names(key, queues);
    let Some(known) = known else { return };
    for (i, q) in queues.iter().enumerate() {
        if !q.trim().is_empty() && !known.contains(q) {
            let list: Vec<&str> = known.iter().map(String::as_str).collect();
            p.add(
                format!("{key}[{i}]"),
                format!(
                    "unknown queue \"{q}\" (the switch has: {})",
                    if list.is_empty() {
                        "none".to_owned()
                    } else {
                        list.join(", ")
                    }
                ),
            );
        }
    }
}

fn agents(config: &Config, known_queues: Option<&BTreeSet<String>>, p: &mut Problems) {
    let a = &config.agents;
    if !(1..=super::AgentsConfig::MAX_INTERACTIONS).contains(&a.max_interactions) {
        p.add(
            "agents.max_interactions",
            format!(
                "must be between 1 and 6: the SAP IC has six interaction slots per agent (got {})",
                a.max_interactions
            ),
        );
    }
    if a.channels.is_empty() {
        p.add(
            "agents.channels",
            "must list at least one channel (e.g. \"phone\")",
        );
    }
    p.names("agents.channels", &a.channels);
    check_queue_refs("agents.queues", &a.queues, known_queues, p);

    let sim_extensions: Option<BTreeSet<&str>> =
        (config.switch.kind == SwitchKind::Sim).then(|| {
            config
                .switch
                .sim
                .extensions
                .iter()
                .map(String::as_str)
                .collect()
        });
    let mut owners: HashMap<&str, &str> = HashMap::new();
    for (user, entry) in &a.users {
        let key = format!("agents.users.{}", quote_key(user));
        if user.trim().is_empty() {
            p.add(&key, "user id must not be empty");
        }
        let ext = entry.extension.as_str();
        if ext.trim().is_empty() {
            p.add(format!("{key}.extension"), "must not be empty");
        } else {
            if let Some(other) = owners.insert(ext, user) {
                p.add(
                    format!("{key}.extension"),
                    format!("\"{ext}\" is already the extension of user \"{other}\""),
                );
            }
            if let Some(known) = &sim_extensions
                && !known.contains(ext)
            {
                p.add(
                    format!("{key}.extension"),
                    format!("\"{ext}\" is not one of switch.sim.extensions"),
                );
            }
        }
        check_queue_refs(&format!("{key}.queues"), &entry.queues, known_queues, p);
    }
    if a.on_session_lost == super::SessionLostAction::NotReady {
        let reason = &a.session_lost_reason;
        if reason.trim().is_empty() {
            p.add(
                "agents.session_lost_reason",
                "must not be empty with on_session_lost = \"not_ready\"",
            );
        } else if reason.chars().any(char::is_control) {
            // It goes to the switch as a protocol field (an AMI header on Asterisk).
            p.add(
                "agents.session_lost_reason",
                "must not contain control characters (line breaks, tabs)",
            );
        }
    }
}

fn workmodes(w: &WorkmodesConfig, p: &mut Problems) {
    let mut ids = HashMap::new();
    for (i, mode) in w.custom.iter().enumerate() {
        let key = format!("workmodes.custom[{i}]");
        if mode.id < WorkmodesConfig::FIRST_CUSTOM {
            p.add(
                format!("{key}.id"),
                format!(
                    "{} is reserved (1 logged off, 2 ready, 3 not ready); custom workmodes start at 4",
                    mode.id
                ),
            );
        } else if let Some(first) = ids.insert(mode.id, i) {
            p.add(
                format!("{key}.id"),
                format!(
                    "duplicate workmode id {} (also workmodes.custom[{first}])",
                    mode.id
                ),
            );
        }
        p.required(&format!("{key}.text"), &mode.text);
        p.required(&format!("{key}.switch_state"), &mode.switch_state);
    }
    for (name, value) in [("login", w.login), ("reject", w.reject)] {
        if let Some(id) = value
            && !w.is_defined(id)
        {
            p.add(
                format!("workmodes.{name}"),
                format!(
                    "workmode {id} is neither 1, 2, 3 nor a workmodes.custom id (use \"{OFF}\" for none)"
                ),
            );
        }
    }
    match w.switch_unavailable {
        Some(WorkmodesConfig::READY) => p.add(
            "workmodes.switch_unavailable",
            "must not be 2 (ready): agents cannot take calls while the switch link is down",
        ),
        Some(id) if !w.is_defined(id) => p.add(
            "workmodes.switch_unavailable",
            format!(
                "workmode {id} is neither 1, 3 nor a workmodes.custom id (use \"{OFF}\" for none)"
            ),
        ),
        _ => {}
    }
    if let Some(id) = w.wrap_up
        && w.custom_by_id(id).is_none()
    {
        p.add(
            "workmodes.wrap_up",
            format!("workmode {id} is not a workmodes.custom id (use \"{OFF}\" for none)"),
        );
    }
    let mut codes = HashMap::new();
    for (i, reason) in w.reasons.iter().enumerate() {
        let key = format!("workmodes.reasons[{i}]");
        if reason.code.trim().is_empty() {
            p.add(format!("{key}.code"), "must not be empty");
        } else if let Some(first) = codes.insert(reason.code.as_str(), i) {
            p.add(
                format!("{key}.code"),
                format!(
                    "duplicate reason code \"{}\" (also workmodes.reasons[{first}])",
                    reason.code
                ),
            );
        }
        p.required(&format!("{key}.text"), &reason.text);
    }
}

fn numbers(config: &Config, p: &mut Problems) {
    let n = &config.numbers;
    if n.remote_attributes.is_empty() {
        p.add(
            "numbers.remote_attributes",
            "must list at least one call attribute",
        );
    }
    p.names("numbers.remote_attributes", &n.remote_attributes);
    if n.dialed_attributes.is_empty() {
        p.add(
            "numbers.dialed_attributes",
            "must list at least one call attribute",
        );
    }
    p.names("numbers.dialed_attributes", &n.dialed_attributes);
    for (i, rule) in n.dial_prefix.iter().enumerate() {
        let key = format!("numbers.dial_prefix[{i}].from");
        if rule.from.is_empty() {
            p.add(key, "must not be empty");
        } else if n.reformat_make_call && rule.from.starts_with('+') {
            p.add(
                key,
                format!(
                    "\"{}\" never matches: numbers.reformat_make_call removes the \"+\" first",
                    rule.from
                ),
            );
        }
    }
    home_dial_plan(n, p);
}

/// `home_country`, `area_code`, `extension_max_digits`: checked by building the dial plan,
/// so check-config and the running connector agree on what is valid.
fn home_dial_plan(n: &super::NumbersConfig, p: &mut Problems) {
    use crate::numbers::{Home, HomeError};
    let Some(country) = n.home_country.as_deref() else {
        if n.area_code.is_some() {
            p.add("numbers.area_code", "needs numbers.home_country");
        }
        return;
    };
    if let Err(error) = Home::new(country, n.area_code.as_deref(), n.extension_max_digits) {
        let key = match error {
            HomeError::UnknownCountry(_) => "numbers.home_country",
            HomeError::AreaNotDigits(_) => "numbers.area_code",
            HomeError::TooManyDigits(_) => "numbers.extension_max_digits",
        };
        p.add(key, error.to_string());
    }
}

fn events(config: &Config, p: &mut Problems) {
    let e = &config.events;
    p.nonzero_duration("events.request_timeout", e.request_timeout);
    p.nonzero_duration("events.retry_min", e.retry_min);
    if e.retry_min > e.retry_max {
        p.add(
            "events.retry_max",
            "must not be shorter than events.retry_min",
        );
    }
    p.positive(
        "events.max_queue_per_subscription",
        e.max_queue_per_subscription,
    );
    if e.max_queue_total < e.max_queue_per_subscription {
        p.add(
            "events.max_queue_total",
            "must be at least events.max_queue_per_subscription",
        );
    }
    if e.data_dir.as_os_str().is_empty() {
        p.add("events.data_dir", "must not be empty");
    }
    p.positive(
        "events.max_subscriptions_per_target",
        e.max_subscriptions_per_target,
    );
    p.positive("events.max_subscriptions", e.max_subscriptions);
    if e.max_subscriptions < e.max_subscriptions_per_target {
        p.add(
            "events.max_subscriptions",
            "must be at least events.max_subscriptions_per_target",
        );
    }
    for (i, entry) in e.allow.iter().enumerate() {
        if super::parse_network(entry).is_err() && !is_host_name(entry) {
            p.add(
                format!("events.allow[{i}]"),
                format!("\"{entry}\" is not a host name, an address or a CIDR network"),
            );
        }
    }
}

/// The longest label of a DNS name (RFC 1035, section 2.3.4).
const MAX_DNS_LABEL: usize = 63;
/// The longest DNS name in text form, without the trailing dot (RFC 1035, section 2.3.4).
const MAX_DNS_NAME: usize = 253;

/// A DNS name as `[events] allow` takes it: letters, digits, `-` and `.`, no scheme, port
/// or path.
fn is_host_name(entry: &str) -> bool {
    let name = entry.trim().trim_end_matches('.');
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_DNS_LABEL
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    // An all-numeric last label is a mistyped address ("10.0.0.300"), not a name.
    let numeric_tld = name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    !name.is_empty() && name.len() <= MAX_DNS_NAME && labels_ok && !numeric_tld
}

/// Valid settings an admin should think twice about, in the same `key: why` form.
/// SOAP reachable beyond loopback with no `[events] allow`: whoever can subscribe can make
/// the connector POST to any host and port it reaches.
fn open_event_destinations(config: &Config, w: &mut Problems) {
    let soap = config.soap.listen;
    if !soap.ip().is_loopback() && config.events.allow.is_empty() {
        w.add(
            "events.allow",
            format!(
                "empty while soap.listen ({soap}) is reachable beyond loopback: whoever can \
                 subscribe can make the connector POST to any host and port it reaches; \
                 list SAP's hosts or networks"
            ),
        );
    }
}

fn logging(config: &Config, p: &mut Problems) {
    let l = &config.logging;
    if l.level.trim().is_empty() {
        p.add("logging.level", "must not be empty (e.g. \"info\")");
    } else if let Err(err) = tracing_subscriber::EnvFilter::try_new(&l.level) {
        p.add(
            "logging.level",
            format!("\"{}\" is not a valid filter: {err}", l.level),
        );
    }
    if let Some(dir) = &l.directory
        && dir.as_os_str().is_empty()
    {
        p.add(
            "logging.directory",
            "must not be empty (leave it out to log to stderr)",
        );
    }
    p.positive("logging.retention", l.retention);
    p.names("logging.capture_users", &l.capture_users);
}
