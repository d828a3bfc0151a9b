//! Configuration reload (SIGHUP): what changed between the configuration in force and the
//! file now, what can be applied to the running process, and what needs a restart.
//!
//! Applied at once: `logging.level` and `logging.capture_users`; the workmode mapping
//! (`[workmodes]`) and `[numbers]`, which the session manager reads per operation; the
//! subscription caps (`events.max_subscriptions*`, read per `subscribe*`); and the
//! per-request limits (body size, request timeout, XML bounds). Everything else is
//! reported key by key as "needs restart" and keeps its old value until then (listeners'
//! connection settings, TLS files — those reload on their own —, the switch link, the
//! notifier and the spool were built from the old values).
//! A file that does not parse or validate is refused as a whole, its problems logged, and
//! the old configuration stays in force.

use std::path::Path;

use crate::config::{Config, ConfigErrors};
use crate::logging::{self, LogHandle};

/// The keys that a reload applies to the running process (a key under a listed section
/// such as `workmodes` counts too).
pub const RELOADABLE: &[&str] = &[
    "logging.level",
    "logging.capture_users",
    "workmodes",
    "numbers",
    "limits.max_body_bytes",
    "limits.request_timeout",
    "limits.max_xml_depth",
    "limits.max_xml_elements",
    "limits.max_xml_text_bytes",
    "limits.max_xml_attribute_bytes",
    "events.max_subscriptions_per_target",
    "events.max_subscriptions",
];

/// Whether `key` changes at run time.
fn reloadable(key: &str) -> bool {
    RELOADABLE.iter().any(|r| {
        key == *r
            || key
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    })
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Keys whose new values are in force.
    pub applied: Vec<String>,
    /// Keys that changed in the file but only take effect after a restart.
    pub needs_restart: Vec<String>,
}

/// The dotted keys (`section.key`) whose values differ between `old` and `new`. Secrets
/// are compared too, though they print masked.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(a), Ok(b)) = (toml::Value::try_from(old), toml::Value::try_from(new)) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    diff("", &a, &b, &mut keys);
    if keys.is_empty() && old != new {
        // Only a masked secret differs.
        if old.switch != new.switch {
            keys.push("switch (a secret)".to_string());
        } else {
            keys.push("(a secret)".to_string());
        }
    }
    keys
}

fn diff(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let mut names: Vec<&String> = x.keys().chain(y.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                match (x.get(name), y.get(name)) {
                    (Some(v), Some(w)) => diff(&key, v, w, out),
                    _ => out.push(key),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// Loads `path` and applies what can change at run time; on success returns the new
/// configuration to remember and the report (also logged).
pub fn reload(
    path: &Path,
    current: &Config,
    log: &LogHandle,
) -> Result<(Config, ReloadReport), ConfigErrors> {
    let new = match Config::load(path) {
        Ok(new) => new,
        Err(errors) => {
            for error in &errors.0 {
                tracing::error!(file = %path.display(), problem = %error, "configuration refused; the old one stays in force");
            }
            return Err(errors);
        }
    };
    let mut report = ReloadReport::default();
    for key in changed_keys(current, &new) {
        match key.as_str() {
            "logging.level" => match log.set_level(&new.logging.level) {
                Ok(()) => report.applied.push(key),
                Err(error) => {
                    tracing::error!(%error, "logging.level not applied");
                    report.needs_restart.push(key);
                }
            },
            "logging.capture_users" => {
                logging::set_capture_users(new.logging.capture_users.iter().cloned());
                report.applied.push(key);
            }
            // Published to the running process by the caller (the live configuration).
            key if reloadable(key) => report.applied.push(key.to_string()),
            _ => report.needs_restart.push(key),
        }
    }
    // What needs a restart keeps its old value in the configuration in force, so the next
    // reload reports it again until the process restarts.
    let mut remembered = current.clone();
    remembered.logging.level = new.logging.level.clone();
    remembered.logging.capture_users = new.logging.capture_users.clone();
    remembered.workmodes = new.workmodes.clone();
    remembered.numbers = new.numbers.clone();
    let (limits, new_limits) = (&mut remembered.limits, &new.limits);
    limits.max_body_bytes = new_limits.max_body_bytes;
    limits.request_timeout = new_limits.request_timeout;
    limits.max_xml_depth = new_limits.max_xml_depth;
    limits.max_xml_elements = new_limits.max_xml_elements;
    limits.max_xml_text_bytes = new_limits.max_xml_text_bytes;
    limits.max_xml_attribute_bytes = new_limits.max_xml_attribute_bytes;
    tracing::info!(
        file = %path.display(),
        applied = report.applied.join(", "),
        needs_restart = report.needs_restart.join(", "),
        "configuration reloaded"
    );
    if !report.needs_restart.is_empty() {
        tracing::warn!(
            keys = report.needs_restart.join(", "),
            "changed settings need a restart to take effect"
        );
    }
    Ok((remembered, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_name_each_difference() {
        let old = Config::default();
        let new = Config::from_toml_str(
            "[logging]\nlevel = \"debug\"\ncapture_users = [\"A\"]\n[limits]\nmax_body_bytes = 2048\n",
        )
        .unwrap();
        assert_eq!(
            changed_keys(&old, &new),
            [
                "limits.max_body_bytes",
                "logging.capture_users",
                "logging.level"
            ]
        );
        assert!(changed_keys(&old, &old.clone()).is_empty());
    }

    #[test]
    fn which_keys_reload() {
        for key in [
            "workmodes.custom[0].text",
            "workmodes.reject",
            "numbers.e164",
            "limits.max_body_bytes",
        ] {
            assert!(reloadable(key), "{key}");
        }
        for key in [
            "limits.max_connections",
            "soap.listen",
            "switch.kind",
            "workmodesx",
        ] {
            assert!(!reloadable(key), "{key}");
        }
    }
}
