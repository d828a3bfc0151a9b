//! What the tests share: the connector in this process ([`server`]) or as a child process
//! ([`process`]), the fake SAP event receiver ([`fake_sap`]) and external tools ([`tools`]).

use std::time::Duration;

pub mod cluster;
pub mod fake_sap;
pub mod process;
pub mod server;
pub mod tools;

/// How often [`poll`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Runs `check` every [`POLL_INTERVAL`] until it gives `Ok`: for a condition nothing
/// reports through a channel (a count inside the notifier, a state only the status page
/// shows, the readiness of a real PBX). Fails after `within` with `what` and the last
/// `Err`, what was seen instead.
pub async fn poll<T, F>(what: &str, within: Duration, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "not within {within:?}: {what}; seen: {seen}"
            ),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Sends the logs of the connector code running in this process to the test output: errors,
/// or what `RUST_LOG` asks for (e.g. `RUST_LOG=ici_connector=debug`). The subscriber is one
/// per process, so every test that runs connector code installs it (the first one wins).
pub fn log_to_test_output() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Writes `dir/ici-connector.toml` for a connector run as a child process: listeners on
/// port 0, the spool in `dir/data`, logs in `dir/logs` in `format`, then `extra` (more
/// `[logging]` keys, or further tables).
pub fn write_config(dir: &std::path::Path, format: &str, extra: &str) -> std::path::PathBuf {
    let file = dir.join("ici-connector.toml");
    std::fs::write(
        &file,
        format!(
            r#"[soap]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[switch.sim]
remote_answer_after = "off"
[events]
data_dir = {data:?}
[logging]
level = "info"
directory = {logs:?}
format = "{format}"
{extra}
"#,
            data = dir.join("data").display().to_string(),
            logs = dir.join("logs").display().to_string(),
        ),
    )
    .unwrap();
    file
}
