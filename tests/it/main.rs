//! The integration tests: one binary, one module per area. One binary links the crate
//! once, instead of once per test file, and compiles `common` once, so a helper nobody uses
//! is a warning.
//!
//! Run one area with `cargo test --test it call_flow::`, one test by its name.

mod common;

mod asterisk_flow;
mod call_flow;
mod call_scope;
mod cli;
mod config_fixtures;
mod delivery;
mod durability;
mod log_hygiene;
mod notify;
mod ops;
mod security;
mod soap_wire;
mod switch_link;
mod tls;
mod xml_chars;
