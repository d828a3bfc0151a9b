//! `[cluster]`: high availability. Present, it makes the connector one of an active/standby
//! pair whose spool and leader lease live in a NATS JetStream cluster (README, "High
//! availability"); absent (the default), the connector runs alone on its redb spool.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_util;

/// `[cluster]`: where the NATS cluster is and how the leader lease behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`), every node of the cluster, so the client
    /// reconnects to another when one dies. Required.
    pub nats: Vec<String>,
    /// This connector's name, shown as the lease holder (`/readyz` of the standby, logs).
    /// Required, and different on each connector.
    pub node: String,
    /// How long the lease lasts without renewal. A dead active is replaced after at most
    /// this long; a paused one stops delivering when it runs out. The active renews it
    /// three times per period.
    #[serde(with = "serde_util::duration")]
    pub lease_ttl: Duration,
    /// Copies of the spool stream and the lease bucket (JetStream replicas): 3 on a
    /// three-node cluster, so one node can die without losing anything.
    pub replicas: usize,
    /// Prefix of the JetStream names (stream `<PREFIX>_SPOOL`, bucket `<prefix>_lease`,
    /// subject `<prefix>.spool`), so several connector pairs can share one NATS cluster.
    pub prefix: String,
}

impl ClusterConfig {
    /// Default of `lease_ttl`.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);
    /// The shortest `lease_ttl` accepted: the lease is renewed a third of it at a time,
    /// and a NATS round trip must fit in that with room to spare.
    pub const MIN_LEASE_TTL: Duration = Duration::from_millis(600);
    /// Default of `replicas`.
    pub const DEFAULT_REPLICAS: usize = 3;
    /// JetStream's limit on replicas.
    pub const MAX_REPLICAS: usize = 5;

    /// The spool stream's name.
    pub fn stream(&self) -> String {
        format!("{}_SPOOL", self.prefix.to_uppercase())
    }

    /// The subject every spool record is published on.
    pub fn subject(&self) -> String {
        format!("{}.spool", self.prefix)
    }

    /// The lease bucket's name.
    pub fn bucket(&self) -> String {
        format!("{}_lease", self.prefix)
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats: Vec::new(),
            node: String::new(),
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            replicas: Self::DEFAULT_REPLICAS,
            prefix: "ici".into(),
        }
    }
}

/// What is wrong with `[cluster]`, each problem naming its key.
pub(super) fn validate(cluster: &ClusterConfig) -> Vec<super::ConfigError> {
    let mut problems = Vec::new();
    let mut add = |key: String, message: String| {
        problems.push(super::ConfigError::new(format!("cluster.{key}"), message));
    };
    if cluster.nats.is_empty() {
        add(
            "nats".into(),
            "must list the NATS servers (e.g. [\"nats://10.0.0.1:4222\"])".into(),
        );
    }
    for (i, url) in cluster.nats.iter().enumerate() {
        if !(url.starts_with("nats://") || url.starts_with("tls://")) || url.contains(',') {
            add(
                format!("nats[{i}]"),
                format!("\"{url}\" must be one nats:// or tls:// URL"),
            );
        }
    }
    if cluster.node.trim().is_empty() {
        add(
            "node".into(),
            "must name this connector (different on each one)".into(),
        );
    }
    if cluster.lease_ttl < ClusterConfig::MIN_LEASE_TTL {
        add(
            "lease_ttl".into(),
            format!("must be at least {:?}", ClusterConfig::MIN_LEASE_TTL),
        );
    }
    if !(1..=ClusterConfig::MAX_REPLICAS).contains(&cluster.replicas) {
        add(
            "replicas".into(),
            format!("must be 1 to {}", ClusterConfig::MAX_REPLICAS),
        );
    }
    let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if cluster.prefix.is_empty() || !cluster.prefix.chars().all(name_ok) {
        add(
            "prefix".into(),
            "must be letters, digits, '_' or '-' (it names NATS streams and subjects)".into(),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_names_its_key() {
        let cluster = ClusterConfig {
            nats: vec!["localhost:4222".into()],
            lease_ttl: Duration::from_millis(100),
            replicas: 7,
            prefix: "a.b".into(),
            ..ClusterConfig::default()
        };
        let keys: Vec<String> = validate(&cluster).into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "cluster.nats[0]",
                "cluster.node",
                "cluster.lease_ttl",
                "cluster.replicas",
                "cluster.prefix"
            ]
        );
    }

    #[test]
    fn a_file_with_cluster_problems_names_each_key() {
        let errors =
            crate::config::Config::from_toml_str("[cluster]\nnode = \"a\"\nlease = \"1s\"")
                .unwrap_err();
        assert_eq!(errors.iter().next().unwrap().key, "cluster.lease");
        let errors = crate::config::Config::from_toml_str("[cluster]\nnode = \"a\"").unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["cluster.nats"]);
        let config = crate::config::Config::from_toml_str(
            "[cluster]\nnats = [\"nats://n1:4222\"]\nnode = \"a\"\nlease_ttl = \"2s\"",
        )
        .unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.lease_ttl, Duration::from_secs(2));
        assert_eq!(cluster.replicas, ClusterConfig::DEFAULT_REPLICAS);
        assert_eq!(cluster.stream(), "ICI_SPOOL");
    }

    #[test]
    fn a_complete_table_passes() {
        let cluster = ClusterConfig {
            nats: vec!["nats://10.0.0.1:4222".into(), "nats://10.0.0.2:4222".into()],
            node: "connector-a".into(),
            ..ClusterConfig::default()
        };
        assert!(validate(&cluster).is_empty());
    }
}
