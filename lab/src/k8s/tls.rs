//! TLS of a simulated kube-apiserver: a serving certificate from the cluster's Kubernetes CA
//! and client certificates requested but not required (as kube-apiserver's
//! `RequestClientCert`): the x509 authenticator checks them per request, so a certificate from
//! another CA is a 401, not a failed handshake.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName as RDn, RootCertStore, SignatureScheme};

use crate::talos::config::MachineConfig;
use crate::talos::kubeconfig;
use crate::tls::provider;

/// Who a verified client certificate says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No client certificate: `system:anonymous` (group `system:unauthenticated`).
    Anonymous,
    /// A certificate that does not verify against the Kubernetes CA.
    Invalid,
    /// CN = user, O = groups.
    User { name: String, groups: Vec<String> },
}

/// The serving side of one API server.
pub struct ApiTls {
    pub config: Arc<rustls::ServerConfig>,
    verifier: Arc<dyn ClientCertVerifier>,
}

/// Server certificate SANs as Talos gives kube-apiserver: the endpoint host, `localhost`, the
/// `kubernetes` service names, 127.0.0.1, the first service IP and the control planes' IPs.
pub fn server_sans(endpoint_host: &str, node_ips: &[IpAddr], service_ip: IpAddr) -> Vec<SanType> {
    let mut sans = Vec::new();
    let mut dns = vec![
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        "localhost".into(),
    ];
    let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1]), service_ip];
    match endpoint_host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => ips.push(ip),
        Err(_) => dns.push(endpoint_host.to_string()),
    }
    ips.extend_from_slice(node_ips);
    ips.sort();
    ips.dedup();
    for d in dns {
        if let Ok(s) = d.try_into() {
            sans.push(SanType::DnsName(s));
        }
    }
    sans.extend(ips.into_iter().map(SanType::IpAddress));
    sans
}

impl ApiTls {
    pub fn new(cfg: &MachineConfig, sans: Vec<SanType>) -> Result<ApiTls, String> {
        let (issuer, ca_pem) = kubeconfig::k8s_issuer(cfg)?;
        let (key, _) = kubeconfig::ec_key()?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        p.distinguished_name = dn;
        p.subject_alt_names = sans;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        let ca_der = crate::talos::pki::parse_pem("cluster.ca.crt", ca_pem.as_bytes())
            .map_err(|e| e.to_string())?
            .der;
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_der.clone()))
            .map_err(|e| e.to_string())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| e.to_string())?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(Arc::new(RequestOnly(verifier.clone())))
            .with_single_cert(
                vec![
                    CertificateDer::from(cert.der().to_vec()),
                    CertificateDer::from(ca_der),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ApiTls {
            config: Arc::new(config),
            verifier,
        })
    }

    /// The x509 authenticator: verify the peer chain against the Kubernetes CA (client auth
    /// usage) and read CN/O.
    pub fn identify(&self, certs: Option<&[CertificateDer<'static>]>) -> Identity {
        let Some((leaf, rest)) = certs.and_then(|c| c.split_first()) else {
            return Identity::Anonymous;
        };
        if self
            .verifier
            .verify_client_cert(leaf, rest, UnixTime::now())
            .is_err()
        {
            return Identity::Invalid;
        }
        let Ok((_, c)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
            return Identity::Invalid;
        };
        let name = c
            .subject()
            .iter_common_name()
            .filter_map(|a| a.as_str().ok())
            .next()
            .unwrap_or_default()
            .to_string();
        let groups = c
            .subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .map(str::to_string)
            .collect();
        Identity::User { name, groups }
    }
}

/// Offer client auth, accept whatever arrives (the handshake still proves key possession);
/// verification happens per request in [`ApiTls::identify`].
#[derive(Debug)]
struct RequestOnly(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for RequestOnly {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[RDn] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
