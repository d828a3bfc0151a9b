//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Map of the crate and its data flow:
//! - [`config`]: TOML file → validated [`config::Config`] that every other module reads.
//! - [`numbers`]: phone numbers: switch parties to SAP's E.164 form, ANI/DNIS attribute
//!   search, and the number SAP dials as sent to the switch.
//! - [`soap`]: the SOAP 1.1 wire layer (pure): request bytes → element tree, envelopes out.
//! - [`ici`]: the ICI operation catalog and typed operations.
//! - [`switch`]: the switch adapter vocabulary and its implementations (`sim`, ...).

pub mod config;
pub mod ici;
pub mod numbers;
pub mod soap;
pub mod switch;
