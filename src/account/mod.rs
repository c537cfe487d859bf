pub mod controller;
pub mod index;
pub mod policy;
pub mod types;

#[cfg(test)]
mod tests;
