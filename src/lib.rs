//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Map of the crate and its data flow:
//! - [`switch`]: the switch adapter vocabulary and its implementations (`sim`, ...).

pub mod switch;
pub mod ici;
pub mod soap;
