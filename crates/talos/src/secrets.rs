//! The cluster's machine secrets: CAs, keys and tokens, generated once and kept in state.
//!
//! Secrets given back (adoption of an existing cluster) are validated and used as they are:
//! nothing in this module regenerates a secret that exists.

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::pem::{self, PemError};

/// How long generated CAs are valid (Talos uses ten years for its CAs).
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long an admin client certificate is valid.
pub const CLIENT_VALIDITY: Duration = Duration::days(365);
/// The role talosctl gets from the admin certificate's Organization.
pub const ADMIN_ROLE: &str = "os:admin";

/// Machine secrets that cannot be generated, read from JSON or used as given.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("generating {what}: {detail}")]
    Generate { what: &'static str, detail: String },
    #[error("machine secrets JSON: {0}")]
    Json(String),
    #[error("machine secrets field {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

fn generate_err(what: &'static str) -> impl Fn(String) -> SecretsError {
    move |detail| SecretsError::Generate { what, detail }
}

fn invalid(field: &'static str, problem: impl fmt::Display) -> SecretsError {
    SecretsError::Invalid {
        field,
        problem: problem.to_string(),
    }
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertAndKey {
    pub crt: String,
    pub key: String,
}

impl fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAndKey")
            .field("crt", &format_args!("<{} bytes of PEM>", self.crt.len()))
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

/// Everything a Talos cluster's configs are made from. Serialises to a stable JSON (field order
/// fixed by this struct) that goes to state as a sensitive value and may be given back.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSecrets {
    /// base64 of 32 random bytes (cluster.id / DiscoveryIdentityConfig.clusterID).
    pub cluster_id: String,
    /// base64 of 32 random bytes (cluster.secret / DiscoveryIdentityConfig.clusterSecret).
    pub cluster_secret: String,
    /// Kubernetes bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` (cluster.token).
    pub bootstrap_token: String,
    /// trustd token, same format (machine.token).
    pub trustd_token: String,
    /// base64 of 32 random bytes: the secretbox key for Secrets at rest in etcd.
    pub secretbox_encryption_secret: String,
    /// Talos API CA: Ed25519, key as PKCS#8 under `ED25519 PRIVATE KEY`.
    pub os_ca: CertAndKey,
    /// etcd CA: ECDSA P-256, key under `EC PRIVATE KEY`.
    pub etcd_ca: CertAndKey,
    /// Kubernetes CA: ECDSA P-256.
    pub kubernetes_ca: CertAndKey,
    /// Front-proxy (aggregation layer) CA: ECDSA P-256.
    pub aggregator_ca: CertAndKey,
    /// Service-account signing key: RSA-4096, PKCS#1 under `RSA PRIVATE KEY`.
    pub service_account_key: String,
}

impl fmt::Debug for MachineSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only which CAs exist; never a key, token or secret.
        f.debug_struct("MachineSecrets")
            .field("os_ca", &self.os_ca)
            .field("etcd_ca", &self.etcd_ca)
            .field("kubernetes_ca", &self.kubernetes_ca)
            .field("aggregator_ca", &self.aggregator_ca)
            .finish_non_exhaustive()
    }
}

/// What talosctl needs: the OS CA certificate and an admin client certificate and key (PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfiguration {
    pub ca: String,
    pub crt: String,
    pub key: String,
}

impl fmt::Debug for ClientConfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfiguration")
            .field("key", &format_args!("<redacted>"))
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SecretsError> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf)
        .map_err(|_| generate_err("random bytes")("the system RNG failed".into()))?;
    Ok(buf)
}

/// `n` characters of `[a-z0-9]`, uniformly (rejection sampling over random bytes).
fn random_token_part(n: usize) -> Result<String, SecretsError> {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in random_bytes::<32>()? {
            // 252 = 7 * 36: bytes above it would bias the first characters.
            if b < 252 && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(b % 36)]));
            }
        }
    }
    Ok(out)
}

/// A `[a-z0-9]{6}.[a-z0-9]{16}` token.
pub fn generate_token() -> Result<String, SecretsError> {
    Ok(format!(
        "{}.{}",
        random_token_part(6)?,
        random_token_part(16)?
    ))
}

/// Whether `s` has the `[a-z0-9]{6}.[a-z0-9]{16}` token format.
pub fn is_token(s: &str) -> bool {
    let ok = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(s.split_once('.'), Some((a, b)) if ok(a, 6) && ok(b, 16))
}

fn random_b64_32() -> Result<String, SecretsError> {
    Ok(STANDARD.encode(random_bytes::<32>()?))
}

fn ca_params(organization: &str, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = now;
    params.not_after = now + CA_VALIDITY;
    params
}

