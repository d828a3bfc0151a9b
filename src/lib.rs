//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Map of the crate and its data flow:
//! - [`numbers`]: phone numbers: switch parties to SAP's E.164 form, ANI/DNIS attribute
//!   search, and the number SAP dials as sent to the switch.
//! - [`switch`]: the switch adapter vocabulary and its implementations (`sim`, ...).

pub mod numbers;
pub mod switch;
pub mod ici;
pub mod soap;
