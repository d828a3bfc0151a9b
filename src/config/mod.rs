//! Configuration: TOML → serde structs (`deny_unknown_fields`, defaults filled in) → checked
//! [`Config`].
//!
//! - The structs below are what the TOML file holds, one struct per table; every default is
//!   defined once, in the struct's `Default` impl or a `default_*` fn next to it.
//! - [`Config::from_toml_str`] parses (a syntax error, unknown key or wrong type is one
//!   [`ConfigError`] naming the key), then `validate` collects **every** semantic problem.
//! - [`Config::load`] only reads the file. [`Config::effective_toml`] renders what is in force,
//!   secrets masked, for `check-config` and the status page.
//! - `config/ici-connector.toml` is the commented default file; a test keeps it equal to
//!   [`Config::default`].

mod agents;
mod cluster;
mod error;
mod listeners;
mod secret;
mod security;
mod serde_util;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::soap::ParseLimits;

/// The configuration as it is now: a reload (SIGHUP) publishes a new one here, and the
/// parts that may change at run time (see `crate::reload`) are read from it per request.
pub type LiveConfig = tokio::sync::watch::Receiver<std::sync::Arc<Config>>;

pub use agents::*;
pub use cluster::ClusterConfig;
pub use error::{ConfigError, ConfigErrors};
pub use listeners::{ListenerPlan, SoapListener};
pub use secret::{MASK, Secret};
pub use security::{
    AccessConfig, AuthConfig, AuthUser, ClientAuth, OutboundTlsConfig, TlsConfig, parse_network,
};
pub use serde_util::OFF;

/// The commented default configuration file shipped with the connector
/// (`config/ici-connector.toml`); it parses to [`Config::default`].
pub const DEFAULT_TOML: &str = include_str!("../../config/ici-connector.toml");

/// The whole configuration, one field per TOML table. Every table is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[soap]`: the listener SAP's BCB sends ICI requests to.
    pub soap: SoapConfig,
    /// `[admin]`: health, metrics, status page and simulator control.
    pub admin: AdminConfig,
    /// `[limits]`: protection of the SOAP listener against oversized or slow requests.
    pub limits: Limits,
    /// `[switch]`: which telephone switch the connector drives, and how to reach it.
    pub switch: SwitchConfig,
    /// `[agents]`: what every agent gets (channels, queues, interaction cap) and the static
    /// user → extension map.
    pub agents: AgentsConfig,
    /// `[workmodes]`: SAP workmodes ↔ switch agent states.
    pub workmodes: WorkmodesConfig,
    /// `[numbers]`: phone number formatting between SAP (E.164) and the switch.
    pub numbers: NumbersConfig,
    /// `[events]`: delivery of events to SAP (timeouts, retries, queue bounds, spool).
    pub events: EventsConfig,
    /// `[logging]`: trace level, files and per-user SOAP capture.
    pub logging: LoggingConfig,
    /// `[tls]`: HTTPS on the SOAP listener, client certificates, and `[tls.outbound]` for
    /// events to SAP over HTTPS.
    pub tls: TlsConfig,
    /// `[auth]`: HTTP Basic authentication on the SOAP and admin listeners.
    pub auth: AuthConfig,
    /// `[access]`: source-address allow-lists of both listeners.
    pub access: AccessConfig,
    /// `[cluster]`: an active/standby pair on NATS JetStream (README, "High
    /// availability"). Absent (default): one connector on its own redb spool.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Parse and validate a TOML document. A syntax error, an unknown key or a value of the
    /// wrong type stops parsing (one error); otherwise every semantic problem is reported.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigErrors> {
        let config: Config =
            toml::from_str(s).map_err(|err| ConfigErrors::from(ConfigError::from_toml(&err, s)))?;
        let problems = validate::validate(&config);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// Read `path` and hand it to [`Config::from_toml_str`]. A read failure is one error with
    /// an empty key.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigErrors::from(ConfigError::new(
                "",
                format!("cannot read {}: {err}", path.display()),
            ))
        })?;
        Config::from_toml_str(&text)
    }

    /// The configuration in force, defaults filled in, as TOML; secrets print as
    /// [`MASK`]. Parsing it again gives the same `Config` except for the secrets.
    pub fn effective_toml(&self) -> String {
        match toml::to_string_pretty(self) {
            Ok(body) => format!(
                "# Effective configuration of ici-connector (defaults filled in, secrets masked).\n\n{body}"
            ),
            Err(err) => format!("# cannot render the effective configuration: {err}\n"),
        }
    }

    /// Settings that are valid but unsafe outside a test setup (SOAP reachable from the
    /// network with nothing limiting who may use it, or with no `[events] allow`), each as
    /// `key: why`. `check-config` prints them and the
    /// server logs them at start.
    pub fn warnings(&self) -> Vec<ConfigError> {
        validate::warnings(self)
    }

    /// Check a configuration built in code (tests, tools) the same way a file is checked.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let problems = validate::validate(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