/// A new Ed25519 key: (rcgen key pair, Talos PEM).
fn ed25519_key() -> Result<(KeyPair, String), SecretsError> {
    let err = generate_err("an Ed25519 key");
    let kp = Ed25519KeyPair::generate().map_err(|e| err(e.to_string()))?;
    let pkcs8 = kp.to_pkcs8v1().map_err(|e| err(e.to_string()))?;
    let der = pkcs8.as_ref().to_vec();
    let rc = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(der.clone()),
        &PKCS_ED25519,
    )
    .map_err(|e| err(e.to_string()))?;
    Ok((rc, pem::encode(pem::ED25519_PRIVATE_KEY, &der)))
}

/// A new ECDSA P-256 key: (rcgen key pair, SEC1 PEM).
fn p256_key() -> Result<(KeyPair, String), SecretsError> {
    let err = generate_err("an ECDSA P-256 key");
    let kp =
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).map_err(|e| err(e.to_string()))?;
    let sec1 = kp.private_key().as_der().map_err(|e| err(e.to_string()))?;
    let pkcs8 = kp.to_pkcs8v1().map_err(|e| err(e.to_string()))?;
    let rc = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()),
        &PKCS_ECDSA_P256_SHA256,
    )
    .map_err(|e| err(e.to_string()))?;
    Ok((rc, pem::encode(pem::EC_PRIVATE_KEY, sec1.as_ref())))
}

fn self_signed_ca(
    what: &'static str,
    organization: &str,
    key: &KeyPair,
    key_pem: String,
    now: OffsetDateTime,
) -> Result<CertAndKey, SecretsError> {
    let cert = ca_params(organization, now)
        .self_signed(key)
        .map_err(|e| generate_err(what)(e.to_string()))?;
    Ok(CertAndKey {
        crt: cert.pem(),
        key: key_pem,
    })
}

/// A new RSA-4096 key as PKCS#1 PEM.
fn rsa4096_pem() -> Result<String, SecretsError> {
    let err = generate_err("the RSA-4096 service-account key");
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa4096)
        .map_err(|e| err(e.to_string()))?;
    let pkcs8 = kp.as_der().map_err(|e| err(e.to_string()))?;
    let pkcs1 = pem::pkcs8_inner_key(pkcs8.as_ref()).map_err(|e| err(e.to_string()))?;
    Ok(pem::encode(pem::RSA_PRIVATE_KEY, &pkcs1))
}

impl MachineSecrets {
    /// Generates a complete new set. RSA-4096 dominates the time it takes.
    pub fn generate() -> Result<Self, SecretsError> {
        let now = OffsetDateTime::now_utc();
        let (os_key, os_pem) = ed25519_key()?;
        let (etcd_key, etcd_pem) = p256_key()?;
        let (k8s_key, k8s_pem) = p256_key()?;
        let (agg_key, agg_pem) = p256_key()?;
        Ok(Self {
            cluster_id: random_b64_32()?,
            cluster_secret: random_b64_32()?,
            bootstrap_token: generate_token()?,
            trustd_token: generate_token()?,
            secretbox_encryption_secret: random_b64_32()?,
            os_ca: self_signed_ca("the OS CA", "talos", &os_key, os_pem, now)?,
            etcd_ca: self_signed_ca("the etcd CA", "etcd", &etcd_key, etcd_pem, now)?,
            kubernetes_ca: self_signed_ca(
                "the Kubernetes CA",
                "kubernetes",
                &k8s_key,
                k8s_pem,
                now,
            )?,
            aggregator_ca: self_signed_ca("the aggregator CA", "", &agg_key, agg_pem, now)?,
            service_account_key: rsa4096_pem()?,
        })
    }

    /// The stable JSON form (sensitive).
    pub fn to_json(&self) -> Result<String, SecretsError> {
        serde_json::to_string(self).map_err(|e| SecretsError::Json(e.to_string()))
    }

