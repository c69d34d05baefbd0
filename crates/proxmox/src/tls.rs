//! TLS trust for the API: system roots, a pinned CA, or a pinned SHA-256 certificate
//! fingerprint (what PVE's own tools pin for self-signed nodes).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};

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
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(Some(*fp), &provider)))
            .with_no_client_auth(),
        TlsTrust::Insecure => {
            tracing::warn!("TLS verification of the Proxmox VE API is disabled (insecure = true)");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(None, &provider)))
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

/// Accepts the one certificate whose fingerprint is pinned (or, with `None`, any: `insecure`).
/// Chain, name and validity are deliberately not checked — the pin is the trust — but the
/// handshake signature still is, so the peer must hold the certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    pin: Option<[u8; 32]>,
    algs: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    fn new(pin: Option<[u8; 32]>, provider: &CryptoProvider) -> Self {
        Self {
            pin,
            algs: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) => {
                let got = sha256(end_entity);
                if got == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    let e = OtherError(Arc::new(FingerprintMismatch { got }));
                    Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                        e,
                    )))
                }
            }
        }
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
