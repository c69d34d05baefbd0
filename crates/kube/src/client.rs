//! The connection to one API server: kube-rs over rustls (aws-lc-rs), a per-request time
//! limit, typed errors naming the server, and retries of idempotent requests.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::from_kube;
use crate::{Error, Kubeconfig};

/// Attempts of an idempotent request that fails transiently.
const ATTEMPTS: u32 = 4;
/// The first pause between attempts; it doubles.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// A Kubernetes API client built from a kubeconfig.
#[derive(Clone)]
pub struct Client {
    pub(crate) kube: kube::Client,
    pub(crate) server: String,
    pub(crate) timeout: Duration,
}

/// What the engine needs to know of a Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The Node's name.
    pub name: String,
    /// Whether its `Ready` condition is `True`.
    pub ready: bool,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: String,
    /// Its taints as "key=value:Effect" ("key:Effect" without a value).
    pub taints: Vec<String>,
}

impl Client {
    /// A client for the kubeconfig's current context; each request is limited to
    /// `request_timeout`. Must be called within a Tokio runtime (kube-rs spawns its buffer).
    pub fn new(kubeconfig: &Kubeconfig, request_timeout: Duration) -> Result<Client, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Transport(
                "Client::new must be called within a Tokio runtime".into(),
            ));
        }
        let uri: http::Uri = kubeconfig
            .server
            .parse()
            .map_err(|e| Error::Kubeconfig(format!("server \"{}\": {e}", kubeconfig.server)))?;
        let mut config = kube::Config::new(uri);
        config.root_cert = kubeconfig.ca_der.clone();
        config.accept_invalid_certs = kubeconfig.insecure;
        config.tls_server_name = kubeconfig.tls_server_name.clone();
        config.auth_info = kubeconfig.auth.clone();
        config.connect_timeout = Some(request_timeout);
        config.read_timeout = Some(request_timeout);
        config.write_timeout = Some(request_timeout);
        config.reset_reader_on_write = true;
        // We retry ourselves, only what is idempotent.
        config.default_retry = false;
        let kube = kube::Client::try_from(config).map_err(|e| match e {
            kube::Error::Auth(e) => Error::Kubeconfig(format!("user credentials: {e}")),
            other => Error::Transport(format!("client for {}: {other}", kubeconfig.server)),
        })?;
        Ok(Client {
            kube,
            server: kubeconfig.server.clone(),
            timeout: request_timeout,
        })
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// One request, limited in time, errors mapped (`verb` on `object` names it).
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        req: http::Request<Vec<u8>>,
        verb: &str,
        object: &str,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, self.kube.request::<T>(req)).await {
            Ok(r) => r.map_err(|e| from_kube(e, &self.server, verb, object)),
            Err(_) => Err(Error::no_answer(&self.server, self.timeout)),
        }
    }

    /// GET `path` as JSON; None on 404. Retried when transient.
    pub(crate) async fn get_json(&self, path: &str, object: &str) -> Result<Option<Value>, Error> {
        retry(object, || async {
            let req = http::Request::get(path)
                .body(Vec::new())
                .map_err(|e| Error::Transport(e.to_string()))?;
            match self.call::<Value>(req, "get", object).await {
                Ok(v) => Ok(Some(v)),
                Err(Error::Api { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Whether the API server reports itself ready (`/readyz`).
    pub async fn readyz(&self) -> Result<(), Error> {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| Error::Transport(e.to_string()))?;
        let fut = self.kube.request_text(req);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(from_kube(e, &self.server, "get", "/readyz")),
            Err(_) => Err(Error::no_answer(&self.server, self.timeout)),
        }
    }

    /// The cluster's Nodes.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        Ok(self
            .node_states()
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// The Nodes with their Ready condition as "Ready=Status (Reason: message)".
    pub(crate) async fn node_states(&self) -> Result<Vec<(NodeInfo, String)>, Error> {
        let list = self
            .get_json("/api/v1/nodes", "nodes")
            .await?
            .unwrap_or_default();
        Ok(list["items"]
            .as_array()
            .map(|items| items.iter().map(node_info).collect())
            .unwrap_or_default())
    }

    /// Deletes a Node; false when it did not exist.
    pub async fn delete_node(&self, name: &str) -> Result<bool, Error> {
        let object = format!("Node {name}");
        let path = format!("/api/v1/nodes/{name}");
        retry(&object, || async {
            let req = http::Request::delete(path.as_str())
                .body(Vec::new())
                .map_err(|e| Error::Transport(e.to_string()))?;
            match self.call::<Value>(req, "delete", &object).await {
                Ok(_) => Ok(true),
                Err(Error::Api { status: 404, .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }
}

/// A Node object's essentials and its Ready condition in words.
pub(crate) fn node_info(n: &Value) -> (NodeInfo, String) {
    let ready = n["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let ready_condition = match ready {
        Some(c) => format!(
            "Ready={} ({}: {})",
            c["status"].as_str().unwrap_or("Unknown"),
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        ),
        None => "no Ready condition yet".into(),
    };
    let taints = n["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let key = t["key"].as_str().unwrap_or_default();
                    let effect = t["effect"].as_str().unwrap_or_default();
                    match t["value"].as_str().filter(|v| !v.is_empty()) {
                        Some(v) => format!("{key}={v}:{effect}"),
                        None => format!("{key}:{effect}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let info = NodeInfo {
        name: n["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ready: ready.is_some_and(|c| c["status"] == "True"),
        kubelet_version: n["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        taints,
    };
    (info, ready_condition)
}

/// Runs `f` again while it fails transiently, up to `ATTEMPTS` times with doubling pauses.
pub(crate) async fn retry<T, F, Fut>(what: &str, mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut pause = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tracing::debug!(object = what, attempt, error = %e, "transient error; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_info_reads_ready_and_taints() {
        let (n, ready_condition) = node_info(&json!({"metadata": {"name": "cp-1"},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                                {"key": "k", "value": "v", "effect": "NoExecute"}]},
            "status": {"nodeInfo": {"kubeletVersion": "v1.34.1"},
                "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "cni"}]}}));
        assert_eq!(n.name, "cp-1");
        assert!(!n.ready);
        assert_eq!(n.kubelet_version, "v1.34.1");
        assert_eq!(
            n.taints,
            ["node.kubernetes.io/not-ready:NoSchedule", "k=v:NoExecute"]
        );
        assert_eq!(ready_condition, "Ready=False (KubeletNotReady: cni)");
    }

    #[test]
    fn client_needs_a_runtime() {
        let k = Kubeconfig::parse(
            "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
        )
        .expect("kubeconfig");
        let e = Client::new(&k, Duration::from_secs(1))
            .err()
            .expect("no runtime");
        assert!(matches!(e, Error::Transport(_)), "{e:?}");
    }

    #[tokio::test]
    async fn retry_gives_up_on_permanent_errors_at_once() {
        let mut calls = 0;
        let r: Result<(), Error> = retry("x", || {
            calls += 1;
            async { Err(Error::Transport("tls".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
