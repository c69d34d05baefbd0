//! A node's gRPC endpoint: one listener for the node's life, one tonic server per boot (the
//! TLS setup and the API depend on the mode), restarted whenever the node reboots.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::Connected;

use super::Talos;
use super::authz::{Caller, Mode, Role};
use super::cosi_api::CosiApi;
use super::director::{Director, Endpoints, Forwarder};
use super::machine_api::MachineApi;
use super::node::Node;
use super::proto::cosi::resource::state_server::StateServer;
use super::proto::machine::machine_service_server::MachineServiceServer;
use super::{pki, tls};

/// A TLS connection plus who is on the other end. Notifying `caller.kill` drops it (a fault:
/// the peer sees the connection reset mid-call).
pub struct Conn {
    io: TlsStream<TcpStream>,
    caller: Caller,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
    dead: bool,
}

impl Conn {
    fn new(io: TlsStream<TcpStream>, caller: Caller) -> Conn {
        let kill = caller.kill.clone();
        Conn {
            io,
            caller,
            killed: Box::pin(async move { kill.notified().await }),
            dead: false,
        }
    }

    /// True once the connection was killed: every read and write fails from then on.
    fn check_killed(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.dead && self.killed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        self.dead
    }
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "lab fault: connection dropped",
    )
}

impl Connected for Conn {
    type ConnectInfo = Caller;
    fn connect_info(&self) -> Caller {
        self.caller.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.check_killed(cx) {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.check_killed(cx) {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

const WAITING_FOR_TRUSTD: &str = "no control plane of the cluster can issue a certificate yet";

/// The TLS acceptor for the node's current mode. Workers have no OS CA key: like trustd, they
/// get their server cert from a control plane of the same cluster, and serve nothing until one
/// can issue it.
fn acceptor(talos: &Talos, node: &Node, mode: Mode) -> Result<TlsAcceptor, String> {
    let config = match mode {
        Mode::Maintenance => {
            let cert = pki::maintenance_cert(node.ip).map_err(|e| e.to_string())?;
            tls::maintenance(cert).map_err(|e| e.to_string())?
        }
        Mode::Running => {
            let cfg = node
                .state()
                .disk
                .config
                .clone()
                .ok_or("running without a config")?;
            let key = cfg
                .os_ca_key()
                .or_else(|| talos.cluster_ca_key(&cfg.cluster_key));
            // A worker's apid waits for trustd on a control plane to issue its certificate.
            let key = key.ok_or(WAITING_FOR_TRUSTD)?;
            let cert =
                pki::os_server_cert(node.ip, &cfg.os_ca_der, key).map_err(|e| e.to_string())?;
            tls::running(cert, &cfg.os_ca_der).map_err(|e| e.to_string())?
        }
    };
    Ok(TlsAcceptor::from(config))
}

/// How a running node forwards calls (`node`/`nodes` metadata): as apid, with an
/// `os:impersonator` certificate from the OS CA.
fn forwarder(talos: &Arc<Talos>, node: &Node) -> Option<Forwarder> {
    let cfg = node.state().disk.config.clone()?;
    let key = cfg
        .os_ca_key()
        .or_else(|| talos.cluster_ca_key(&cfg.cluster_key))?;
    let made = pki::impersonator_cert(&cfg.os_ca_der, key)
        .map_err(|e| e.to_string())
        .and_then(|cert| {
            let t = Arc::downgrade(talos);
            let endpoints: Endpoints = Arc::new(move |ip| {
                let nodes = t.upgrade()?.nodes();
                nodes
                    .iter()
                    .find(|n| IpAddr::V4(n.ip) == ip)
                    .map(|n| n.endpoint)
            });
            Forwarder::new(node.ip, &cfg.os_ca_der, cert, endpoints).map_err(|e| e.to_string())
        });
    match made {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(vmid = node.vmid, "talos node cannot forward calls: {e}");
            None
        }
    }
}

async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream, mode: Mode) -> Option<Conn> {
    let io = acceptor.accept(tcp).await.ok()?;
    let roles = match mode {
        Mode::Maintenance => vec![Role::Reader],
        Mode::Running => io
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(tls::roles_of)
            .unwrap_or_default(),
    };
    Some(Conn::new(
        io,
        Caller {
            mode,
            roles,
            kill: Default::default(),
        },
    ))
}

/// Serve the node until `stop` turns true.
pub async fn run(
    talos: Arc<Talos>,
    node: Arc<Node>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let listener = Arc::new(listener);
    let mut changes = node.serving_changes();
    loop {
        if *stop.borrow() {
            return;
        }
        changes.borrow_and_update();
        let mode = node.state().serving;
        let mut waiting = false;
        let acceptor = mode.and_then(|m| match acceptor(&talos, &node, m) {
            Ok(a) => Some((m, a)),
            Err(e) => {
                waiting = e == WAITING_FOR_TRUSTD;
                if !waiting {
                    tracing::warn!(vmid = node.vmid, "talos node cannot serve: {e}");
                }
                None
            }
        });
        let Some((mode, acceptor)) = acceptor else {
            // Down (rebooting, waiting for a certificate, or no usable TLS setup): connections
            // wait in the backlog. A worker asks the control planes again shortly.
            let retry = async {
                if waiting {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = retry => continue,
                _ = changes.changed() => continue,
                r = stop.changed() => {
                    if r.is_err() {
                        return;
                    }
                    continue;
                }
            }
        };
        let (tx, rx) = mpsc::channel::<Result<Conn, io::Error>>(16);
        let l = listener.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let (a, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Some(c) = handshake(a, tcp, mode).await {
                        let _ = tx.send(Ok(c)).await;
                    }
                });
            }
        });
        let machine = MachineApi::new(talos.clone(), node.clone());
        let cosi = CosiApi::new(talos.clone(), node.clone());
        let mut c2 = changes.clone();
        let mut s2 = stop.clone();
        let shutdown = async move {
            tokio::select! {
                _ = c2.changed() => {}
                _ = s2.changed() => {}
            }
        };
        let forward = (mode == Mode::Running)
            .then(|| forwarder(&talos, &node))
            .flatten()
            .map(Arc::new);
        let served = Server::builder()
            .layer(Director::layer(node.ip, forward))
            .add_service(MachineServiceServer::new(machine))
            .add_service(StateServer::new(cosi))
            .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
            .await;
        accepting.abort();
        // Wait until the accept task is gone: it holds the listener, and a reboot binds the
        // same address again right after this returns.
        let _ = accepting.await;
        if let Err(e) = served {
            tracing::warn!(vmid = node.vmid, "talos API server failed: {e}");
        }
    }
}
