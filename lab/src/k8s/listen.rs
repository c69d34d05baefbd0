//! Where an API server listens: exactly the cluster endpoint's address, or nowhere.
//!
//! A server on any other address would be one clients never reach (the kubeconfig names the
//! endpoint) or, worse, one that answers for someone else's address. So a bind that fails is
//! retried by the reconciler, logged as an error once it has failed for [`LOG_AFTER`], and
//! reported by `GET /k8s` under `failed` until it succeeds or the cluster no longer wants a
//! server.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How long binding may fail before it is logged as an error.
pub const LOG_AFTER: Duration = Duration::from_secs(2);

/// Why an API server is not listening.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    #[error("the cluster endpoint {endpoint:?} is not an https URL with a host: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error(
        "the cluster endpoint host {host} is not a 127.0.0.0/8 address or localhost; \
         the lab listens only on loopback: use a loopback address as the endpoint"
    )]
    NotLoopback { host: String },
    #[error(
        "cannot listen on {addr}: {reason} (another lab or demo holds it?); \
         the API server is not served anywhere else and is retried until the address is free"
    )]
    Taken { addr: SocketAddr, reason: String },
}

/// The address `endpoint` (`cluster.controlPlane.endpoint`) asks for.
pub fn address_of(endpoint: &str) -> Result<SocketAddr, ListenError> {
    let bad = |reason: String| ListenError::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let url = url::Url::parse(endpoint).map_err(|e| bad(e.to_string()))?;
    let host = url.host_str().ok_or_else(|| bad("no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(6443);
    let ip = match host {
        "localhost" => Ipv4Addr::LOCALHOST,
        h => match h.parse::<Ipv4Addr>() {
            Ok(ip) if ip.is_loopback() => ip,
            _ => {
                return Err(ListenError::NotLoopback {
                    host: host.to_string(),
                });
            }
        },
    };
    Ok(SocketAddr::from((ip, port)))
}

/// Bind exactly the endpoint's address.
pub async fn bind(endpoint: &str) -> Result<TcpListener, ListenError> {
    let addr = address_of(endpoint)?;
    TcpListener::bind(addr)
        .await
        .map_err(|e| ListenError::Taken {
            addr,
            reason: e.to_string(),
        })
}

/// A cluster whose API server could not listen.
#[derive(Debug, Clone)]
pub struct Failure {
    pub cluster_name: String,
    pub endpoint: String,
    pub error: ListenError,
    /// The first failure of this run of failures.
    pub since: Instant,
    /// Logged as an error already.
    pub logged: bool,
}

/// Failures by cluster key.
#[derive(Debug, Default)]
pub struct Failures(HashMap<String, Failure>);

impl Failures {
    /// Record a failed attempt; logs it once it has lasted [`LOG_AFTER`].
    pub fn record(&mut self, key: &str, cluster_name: &str, endpoint: &str, error: ListenError) {
        let now = Instant::now();
        let f = self.0.entry(key.to_string()).or_insert_with(|| Failure {
            cluster_name: cluster_name.to_string(),
            endpoint: endpoint.to_string(),
            error: error.clone(),
            since: now,
            logged: false,
        });
        if f.error != error || f.endpoint != endpoint {
            f.logged = false;
        }
        f.error = error;
        f.endpoint = endpoint.to_string();
        if !f.logged && now.duration_since(f.since) >= LOG_AFTER {
            f.logged = true;
            tracing::error!(
                cluster = key,
                endpoint,
                "the Kubernetes API server of cluster {cluster_name:?} is not running: {}",
                f.error
            );
        }
    }

    /// The server started (or is no longer wanted).
    pub fn clear(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// Keep only the failures of `keys`.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.0.retain(|k, _| keep(k));
    }

    /// The `failed` entries of `GET /k8s`, by cluster name.
    pub fn snapshot(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .0
            .iter()
            .map(|(key, f)| {
                json!({
                    "cluster_key": key,
                    "cluster_name": f.cluster_name,
                    "endpoint": f.endpoint,
                    "state": "failed",
                    "error": f.error.to_string(),
                    "failing_for_ms": f.since.elapsed().as_millis() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (a["cluster_name"].to_string(), a["cluster_key"].to_string())
                .cmp(&(b["cluster_name"].to_string(), b["cluster_key"].to_string()))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_have_an_address() {
        assert_eq!(
            address_of("https://127.9.0.10:6443"),
            Ok("127.9.0.10:6443".parse().expect("addr"))
        );
        assert_eq!(
            address_of("https://localhost"),
            Ok("127.0.0.1:443".parse().expect("addr"))
        );
        assert_eq!(
            address_of("https://10.0.0.5:6443"),
            Err(ListenError::NotLoopback {
                host: "10.0.0.5".into()
            })
        );
        assert!(matches!(
            address_of("not a url"),
            Err(ListenError::BadEndpoint { .. })
        ));
    }
}
