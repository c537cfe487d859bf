pub mod account;
pub mod aws;
pub mod duration;
pub mod guisession;
pub mod kubernetes;
pub mod leadership;
pub mod metrics;
pub mod process;
pub mod schedule;

/// Picks rustls' process-wide crypto provider. kube brings `ring` and the AWS SDK `aws-lc-rs`;
/// with both compiled in, rustls refuses to guess, so every entry point calls this first.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
