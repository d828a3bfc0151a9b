pub mod fake_sap;
pub mod server;
pub mod tools;
