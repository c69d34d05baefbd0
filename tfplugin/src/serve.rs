//! Process lifetime: the go-plugin handshake, AutoMTLS, listeners, and graceful shutdown.
//!
//! Terraform starts the provider with `TF_PLUGIN_MAGIC_COOKIE`, the protocol versions it
//! speaks and its client certificate; we answer with one line on stdout
//! (`1|6|unix|/path|grpc|<server cert, base64 DER without padding>`) and serve gRPC over TLS,
//! accepting exactly that client certificate.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use infraflux_tls::{ExactCert, PolicyVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::framework::Provider;
use crate::proto;
use crate::server::{Controller, ProviderService, Stdio};

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const CORE_PROTOCOL: u32 = 1;
const APP_PROTOCOL: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "This binary is a plugin for Terraform and is not meant to be run directly.\n\
         Install it in a filesystem mirror and use it through `terraform init`; see the README.\n\
         (For debugging, run it with --debug and follow the instructions it prints.)"
    )]
    NoCookie,
    #[error(
        "Terraform offered plugin protocol versions {0:?}, but this provider speaks only protocol 6 (Terraform 1.0 or later). Upgrade Terraform."
    )]
    NoCommonProtocol(String),
    #[error("PLUGIN_CLIENT_CERT does not hold a PEM certificate: {0}")]
    BadClientCert(String),
    #[error("could not create the TLS identity: {0}")]
    Tls(String),
    #[error("could not listen: {0}")]
    Listen(io::Error),
    #[error("gRPC server failed: {0}")]
    Server(#[from] tonic::transport::Error),
}

/// Entry point for a provider binary: `fn main() -> ExitCode { tfplugin::serve::main("registry.terraform.io/x/y", || MyProvider::new()) }`.
pub fn main<P: Provider>(address: &'static str, make: impl FnOnce() -> P) -> ExitCode {
    let parent = std::os::unix::process::parent_id();
    let debug = std::env::args()
        .skip(1)
        .any(|a| a == "--debug" || a == "-debug");
    let name = address.rsplit('/').next().unwrap_or(address);
    let level = crate::log::level_from_env(name).unwrap_or(if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    });
    crate::log::init("provider", level);
    // One thread: RPC handling is I/O-bound and short (CPU-heavy work belongs in
    // spawn_blocking); cross-thread wake-ups of the multi-thread scheduler cost a refresh of
    // 500 VMs 15-25 % more provider CPU on a 2-core machine, beside Terraform's own work.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let provider: Arc<dyn Provider> = Arc::new(make());
    let result = if debug {
        rt.block_on(serve_debug(address, provider))
    } else {
        rt.block_on(serve(provider, parent))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Check the environment Terraform sets. Split out so tests can call it.
pub fn negotiate(cookie: Option<&str>, versions: Option<&str>) -> Result<u32, ServeError> {
    if cookie != Some(MAGIC_COOKIE_VALUE) {
        return Err(ServeError::NoCookie);
    }
    // Absent means the host predates negotiation; it then expects our single version.
    let Some(v) = versions.filter(|v| !v.is_empty()) else {
        return Ok(APP_PROTOCOL);
    };
    if v.split(',').any(|x| x.trim().parse() == Ok(APP_PROTOCOL)) {
        Ok(APP_PROTOCOL)
    } else {
        Err(ServeError::NoCommonProtocol(v.to_owned()))
    }
}

async fn serve(provider: Arc<dyn Provider>, parent: u32) -> Result<(), ServeError> {
    let version = negotiate(
        std::env::var(MAGIC_COOKIE_KEY).ok().as_deref(),
        std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok().as_deref(),
    )?;
    let tls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !pem.is_empty() => Some(AutoMtls::new(pem.as_bytes())?),
        _ => None,
    };
    let listener = Listener::bind()?;
    let cert = tls
        .as_ref()
        .map(|t| t.server_cert_b64())
        .unwrap_or_default();
    let line = format!(
        "{CORE_PROTOCOL}|{version}|{}|{}|grpc|{cert}\n",
        listener.network(),
        listener.address()
    );
    {
        let mut out = io::stdout().lock();
        out.write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .map_err(ServeError::Listen)?;
    }
    let shutdown = CancellationToken::new();
    ignore_interrupts(shutdown.clone());
    exit_with_parent(parent, shutdown.clone());
    let res = run(
        provider,
        listener.incoming(tls.map(|t| t.acceptor())),
        shutdown,
    )
    .await;
    listener.cleanup();
    res
}

