//! One verifier for every peer we trust by pin instead of by chain. Each of them used to
//! repeat the same signature delegation; only the certificate decision differs, so that is
//! the one thing a [`CertPolicy`] says.

use std::fmt;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Which end-entity certificate a [`PolicyVerifier`] accepts. Chain, name and validity are
/// deliberately not looked at: the policy is the whole trust decision.
pub trait CertPolicy: fmt::Debug + Send + Sync {
    /// `Ok` to accept the peer's certificate; the error is what the handshake fails with.
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error>;
}

/// Exactly this certificate (DER), byte for byte: go-plugin's AutoMTLS pins both ends so.
#[derive(Debug, Clone)]
pub struct ExactCert(pub Vec<u8>);

impl CertPolicy for ExactCert {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

/// Any certificate: for a peer that cannot be known in advance (a Talos node in maintenance
/// mode) or when the user turned verification off. The peer still has to prove it holds the
/// key of the certificate it shows.
#[derive(Debug, Clone, Copy)]
pub struct AnyCert;

impl CertPolicy for AnyCert {
    fn check(&self, _: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        Ok(())
    }
}

/// A server and client certificate verifier: the certificate is accepted by `P`, the handshake
/// signatures are verified with the crypto provider's algorithms, so a peer cannot replay a
/// certificate whose key it does not hold.
#[derive(Debug)]
pub struct PolicyVerifier<P> {
    policy: P,
    algs: WebPkiSupportedAlgorithms,
}

impl<P: CertPolicy> PolicyVerifier<P> {
    /// Verify signatures with `provider`'s algorithms (for [`crate::crypto_provider`]: aws-lc-rs,
    /// which has P-521).
    pub fn new(policy: P, provider: &CryptoProvider) -> Self {
        Self {
            policy,
            algs: provider.signature_verification_algorithms,
        }
    }
}

impl<P: CertPolicy> ServerCertVerifier for PolicyVerifier<P> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.policy
            .check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl<P: CertPolicy> ClientCertVerifier for PolicyVerifier<P> {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.policy
            .check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
