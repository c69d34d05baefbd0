//! Acting as Terraform at the gRPC level: start a provider binary the way go-plugin does
//! (magic cookie, protocol versions, a P-521 CA client certificate for AutoMTLS), read the
//! handshake line, and connect with mutual TLS. Used by handshake tests and benchmarks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use infraflux_tls::{ExactCert, PolicyVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tfplugin::proto::tfplugin6 as pb;
use tfplugin::proto::tfplugin6::provider_client::ProviderClient;
use tfplugin::value::{Type, Value, encode_msgpack};
use tonic::transport::{Channel, Endpoint};

pub const COOKIE: (&str, &str) = (
    "TF_PLUGIN_MAGIC_COOKIE",
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
);

/// A client identity shaped like the one go-plugin generates for Terraform.
pub struct ClientCert {
    pub pem: String,
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ClientCert {
    pub fn generate() -> ClientCert {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose as Eku, IsCa,
            KeyPair, KeyUsagePurpose as Ku,
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("P-521 key");
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.distinguished_name
            .push(DnType::OrganizationName, "HashiCorp");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            Ku::DigitalSignature,
            Ku::KeyEncipherment,
            Ku::KeyAgreement,
            Ku::KeyCertSign,
        ];
        p.extended_key_usages = vec![Eku::ClientAuth, Eku::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::seconds(30);
        p.not_after = now + time::Duration::days(1);
        let cert = p.self_signed(&key).expect("self-signed");
        ClientCert {
            pem: cert.pem(),
            der: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }
}

/// What the provider printed on stdout.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub core: String,
    pub protocol: String,
    pub network: String,
    pub address: String,
    pub server_cert_der: Vec<u8>,
}

impl Handshake {
    pub fn parse(line: &str) -> Result<Handshake, String> {
        let parts: Vec<&str> = line.trim_end().split('|').collect();
        if parts.len() != 6 || parts[4] != "grpc" {
            return Err(format!("not a go-plugin handshake line: {line:?}"));
        }
        let cert = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(parts[5])
            .map_err(|e| format!("server certificate is not unpadded base64: {e}"))?;
        Ok(Handshake {
            core: parts[0].into(),
            protocol: parts[1].into(),
            network: parts[2].into(),
            address: parts[3].into(),
            server_cert_der: cert,
        })
    }
}

/// A running provider process.
pub struct Plugin {
    pub child: Child,
    pub handshake: Handshake,
    /// Time from spawn to the handshake line.
    pub startup: Duration,
}

impl Plugin {
    /// Start `bin` as Terraform would, with `client` as the AutoMTLS client certificate.
    pub fn start(bin: &Path, client: &ClientCert, extra_env: &[(&str, &str)]) -> Plugin {
        let t0 = Instant::now();
        let mut cmd = Command::new(bin);
        cmd.env(COOKIE.0, COOKIE.1)
            .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
            .env("PLUGIN_CLIENT_CERT", &client.pem)
            .env_remove("TF_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn provider");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read handshake");
        let startup = t0.elapsed();
        let handshake = Handshake::parse(&line).unwrap_or_else(|e| panic!("{e}"));
        Plugin {
            child,
            handshake,
            startup,
        }
    }

    /// Connect with mutual TLS, presenting `client` and pinning the server's certificate.
    pub async fn connect(&self, client: &ClientCert) -> Result<Channel, tonic::transport::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PolicyVerifier::new(
                ExactCert(self.handshake.server_cert_der.clone()),
                &provider,
            )))
            .with_client_auth_cert(
                vec![client.der.clone()],
                PrivateKeyDer::Pkcs8(client.key.clone_key()),
            )
            .expect("client cert");
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let (network, address) = (
            self.handshake.network.clone(),
            self.handshake.address.clone(),
        );
        Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let (connector, network, address) =
                    (connector.clone(), network.clone(), address.clone());
                async move {
                    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
                    let tls = if network == "unix" {
                        let s = tokio::net::UnixStream::connect(&address).await?;
                        connector
                            .connect(name, Box::new(s) as Box<dyn Stream>)
                            .await?
                    } else {
                        let s = tokio::net::TcpStream::connect(&address).await?;
                        connector
                            .connect(name, Box::new(s) as Box<dyn Stream>)
                            .await?
                    };
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                }
            }))
            .await
    }

    pub async fn provider(&self, client: &ClientCert) -> ProviderClient<Channel> {
        ProviderClient::new(self.connect(client).await.expect("connect"))
            .max_decoding_message_size(256 << 20)
    }

    /// Wait up to `limit` for the process to exit; its exit code, or None if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// The value type of a wire schema block, rebuilt as Terraform does.
pub fn block_type(b: &pb::schema::Block) -> Type {
    use pb::schema::nested_block::NestingMode;
    let mut attrs: Vec<(String, Type)> = b
        .attributes
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                Type::from_json_bytes(&a.r#type).expect("attribute type"),
            )
        })
        .collect();
    for nb in &b.block_types {
        let inner = block_type(nb.block.as_ref().expect("nested block"));
        let t = match NestingMode::try_from(nb.nesting) {
            Ok(NestingMode::List) => Type::list(inner),
            Ok(NestingMode::Set) => Type::set(inner),
            Ok(NestingMode::Map) => Type::map(inner),
            _ => inner,
        };
        attrs.push((nb.type_name.clone(), t));
    }
    Type::object(attrs)
}

/// A msgpack DynamicValue, as Terraform sends it.
pub fn dv(v: &Value, t: &Type) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: encode_msgpack(v, t).expect("value fits type"),
        json: vec![],
    })
}
