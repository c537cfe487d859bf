pub mod conditions;
pub mod controller;
pub mod policy;
pub mod types;
