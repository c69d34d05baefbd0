//! apid's routing of a call by its metadata (siderolabs/talos `apid/pkg/director`):
//! - no routing metadata, or `proxyfrom` (a call another apid forwarded): served here;
//! - `node: X` forwards the call to X; the answer passes through unchanged (one-to-one);
//! - `nodes: X, Y, …` sends it to each (one-to-many, only for the services apid lists) and
//!   merges the answers: every message gets `metadata.hostname` = the target as named, and a
//!   target's failure becomes a message carrying `metadata.error` and `metadata.status`.
//!
//! Forwarding dials the target's apid (port 50000) over mutual TLS: the target must present a
//! certificate from this node's OS CA, and this node presents an `os:impersonator` certificate
//! with the caller's roles in `talos-role`, so roles are checked where the call lands. In
//! maintenance mode nothing is forwarded (a target naming this node itself is served here).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::TokioIo;
use prost::Message;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::body::Body;
use tonic::codegen::http::request::Parts;
use tonic::codegen::http::{HeaderMap, HeaderValue, Request, Response};
use tonic::transport::Endpoint;
use tonic::{Code, Status};
use tower::ServiceExt;

use super::authz::{self, Caller};
use super::pki::ServerCert;
use super::proto::{common, google};
use crate::tls::provider;

/// Services apid fans out to several nodes.
const ONE_TO_MANY: &[&str] = &[
    "/machine.MachineService/",
    "/cluster.ClusterService/",
    "/inspect.InspectService/",
    "/storage.StorageService/",
    "/time.TimeService/",
];
/// Server-streaming methods of the lab: each frame of the answer is one message.
const STREAMED: &[&str] = &["/machine.MachineService/Kubeconfig"];
const APID_PORT: u16 = 50000;
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the lab's node with an address really listens (tests move nodes off port 50000).
pub type Endpoints = Arc<dyn Fn(IpAddr) -> Option<SocketAddr> + Send + Sync>;

/// How a node forwards calls; a maintenance-mode node has none.
pub struct Forwarder {
    local: Ipv4Addr,
    tls: Arc<ClientConfig>,
    endpoints: Endpoints,
}

impl Forwarder {
    pub fn new(
        local: Ipv4Addr,
        os_ca_der: &[u8],
        cert: ServerCert,
        endpoints: Endpoints,
    ) -> Result<Self, rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(os_ca_der.to_vec()))?;
        let mut c = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(cert.chain, cert.key)?;
        c.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            local,
            tls: Arc::new(c),
            endpoints,
        })
    }

    /// Send `req` to `target`'s apid; dial and handshake failures read as grpc-go's.
    async fn call(&self, target: &str, req: Request<Body>) -> Result<Response<Body>, Status> {
        let addr = resolve(target)?;
        let dial_to = match (self.endpoints)(addr.ip()) {
            Some(real) if addr.port() == APID_PORT => real,
            _ => addr,
        };
        let dial = |e: String| {
            Status::unavailable(format!(
                "connection error: desc = \"transport: Error while dialing: dial tcp {addr}: {e}\""
            ))
        };
        let tcp = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(dial_to))
            .await
            .map_err(|_| dial("i/o timeout".into()))?
            .map_err(|e| {
                dial(match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
                    _ => e.to_string(),
                })
            })?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "connection error: desc = \"transport: authentication handshake failed: {e}\""
                ))
            })?;
        // The connection is made above (for grpc-go's error texts); the channel takes it once.
        let slot = Arc::new(Mutex::new(Some(TokioIo::new(tls))));
        let channel = Endpoint::from_static("http://apid")
            .connect_with_connector(tower::service_fn(move |_| {
                let io = slot.lock().ok().and_then(|mut s| s.take());
                async move { io.ok_or_else(|| std::io::Error::other("connection already used")) }
            }))
            .await
            .map_err(|e| Status::unavailable(format!("connection error: desc = \"{e}\"")))?;
        channel
            .oneshot(req)
            .await
            .map_err(|e| Status::unavailable(format!("error reading from server: {e}")))
    }

    /// The forwarded request: routing metadata replaced by `proxyfrom` and the caller's roles.
    fn outgoing(&self, parts: &Parts, roles: &[authz::Role], body: Body) -> Request<Body> {
        let mut h = parts.headers.clone();
        for k in ["node", "nodes", authz::TALOS_ROLE, "proxyfrom"] {
            h.remove(k);
        }
        if let Ok(v) = HeaderValue::from_str(&self.local.to_string()) {
            h.insert("proxyfrom", v);
        }
        for r in roles {
            h.append(authz::TALOS_ROLE, HeaderValue::from_static(r.org()));
        }
        let mut req = Request::new(body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = parts.uri.clone();
        *req.headers_mut() = h;
        req
    }
}

