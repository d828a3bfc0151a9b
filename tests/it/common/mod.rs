pub mod fake_sap;
pub mod process;
pub mod server;
pub mod tools;
