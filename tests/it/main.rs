//! The integration tests: one binary, one module per area. One binary links the crate
//! once, instead of once per test file, and compiles `common` once, so a helper nobody uses
//! is a warning.
//!
//! Run one area with `cargo test --test it call_flow::`, one test by its name.
//!
//! Every test runs in this one process, next to others (libtest runs them in parallel).
//! What is process-wide is therefore shared by all of them:
//! - the metrics recorder: `/metrics` of a connector started in this process counts what
//!   every test did. Counters are asserted with `>=`; an exact count needs a connector of
//!   its own, a child process ([`common::process::Process`]);
//! - the memory of the process: a test that measures memory measures a child process;
//! - the tracing subscriber ([`common::log_to_test_output`]) and the users whose SOAP
//!   traffic is captured (`/api/capture`).
//!
//! Tests wait through channels: events reach [`common::fake_sap::FakeSap::next_event`], a
//! child process's stderr lines reach [`common::process::Process::expect_line`]. A condition
//! nothing reports is polled with [`common::poll`]; each caller says why.

mod common;

mod agent_desktop;
mod asterisk_flow;
mod attached_durability;
mod call_flow;
mod call_scope;
mod cli;
mod config_fixtures;
mod delivery;
mod durability;
mod golden;
mod ha;
mod ha_asterisk;
mod log_hygiene;
mod notify;
mod numbers;
mod ops;
mod product_info;
mod queues;
mod scenario;
mod security;
mod soap_wire;
mod switch_link;
mod tls;
mod xml_chars;
