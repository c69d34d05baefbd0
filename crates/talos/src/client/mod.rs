//! Talos API client (apid, port 50000). Knows no Terraform.
//!
//! - [`TalosClient::maintenance`]: a node in maintenance mode (TLS, no client certificate,
//!   server unverified: see [`tls`]); [`TalosClient::authenticated`]: a running node (mutual
//!   TLS with the cluster's `client_configuration`, server verified against the OS CA, name
//!   checked against the endpoint host as talosctl does).
//! - [`TalosClient::via`]: proxy calls through the endpoint to another node (`node` metadata).
//! - Verbs: [`TalosClient::version`], [`TalosClient::apply_configuration`],
//!   [`TalosClient::machine_status`], [`TalosClient::bootstrap`],
//!   [`TalosClient::etcd_member_list`], [`TalosClient::reboot`], [`TalosClient::reset`],
//!   [`TalosClient::service_list`], [`TalosClient::wait_for_stage`].
//! - Errors: [`TalosError`], typed from gRPC codes, naming the node and the phase.

mod cosi;
mod error;
mod machine;
use talos_api as proto;
pub mod tls;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

pub use cosi::{MachineStatus, Stage};
pub use error::TalosError;
pub use machine::{
    ApplyMode, Bootstrap, EtcdMember, NodeVersion, RebootMode, ResetOptions, Service, WipeMode,
};

use crate::secrets::ClientConfiguration;

/// Talos's API port.
pub const APID_PORT: u16 = 50000;

/// Timeouts of one client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// One RPC, connection included.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Which API face the client expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Maintenance,
    Authenticated,
}

/// Why the last connection attempt failed (tonic reports connector errors only as
/// "transport error"; we keep ours to say what happened).
#[derive(Debug, Clone)]
enum ConnectFailure {
    /// Refused, reset, no route (with how long the attempt took).
    Io(String, Duration),
    /// Handshake failure: (rustls's text, whether the server certificate was refused).
    Tls(String, bool),
    Timeout(Duration),
}

/// A client for one endpoint (and optionally one target node behind it).
#[derive(Clone)]
pub struct TalosClient {
    /// `host:port` as given (normalised).
    endpoint: String,
    /// The node calls are proxied to (`node` metadata), if not the endpoint itself.
    node: Option<String>,
    face: Face,
    channel: Channel,
    opts: ClientOptions,
    last_failure: Arc<Mutex<Option<ConnectFailure>>>,
}

impl fmt::Debug for TalosClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TalosClient")
            .field("endpoint", &self.endpoint)
            .field("node", &self.node)
            .field("face", &self.face)
            .finish_non_exhaustive()
    }
}

