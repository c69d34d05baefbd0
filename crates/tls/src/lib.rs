//! The rustls crypto provider of every TLS endpoint InfraFlux runs: the API clients
//! (Proxmox VE, Talos, Kubernetes) and the plugin server.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// ring for randomness, key exchange and our own signatures; aws-lc-rs only to verify
/// signatures (it knows more algorithms, e.g. P-521, the curve of Terraform's client
/// certificate). aws-lc's random generator seeds itself from CPU jitter on first use (~40 ms of
/// CPU), which a refresh would otherwise pay on its first connection; verifying needs no
/// randomness.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.signature_verification_algorithms =
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    Arc::new(p)
}
