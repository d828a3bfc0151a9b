//! What the tests share: the connector in this process ([`server`]) or as a child process
//! ([`process`]), the fake SAP event receiver ([`fake_sap`]) and external tools ([`tools`]).

pub mod fake_sap;
pub mod process;
pub mod server;
pub mod tools;

/// Sends the logs of the connector code running in this process to the test output: errors,
/// or what `RUST_LOG` asks for (e.g. `RUST_LOG=ici_connector=debug`). The subscriber is one
/// per process, so every test that runs connector code installs it (the first one wins).
pub fn log_to_test_output() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
