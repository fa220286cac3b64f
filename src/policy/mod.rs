//! Policies: what a field is (inventories) and what a purpose may see (purposes).
pub mod actions;
pub mod model;
pub mod select;
pub mod set;
pub mod taxonomy;
