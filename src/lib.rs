//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Map of the crate and its data flow:
//! - [`config`]: TOML file → validated [`config::Config`] that every other module reads.
//! - [`switch`]: the switch adapter vocabulary and its implementations (`sim`, ...).

pub mod config;
pub mod switch;