/// `host[:port]` as apid dials it (port 50000 unless given).
fn resolve(target: &str) -> Result<SocketAddr, Status> {
    if let Ok(a) = target.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = target.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, APID_PORT));
    }
    let (host, port) = match target.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(APID_PORT)),
        None => (target, APID_PORT),
    };
    if host == "localhost" {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    Err(Status::unavailable(format!(
        "connection error: desc = \"transport: Error while dialing: dial tcp: lookup {host}: no such host\""
    )))
}

enum Route {
    Local,
    One(String),
    Many(Vec<String>),
}

/// Every value of a metadata key (repeated headers or comma-separated).
fn values(h: &HeaderMap, key: &str) -> Vec<String> {
    h.get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// apid's decision for one call.
fn plan(h: &HeaderMap, method: &str, local: Ipv4Addr, forwarding: bool) -> Result<Route, Status> {
    if h.contains_key("proxyfrom") {
        return Ok(Route::Local);
    }
    let node = values(h, "node");
    if node.len() > 1 {
        return Err(Status::invalid_argument(
            "node metadata must be single-valued",
        ));
    }
    let is_local = |t: &str| resolve(t).is_ok_and(|a| a.ip() == IpAddr::V4(local));
    let mut one = node.into_iter().next();
    let mut many = Some(values(h, "nodes")).filter(|n| !n.is_empty());
    if !forwarding {
        if one.as_deref().is_some_and(is_local) {
            one = None;
        }
        if many
            .as_ref()
            .is_some_and(|n| n.len() == 1 && is_local(&n[0]))
        {
            many = None;
        }
    }
    let no_forwarding = || Status::permission_denied("no request forwarding");
    if let Some(targets) = many {
        if !ONE_TO_MANY.iter().any(|p| method.starts_with(p)) {
            return Err(Status::invalid_argument(format!(
                "one-2-many proxying is not supported for method {method}"
            )));
        }
        return if forwarding {
            Ok(Route::Many(targets))
        } else {
            Err(no_forwarding())
        };
    }
    match one {
        Some(t) if forwarding => Ok(Route::One(t)),
        Some(_) => Err(no_forwarding()),
        None => Ok(Route::Local),
    }
}

/// The tower layer in front of a node's gRPC services.
#[derive(Clone)]
pub struct Director<S> {
    inner: S,
    local: Ipv4Addr,
    forward: Option<Arc<Forwarder>>,
}

impl<S> Director<S> {
    pub fn layer(
        local: Ipv4Addr,
        forward: Option<Arc<Forwarder>>,
    ) -> impl tower::Layer<S, Service = Director<S>> + Clone {
        tower::layer::layer_fn(move |inner| Director {
            inner,
            local,
            forward: forward.clone(),
        })
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S> tower::Service<Request<Body>> for Director<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> BoxFuture {
        // The readied service serves this call; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (local, forward) = (self.local, self.forward.clone());
        Box::pin(async move {
            let method = req.uri().path().to_owned();
            let route = plan(req.headers(), &method, local, forward.is_some());
            Ok(match (route, forward) {
                (Err(s), _) => s.into_http(),
                (Ok(Route::One(t)), Some(f)) => one(&f, &t, req).await,
                (Ok(Route::Many(ts)), Some(f)) => many(&f, &ts, &method, req).await,
                (Ok(_), _) => match inner.oneshot(req).await {
                    Ok(r) => r,
                    Err(e) => match e {},
                },
            })
        })
    }
}

/// The roles to forward: the caller's effective ones (impersonation already applied).
fn roles(req: &Request<Body>) -> Result<Vec<authz::Role>, Status> {
    let caller = req.extensions().get::<Caller>().cloned();
    let caller = caller.ok_or_else(authz::denied)?;
    let requested = req.headers().get_all(authz::TALOS_ROLE);
    authz::effective_roles(&caller, requested.iter().filter_map(|v| v.to_str().ok()))
}

async fn one(f: &Forwarder, target: &str, req: Request<Body>) -> Response<Body> {
    let roles = match roles(&req) {
        Ok(r) => r,
        Err(s) => return s.into_http(),
    };
    let (parts, body) = req.into_parts();
    let out = f.outgoing(&parts, &roles, body);
    f.call(target, out).await.unwrap_or_else(|s| s.into_http())
}

async fn many(
    f: &Forwarder,
    targets: &[String],
    method: &str,
    req: Request<Body>,
) -> Response<Body> {
    let roles = match roles(&req) {
        Ok(r) => r,
        Err(s) => return s.into_http(),
    };
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return Status::internal(e.to_string()).into_http(),
    };
    let streamed = STREAMED.contains(&method);
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    for t in targets {
        let out = f.outgoing(&parts, &roles, Body::new(Full::new(body.clone())));
        let answer = match f.call(t, out).await {
            Ok(resp) => messages_of(resp).await,
            Err(s) => Err(s),
        };
        match answer {
            Ok(ms) => {
                let meta = len_field(
                    1,
                    &common::Metadata {
                        hostname: t.clone(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                );
                for m in ms {
                    payloads.push(if streamed {
                        [meta.as_slice(), &m].concat()
                    } else {
                        tag_messages(&m, &meta)
                    });
                }
            }
            Err(s) => {
                let meta = len_field(1, &error_metadata(t, &s).encode_to_vec());
                payloads.push(if streamed { meta } else { len_field(1, &meta) });
            }
        }
    }
    // A unary answer is one message: concatenated encodings merge their `messages` lists.
    if !streamed {
        payloads = vec![payloads.concat()];
    }
    grpc_response(payloads)
}

/// How apid reports a target that failed.
fn error_metadata(target: &str, s: &Status) -> common::Metadata {
    common::Metadata {
        hostname: target.to_owned(),
        error: format!("rpc error: code = {:?} desc = {}", s.code(), s.message()),
        status: Some(google::rpc::Status {
            code: s.code() as i32,
            message: s.message().to_owned(),
            details: Vec::new(),
        }),
    }
}

/// The message payloads of a gRPC answer, or its error status.
async fn messages_of(resp: Response<Body>) -> Result<Vec<Vec<u8>>, Status> {
    if let Some(s) = Status::from_header_map(resp.headers()).filter(|s| s.code() != Code::Ok) {
        return Err(s);
    }
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| Status::unavailable(format!("error reading from server: {e}")))?;
    if let Some(s) = collected
        .trailers()
        .and_then(Status::from_header_map)
        .filter(|s| s.code() != Code::Ok)
    {
        return Err(s);
    }
    let data = collected.to_bytes();
    let mut out = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 5 {
        let n = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let Some(p) = rest.get(5..5 + n) else { break };
        out.push(p.to_vec());
        rest = &rest[5 + n..];
    }
    Ok(out)
}

/// An answer of gRPC frames with status OK.
fn grpc_response(payloads: Vec<Vec<u8>>) -> Response<Body> {
    let mut frames: Vec<Result<http_body::Frame<Bytes>, Infallible>> = payloads
        .into_iter()
        .map(|p| {
            let mut f = Vec::with_capacity(p.len() + 5);
            f.push(0);
            f.extend_from_slice(&(p.len() as u32).to_be_bytes());
            f.extend_from_slice(&p);
            Ok(http_body::Frame::data(Bytes::from(f)))
        })
        .collect();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    frames.push(Ok(http_body::Frame::trailers(trailers)));
    let mut resp = Response::new(Body::new(StreamBody::new(tokio_stream::iter(frames))));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    resp
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Field `n` (length-delimited) holding `bytes`.
fn len_field(n: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 6);
    put_varint(&mut out, (n << 3) | 2);
    put_varint(&mut out, bytes.len() as u64);
    out.extend_from_slice(bytes);
    out
}

/// A response with `meta` (an encoded field 1) put first into each of its `messages` (field
/// 1): a later field 1 merges into it, so a message's own metadata still wins per field.
fn tag_messages(payload: &[u8], meta: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + meta.len() * 2);
    let mut i = 0;
    while i < payload.len() {
        let start = i;
        let Some(key) = read_varint(payload, &mut i) else {
            break;
        };
        let end = match key & 7 {
            0 => read_varint(payload, &mut i).map(|_| i),
            1 => Some(i + 8),
            2 => read_varint(payload, &mut i).map(|n| i + n as usize),
            5 => Some(i + 4),
            _ => None,
        };
        let Some(end) = end.filter(|e| *e <= payload.len()) else {
            break;
        };
        if key == (1 << 3) | 2 {
            out.extend(len_field(1, &[meta, &payload[i..end]].concat()));
        } else {
            out.extend_from_slice(&payload[start..end]);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::talos::proto::machine as m;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                tonic::codegen::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);
    const VERSION: &str = "/machine.MachineService/Version";

    fn route(h: &[(&str, &str)], method: &str, forwarding: bool) -> Result<String, String> {
        plan(&headers(h), method, LOCAL, forwarding)
            .map(|r| match r {
                Route::Local => "local".to_owned(),
                Route::One(t) => format!("one {t}"),
                Route::Many(ts) => format!("many {}", ts.join(" ")),
            })
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }

    #[test]
    fn routes_as_apid_decides() {
        assert_eq!(route(&[], VERSION, true).as_deref(), Ok("local"));
        assert_eq!(
            route(&[("node", "127.0.0.8")], VERSION, true).as_deref(),
            Ok("one 127.0.0.8")
        );
        assert_eq!(
            route(
                &[("nodes", "127.0.0.8"), ("nodes", "127.0.0.7")],
                VERSION,
                true
            )
            .as_deref(),
            Ok("many 127.0.0.8 127.0.0.7")
        );
        assert_eq!(
            route(&[("nodes", "a,b")], VERSION, true).as_deref(),
            Ok("many a b")
        );
        assert_eq!(
            route(
                &[("node", "127.0.0.8"), ("proxyfrom", "127.0.0.1")],
                VERSION,
                true
            )
            .as_deref(),
            Ok("local")
        );
        assert_eq!(
            route(&[("node", "a"), ("node", "b")], VERSION, true),
            Err("InvalidArgument: node metadata must be single-valued".into())
        );
        assert_eq!(
            route(&[("nodes", "a")], "/cosi.resource.State/Get", true),
            Err("InvalidArgument: one-2-many proxying is not supported for method /cosi.resource.State/Get".into())
        );
        assert_eq!(
            route(&[("node", "127.0.0.8")], "/cosi.resource.State/Get", true).as_deref(),
            Ok("one 127.0.0.8")
        );
        // Maintenance: only the node itself.
        assert_eq!(
            route(&[("node", "127.0.0.9")], VERSION, false).as_deref(),
            Ok("local")
        );
        assert_eq!(
            route(&[("nodes", "127.0.0.9")], VERSION, false).as_deref(),
            Ok("local")
        );
        assert_eq!(
            route(&[("node", "127.0.0.8")], VERSION, false),
            Err("PermissionDenied: no request forwarding".into())
        );
        assert_eq!(
            route(
                &[("nodes", "127.0.0.9"), ("nodes", "127.0.0.8")],
                VERSION,
                false
            ),
            Err("PermissionDenied: no request forwarding".into())
        );
    }

    #[test]
    fn messages_are_tagged_with_their_node() {
        let resp = m::VersionResponse {
            messages: vec![m::Version {
                version: Some(m::VersionInfo {
                    tag: "v1.13.9".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let meta = len_field(
            1,
            &common::Metadata {
                hostname: "127.0.0.8".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let tagged = tag_messages(&resp.encode_to_vec(), &meta);
        let both = [tagged.clone(), tagged].concat();
        let merged = m::VersionResponse::decode(&both[..]).expect("decode");
        assert_eq!(merged.messages.len(), 2);
        for msg in &merged.messages {
            assert_eq!(
                msg.metadata.as_ref().map(|m| m.hostname.as_str()),
                Some("127.0.0.8")
            );
            assert_eq!(
                msg.version.as_ref().map(|v| v.tag.as_str()),
                Some("v1.13.9")
            );
        }
        let err = len_field(
            1,
            &len_field(
                1,
                &error_metadata("x", &Status::unavailable("down")).encode_to_vec(),
            ),
        );
        let r = m::VersionResponse::decode(&err[..]).expect("decode");
        let md = r.messages[0].metadata.clone().expect("metadata");
        assert_eq!(md.error, "rpc error: code = Unavailable desc = down");
        assert_eq!(md.status.map(|s| s.code), Some(Code::Unavailable as i32));
    }
}
