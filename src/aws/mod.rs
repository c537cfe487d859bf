//! The AWS edge. [`model`] and [`errors`] are plain values that policy reads; [`lightsail`] (the
//! clients, rate limits and calls, and the accounts' credentials) and [`sdk`] (conversions from
//! the SDK's types) are the only code that talks to AWS. Nothing here knows about Kubernetes.

pub mod errors;
pub mod lightsail;
pub mod model;
pub mod sdk;