    /// Reads secrets given back (state or adoption input) and validates every field; the result
    /// is used as it is, never regenerated.
    pub fn from_json(text: &str) -> Result<Self, SecretsError> {
        let secrets: Self = serde_json::from_str(text).map_err(|e| {
            // serde_json's own message may quote the offending value (a key or token), so only
            // its category and position are reported.
            SecretsError::Json(format!(
                "{:?} error at line {} column {} (expected the object written by this provider)",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        secrets.validate()?;
        Ok(secrets)
    }

    /// Checks formats, PEM labels, that every certificate parses and every key loads.
    pub fn validate(&self) -> Result<(), SecretsError> {
        for (field, value) in [
            ("cluster_id", &self.cluster_id),
            ("cluster_secret", &self.cluster_secret),
            (
                "secretbox_encryption_secret",
                &self.secretbox_encryption_secret,
            ),
        ] {
            match STANDARD.decode(value) {
                Ok(bytes) if bytes.len() == 32 => {}
                _ => return Err(invalid(field, "must be base64 of 32 bytes")),
            }
        }
        for (field, value) in [
            ("bootstrap_token", &self.bootstrap_token),
            ("trustd_token", &self.trustd_token),
        ] {
            if !is_token(value) {
                return Err(invalid(field, "must match [a-z0-9]{6}.[a-z0-9]{16}"));
            }
        }
        self.os_key()?;
        for (field, ca) in [
            ("etcd_ca", &self.etcd_ca),
            ("kubernetes_ca", &self.kubernetes_ca),
            ("aggregator_ca", &self.aggregator_ca),
        ] {
            let der = pem::decode_labelled(&ca.key, pem::EC_PRIVATE_KEY)
                .map_err(|e| invalid(field, e))?;
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
                .map_err(|e| invalid(field, format!("key is not ECDSA P-256: {e}")))?;
        }
        for (field, ca) in [
            ("os_ca", &self.os_ca),
            ("etcd_ca", &self.etcd_ca),
            ("kubernetes_ca", &self.kubernetes_ca),
            ("aggregator_ca", &self.aggregator_ca),
        ] {
            let der =
                pem::decode_labelled(&ca.crt, pem::CERTIFICATE).map_err(|e| invalid(field, e))?;
            x509_parser::parse_x509_certificate(&der)
                .map_err(|_| invalid(field, "certificate does not parse"))?;
        }
        let der = pem::decode_labelled(&self.service_account_key, pem::RSA_PRIVATE_KEY)
            .map_err(|e| invalid("service_account_key", e))?;
        aws_lc_rs::rsa::KeyPair::from_der(&der)
            .map_err(|e| invalid("service_account_key", format!("not an RSA key: {e}")))?;
        Ok(())
    }

    fn os_key(&self) -> Result<KeyPair, SecretsError> {
        let der = pem::decode_labelled(&self.os_ca.key, pem::ED25519_PRIVATE_KEY)
            .map_err(|e: PemError| invalid("os_ca", e))?;
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| invalid("os_ca", format!("key is not Ed25519 PKCS#8: {e}")))?;
        KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), &PKCS_ED25519)
            .map_err(|e| invalid("os_ca", e))
    }

    /// The Kubernetes CA key, loaded for signing.
    fn kubernetes_ca_key(&self) -> Result<KeyPair, SecretsError> {
        let der = pem::decode_labelled(&self.kubernetes_ca.key, pem::EC_PRIVATE_KEY)
            .map_err(|e| invalid("kubernetes_ca", e))?;
        let kp = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .map_err(|e| invalid("kubernetes_ca", format!("key is not ECDSA P-256: {e}")))?;
        let pkcs8 = kp
            .to_pkcs8v1()
            .map_err(|e| invalid("kubernetes_ca", e.to_string()))?;
        KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()),
            &PKCS_ECDSA_P256_SHA256,
        )
        .map_err(|e| invalid("kubernetes_ca", e))
    }

    /// A fresh talosctl admin certificate (Ed25519, Organization `os:admin`, EKU exactly
    /// clientAuth) signed by the OS CA. Not part of the secrets: any number can be issued.
    pub fn admin_client(
        &self,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<ClientConfiguration, SecretsError> {
        let (key, key_pem) = ed25519_key()?;
        let crt = client_cert(
            ("os_ca", &self.os_ca.crt, self.os_key()?),
            &key,
            ("admin", ADMIN_ROLE),
            now,
            validity,
        )?;
        Ok(ClientConfiguration {
            ca: self.os_ca.crt.clone(),
            crt,
            key: key_pem,
        })
    }

    /// A fresh Kubernetes admin client certificate and key (ECDSA P-256, `CN=admin`,
    /// `O=system:masters`) signed by the Kubernetes CA, as Talos issues for its kubeconfig.
    pub fn kubernetes_admin(
        &self,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<CertAndKey, SecretsError> {
        let (key, key_pem) = p256_key()?;
        let crt = client_cert(
            (
                "kubernetes_ca",
                &self.kubernetes_ca.crt,
                self.kubernetes_ca_key()?,
            ),
            &key,
            ("admin", "system:masters"),
            now,
            validity,
        )?;
        Ok(CertAndKey { crt, key: key_pem })
    }
}

/// A client certificate (EKU exactly clientAuth) for `key`, signed by the CA
/// `(field, cert PEM, key)`, with subject `(common name, organization)`.
fn client_cert(
    ca: (&'static str, &str, KeyPair),
    key: &KeyPair,
    (cn, org): (&str, &str),
    now: OffsetDateTime,
    validity: Duration,
) -> Result<String, SecretsError> {
    let (field, ca_crt, ca_key) = ca;
    let ca_der = pem::decode_labelled(ca_crt, pem::CERTIFICATE).map_err(|e| invalid(field, e))?;
    let issuer = Issuer::from_ca_cert_der(&ca_der.into(), ca_key).map_err(|e| invalid(field, e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = now;
    params.not_after = now + validity;
    let cert = params
        .signed_by(key, &issuer)
        .map_err(|e| generate_err("a client certificate")(e.to_string()))?;
    Ok(cert.pem())
}