/// `host` or `host:port` or `[v6]:port` → (host, port), port 50000 by default.
fn split_endpoint(endpoint: &str) -> Result<(String, u16), TalosError> {
    let e = endpoint.trim();
    let bad = || TalosError::Config(format!("endpoint {endpoint:?} is not host[:port]"));
    if e.is_empty() {
        return Err(bad());
    }
    if let Ok(sa) = e.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    if let Ok(ip) = e.parse::<std::net::IpAddr>() {
        return Ok((ip.to_string(), APID_PORT));
    }
    match e.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p.parse::<u16>().map_err(|_| bad())?;
            Ok((h.to_string(), port))
        }
        Some(_) => Err(bad()),
        None => Ok((e.to_string(), APID_PORT)),
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl TalosClient {
    /// A client for a node in maintenance mode (see [`tls`] for why its certificate is not
    /// verified).
    pub fn maintenance(endpoint: &str, opts: ClientOptions) -> Result<Self, TalosError> {
        Self::new(endpoint, tls::maintenance()?, Face::Maintenance, opts)
    }

    /// A client for a configured node: mutual TLS with the cluster's client configuration.
    pub fn authenticated(
        endpoint: &str,
        creds: &ClientConfiguration,
        opts: ClientOptions,
    ) -> Result<Self, TalosError> {
        Self::new(endpoint, tls::running(creds)?, Face::Authenticated, opts)
    }

    fn new(
        endpoint: &str,
        tls: Arc<ClientConfig>,
        face: Face,
        opts: ClientOptions,
    ) -> Result<Self, TalosError> {
        let (host, port) = split_endpoint(endpoint)?;
        let server_name = tls::server_name(&host)?;
        let endpoint = host_port(&host, port);
        let last_failure = Arc::new(Mutex::new(None));
        let connector = Connector {
            addr: endpoint.clone(),
            server_name,
            tls: TlsConnector::from(tls),
            timeout: opts.connect_timeout,
            last_failure: last_failure.clone(),
        };
        // The URI only carries the :authority; the connector decides where to connect.
        let uri: Uri = format!("http://{endpoint}")
            .parse()
            .map_err(|e| TalosError::Config(format!("endpoint {endpoint:?}: {e}")))?;
        let channel = Endpoint::from(uri)
            .timeout(opts.request_timeout)
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let c = connector.clone();
                async move { c.connect().await }
            }));
        Ok(Self {
            endpoint,
            node: None,
            face,
            channel,
            opts,
            last_failure,
        })
    }

    /// Calls go through this client's endpoint to `node` (gRPC metadata `node`, as
    /// `talosctl -e ENDPOINT -n NODE`). The TLS name check stays the endpoint's.
    pub fn via(&self, node: impl Into<String>) -> Self {
        let mut c = self.clone();
        c.node = Some(node.into());
        c
    }

    /// The endpoint (`host:port`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether this client talks to maintenance mode or, with mutual TLS, to a running node.
    pub fn face(&self) -> Face {
        self.face
    }

    /// The node named in messages: the proxied node if any, else the endpoint host.
    pub fn node_label(&self) -> String {
        match &self.node {
            Some(n) => n.clone(),
            None => split_endpoint(&self.endpoint)
                .map(|(h, _)| h)
                .unwrap_or_else(|_| self.endpoint.clone()),
        }
    }

    /// A request with the `node` metadata when proxying.
    fn request<T>(&self, msg: T, phase: &'static str) -> Result<tonic::Request<T>, TalosError> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.opts.request_timeout);
        if let Some(node) = &self.node {
            let v: MetadataValue<_> = node.parse().map_err(|_| {
                TalosError::Config(format!("{phase}: node {node:?} is not a valid address"))
            })?;
            req.metadata_mut().insert("node", v);
        }
        Ok(req)
    }

    /// Maps a gRPC status to a typed error.
    fn status_error(&self, phase: &'static str, s: Status) -> TalosError {
        let node = self.node_label();
        let message = s.message().to_string();
        // A status with a local source is a transport failure (tonic/hyper), not an answer.
        let local = std::error::Error::source(&s).is_some();
        if local || matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded) {
            let last = self
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let endpoint = self.endpoint.clone();
            return match last {
                Some(ConnectFailure::Tls(detail, server_cert)) => TalosError::Tls {
                    node,
                    phase,
                    endpoint,
                    detail,
                    hint: match (self.face, server_cert) {
                        (Face::Authenticated, true) => {
                            " (the node's certificate is not from client_configuration.ca: the \
                             node may still be in maintenance mode, or belong to another cluster)"
                        }
                        _ => "",
                    },
                },
                Some(ConnectFailure::Io(detail, waited)) => TalosError::Unreachable {
                    node,
                    phase,
                    endpoint,
                    waited,
                    detail,
                },
                Some(ConnectFailure::Timeout(d)) => TalosError::Unreachable {
                    node,
                    phase,
                    endpoint,
                    waited: d,
                    detail: "connection timed out".into(),
                },
                None => match alert_in_chain(&s) {
                    // TLS 1.3: the server judges our certificate after the client's
                    // handshake is done; its refusal arrives as an alert on the first read.
                    Some(alert) => TalosError::Tls {
                        node,
                        phase,
                        endpoint,
                        detail: alert,
                        hint: " (the node refused the client certificate: not signed by the \
                               cluster's OS CA, expired, or its extended key usage is not \
                               exactly clientAuth)",
                    },
                    None => TalosError::Unreachable {
                        node,
                        phase,
                        endpoint,
                        waited: if s.code() == Code::DeadlineExceeded {
                            self.opts.request_timeout
                        } else {
                            Duration::ZERO
                        },
                        detail: chain_text(&s),
                    },
                },
            };
        }
        match s.code() {
            Code::PermissionDenied | Code::Unauthenticated => TalosError::NotAuthorized {
                node,
                phase,
                why: match self.face {
                    Face::Maintenance => {
                        "the node is in maintenance mode, where clients without a certificate \
                         may only read and apply a configuration"
                    }
                    Face::Authenticated => {
                        "the client certificate's role (its Organization: os:admin, os:operator, \
                         os:reader, os:etcd:backup) does not allow this call"
                    }
                },
                message,
            },
            Code::FailedPrecondition => TalosError::NotReady {
                node,
                phase,
                message,
            },
            Code::Unimplemented => TalosError::Unimplemented {
                node,
                phase,
                message,
            },
            code => TalosError::Api {
                node,
                phase,
                code,
                message,
            },
        }
    }

    fn protocol(&self, phase: &'static str, detail: impl Into<String>) -> TalosError {
        TalosError::Protocol {
            node: self.node_label(),
            phase,
            detail: detail.into(),
        }
    }

    /// Polls [`Self::machine_status`] until the node reports `stage` (and, with `ready`, is
    /// ready), tolerating a node that is rebooting (connection refused or reset, handshake
    /// failures while it still serves the other API face). Backoff 250 ms doubling to 5 s.
    pub async fn wait_for_stage(
        &self,
        stage: Stage,
        ready: bool,
        timeout: Duration,
        cancel: impl Future<Output = ()>,
    ) -> Result<MachineStatus, TalosError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut delay = Duration::from_millis(250);
        let mut last = String::from("nothing yet");
        let mut unreachable: Option<String> = None;
        tokio::pin!(cancel);
        loop {
            let attempt = tokio::time::timeout_at(deadline.into(), self.machine_status());
            let res = tokio::select! {
                r = attempt => r.ok(),
                () = &mut cancel => {
                    return Err(TalosError::Cancelled { node: self.node_label(), phase: "waiting for stage" });
                }
            };
            match res {
                Some(Ok(st)) if st.stage == stage && (!ready || st.ready) => return Ok(st),
                Some(Ok(st)) => {
                    last = format!("stage {}, ready {}", st.stage, st.ready);
                    unreachable = None;
                }
                Some(Err(TalosError::Unreachable { detail, .. })) => {
                    last = format!("unreachable: {detail}");
                    unreachable = Some(detail);
                }
                Some(Err(e))
                    if e.is_retryable()
                        || matches!(e, TalosError::Tls { .. } | TalosError::Api { .. }) =>
                {
                    last = e.to_string();
                    unreachable = None;
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
            let now = Instant::now();
            if now >= deadline {
                if let Some(detail) = unreachable {
                    return Err(TalosError::Unreachable {
                        node: self.node_label(),
                        phase: "waiting for stage",
                        endpoint: self.endpoint.clone(),
                        waited: timeout,
                        detail,
                    });
                }
                return Err(TalosError::WaitTimeout {
                    node: self.node_label(),
                    want: if ready {
                        format!("{stage} (ready)")
                    } else {
                        stage.to_string()
                    },
                    waited: timeout,
                    last,
                });
            }
            let sleep = delay.min(deadline - now);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = &mut cancel => {
                    return Err(TalosError::Cancelled { node: self.node_label(), phase: "waiting for stage" });
                }
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// TCP + TLS to the endpoint, with the server name of the endpoint host.
#[derive(Clone)]
struct Connector {
    addr: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    timeout: Duration,
    last_failure: Arc<Mutex<Option<ConnectFailure>>>,
}

impl Connector {
    fn record(&self, f: Option<ConnectFailure>) {
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    async fn connect(
        &self,
    ) -> Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, io::Error> {
        let start = Instant::now();
        let attempt = async {
            let tcp = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| ConnectFailure::Io(e.to_string(), start.elapsed()))?;
            tcp.set_nodelay(true).ok();
            self.tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(tls_failure)
        };
        let res = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(ConnectFailure::Timeout(self.timeout)),
        };
        match res {
            Ok(s) => {
                self.record(None);
                Ok(TokioIo::new(s))
            }
            Err(f) => {
                let msg = match &f {
                    ConnectFailure::Io(m, _) | ConnectFailure::Tls(m, _) => m.clone(),
                    ConnectFailure::Timeout(d) => format!("timed out after {d:?}"),
                };
                self.record(Some(f));
                Err(io::Error::other(msg))
            }
        }
    }
}

/// A handshake error: rustls's text, and whether it was the server certificate we refused.
fn tls_failure(e: io::Error) -> ConnectFailure {
    let server_cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    ConnectFailure::Tls(e.to_string(), server_cert)
}

/// The text of a status and its sources ("transport error: connection reset …").
fn chain_text(s: &Status) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !s.message().is_empty() {
        parts.push(s.message().to_string());
    }
    let mut cur = std::error::Error::source(s);
    while let Some(e) = cur {
        let t = e.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = e.source();
    }
    if parts.is_empty() {
        format!("{:?}", s.code())
    } else {
        parts.join(": ")
    }
}

/// A TLS alert the server sent, somewhere in a transport error's sources.
fn alert_in_chain(s: &Status) -> Option<String> {
    let mut cur = std::error::Error::source(s);
    while let Some(e) = cur {
        let r = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r @ rustls::Error::AlertReceived(_)) = r {
            return Some(r.to_string());
        }
        cur = e.source();
    }
    // hyper/h2 may carry the rustls error only as text.
    let text = chain_text(s);
    text.find("received fatal alert")
        .map(|i| text[i..].to_string())
}