fn yes() -> bool {
    true
}

/// `[soap]`: where SAP's ICI requests come in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoapConfig {
    /// Address and port of the SOAP listener; SAP's HTTP destination points here.
    /// Default `127.0.0.1:8080` (local only until an admin opens it, e.g. `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// URL paths that accept SOAP POSTs, each starting with `/`. Default empty: any path,
    /// because SAP's trace posts to `/` and the vendor's default is
    /// `/SapIciWebConnector/IcSapWebService.asmx`; restrict it when a proxy shares the port.
    pub paths: Vec<String>,
    /// `[[soap.listeners]]`: further listeners beside `listen`, each plain HTTP or HTTPS
    /// with its own allow-list (HTTP and HTTPS side by side during a TLS migration).
    /// Default none.
    pub listeners: Vec<SoapListener>,
}

impl Default for SoapConfig {
    fn default() -> Self {
        SoapConfig {
            listen: localhost(8080),
            paths: Vec::new(),
            listeners: Vec::new(),
        }
    }
}

/// `[admin]`: the operator-facing listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of `/healthz`, `/readyz`, `/metrics`, `/status`, `/api` and `/sim`.
    /// Default `127.0.0.1:8081`. Bound to anything but loopback it needs `[[auth.admin_users]]`
    /// or `access.admin_allow`.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: localhost(8081),
        }
    }
}

/// `[limits]`: bounds on what one client can make the SOAP listener do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes; larger ones get a fault without being read.
    /// Default 1048576 (1 MiB): ICI requests are small, attached data is the biggest part.
    pub max_body_bytes: usize,
    /// Time allowed for a client to send the request headers. Default "10s": stops slow
    /// clients from holding connections open.
    #[serde(with = "serde_util::duration")]
    pub header_read_timeout: Duration,
    /// Most connections open at once on each listener; a client beyond it gets HTTP 503
    /// with `Retry-After` and is closed. Default 1024 (one SAP application server keeps a
    /// few keep-alive connections per work process).
    pub max_connections: usize,
    /// Most connections open at once from one source address on each listener; beyond it
    /// that address gets HTTP 503 with `Retry-After` while others are served, so one client
    /// cannot take every slot. Default 256; raise it when all of SAP reaches us through one
    /// address (a web dispatcher or NAT) with many work processes.
    pub max_connections_per_peer: usize,
    /// Longest time one SOAP request may take, body read to response written. Default "30s":
    /// longer than SAP's own HTTP timeout is useless.
    #[serde(with = "serde_util::duration")]
    pub request_timeout: Duration,
    /// Deepest XML element nesting accepted (at least 4: Envelope, Body, operation,
    /// parameter). Default 32: protects the parser from pathological documents.
    pub max_xml_depth: usize,
    /// Most XML elements in one request. Default 10000.
    pub max_xml_elements: usize,
    /// Longest character data of one XML element, in bytes after entity expansion.
    /// Default 262144 (256 KiB): attached data is the largest text ICI sends.
    pub max_xml_text_bytes: usize,
    /// Longest value of one XML attribute, in bytes. Default 4096: ICI attributes are
    /// namespace URIs and `xsi:type` names.
    pub max_xml_attribute_bytes: usize,
    /// Largest request head (request line and headers), in bytes; a larger one gets HTTP 431
    /// and the connection closed. At least 8192. Default 16384.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // The XML limits are the parser's own defaults: defined once, in `soap`.
        let xml = ParseLimits::DEFAULT;
        Limits {
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_peer: 256,
            request_timeout: Duration::from_secs(30),
            max_xml_depth: xml.max_depth,
            max_xml_elements: xml.max_elements,
            max_xml_text_bytes: xml.max_text_bytes,
            max_xml_attribute_bytes: xml.max_attribute_bytes,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    /// The least `max_xml_depth` that still reads a request: Envelope, Body, operation,
    /// parameter.
    pub const MIN_XML_DEPTH: usize = 4;
    /// The least `max_header_bytes`: hyper's smallest read buffer (a smaller setting would
    /// be raised to it silently).
    pub const MIN_HEADER_BYTES: usize = 8192;

    /// The parser's limits as configured here (`max_xml_*`).
    pub fn parse_limits(&self) -> ParseLimits {
        ParseLimits {
            max_depth: self.max_xml_depth,
            max_elements: self.max_xml_elements,
            max_text_bytes: self.max_xml_text_bytes,
            max_attribute_bytes: self.max_xml_attribute_bytes,
        }
    }
}

