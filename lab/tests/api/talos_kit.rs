//! Talos test kit: machine-config fixtures with real PKI (rcgen, Ed25519 OS CA) and a tonic
//! client over rustls (maintenance: no verification, like `talosctl --insecure`; running: mTLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hyper_util::rt::TokioIo;
use infraflux_lab::talos::pki::{ED25519_KEY_LABEL, to_pem};
use infraflux_lab::talos::proto::cosi::resource::state_client::StateClient;
use infraflux_lab::talos::proto::machine::machine_service_client::MachineServiceClient;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::common::T;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A CA (Ed25519) that can issue client certs.
pub struct Ca {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let key_der = key.serialize_der();
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, name);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).expect("ca cert");
        Ca {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_der,
            issuer: Issuer::new(p, key),
        }
    }

    /// A client cert with the given Organization (role) and extended key usages.
    pub fn client(&self, org: &str, eku: Vec<ExtendedKeyUsagePurpose>) -> ClientCert {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn.push(DnType::CommonName, "infraflux-test");
        p.distinguished_name = dn;
        p.extended_key_usages = eku;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &self.issuer).expect("client cert");
        ClientCert {
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    pub fn admin(&self) -> ClientCert {
        self.client("os:admin", vec![ExtendedKeyUsagePurpose::ClientAuth])
    }
}

pub struct ClientCert {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

/// Secrets of one test cluster and the configs rendered from them.
pub struct Cluster {
    pub os_ca: Ca,
    pub endpoint: String,
    /// The Kubernetes CA (ECDSA P-256): certificate PEM and SEC1 key DER.
    pub k8s_ca_pem: String,
    pub k8s_key_der: Vec<u8>,
}

/// Per-node extras of a rendered config.
#[derive(Default)]
pub struct NodeOpts<'a> {
    pub hostname: Option<&'a str>,
    pub install_image: Option<&'a str>,
    /// Extra lines under `cluster:` (indented two spaces).
    pub cluster_extra: &'a str,
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

impl Cluster {
    /// A cluster with an endpoint of its own (`127.78.N.10:6443`): tests run in parallel,
    /// and an API server listens only on its endpoint's address.
    pub fn new() -> Cluster {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 250;
        Self::with_endpoint(&format!("https://127.78.{n}.10:6443"))
    }

    pub fn with_endpoint(endpoint: &str) -> Cluster {
        let k8s_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "kubernetes");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let k8s_ca = p.self_signed(&k8s_key).expect("k8s ca");
        Cluster {
            os_ca: Ca::new("talos"),
            endpoint: endpoint.into(),
            k8s_ca_pem: k8s_ca.pem(),
            k8s_key_der: sec1_of(&k8s_key),
        }
    }

    /// A config with per-node extras.
    pub fn node_config(&self, machine_type: &str, o: &NodeOpts<'_>) -> String {
        let mut cfg = self.config(machine_type);
        if let Some(h) = o.hostname {
            // Talos 1.13: the hostname is its own document.
            cfg.push_str(&format!(
                "---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: {h}\n"
            ));
        }
        if let Some(i) = o.install_image {
            cfg = cfg.replacen(
                "image: ghcr.io/siderolabs/installer:v1.13.9",
                &format!("image: {i}"),
                1,
            );
        }
        if !o.cluster_extra.is_empty() {
            cfg = cfg.replacen(
                "  clusterName: lab\n",
                &format!("  clusterName: lab\n{}", o.cluster_extra),
                1,
            );
        }
        cfg
    }

    /// A control-plane (or worker) config as Talos ≤ 1.13 takes it: one v1alpha1 document,
    /// certs and keys base64(PEM), the OS CA key under `ED25519 PRIVATE KEY`.
    pub fn config(&self, machine_type: &str) -> String {
        self.config_with(machine_type, ED25519_KEY_LABEL, "abcdef.0123456789abcdef")
    }

    pub fn config_with(&self, machine_type: &str, key_label: &str, token: &str) -> String {
        let os_key = if machine_type == "worker" {
            String::new()
        } else {
            b64(&to_pem(key_label, &self.os_ca.key_der))
        };
        let secret = B64.encode([7u8; 32]);
        format!(
            "version: v1alpha1
machine:
  type: {machine_type}
  token: {token}
  ca:
    crt: {os_crt}
    key: \"{os_key}\"
  certSANs: []
  install:
    disk: /dev/sda
    image: ghcr.io/siderolabs/installer:v1.13.9
    wipe: false
  features:
    rbac: true
    apidCheckExtKeyUsage: true
cluster:
  id: {secret}
  secret: {secret}
  controlPlane:
    endpoint: {endpoint}
  clusterName: lab
  network:
    dnsDomain: cluster.local
    podSubnets: [10.244.0.0/16]
    serviceSubnets: [10.96.0.0/12]
  token: abcdef.0123456789abcdef
  secretboxEncryptionSecret: {secret}
  ca:
    crt: {k8s_crt}
    key: {k8s_key}
",
            os_crt = b64(&self.os_ca.cert_pem),
            endpoint = self.endpoint,
            k8s_crt = b64(&self.k8s_ca_pem),
            k8s_key = b64(&to_pem("EC PRIVATE KEY", &self.k8s_key_der)),
        )
    }
}

