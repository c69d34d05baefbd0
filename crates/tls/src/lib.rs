//! TLS pieces every InfraFlux endpoint shares: the API clients (Proxmox VE, Talos,
//! Kubernetes), the plugin server and the test client that acts as Terraform.
//!
//! - [`crypto_provider`]: the one rustls crypto-provider choice.
//! - [`PolicyVerifier`]: a certificate verifier for peers trusted by pin rather than by chain
//!   (a SHA-256 fingerprint, an exact certificate, or `insecure`), which still verifies the
//!   handshake signatures.

mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use verify::{AnyCert, CertPolicy, ExactCert, PolicyVerifier};

/// ring for randomness, key exchange and our own signatures; aws-lc-rs only to verify
/// signatures (it knows more algorithms, e.g. P-521, the curve of Terraform's client
/// certificate). aws-lc's random generator seeds itself from CPU jitter on first use (~40 ms of
/// CPU), which a refresh or a plugin start would otherwise pay; verifying needs no randomness.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.signature_verification_algorithms =
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    Arc::new(p)
}

#[cfg(test)]
mod tests;
