//! The install's TLS material: the `cilium-ca` CA and the Hubble server and relay client
//! certificates. The chart makes new ones on every render; this builder takes them as input so a
//! caller can generate them once ([`Certificates::generate`]), keep them, and rotate on request.
//!
//! Same shapes as the chart's sprig `genCA`/`genSignedCert`: RSA-2048 keys (PKCS#1 PEM),
//! SHA-256 signatures, CN-only subjects, server+client auth, CA for 1095 days, leaves for 365.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256, RsaKeySize, SanType,
};
use time::{Duration, OffsetDateTime};

/// The CA's common name.
pub const CA_COMMON_NAME: &str = "Cilium CA";
/// The Hubble server certificate's name (`*.<cluster name>.hubble-grpc.cilium.io`, cluster `default`).
pub const HUBBLE_SERVER_NAME: &str = "*.default.hubble-grpc.cilium.io";
/// The Hubble relay client certificate's name.
pub const HUBBLE_RELAY_CLIENT_NAME: &str = "*.hubble-relay.cilium.io";
/// Days the CA is valid (chart `tls.ca.certValidityDuration`).
pub const CA_VALIDITY_DAYS: i64 = 1095;
/// Days a leaf is valid (chart `hubble.tls.auto.certValidityDuration`).
pub const LEAF_VALIDITY_DAYS: i64 = 365;

/// A certificate and its private key, both PEM. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKey {
    /// `-----BEGIN CERTIFICATE-----` PEM.
    pub cert_pem: String,
    /// `-----BEGIN RSA PRIVATE KEY-----` PEM (secret).
    pub key_pem: String,
}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The TLS material an install needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificates {
    /// `cilium-ca`: signs the Hubble certificates.
    pub ca: CertKey,
    /// `hubble-server-certs`: every agent's Hubble server.
    pub hubble_server: CertKey,
    /// `hubble-relay-client-certs`: the relay's client certificate (used when the relay runs).
    pub hubble_relay_client: CertKey,
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
#[error("generating the Cilium certificates failed: {0}")]
pub struct CertError(String);

fn err(e: impl fmt::Display) -> CertError {
    CertError(e.to_string())
}

fn params(common_name: &str, not_before: OffsetDateTime, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.not_before = not_before;
    p.not_after = not_before + Duration::days(days);
    p.serial_number = None;
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p
}

fn rsa_key() -> Result<KeyPair, CertError> {
    KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).map_err(err)
}

impl Certificates {
    /// New CA and leaves, valid from `now` (pass the current time; tests pass a fixed one).
    pub fn generate(now: OffsetDateTime) -> Result<Self, CertError> {
        let ca_key = rsa_key()?;
        let mut ca_params = params(CA_COMMON_NAME, now, CA_VALIDITY_DAYS);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let ca = CertKey {
            cert_pem: ca_cert.pem(),
            key_pem: pkcs1_pem(&ca_key)?,
        };
        let issuer = Issuer::new(ca_params, ca_key);
        let hubble_server = leaf(HUBBLE_SERVER_NAME, now, &issuer)?;
        let hubble_relay_client = leaf(HUBBLE_RELAY_CLIENT_NAME, now, &issuer)?;
        Ok(Self {
            ca,
            hubble_server,
            hubble_relay_client,
        })
    }
}

fn leaf(
    name: &str,
    now: OffsetDateTime,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<CertKey, CertError> {
    let key = rsa_key()?;
    let mut p = params(name, now, LEAF_VALIDITY_DAYS);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.subject_alt_names = vec![SanType::DnsName(name.try_into().map_err(err)?)];
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&key, issuer).map_err(err)?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: pkcs1_pem(&key)?,
    })
}

/// The key as `RSA PRIVATE KEY` (PKCS#1), as the chart writes it: rcgen gives PKCS#8, whose
/// `privateKey` OCTET STRING holds exactly the PKCS#1 structure.
fn pkcs1_pem(key: &KeyPair) -> Result<String, CertError> {
    let der = key.serialize_der();
    let pkcs1 =
        pkcs8_private_key(&der).ok_or_else(|| CertError("unexpected PKCS#8 layout".to_string()))?;
    Ok(pem_block("RSA PRIVATE KEY", pkcs1))
}

/// One DER element at `at`: (tag, content range end, content start).
fn der_element(der: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let tag = *der.get(at)?;
    let first = *der.get(at + 1)?;
    let (len, start) = if first < 0x80 {
        (first as usize, at + 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *der.get(at + 2 + i)? as usize;
        }
        (len, at + 2 + n)
    };
    let end = start.checked_add(len)?;
    (end <= der.len()).then_some((tag, end, start))
}

/// PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING, … }
fn pkcs8_private_key(der: &[u8]) -> Option<&[u8]> {
    let (tag, _, mut at) = der_element(der, 0)?;
    if tag != 0x30 {
        return None;
    }
    for expected in [0x02u8, 0x30] {
        let (t, end, _) = der_element(der, at)?;
        if t != expected {
            return None;
        }
        at = end;
    }
    let (t, end, start) = der_element(der, at)?;
    (t == 0x04).then(|| &der[start..end])
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