/// Which switch implementation drives the calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchKind {
    /// The built-in simulator: no switch needed (demos, tests, SAP integration work).
    #[default]
    Sim,
    /// Asterisk through its manager interface (AMI).
    Asterisk,
}

impl SwitchKind {
    /// The name used in the config file and in faults ("hold is not supported by the
    /// asterisk switch").
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchKind::Sim => "sim",
            SwitchKind::Asterisk => "asterisk",
        }
    }
}

impl fmt::Display for SwitchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[switch]`: the telephone switch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchConfig {
    /// `"sim"` or `"asterisk"`. Default `"sim"`, so a fresh install runs without a switch.
    pub kind: SwitchKind,
    /// `[switch.sim]`: the simulator's extensions and queues; used when `kind = "sim"`.
    pub sim: SimConfig,
    /// `[switch.asterisk]`: the AMI connection. No default; required when
    /// `kind = "asterisk"`.
    pub asterisk: Option<AsteriskConfig>,
}

/// `[switch.sim]`: the simulated switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Agent extensions that exist on the simulated switch. Default `["2001", "2002",
    /// "2003"]`: enough for a demo with a transfer and a conference.
    pub extensions: Vec<String>,
    /// Outbound calls to numbers that are not extensions are answered by the simulated
    /// remote party after this delay; `"off"` = only through the simulator control API.
    /// Default `"2s"`, so dialling out works in a demo without extra clicks.
    #[serde(with = "serde_util::duration_or_off")]
    pub remote_answer_after: Option<Duration>,
    /// `[[switch.sim.queue]]`: ACD queues callers can dial. Default one queue, `support` on
    /// number `600`.
    pub queue: Vec<SimQueue>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            extensions: vec!["2001".into(), "2002".into(), "2003".into()],
            remote_answer_after: Some(Duration::from_secs(2)),
            queue: vec![SimQueue {
                name: "support".into(),
                number: "600".into(),
                members: Vec::new(),
                wrap_up: None,
            }],
        }
    }
}

/// `[[switch.sim.queue]]`: one simulated ACD queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimQueue {
    /// Queue name, as SAP sees it in queue lists and the call's `queue`. Required, unique.
    pub name: String,
    /// The number (DNIS) a caller dials to reach the queue. Required, unique, not an
    /// extension.
    pub number: String,
    /// Extensions that take calls from this queue. Default empty: every logged-in agent.
    #[serde(default)]
    pub members: Vec<String>,
    /// After-call work: an agent whose call from this queue ends is in wrap-up this long
    /// (not offered calls, shown to SAP as `[workmodes] wrap_up`), then ready again, as
    /// Asterisk's `wrapuptime` does. Default `"off"`.
    #[serde(default, with = "serde_util::duration_or_off")]
    pub wrap_up: Option<Duration>,
}

