//! The application controller's API client: requests go through the API server's own HTTP
//! handler over an in-memory connection (authentication, validation, server-side apply and
//! watches behave exactly as for any other client), without a socket.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::k8s::ApiServer;
use crate::k8s::tls::Identity;

/// What the controller's pod would send as its User-Agent (non-apply writes are recorded
/// under its first part, `argocd-application-controller`).
const USER_AGENT: &str = "argocd-application-controller/v3.5.1 (linux/amd64)";

/// A request that could not be made (the in-memory connection broke).
#[derive(Debug, thiserror::Error)]
#[error("the application controller's request {method} {path} failed: {reason}")]
pub struct ClientError {
    pub method: String,
    pub path: String,
    pub reason: String,
}

/// An answer: HTTP status and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The Status message of a failed request.
    pub fn message(&self) -> String {
        self.body["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {}", self.code), str::to_string)
    }
}

/// One connection to the API server, as the controller's service account.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    /// Connect as `system:serviceaccount:<ns>:argocd-application-controller`. The lab has
    /// no RBAC objects: the account is put in `system:masters` (the install manifest grants
    /// it every verb on every resource anyway).
    pub async fn connect(api: Arc<ApiServer>, ns: &str) -> Result<Client, ClientError> {
        let identity = Identity::User {
            name: format!("system:serviceaccount:{ns}:argocd-application-controller"),
            groups: vec![
                "system:masters".into(),
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
            ],
        };
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let svc = service_fn(move |req| {
            let (api, identity) = (api.clone(), identity.clone());
            async move {
                Ok::<_, std::convert::Infallible>(crate::k8s::api::handle(api, identity, req).await)
            }
        });
        tokio::spawn(async move {
            let _ = server::Builder::new()
                .serve_connection(TokioIo::new(theirs), svc)
                .await;
        });
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ours))
            .await
            .map_err(|e| ClientError {
                method: "CONNECT".into(),
                path: "/".into(),
                reason: e.to_string(),
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { sender })
    }

    /// Send one request; `body` with its content type.
    pub async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Answer, ClientError> {
        let err = |reason: String| ClientError {
            method: method.to_string(),
            path: path.to_string(),
            reason,
        };
        let mut b = hyper::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, "kubernetes.default.svc")
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header(hyper::header::ACCEPT, "application/json");
        let payload = match body {
            Some((ct, bytes)) => {
                b = b.header(hyper::header::CONTENT_TYPE, ct);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let req = b.body(Full::new(payload)).map_err(|e| err(e.to_string()))?;
        self.sender.ready().await.map_err(|e| err(e.to_string()))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| err(e.to_string()))?;
        let code = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| err(e.to_string()))?
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { code, body })
    }

    /// Server-side apply of `obj` at `path` as field manager `argocd-controller`, forcing
    /// conflicts (what Argo CD's server-side sync does).
    pub async fn apply(&mut self, path: &str, obj: &Value) -> Result<Answer, ClientError> {
        let body = serde_json::to_vec(obj).unwrap_or_default();
        self.send(
            hyper::Method::PATCH,
            &format!("{path}?fieldManager=argocd-controller&force=true"),
            Some(("application/apply-patch+yaml", body)),
        )
        .await
    }

    /// A JSON patch.
    pub async fn json_patch(&mut self, path: &str, ops: &Value) -> Result<Answer, ClientError> {
        let body = serde_json::to_vec(ops).unwrap_or_default();
        self.send(
            hyper::Method::PATCH,
            path,
            Some(("application/json-patch+json", body)),
        )
        .await
    }

    /// DELETE with a propagation policy.
    pub async fn delete(&mut self, path: &str, propagation: &str) -> Result<Answer, ClientError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation
        }))
        .unwrap_or_default();
        self.send(
            hyper::Method::DELETE,
            path,
            Some(("application/json", body)),
        )
        .await
    }
}