/// `--debug`: serve without Terraform starting us, and print the line that points Terraform here.
async fn serve_debug(address: &str, provider: Arc<dyn Provider>) -> Result<(), ServeError> {
    let listener = Listener::bind()?;
    let reattach = serde_json::json!({
        address: {
            "Protocol": "grpc",
            "ProtocolVersion": APP_PROTOCOL,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": { "Network": listener.network(), "String": listener.address() },
        }
    });
    println!(
        "Provider started in debug mode. In another shell, run Terraform with:\n\n\tTF_REATTACH_PROVIDERS='{reattach}'\n\nPress Ctrl-C to stop."
    );
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    let res = run(provider, listener.incoming(None), shutdown).await;
    listener.cleanup();
    res
}

/// If Terraform dies without telling us (killed, or its output pipe closed), nobody will ever
/// call Shutdown: notice that we were re-parented and exit instead of lingering.
/// (Only a change counts: Terraform may itself be PID 1 in a container.)
fn exit_with_parent(parent: u32, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                    if std::os::unix::process::parent_id() != parent {
                        tracing::warn!("Terraform went away; exiting");
                        shutdown.cancel();
                        return;
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
}

/// Terraform forwards Ctrl-C to the whole process group, then asks us to stop over gRPC:
/// dying on the signal would lose state of applies in flight, so it is only logged.
fn ignore_interrupts(shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    if r.is_err() { return; }
                    tracing::debug!("interrupt received; waiting for Terraform to stop us");
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
}

async fn run(
    provider: Arc<dyn Provider>,
    incoming: mpsc::Receiver<io::Result<Io>>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let service = ProviderService::new(provider);
    let max = 256 * 1024 * 1024; // Terraform's own limit for provider messages
    let s = shutdown.clone();
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(
            proto::tfplugin6::provider_server::ProviderServer::new(service)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            proto::plugin::grpc_controller_server::GrpcControllerServer::new(Controller {
                shutdown: shutdown.clone(),
            }),
        )
        .add_service(proto::plugin::grpc_stdio_server::GrpcStdioServer::new(
            Stdio {
                shutdown: shutdown.clone(),
            },
        ))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(incoming),
            async move { s.cancelled().await },
        )
        .await?;
    Ok(())
}

/// A connection of any kind (unix or TCP, TLS or not), so one server serves them all.
pub struct Io(Pin<Box<dyn AsyncStream>>);
trait AsyncStream: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> AsyncStream for T {}

impl Connected for Io {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}
impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_read(cx, buf)
    }
}
impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_shutdown(cx)
    }
}

enum Listener {
    Unix {
        l: tokio::net::UnixListener,
        path: PathBuf,
        dir: PathBuf,
    },
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    /// A unix socket in a private temporary directory, as go-plugin does on Unix; TCP on
    /// loopback within PLUGIN_MIN_PORT..=PLUGIN_MAX_PORT if that fails.
    fn bind() -> Result<Self, ServeError> {
        match Self::bind_unix() {
            Ok(l) => Ok(l),
            Err(e) => {
                tracing::debug!(error = %e, "unix socket unavailable, using TCP");
                Self::bind_tcp()
            }
        }
    }