/// `[switch.asterisk]`: how to reach Asterisk's manager interface (AMI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsteriskConfig {
    /// Host name or address of the Asterisk server. Required.
    pub host: String,
    /// AMI TCP port (`manager.conf` `port`). Default 5038, Asterisk's own default.
    #[serde(default = "AsteriskConfig::default_port")]
    pub port: u16,
    /// AMI user (a `[user]` section in `manager.conf`). Required.
    pub username: String,
    /// That user's `secret`. Required; masked in logs and in the effective config.
    pub secret: Secret,
    /// A second Asterisk (same port and credentials) to switch over to when the first one
    /// cannot be reached. Default none.
    #[serde(default)]
    pub backup_host: Option<String>,
    /// Asterisk queues (`queues.conf`) the connector watches and logs agents into.
    /// Default empty: every queue Asterisk reports.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Queue name → the number callers dial to reach it (e.g. `{ support = "600" }`),
    /// reported to SAP by getPresenceQueueInfo as a transfer-to-queue destination: Asterisk
    /// itself knows no number of a queue (the dialplan does). Default none.
    #[serde(default)]
    pub queue_numbers: BTreeMap<String, String>,
    /// How an agent's extension becomes an Asterisk device/interface; must contain
    /// `{extension}`. Default `"PJSIP/{extension}"`; change it for `SIP/` or `Local/` setups.
    #[serde(default = "AsteriskConfig::default_interface_pattern")]
    pub interface_pattern: String,
    /// First wait before reconnecting after the AMI connection drops. Default "1s".
    #[serde(
        default = "AsteriskConfig::default_reconnect_min",
        with = "serde_util::duration"
    )]
    pub reconnect_min: Duration,
    /// Longest wait between reconnect attempts (the wait doubles up to this). Default "30s".
    #[serde(
        default = "AsteriskConfig::default_reconnect_max",
        with = "serde_util::duration"
    )]
    pub reconnect_max: Duration,
    /// How SAP's accept answers a ringing agent phone. Default `"phone"`: only the phone
    /// answers (accept gets a fault naming the switch). `"notify"`: an in-dialog SIP NOTIFY
    /// `Event: talk` (AMI `PJSIPNotify`), which Yealink, Polycom, Snom, Grandstream and
    /// Fanvil phones obey when their remote-control (BroadSoft "talk") setting is on.
    #[serde(default)]
    pub answer: AnswerMethod,
    /// `answer` per extension, for mixed phone models: `{ "2001" = "notify" }`. Default
    /// empty: `answer` for everyone.
    #[serde(default)]
    pub answer_by_extension: std::collections::BTreeMap<String, AnswerMethod>,
    /// Calls SAP dials ring the agent's own phone first; true adds the auto-answer headers
    /// (`Call-Info: answer-after=0`, `Alert-Info: info=alert-autoanswer`) to that ring so
    /// the phone picks up by itself. Default false.
    #[serde(default)]
    pub auto_answer_on_dial: bool,
    /// After-call work: the `wrapuptime` of the watched queues (`queues.conf`), which AMI
    /// does not report. When set, an agent whose answered queue call ends is in wrap-up
    /// (SAP sees `[workmodes] wrap_up`) for this long, or until its state is changed.
    /// Default "off".
    #[serde(default, with = "serde_util::duration_or_off")]
    pub wrap_up: Option<Duration>,
}

/// `[switch.asterisk] answer`: how the connector answers an agent's ringing phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerMethod {
    /// The agent answers on the phone; accept is not supported.
    #[default]
    Phone,
    /// SIP NOTIFY `Event: talk` inside the ringing dialog (BroadSoft remote control).
    Notify,
}

impl AsteriskConfig {
    /// How `extension`'s phone is answered from SAP.
    pub fn answer_for(&self, extension: &str) -> AnswerMethod {
        self.answer_by_extension
            .get(extension)
            .copied()
            .unwrap_or(self.answer)
    }

