//! `[[soap.listeners]]`: further SOAP listeners beside `soap.listen`, each with its own
//! transport (plain HTTP or HTTPS with the `[tls]` certificate) and its own source-address
//! allow-list. A TLS migration runs HTTP and HTTPS side by side until every SAP
//! destination points at HTTPS; a listener for one network can admit only that network.
//!
//! `soap.listen` (with `tls.enabled` and `access.soap_allow`) stays the first listener, so
//! a configuration without this table means what it always meant.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ClientAuth, Config, ConfigError, parse_network};

/// One further SOAP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapListener {
    /// Address and port. Required; not the address of another listener.
    pub listen: SocketAddr,
    /// HTTPS with the `[tls]` certificate, key and client-certificate settings (which
    /// then need not enable TLS on `soap.listen`). Default false: plain HTTP.
    #[serde(default)]
    pub tls: bool,
    /// Networks (CIDR or single addresses) allowed to connect to this listener. Default:
    /// `access.soap_allow`; `[]` admits any address.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
}

/// How one SOAP listener is to run, `soap.listen` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPlan {
    /// The TOML key naming it (`soap.listen`, `soap.listeners[1]`), for logs and warnings.
    pub key: String,
    pub listen: SocketAddr,
    pub tls: bool,
    pub allow: Vec<String>,
}

impl Config {
    /// Every SOAP listener: `soap.listen` first, then `[[soap.listeners]]` in order.
    pub fn soap_listeners(&self) -> Vec<ListenerPlan> {
        let first = ListenerPlan {
            key: "soap.listen".into(),
            listen: self.soap.listen,
            tls: self.tls.enabled,
            allow: self.access.soap_allow.clone(),
        };
        let more = self
            .soap
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| ListenerPlan {
                key: format!("soap.listeners[{i}]"),
                listen: l.listen,
                tls: l.tls,
                allow: l
                    .allow
                    .clone()
                    .unwrap_or_else(|| self.access.soap_allow.clone()),
            });
        std::iter::once(first).chain(more).collect()
    }

    /// Whether any SOAP listener serves HTTPS (so `[tls]` must name a certificate).
    pub fn any_tls_listener(&self) -> bool {
        self.soap_listeners().iter().any(|l| l.tls)
    }
}

/// Problems of `[[soap.listeners]]`: addresses in use twice, allow-list entries.
pub(super) fn validate(config: &Config, problems: &mut Vec<ConfigError>) {
    let mut taken = vec![
        ("soap.listen".to_string(), config.soap.listen),
        ("admin.listen".to_string(), config.admin.listen),
    ];
    for (i, listener) in config.soap.listeners.iter().enumerate() {
        let key = format!("soap.listeners[{i}]");
        if listener.listen.port() != 0
            && let Some((other, _)) = taken.iter().find(|(_, a)| *a == listener.listen)
        {
            problems.push(ConfigError::new(
                format!("{key}.listen"),
                format!("{} is already {other}", listener.listen),
            ));
        }
        taken.push((format!("{key}.listen"), listener.listen));
        for (j, entry) in listener.allow.iter().flatten().enumerate() {
            if let Err(why) = parse_network(entry) {
                problems.push(ConfigError::new(format!("{key}.allow[{j}]"), why));
            }
        }
    }
}

/// A SOAP listener beyond loopback with nothing that limits who may use it (see
/// `validate::warnings`): `admits_every_address` tells whether an allow-list limits nothing.
pub(super) fn open_listeners(
    config: &Config,
    admits_every_address: impl Fn(&[String]) -> bool,
) -> Vec<ConfigError> {
    let certificates = config.tls.client_auth == ClientAuth::Require;
    config
        .soap_listeners()
        .into_iter()
        .filter(|l| {
            let allow_list = !l.allow.is_empty() && !admits_every_address(&l.allow);
            let limited =
                !config.auth.soap_users.is_empty() || (l.tls && certificates) || allow_list;
            !l.listen.ip().is_loopback() && !limited
        })
        .map(|l| {
            let ip = l.listen.ip();
            let key = if l.key == "soap.listen" {
                l.key
            } else {
                format!("{}.listen", l.key)
            };
            ConfigError::new(
                key,
                format!(
                    "{ip} is not loopback and nothing limits who may send SOAP requests: set \
                     [[auth.soap_users]], tls.client_auth = \"require\" or access.soap_allow \
                     (SECURITY.md)"
                ),
            )
        })
        .collect()
}
