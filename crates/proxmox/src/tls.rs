//! TLS trust for the API: system roots, a pinned CA, or a pinned SHA-256 certificate
//! fingerprint (what PVE's own tools pin for self-signed nodes).

use std::fmt;
use std::sync::Arc;

use infraflux_tls::{AnyCert, CertPolicy, PolicyVerifier};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, OtherError, RootCertStore};

use crate::error::Error;
use crate::settings::TlsTrust;

/// The rustls configuration for one trust setting.
pub fn client_config(trust: &TlsTrust) -> Result<ClientConfig, Error> {
    let provider = infraflux_tls::crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
    let config = match trust {
        TlsTrust::SystemRoots => {
            let v = rustls_platform_verifier::Verifier::new(provider).map_err(|e| {
                Error::Config(format!("cannot load the system's CA certificates: {e}"))
            })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(v))
                .with_no_client_auth()
        }
        TlsTrust::CaPem(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert =
                    cert.map_err(|e| Error::Config(format!("ca_cert_pem is not valid PEM: {e}")))?;
                roots.add(cert).map_err(|e| {
                    Error::Config(format!("ca_cert_pem holds an unusable certificate: {e}"))
                })?;
            }
            if roots.is_empty() {
                return Err(Error::Config("ca_cert_pem holds no certificate".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PolicyVerifier::new(
                Sha256Pin(*fp),
                &provider,
            )))
            .with_no_client_auth(),
        TlsTrust::Insecure => {
            tracing::warn!("TLS verification of the Proxmox VE API is disabled (insecure = true)");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PolicyVerifier::new(AnyCert, &provider)))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// SHA-256 of a DER certificate.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `AB:CD:…`, as the PVE web UI shows fingerprints.
pub fn fmt_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Debug)]
struct FingerprintMismatch {
    got: [u8; 32],
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "its SHA-256 fingerprint {} does not match tls_fingerprint_sha256",
            fmt_fingerprint(&self.got)
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// Accepts the one certificate whose SHA-256 fingerprint is pinned. Chain, name and validity
/// are deliberately not checked — the pin is the trust — but [`PolicyVerifier`] still checks
/// the handshake signature, so the peer must hold the certificate's key.
#[derive(Debug)]
struct Sha256Pin([u8; 32]);

impl CertPolicy for Sha256Pin {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let got = sha256(end_entity);
        if got == self.0 {
            return Ok(());
        }
        let e = OtherError(Arc::new(FingerprintMismatch { got }));
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            e,
        )))
    }
}

/// Why a handshake failed, from a transport error's source chain.
pub struct TlsFailure {
    pub reason: String,
    /// A fingerprint pin did not match (rather than an untrusted chain).
    pub pinned: bool,
}

/// Find a rustls error in a transport error's source chain and say what went wrong.
pub fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            let (reason, pinned) = match r {
                rustls::Error::InvalidCertificate(CertificateError::Other(o)) => {
                    let pinned = o.0.downcast_ref::<FingerprintMismatch>().is_some();
                    (o.to_string(), pinned)
                }
                rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature,
                ) => ("it was not issued by a trusted CA".to_owned(), false),
                other => (other.to_string(), false),
            };
            return Some(TlsFailure { reason, pinned });
        }
        // io::Error's `source()` skips its payload (hyper nests rustls's error two io::Errors
        // deep), so step into the payload explicitly.
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}
