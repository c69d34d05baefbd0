//! The admin kubeconfig a control plane hands out (`MachineService/Kubeconfig`): a fresh client
//! certificate from the cluster's Kubernetes CA (CN `admin`, O `system:masters`, ECDSA P-256 key
//! under `EC PRIVATE KEY`, valid from 10 s ago for `cluster.adminKubeconfig.certLifetime`,
//! default one year), wrapped as Talos wraps it: a gzip'd tar with one `kubeconfig` entry.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use super::config::MachineConfig;
use super::pki;

/// Talos's default admin certificate lifetime (365 days).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Talos back-dates client certificates by this much to allow for clock skew.
const ALLOWED_SKEW: Duration = Duration::from_secs(10);

/// Why no kubeconfig could be made (Talos answers these as plain errors: gRPC Unknown).
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("error getting Kubernetes CA: {0}")]
    Ca(String),
    #[error("error generating Kubernetes client certificate: {0}")]
    Cert(String),
}

/// A Go duration string as Talos configs carry it (`8760h`, `1h30m`, `90s`, `1.5h`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

fn offset(t: SystemTime) -> time::OffsetDateTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A client certificate and its key (PEM) signed by the Kubernetes CA.
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Load the Kubernetes CA of a config as an rcgen issuer.
pub fn k8s_issuer(cfg: &MachineConfig) -> Result<(Issuer<'static, KeyPair>, String), String> {
    let (crt_pem, key_pem) = cfg
        .k8s_ca()
        .ok_or("cluster.ca is missing from the machine config")?;
    let crt = pki::parse_pem("cluster.ca.crt", crt_pem.as_bytes()).map_err(|e| e.to_string())?;
    let key = pki::parse_pem("cluster.ca.key", key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let key = KeyPair::try_from(key.der.as_slice()).map_err(|e| e.to_string())?;
    let issuer =
        Issuer::from_ca_cert_der(&CertificateDer::from(crt.der), key).map_err(|e| e.to_string())?;
    Ok((issuer, crt_pem))
}

/// A fresh ECDSA P-256 key: (rcgen key, SEC1 `EC PRIVATE KEY` PEM).
pub fn ec_key() -> Result<(KeyPair, String), String> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|e| e.to_string())?;
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|e| e.to_string())?;
    let sec1 = kp.private_key().as_der().map_err(|e| e.to_string())?;
    let key = KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()))
        .map_err(|e| e.to_string())?;
    Ok((key, pki::to_pem("EC PRIVATE KEY", sec1.as_ref())))
}

/// Issue a client certificate (CN, O) from the cluster's Kubernetes CA.
pub fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    org: &str,
    lifetime: Duration,
) -> Result<ClientCert, String> {
    let (key, key_pem) = ec_key()?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    let now = SystemTime::now();
    p.not_before = offset(now - ALLOWED_SKEW);
    p.not_after = offset(now + lifetime);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, issuer).map_err(|e| e.to_string())?;
    Ok(ClientCert {
        cert_pem: cert.pem(),
        key_pem,
    })
}

/// The admin kubeconfig YAML, laid out as Talos's template lays it out.
pub fn admin_kubeconfig(cfg: &MachineConfig) -> Result<String, KubeconfigError> {
    let (issuer, ca_pem) = k8s_issuer(cfg).map_err(KubeconfigError::Ca)?;
    let lifetime = cfg
        .str_at("/cluster/adminKubeconfig/certLifetime")
        .and_then(parse_go_duration)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_LIFETIME);
    let cert =
        client_cert(&issuer, "admin", "system:masters", lifetime).map_err(KubeconfigError::Cert)?;
    let name = &cfg.cluster_name;
    Ok(format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin@{name}
  user:
    client-certificate-data: {crt}
    client-key-data: {key}
contexts:
- context:
    cluster: {name}
    namespace: default
    user: admin@{name}
  name: admin@{name}
current-context: admin@{name}
",
        server = cfg.endpoint,
        ca = B64.encode(ca_pem),
        crt = B64.encode(&cert.cert_pem),
        key = B64.encode(&cert.key_pem),
    ))
}

/// Octal field of a tar header, NUL-terminated, zero-padded (as Go's archive/tar writes it).
fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

/// One USTAR header for a regular file.
fn tar_header(name: &str, size: u64, mode: u32, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// What Talos streams: gzip of a tar holding `kubeconfig` (mode 0600). Like Talos, the tar
/// writer is not closed: the entry is neither padded to 512 bytes nor followed by the two
/// end-of-archive blocks (readers stop at the end of the entry's data).
pub fn tar_gz(kubeconfig: &[u8]) -> std::io::Result<Vec<u8>> {
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_header(
        "kubeconfig",
        kubeconfig.len() as u64,
        0o600,
        mtime,
    ))?;
    gz.write_all(kubeconfig)?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("8760h"),
            Some(Duration::from_secs(8760 * 3600))
        );
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("10x"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn tar_header_checksum() {
        let h = tar_header("kubeconfig", 42, 0o600, 1_700_000_000);
        let stored = std::str::from_utf8(&h[148..154]).expect("ascii");
        let mut copy = h;
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).expect("octal"), sum);
        assert_eq!(&h[100..108], b"0000600\0");
        assert_eq!(&h[124..136], b"00000000052\0");
    }

    #[test]
    fn ec_key_is_sec1() {
        let (_, pem) = ec_key().expect("key");
        assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{pem}");
        let der = pki::parse_pem("k", pem.as_bytes()).expect("pem").der;
        // ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING (32), [0] params, ... }
        assert_eq!(&der[2..5], &[0x02, 0x01, 0x01]);
        assert!(KeyPair::try_from(der.as_slice()).is_ok());
    }
}