    fn bind_unix() -> io::Result<Self> {
        let base = std::env::var_os("PLUGIN_UNIX_SOCKET_DIR")
            .map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!(
            "plugin-infraflux-{}-{}",
            std::process::id(),
            nanos()
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("plugin.sock");
        let l = tokio::net::UnixListener::bind(&path)?;
        Ok(Listener::Unix { l, path, dir })
    }

    fn bind_tcp() -> Result<Self, ServeError> {
        let port = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u16>().ok());
        let (min, max) = (
            port("PLUGIN_MIN_PORT").unwrap_or(0),
            port("PLUGIN_MAX_PORT").unwrap_or(0),
        );
        let ports: Vec<u16> = if min > 0 && max >= min {
            (min..=max).collect()
        } else {
            vec![0]
        };
        let mut last = io::Error::other("no port in range");
        for p in ports {
            match std::net::TcpListener::bind(("127.0.0.1", p)) {
                Ok(l) => {
                    l.set_nonblocking(true).map_err(ServeError::Listen)?;
                    return tokio::net::TcpListener::from_std(l)
                        .map(Listener::Tcp)
                        .map_err(ServeError::Listen);
                }
                Err(e) => last = e,
            }
        }
        Err(ServeError::Listen(last))
    }

    fn network(&self) -> &'static str {
        match self {
            Listener::Unix { .. } => "unix",
            Listener::Tcp(_) => "tcp",
        }
    }

    fn address(&self) -> String {
        match self {
            Listener::Unix { path, .. } => path.display().to_string(),
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        }
    }

    fn cleanup(&self) {
        if let Listener::Unix { path, dir, .. } = self {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Accept connections, doing TLS handshakes off the accept loop.
    fn incoming(&self, tls: Option<tokio_rustls::TlsAcceptor>) -> mpsc::Receiver<io::Result<Io>> {
        let (tx, rx) = mpsc::channel(16);
        // The accept loop must be 'static while the listener stays here for cleanup:
        // hand the loop a duplicate of the socket.
        let fd = match self {
            Listener::Unix { l, .. } => AcceptFrom::Unix(clone_unix(l)),
            Listener::Tcp(l) => AcceptFrom::Tcp(clone_tcp(l)),
        };
        tokio::spawn(accept_loop(fd, tls, tx));
        rx
    }
}

enum AcceptFrom {
    Unix(io::Result<tokio::net::UnixListener>),
    Tcp(io::Result<tokio::net::TcpListener>),
}

fn clone_unix(l: &tokio::net::UnixListener) -> io::Result<tokio::net::UnixListener> {
    use std::os::fd::{AsFd, OwnedFd};
    let owned: OwnedFd = l.as_fd().try_clone_to_owned()?;
    let std_l = std::os::unix::net::UnixListener::from(owned);
    std_l.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(std_l)
}

fn clone_tcp(l: &tokio::net::TcpListener) -> io::Result<tokio::net::TcpListener> {
    use std::os::fd::{AsFd, OwnedFd};
    let owned: OwnedFd = l.as_fd().try_clone_to_owned()?;
    let std_l = std::net::TcpListener::from(owned);
    std_l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std_l)
}

async fn accept_loop(
    from: AcceptFrom,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<io::Result<Io>>,
) {
    loop {
        let raw: io::Result<Pin<Box<dyn AsyncStream>>> = match &from {
            AcceptFrom::Unix(Ok(l)) => l
                .accept()
                .await
                .map(|(s, _)| Box::pin(s) as Pin<Box<dyn AsyncStream>>),
            AcceptFrom::Tcp(Ok(l)) => l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Box::pin(s) as Pin<Box<dyn AsyncStream>>
            }),
            AcceptFrom::Unix(Err(e)) | AcceptFrom::Tcp(Err(e)) => {
                let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string()))).await;
                return;
            }
        };
        let stream = match raw {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        match &tls {
            None => {
                if tx.send(Ok(Io(stream))).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(s) => {
                            let _ = tx.send(Ok(Io(Box::pin(s)))).await;
                        }
                        // A peer without the pinned certificate: refuse it, keep serving.
                        Err(e) => tracing::warn!(error = %e, "TLS handshake refused"),
                    }
                });
            }
        }
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// go-plugin's AutoMTLS: a fresh self-signed server certificate per process, and the one
/// client certificate Terraform generated for this run as the only accepted peer.
pub struct AutoMtls {
    config: Arc<rustls::ServerConfig>,
    server_der: Vec<u8>,
}

