//! HTTPS to the Kubernetes API with a kubeconfig's CA and client certificate.

use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;

use super::kubeconfig::{Kubeconfig, KubeconfigError};

/// A Kubernetes API failure. Messages name the server and say what was being done.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    #[error("kubernetes client setup: {0}")]
    Config(String),
    /// No answer: refused, reset, TLS failure, timeout.
    #[error("{what}: the Kubernetes API at {server} is unreachable: {detail}")]
    Unreachable {
        what: &'static str,
        server: String,
        detail: String,
    },
    /// An answer other than success (the API server's `Status.message` when it sent one).
    #[error("{what}: the Kubernetes API answered {status}: {message}")]
    Api {
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("{what}: unexpected answer from the Kubernetes API: {detail}")]
    Protocol { what: &'static str, detail: String },
}

/// A Node as the cluster resource needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub ready: bool,
    pub kubelet_version: String,
}

#[derive(Deserialize)]
struct List<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Node {
    metadata: Meta,
    #[serde(default)]
    status: NodeStatus,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
}

#[derive(Deserialize, Default)]
struct NodeStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(rename = "nodeInfo", default)]
    node_info: NodeSystemInfo,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

#[derive(Deserialize, Default)]
struct NodeSystemInfo {
    #[serde(rename = "kubeletVersion", default)]
    kubelet_version: String,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    message: String,
}

/// A client for one API server.
#[derive(Clone)]
pub struct K8sClient {
    server: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for K8sClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn tls(k: &Kubeconfig) -> Result<ClientConfig, K8sError> {
    let provider = infraflux_tls::crypto_provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(k.ca_pem.as_bytes()) {
        let cert = cert.map_err(|_| K8sError::Config("the cluster CA is not PEM".into()))?;
        roots
            .add(cert)
            .map_err(|e| K8sError::Config(format!("the cluster CA is unusable: {e}")))?;
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(k.client_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| K8sError::Config("the client certificate is not PEM".into()))?;
    let key = PrivateKeyDer::from_pem_slice(k.client_key_pem.as_bytes())
        .map_err(|_| K8sError::Config("the client key is not PEM".into()))?;
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| K8sError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| K8sError::Config(format!("the client certificate is unusable: {e}")))
}

/// The innermost cause, which says what really happened ("connection refused").
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        last = s.to_string();
        cur = s.source();
    }
    last
}

impl K8sClient {
    pub fn new(k: &Kubeconfig, timeout: Duration) -> Result<Self, K8sError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls(k)?)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!(
                "terraform-provider-infraflux/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| K8sError::Config(e.to_string()))?;
        Ok(Self {
            server: k.server.clone(),
            http,
        })
    }

    async fn send(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, K8sError> {
        let resp = req.send().await.map_err(|e| K8sError::Unreachable {
            what,
            server: self.server.clone(),
            detail: chain_text(&e),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Status>(&body)
            .map(|s| s.message)
            .unwrap_or_else(|_| body.trim().chars().take(200).collect());
        Err(K8sError::Api {
            what,
            status,
            message,
        })
    }

    /// `GET /readyz`: Ok once the API server says it is ready.
    pub async fn readyz(&self) -> Result<(), K8sError> {
        const WHAT: &str = "API server readiness";
        self.send(WHAT, self.http.get(format!("{}/readyz", self.server)))
            .await
            .map(|_| ())
    }

    /// Every Node, sorted by name.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, K8sError> {
        const WHAT: &str = "list nodes";
        let resp = self
            .send(WHAT, self.http.get(format!("{}/api/v1/nodes", self.server)))
            .await?;
        let list: List<Node> = resp.json().await.map_err(|e| K8sError::Protocol {
            what: WHAT,
            detail: e.to_string(),
        })?;
        let mut out: Vec<NodeInfo> = list
            .items
            .into_iter()
            .map(|n| NodeInfo {
                ready: n
                    .status
                    .conditions
                    .iter()
                    .any(|c| c.kind == "Ready" && c.status == "True"),
                kubelet_version: n.status.node_info.kubelet_version,
                name: n.metadata.name,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes a Node; `false` when it did not exist.
    pub async fn delete_node(&self, name: &str) -> Result<bool, K8sError> {
        const WHAT: &str = "delete node";
        let url = format!("{}/api/v1/nodes/{name}", self.server);
        match self.send(WHAT, self.http.delete(url)).await {
            Ok(_) => Ok(true),
            Err(K8sError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
