//! Talos-flavoured PEM and certificates: base64(PEM) values from machine configs, Ed25519 keys
//! under Talos's `ED25519 PRIVATE KEY` label, and the node's server certificates.

use std::net::Ipv4Addr;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The PEM label Talos writes Ed25519 PKCS#8 keys under (not the standard `PRIVATE KEY`).
pub const ED25519_KEY_LABEL: &str = "ED25519 PRIVATE KEY";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{what}: not base64: {source}")]
    Base64 {
        what: String,
        source: base64::DecodeError,
    },
    #[error("{what}: no PEM block found")]
    NoPem { what: String },
    #[error("{what}: PEM block is {found:?}, expected {expected:?}")]
    Label {
        what: String,
        found: String,
        expected: String,
    },
    #[error("{what}: not an X.509 certificate: {reason}")]
    Cert { what: String, reason: String },
    #[error("{what}: not a valid key: {reason}")]
    Key { what: String, reason: String },
    #[error("{what}: the key does not match the certificate")]
    Mismatch { what: String },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// One decoded PEM block.
#[derive(Debug, Clone)]
pub struct Pem {
    pub label: String,
    pub der: Vec<u8>,
}

/// Decode a config value: base64 of a PEM document; returns its first block.
pub fn pem_from_b64(what: &str, value: &str) -> Result<Pem, PkiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|source| PkiError::Base64 {
            what: what.into(),
            source,
        })?;
    parse_pem(what, &bytes)
}

/// First PEM block of `bytes`.
pub fn parse_pem(what: &str, bytes: &[u8]) -> Result<Pem, PkiError> {
    let p = pem_block(bytes).ok_or_else(|| PkiError::NoPem { what: what.into() })?;
    Ok(p)
}

fn pem_block(bytes: &[u8]) -> Option<Pem> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let b64: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(Pem { label, der })
}

/// Encode DER as PEM under `label`.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A certificate block: must be `CERTIFICATE` and parse as X.509.
pub fn check_cert(what: &str, pem: &Pem) -> Result<(), PkiError> {
    expect_label(what, pem, "CERTIFICATE")?;
    x509_parser::parse_x509_certificate(&pem.der).map_err(|e| PkiError::Cert {
        what: what.into(),
        reason: e.to_string(),
    })?;
    Ok(())
}

fn expect_label(what: &str, pem: &Pem, expected: &str) -> Result<(), PkiError> {
    if pem.label == expected {
        Ok(())
    } else {
        Err(PkiError::Label {
            what: what.into(),
            found: pem.label.clone(),
            expected: expected.into(),
        })
    }
}

/// An Ed25519 key as Talos stores it: PKCS#8 under `ED25519 PRIVATE KEY`.
pub fn ed25519_key(what: &str, pem: &Pem) -> Result<KeyPair, PkiError> {
    expect_label(what, pem, ED25519_KEY_LABEL)?;
    let key = KeyPair::try_from(pem.der.as_slice()).map_err(|e| PkiError::Key {
        what: what.into(),
        reason: e.to_string(),
    })?;
    if !key.is_compatible(&rcgen::PKCS_ED25519) {
        return Err(PkiError::Key {
            what: what.into(),
            reason: "not an Ed25519 key".into(),
        });
    }
    Ok(key)
}

/// Any other private key block Talos configs carry (ECDSA SEC1, RSA PKCS#1, PKCS#8): the label
/// must be a private-key label and the DER must be non-empty ASN.1.
pub fn check_other_key(what: &str, pem: &Pem) -> Result<(), PkiError> {
    const LABELS: [&str; 4] = [
        "EC PRIVATE KEY",
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        ED25519_KEY_LABEL,
    ];
    if !LABELS.contains(&pem.label.as_str()) {
        return Err(PkiError::Label {
            what: what.into(),
            found: pem.label.clone(),
            expected: LABELS.join(" | "),
        });
    }
    if pem.der.first() != Some(&0x30) {
        return Err(PkiError::Key {
            what: what.into(),
            reason: "not DER".into(),
        });
    }
    if pem.label == ED25519_KEY_LABEL {
        ed25519_key(what, pem)?;
    }
    Ok(())
}

/// The key must be the certificate's key (compared by raw public key bytes).
pub fn check_pair(what: &str, cert: &Pem, key: &KeyPair) -> Result<(), PkiError> {
    let (_, c) = x509_parser::parse_x509_certificate(&cert.der).map_err(|e| PkiError::Cert {
        what: what.into(),
        reason: e.to_string(),
    })?;
    if c.public_key().subject_public_key.data.as_ref() == key.public_key_raw() {
        Ok(())
    } else {
        Err(PkiError::Mismatch { what: what.into() })
    }
}

/// A server certificate chain and key, ready for rustls.
pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn server_params(ip: Ipv4Addr) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = vec![
        SanType::IpAddress(ip.into()),
        SanType::IpAddress(Ipv4Addr::LOCALHOST.into()),
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "talos");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// Maintenance mode: a throwaway self-signed Ed25519 CA and a server cert from it (clients
/// cannot verify it and connect with verification off, as `talosctl --insecure` does).
pub fn maintenance_cert(ip: Ipv4Addr) -> Result<ServerCert, PkiError> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "talos");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    signed_server_cert(ip, &issuer, ca_cert.der().to_vec())
}

/// Running mode: an Ed25519 server cert signed by the OS CA of the applied config.
pub fn os_server_cert(
    ip: Ipv4Addr,
    ca_cert_der: &[u8],
    ca_key: KeyPair,
) -> Result<ServerCert, PkiError> {
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(ca_cert_der.to_vec()), ca_key)?;
    signed_server_cert(ip, &issuer, ca_cert_der.to_vec())
}

/// The client certificate apid presents when it forwards a call to another node: role
/// `os:impersonator` (the caller's own roles travel in `talos-role` metadata), EKU clientAuth.
pub fn impersonator_cert(ca_cert_der: &[u8], ca_key: KeyPair) -> Result<ServerCert, PkiError> {
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(ca_cert_der.to_vec()), ca_key)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "os:impersonator");
    dn.push(DnType::CommonName, "apid");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(ServerCert {
        chain: vec![CertificateDer::from(cert.der().to_vec())],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

fn signed_server_cert(
    ip: Ipv4Addr,
    issuer: &Issuer<'_, KeyPair>,
    ca_der: Vec<u8>,
) -> Result<ServerCert, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let cert = server_params(ip)?.signed_by(&key, issuer)?;
    Ok(ServerCert {
        chain: vec![
            CertificateDer::from(cert.der().to_vec()),
            CertificateDer::from(ca_der),
        ],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_label_round_trip() {
        let k = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let pem = to_pem(ED25519_KEY_LABEL, &k.serialize_der());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&pem);
        let p = pem_from_b64("k", &b64).expect("pem");
        assert_eq!(p.label, ED25519_KEY_LABEL);
        ed25519_key("k", &p).expect("ed25519");
        let std = Pem {
            label: "PRIVATE KEY".into(),
            der: p.der.clone(),
        };
        assert!(matches!(
            ed25519_key("k", &std),
            Err(PkiError::Label { .. })
        ));
    }

    #[test]
    fn bad_inputs() {
        assert!(matches!(
            pem_from_b64("x", "%%%"),
            Err(PkiError::Base64 { .. })
        ));
        let b64 = base64::engine::general_purpose::STANDARD.encode("hello");
        assert!(matches!(
            pem_from_b64("x", &b64),
            Err(PkiError::NoPem { .. })
        ));
    }
}