impl AutoMtls {
    pub fn new(client_cert_pem: &[u8]) -> Result<Self, ServeError> {
        let client = CertificateDer::from_pem_slice(client_cert_pem)
            .map_err(|e| ServeError::BadClientCert(e.to_string()))?;
        let (server_cert, server_key) =
            self_signed().map_err(|e| ServeError::Tls(e.to_string()))?;
        // ring signs and exchanges keys; Terraform's client key is P-521, which only aws-lc-rs
        // verifies: infraflux_tls's provider is exactly that split.
        let provider = infraflux_tls::crypto_provider();
        // Exactly Terraform's certificate: a self-signed P-521 CA, which path validation would
        // reject as an end entity; pinning is both simpler and stricter.
        let verifier = Arc::new(PolicyVerifier::new(ExactCert(client.to_vec()), &provider));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server_cert.clone()], server_key)
            .map_err(|e| ServeError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            server_der: server_cert.to_vec(),
        })
    }

    /// The handshake line's certificate field: standard base64 of the DER, without padding.
    pub fn server_cert_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.server_der)
    }

    pub fn server_cert_der(&self) -> &[u8] {
        &self.server_der
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// The server key, generated and used by ring (see [`infraflux_tls::crypto_provider`]).
struct ServerKey {
    pair: ring::signature::EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: ring::rand::SystemRandom,
}

impl ServerKey {
    fn generate() -> Result<Self, rcgen::Error> {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING as ALG, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ALG, &rng).map_err(|_| rcgen::Error::RingUnspecified)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &rng)
            .map_err(|e| rcgen::Error::RingKeyRejected(e.to_string()))?;
        Ok(Self {
            pair,
            pkcs8: pkcs8.as_ref().to_vec(),
            rng,
        })
    }
}

impl rcgen::PublicKeyData for ServerKey {
    fn der_bytes(&self) -> &[u8] {
        use ring::signature::KeyPair as _;
        self.pair.public_key().as_ref()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for ServerKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.pair
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

/// Shaped like go-plugin's own: CA:TRUE, server+client auth, `localhost`, ECDSA P-256.
fn self_signed() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose as Eku, IsCa,
        KeyUsagePurpose as Ku,
    };
    let key = ServerKey::generate()?;
    let mut p = CertificateParams::new(vec!["localhost".to_owned()])?;
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.distinguished_name
        .push(DnType::OrganizationName, "InfraFlux");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![Ku::DigitalSignature, Ku::KeyEncipherment, Ku::KeyCertSign];
    p.extended_key_usages = vec![Eku::ServerAuth, Eku::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::seconds(30);
    p.not_after = now + time::Duration::days(365 * 30);
    let cert = p.self_signed(&key)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8));
    Ok((cert.der().clone(), key_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert!(matches!(
            negotiate(None, Some("6")),
            Err(ServeError::NoCookie)
        ));
        assert!(matches!(
            negotiate(Some("nope"), Some("6")),
            Err(ServeError::NoCookie)
        ));
        assert_eq!(negotiate(Some(MAGIC_COOKIE_VALUE), Some("5,6")).unwrap(), 6);
        assert_eq!(negotiate(Some(MAGIC_COOKIE_VALUE), None).unwrap(), 6);
        assert!(matches!(
            negotiate(Some(MAGIC_COOKIE_VALUE), Some("4,5")),
            Err(ServeError::NoCommonProtocol(_))
        ));
        assert!(
            ServeError::NoCookie
                .to_string()
                .contains("not meant to be run directly")
        );
    }

    #[test]
    fn server_cert_encoding_has_no_padding() {
        let (cert, _) = self_signed().unwrap();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(cert.as_ref())
        );
        let m = AutoMtls::new(pem.as_bytes()).unwrap();
        let b = m.server_cert_b64();
        assert!(!b.ends_with('='));
        assert_eq!(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(&b)
                .unwrap(),
            m.server_cert_der()
        );
        assert!(matches!(
            AutoMtls::new(b"not pem"),
            Err(ServeError::BadClientCert(_))
        ));
    }
}
