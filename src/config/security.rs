//! The security tables: `[tls]` (the SOAP listener over TLS, and `[tls.outbound]` for event
//! delivery over HTTPS), `[auth]` (HTTP Basic authentication) and `[access]` (source-address
//! allow-lists). Every control is off by default, so a fresh install behaves as before.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Secret, serde_util};

/// Whether the SOAP listener asks TLS clients for a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is requested.
    #[default]
    Off,
    /// A certificate is requested; when one is sent it must chain to `tls.client_ca`, but
    /// clients without one are let in (then Basic auth or the allow-list must protect it).
    Optional,
    /// Every client must present a certificate that chains to `tls.client_ca`.
    Require,
}

impl ClientAuth {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Off => "off",
            ClientAuth::Optional => "optional",
            ClientAuth::Require => "require",
        }
    }
}

/// `[tls]`: HTTPS on the SOAP listener (TLS 1.2 and 1.3 only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve the SOAP listener over TLS. Default false (plain HTTP); when true, `cert` and
    /// `key` are required and plain HTTP on that port is refused.
    pub enabled: bool,
    /// PEM file with our certificate chain, leaf first. Default none.
    pub cert: Option<PathBuf>,
    /// PEM file with the private key of `cert` (PKCS#8, PKCS#1 or SEC1). Default none. Only
    /// the path is in the configuration; the key itself is never logged.
    pub key: Option<PathBuf>,
    /// `"off"`, `"optional"` or `"require"`: client-certificate verification. Default
    /// `"off"`. SAP production systems use `"require"` with the CA that signed SAP's client
    /// certificate (STRUST).
    pub client_auth: ClientAuth,
    /// PEM file with the CA certificate(s) client certificates must chain to. Required when
    /// `client_auth` is not `"off"`. Default none.
    pub client_ca: Option<PathBuf>,
    /// Client certificate subjects allowed in, each either a common name (`"CN=sapprd"`, or
    /// just `"sapprd"`) or a full subject as RFC 4514 prints it, most specific first
    /// (`"CN=sapprd,OU=CRM,O=Example,C=DE"`). Matched exactly (case-sensitive). Default empty:
    /// any certificate from `client_ca`.
    pub allowed_subjects: Vec<String>,
    /// How often the certificate, key and CA files are checked for changes (their
    /// modification time); a changed set is loaded without a restart, and a set that fails
    /// to load keeps the old one working, with an error logged. SIGHUP reloads at once.
    /// `"off"` = only on SIGHUP. Default `"30s"`.
    #[serde(with = "serde_util::duration_or_off")]
    pub reload_interval: Option<Duration>,
    /// `[tls.outbound]`: HTTPS for event delivery to SAP's appURL.
    pub outbound: OutboundTlsConfig,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            cert: None,
            key: None,
            client_auth: ClientAuth::Off,
            client_ca: None,
            allowed_subjects: Vec::new(),
            reload_interval: Some(Duration::from_secs(30)),
            outbound: OutboundTlsConfig::default(),
        }
    }
}

/// `[tls.outbound]`: how events are POSTed to an `https://` appURL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundTlsConfig {
    /// Trust the operating system's root certificates for SAP's server certificate.
    /// Default true.
    pub system_roots: bool,
    /// PEM file with more CA certificates to trust (e.g. the company CA that signed SAP's
    /// certificate). Default none.
    pub ca: Option<PathBuf>,
    /// PEM file with our client certificate chain, presented when SAP asks for one.
    /// Default none. Requires `key`.
    pub cert: Option<PathBuf>,
    /// PEM file with the private key of `cert`. Default none.
    pub key: Option<PathBuf>,
}

impl Default for OutboundTlsConfig {
    fn default() -> Self {
        OutboundTlsConfig {
            system_roots: true,
            ca: None,
            cert: None,
            key: None,
        }
    }
}

/// One user of HTTP Basic authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthUser {
    /// The user name SAP's HTTP destination sends. Required, unique, no `:`.
    pub name: String,
    /// The password's Argon2 hash in PHC form (`$argon2id$v=19$m=...`), e.g. from
    /// `echo -n PASSWORD | argon2 SALT -id -e`. Required. Masked in every output.
    pub password_hash: Secret,
}

/// `[auth]`: HTTP Basic authentication on the listeners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The realm named in `WWW-Authenticate`. Default `"ici-connector"`.
    pub realm: String,
    /// `[[auth.soap_users]]`: users allowed on the SOAP listener. Default none: no Basic
    /// auth there.
    pub soap_users: Vec<AuthUser>,
    /// `[[auth.admin_users]]`: users allowed on the admin listener (every path except
    /// `/healthz` and `/readyz`). Default none: no auth there (keep it on loopback).
    pub admin_users: Vec<AuthUser>,
    /// Failed logins one peer address may make in a burst before it gets HTTP 429 without
    /// its password being checked. Default 10.
    pub failure_burst: u32,
    /// One more failed login is allowed per this interval after the burst. Default "6s"
    /// (10 a minute).
    #[serde(with = "serde_util::duration")]
    pub failure_refill: Duration,
    /// Most Argon2 password verifications running at once on each listener; a request
    /// that finds none free within a second gets HTTP 503 with `Retry-After`, without its
    /// password being checked. Each takes the hash's memory (19 MiB with
    /// `hash-password`'s parameters) and a CPU core for tens of milliseconds. Default 0: as
    /// many as the machine has CPU cores.
    pub max_parallel_verifications: usize,
}

impl AuthConfig {
    /// `max_parallel_verifications` with 0 resolved to the number of CPU cores.
    pub fn parallel_verifications(&self) -> usize {
        match self.max_parallel_verifications {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            realm: "ici-connector".into(),
            soap_users: Vec::new(),
            admin_users: Vec::new(),
            failure_burst: 10,
            failure_refill: Duration::from_secs(6),
            max_parallel_verifications: 0,
        }
    }
}

/// `[access]`: which source addresses may connect at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Networks (CIDR, e.g. `"10.1.2.0/24"`, or single addresses) allowed to connect to the
    /// SOAP listener; others are disconnected before a byte is read. Default empty: any.
    pub soap_allow: Vec<String>,
    /// The same for the admin listener. Default empty: any (it listens on loopback).
    pub admin_allow: Vec<String>,
}

/// Parses an allow-list entry: a CIDR or a bare address (a /32 or /128).
pub fn parse_network(entry: &str) -> Result<ipnet::IpNet, String> {
    let entry = entry.trim();
    if let Ok(net) = entry.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    entry
        .parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("\"{entry}\" is not an address or CIDR network"))
}
