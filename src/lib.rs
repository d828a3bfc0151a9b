//! ici-connector: CTI middleware between SAP CRM's Interaction Center (ICI, SOAP over HTTP)
//! and a contact-center telephone switch.
//!
//! Map of the crate and its data flow:
//! - [`switch`]: the switch adapter vocabulary and its implementations (`sim`, ...).
//! - [`wsdl`]: WSDL 1.1 documents generated from the `ici` catalog, served on `GET ?wsdl`.

pub mod switch;
pub mod ici;
pub mod soap;
pub mod wsdl;
