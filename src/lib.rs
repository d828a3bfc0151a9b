//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Map of the crate and its data flow:
//! - [`switch`]: the switch adapter vocabulary and its implementations (`sim`, ...).
//! - [`notify`]: session manager → one ordered outbox per subscription → SOAP POST to SAP's
//!   appURL, with retry, bounded memory and 401/404 → subscription ended.

pub mod switch;
pub mod ici;
pub mod notify;
pub mod soap;