    /// Whether any phone can be answered from SAP.
    pub fn can_answer(&self) -> bool {
        self.answer == AnswerMethod::Notify
            || self
                .answer_by_extension
                .values()
                .any(|m| *m == AnswerMethod::Notify)
    }

    /// The placeholder `interface_pattern` must contain.
    pub const EXTENSION_PLACEHOLDER: &'static str = "{extension}";

    fn default_port() -> u16 {
        5038
    }

    fn default_interface_pattern() -> String {
        "PJSIP/{extension}".into()
    }

    fn default_reconnect_min() -> Duration {
        Duration::from_secs(1)
    }

    fn default_reconnect_max() -> Duration {
        Duration::from_secs(30)
    }

    /// The Asterisk interface of an agent's extension, e.g. `PJSIP/2001`.
    pub fn interface(&self, extension: &str) -> String {
        self.interface_pattern
            .replace(Self::EXTENSION_PLACEHOLDER, extension)
    }
}

/// `[numbers]`: phone number formatting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumbersConfig {
    /// Normalise remote and dialed numbers to E.164 (`+…`) for SAP, which needs it for the
    /// account lookup. Default true; the raw value is kept beside it.
    pub e164: bool,
    /// Call attributes searched in order for the caller's number (ANI); the first non-empty
    /// one wins. Default `["ani"]`.
    pub remote_attributes: Vec<String>,
    /// Call attributes searched in order for the dialed number (DNIS). Default `["dnis"]`.
    pub dialed_attributes: Vec<String>,
    /// Strip the leading `+` of numbers SAP dials or transfers to (`+13172222222` →
    /// `13172222222`), for switches whose dial plan does not take `+`. Default false.
    pub reformat_make_call: bool,
    /// `[[numbers.dial_prefix]]`: leading-prefix rewrites for outbound numbers, applied in
    /// order after `reformat_make_call`; the first match wins. Default none.
    pub dial_prefix: Vec<DialPrefix>,
    /// The switch's country (ISO 3166 alpha-2, e.g. `"DE"`): national numbers
    /// (`030 1234567`) become international (`+49301234567`) by the phone-number library's
    /// rules for that country. Default none: only the vendor's rules (`+0301234567`).
    pub home_country: Option<String>,
    /// The switch's area code (e.g. `"30"`, with or without the national prefix): local
    /// numbers (`1234567`) become international (`+49301234567`). Needs `home_country`.
    /// Default none.
    pub area_code: Option<String>,
    /// Numbers with at most this many digits are internal extensions, never local numbers
    /// (`2001` stays `+2001`). Default 4.
    pub extension_max_digits: usize,
}

impl Default for NumbersConfig {
    fn default() -> Self {
        NumbersConfig {
            e164: true,
            remote_attributes: vec!["ani".into()],
            dialed_attributes: vec!["dnis".into()],
            reformat_make_call: false,
            dial_prefix: Vec::new(),
            home_country: None,
            area_code: None,
            extension_max_digits: crate::numbers::home::DEFAULT_EXTENSION_MAX_DIGITS,
        }
    }
}

impl NumbersConfig {
    /// The number to send to the switch for an address SAP dials or transfers to:
    /// `reformat_make_call`, then the first matching `dial_prefix`.
    pub fn outbound_number(&self, number: &str) -> String {
        crate::numbers::make_call_number(number, self.reformat_make_call, &self.dial_prefix)
    }

    /// The home dial plan (`home_country`, `area_code`, `extension_max_digits`); `None`
    /// without a home country, or when the settings are invalid (`check-config` refuses
    /// those).
    pub fn home(&self) -> Option<crate::numbers::Home> {
        let country = self.home_country.as_deref()?;
        crate::numbers::Home::new(
            country,
            self.area_code.as_deref(),
            self.extension_max_digits,
        )
        .ok()
    }
}

/// `[[numbers.dial_prefix]]`: replace a leading prefix of an outbound number.
pub use crate::numbers::DialPrefix;

