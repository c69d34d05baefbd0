//! Small HTTP/1.1 server plumbing shared by the lab's endpoints (hyper + optional rustls).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub type Body = Full<Bytes>;
pub type Req = Request<hyper::body::Incoming>;
pub type Resp = Response<Body>;

/// Returned by a handler that wants the connection closed without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub struct DropConnection;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Resp, DropConnection>> + Send>>;
pub type Handler = Arc<dyn Fn(Req) -> HandlerFuture + Send + Sync>;

/// Largest request body the lab accepts.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Build a JSON response; `reason` sets a custom HTTP/1 reason phrase (PVE puts its error
/// message there).
pub fn json(status: StatusCode, reason: Option<&str>, body: &serde_json::Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Some(r) = reason {
        set_reason(&mut resp, r);
    }
    resp
}

/// An empty-bodied response with a reason phrase (PVE's 401 answers look like this).
pub fn empty(status: StatusCode, reason: &str) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    set_reason(&mut resp, reason);
    resp
}

fn set_reason(resp: &mut Resp, reason: &str) {
    let clean: String = reason
        .trim()
        .chars()
        .map(|c| {
            if c == '\t' || (' '..='~').contains(&c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(clean) {
        resp.extensions_mut().insert(rp);
    }
}

/// Read a whole request body, bounded by [`MAX_BODY`].
pub async fn read_body(body: hyper::body::Incoming) -> Result<Bytes, String> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(format!("unable to read request body: {e}")),
    }
}

/// Serve `handler` on `listener` until `shutdown` flips to true; then stop accepting and abort
/// open connections.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => serve_conn(TokioIo::new(s), handler, peer).await,
                            Err(e) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        },
                        None => serve_conn(TokioIo::new(stream), handler, peer).await,
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn serve_conn<I>(io: I, handler: Handler, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Req| {
        let h = handler.clone();
        async move { h(req).await }
    });
    if let Err(e) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc)
        .await
    {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// Adapt an infallible async fn into a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, DropConnection>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}
