//! The ICI layer: the operation catalog, typed operations and their handlers.

pub mod catalog;