/// What to do when a subscription's event queue is full (SAP not taking events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Keep only the latest state per call, dropping intermediate changes.
    Coalesce,
    /// End the subscription (SAP gets `subscriptionEnded` and subscribes again).
    #[default]
    EndSubscription,
}

/// `[events]`: event delivery to SAP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Timeout of one event POST to SAP's appURL. Default "10s".
    #[serde(with = "serde_util::duration")]
    pub request_timeout: Duration,
    /// First retry delay after a failed POST. Default "500ms".
    #[serde(with = "serde_util::duration")]
    pub retry_min: Duration,
    /// Longest retry delay (the delay doubles up to this). Default "30s".
    #[serde(with = "serde_util::duration")]
    pub retry_max: Duration,
    /// Most undelivered events kept per subscription before `overflow` applies.
    /// Default 10000.
    pub max_queue_per_subscription: usize,
    /// Most undelivered events kept over all subscriptions; bounds memory and spool size.
    /// Default 1000000.
    pub max_queue_total: usize,
    /// Directory of the durable event spool and subscription registry, so a restart loses
    /// nothing. Default `"data"`, relative to the working directory.
    pub data_dir: PathBuf,
    /// `"coalesce"` or `"end_subscription"`. Default `"end_subscription"`: SAP notices and
    /// resubscribes, rather than silently missing events.
    pub overflow: OverflowPolicy,
    /// Most subscriptions one user or container may have (each `subscribeUser` /
    /// `subscribeContainer` with its own appURL or appId counts; repeating one does not);
    /// past it `subscribe*` gets a Client fault. Default 16: SAP subscribes once or twice
    /// per IC session, and stale ones end at their first event (401/404). Bounds how many
    /// POSTs one event can cause.
    pub max_subscriptions_per_target: usize,
    /// Most subscriptions over all users and containers; past it `subscribe*` gets a
    /// Server fault. Default 10000 (several per agent of a large contact center). Bounds
    /// open connections and delivery tasks.
    pub max_subscriptions: usize,
    /// Hosts (`"sap.example.com"`, matched by name, case-insensitive) and networks
    /// (`"10.20.30.0/24"`, or single addresses) events may be delivered to; an appURL
    /// elsewhere is refused at subscribe time, and no connection is made to an address
    /// outside it. Default empty: any, except the connector's own listeners, which are
    /// always refused. Set it when the SOAP listener is reachable from the network.
    pub allow: Vec<String>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            request_timeout: Duration::from_secs(10),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            max_queue_per_subscription: 10_000,
            max_queue_total: 1_000_000,
            data_dir: PathBuf::from("data"),
            overflow: OverflowPolicy::EndSubscription,
            max_subscriptions_per_target: 16,
            max_subscriptions: 10_000,
            allow: Vec::new(),
        }
    }
}

/// When log files roll over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogRotation {
    /// A new file every day.
    #[default]
    Daily,
    /// A new file every hour (busy sites, short retention).
    Hourly,
    /// One file, never rotated (leave rotation to logrotate).
    Never,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[logging]`: traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// A `tracing` filter, e.g. `"info"` or `"info,ici_connector::soap=debug"`. Default
    /// `"info"`: one line per SOAP request and event. `RUST_LOG` overrides it.
    pub level: String,
    /// Directory for log files. Default none: stderr only (systemd's journal).
    pub directory: Option<PathBuf>,
    /// `"daily"`, `"hourly"` or `"never"`. Default `"daily"`.
    pub rotation: LogRotation,
    /// Rotated log files kept. Default 14.
    pub retention: usize,
    /// `"text"` or `"json"`. Default `"text"`.
    pub format: LogFormat,
    /// SAP users whose full SOAP requests, responses and events are logged (for support;
    /// they hold customer data). Default none.
    pub capture_users: Vec<String>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            directory: None,
            rotation: LogRotation::Daily,
            retention: 14,
            format: LogFormat::Text,
            capture_users: Vec::new(),
        }
    }
}
