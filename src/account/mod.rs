pub mod controller;
pub mod types;
