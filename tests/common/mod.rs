pub mod fake_sap;
