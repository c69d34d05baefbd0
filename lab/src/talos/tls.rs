//! rustls server configs for a node: maintenance (no client certs) and running (mutual TLS
//! against the OS CA, client EKU exactly clientAuth, as apid with `apidCheckExtKeyUsage`).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use super::authz::Role;
use super::pki::ServerCert;
use crate::tls::provider;

#[derive(Debug, thiserror::Error)]
pub enum NodeTlsError {
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(String),
}

fn finish(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Maintenance mode: server cert only.
pub fn maintenance(cert: ServerCert) -> Result<Arc<ServerConfig>, NodeTlsError> {
    let c = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(cert.chain, cert.key)?;
    Ok(finish(c))
}

/// Running mode: a client cert chaining to the OS CA is required.
pub fn running(cert: ServerCert, os_ca_der: &[u8]) -> Result<Arc<ServerConfig>, NodeTlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(os_ca_der.to_vec()))?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| NodeTlsError::Verifier(e.to_string()))?;
    let c = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(ExactClientAuth { inner }))
        .with_single_cert(cert.chain, cert.key)?;
    Ok(finish(c))
}

/// Roles named in a client certificate's Organization.
pub fn roles_of(cert: &CertificateDer<'_>) -> Vec<Role> {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    c.subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .filter_map(Role::from_org)
        .collect()
}

/// The extended key usage must be present and be clientAuth alone.
fn eku_is_client_auth_only(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    match c.extended_key_usage() {
        Ok(Some(ext)) => {
            let e = ext.value;
            e.client_auth
                && !e.any
                && !e.server_auth
                && !e.code_signing
                && !e.email_protection
                && !e.time_stamping
                && !e.ocsp_signing
                && e.other.is_empty()
        }
        _ => false,
    }
}

/// WebPKI chain verification plus the EKU rule.
#[derive(Debug)]
struct ExactClientAuth {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for ExactClientAuth {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if eku_is_client_auth_only(end_entity) {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::InvalidPurpose,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