impl Cluster {
    /// The same cluster as Talos 1.14 takes it: v1alpha1 keeps machine type/token/CA and the
    /// cluster token; the Kubernetes side, install and discovery identity are documents (PEM
    /// there is plain text). No `KubeFlannelCNIConfig`: no CNI.
    pub fn config_v1_14(&self, machine_type: &str, hostname: &str) -> String {
        let os_key = if machine_type == "worker" {
            String::new()
        } else {
            b64(&to_pem(ED25519_KEY_LABEL, &self.os_ca.key_der))
        };
        // A literal block scalar: each PEM line indented four spaces.
        let block = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        let ca = if machine_type == "worker" {
            format!("acceptedCAs:\n  - |\n{}", block(&self.k8s_ca_pem))
        } else {
            format!(
                "issuingCA:\n  cert: |\n{}  key: |\n{}",
                block(&self.k8s_ca_pem),
                block(&to_pem("EC PRIVATE KEY", &self.k8s_key_der))
            )
        };
        let secret = B64.encode([7u8; 32]);
        format!(
            "version: v1alpha1
machine:
  type: {machine_type}
  token: abcdef.0123456789abcdef
  ca:
    crt: {os_crt}
    key: \"{os_key}\"
  certSANs: []
cluster:
  token: abcdef.0123456789abcdef
---
apiVersion: v1alpha1
kind: KubeClusterConfig
clusterName: lab
endpoint: {endpoint}
---
apiVersion: v1alpha1
kind: DiscoveryIdentityConfig
clusterID: {secret}
clusterSecret: {secret}
---
apiVersion: v1alpha1
kind: UnattendedInstall
installer:
  image: ghcr.io/siderolabs/installer:v1.14.0
---
apiVersion: v1alpha1
kind: KubeletConfig
image: ghcr.io/siderolabs/kubelet:v1.35.0
---
apiVersion: v1alpha1
kind: KubeNetworkConfig
podSubnets: [10.244.0.0/16]
serviceSubnets: [10.96.0.0/12]
---
apiVersion: v1alpha1
kind: KubeAPIServerCAConfig
{ca}---
apiVersion: v1alpha1
kind: HostnameConfig
hostname: {hostname}
",
            os_crt = b64(&self.os_ca.cert_pem),
            endpoint = self.endpoint,
        )
    }
}

/// The SEC1 (`EC PRIVATE KEY`) form of a P-256 key, as Talos stores the Kubernetes CA key:
/// rebuilt from the PKCS#8 rcgen gives (version 1, private scalar, curve OID, public point).
fn sec1_of(key: &KeyPair) -> Vec<u8> {
    let pkcs8 = key.serialize_der();
    // The private scalar: the 32 bytes after the inner `04 20` in the PKCS#8 structure.
    let at = pkcs8
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .expect("inner ECPrivateKey");
    let scalar = &pkcs8[at + 5..at + 37];
    let public = key.public_key_raw();
    let mut body = vec![0x02, 0x01, 0x01, 0x04, 0x20];
    body.extend_from_slice(scalar);
    // [0] prime256v1
    body.extend_from_slice(&[
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ]);
    // [1] BIT STRING public point
    body.extend_from_slice(&[
        0xa1,
        (public.len() + 3) as u8,
        0x03,
        (public.len() + 1) as u8,
        0,
    ]);
    body.extend_from_slice(public);
    assert!(body.len() < 128);
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `talosctl --insecure`: TLS, no verification, no client cert.
pub fn insecure() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
        .with_no_client_auth()
}

/// mTLS: trust `server_ca`, present `client` (or no cert).
pub fn mtls(server_ca: &Ca, client: Option<&ClientCert>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(server_ca.cert_der.clone()))
        .expect("root");
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    match client {
        Some(c) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(c.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
            )
            .expect("client auth"),
        None => b.with_no_client_auth(),
    }
}

/// A gRPC channel to a node endpoint over the given TLS config.
pub async fn channel(addr: SocketAddr, ip: &str, mut tls: ClientConfig) -> Result<Channel, String> {
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = TlsConnector::from(Arc::new(tls));
    let name = ServerName::try_from(ip.to_string()).map_err(|e| e.to_string())?;
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (connector, name) = (connector.clone(), name.clone());
            async move {
                let tcp = TcpStream::connect(addr).await?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| format!("{e:?}"))
}

pub fn machine(ch: Channel) -> MachineServiceClient<Channel> {
    MachineServiceClient::new(ch)
}

pub fn cosi(ch: Channel) -> StateClient<Channel> {
    StateClient::new(ch)
}

/// Clone the template to `vmid`, give it a loopback cloud-init address, start it.
pub async fn boot_vm(t: &T, vmid: u32, ip: &str) {
    t.clone_template(vmid, &format!("talos-{vmid}")).await;
    let path = format!("/nodes/pve1/qemu/{vmid}/config");
    t.put(&path, &[("ipconfig0", &format!("ip={ip}/8"))])
        .await
        .ok();
    let r = t
        .post(&format!("/nodes/pve1/qemu/{vmid}/status/start"), &[])
        .await;
    t.task_ok(r).await;
}

/// The node's `GET /talos/nodes` entry once `pred` holds (panics after 5 s).
pub async fn wait_node(t: &T, vmid: u32, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let doc = t.control_get("/talos/nodes").await;
        let node = doc["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["vmid"] == vmid))
            .cloned();
        if let Some(n) = node.filter(&pred) {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "node {vmid} never matched: {doc}"
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

pub async fn wait_stage(t: &T, vmid: u32, stage: &str) -> Value {
    wait_node(t, vmid, |n| n["stage"] == stage).await
}

/// The node's endpoint from the control document.
pub fn endpoint(n: &Value) -> SocketAddr {
    n["endpoint"]
        .as_str()
        .and_then(|e| e.parse().ok())
        .expect("endpoint")
}
