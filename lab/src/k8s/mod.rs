//! Simulated Kubernetes API servers, one per Talos cluster: up while the cluster is
//! bootstrapped and one of its control planes runs, at the cluster endpoint (or, when that
//! address cannot be bound, 127.0.0.1 on an ephemeral port, reported by `GET /k8s`).
//!
//! - [`tls`]: serving cert from the cluster's Kubernetes CA, x509 client authentication;
//! - [`api`]: health, version, discovery, CRUD, patch, watch, tables with real Status errors;
//! - [`store`]: the cluster's objects (kept across API server restarts);
//! - [`controllers`]: kubelets and controllers (Nodes, workloads, Cilium, garbage
//!   collection, namespaces, CRDs, Argo CD's application controller).

pub mod api;
pub mod controllers;
pub mod openapi;
pub mod proto;
pub mod ssa;
pub mod store;
pub mod structural;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::talos::Talos;
use crate::talos::cluster::ClusterNode;
use controllers::nodes;
use store::Store;
use tls::{ApiTls, Identity};

/// One running API server.
pub struct ApiServer {
    pub key: String,
    pub cluster_name: String,
    /// `cluster.controlPlane.endpoint` as configured.
    pub endpoint: String,
    /// Where it actually listens.
    pub bound: SocketAddr,
    pub store: Arc<Store>,
    /// gitVersion (`cluster.apiServer.image` tag).
    pub version: String,
    talos: Arc<Talos>,
    /// Each Node's last posted status (Ready condition and taints): a change is an update.
    node_status: Mutex<HashMap<String, Value>>,
}

impl ApiServer {
    /// The `/version` document.
    pub fn version_info(&self) -> Value {
        let v = self.version.trim_start_matches('v');
        let mut parts = v.split('.');
        let major = parts.next().unwrap_or("1").to_string();
        let minor = parts.next().unwrap_or("0").to_string();
        json!({
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": (minor.parse::<u32>().unwrap_or(1).saturating_sub(1)).to_string(),
            "gitVersion": self.version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-09-09T00:00:00Z",
            "goVersion": "go1.24.6",
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }
}

struct Running {
    api: Arc<ApiServer>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Every cluster's API server and store.
pub struct K8s {
    talos: Arc<Talos>,
    stores: Mutex<HashMap<String, Arc<Store>>>,
    running: Mutex<HashMap<String, Running>>,
    /// Clusters whose API server is kept down (a restart fault) until then.
    down_until: Mutex<HashMap<String, std::time::Instant>>,
    /// Serialises reconciling with faults that stop servers.
    reconciling: tokio::sync::Mutex<()>,
    /// The repositories Argo CD's simulated application controller can read.
    git_repos: Arc<Vec<controllers::argocd::GitRepo>>,
}

impl K8s {
    /// `git_repos`: what Argo CD's simulated application controller can read.
    pub fn new(talos: Arc<Talos>, git_repos: Vec<controllers::argocd::GitRepo>) -> Arc<K8s> {
        Arc::new(K8s {
            git_repos: Arc::new(git_repos),
            talos,
            stores: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            down_until: Mutex::new(HashMap::new()),
            reconciling: tokio::sync::Mutex::new(()),
        })
    }

    /// Fault: the cluster's API server goes away now (its listener closes, so connections are
    /// refused; open connections and watches end) and the reconciler starts it again after
    /// `down_ms`, with the same store. On a server already held down this only moves the end
    /// of the outage (`down_ms: 0` brings it back at once). False if it neither runs nor is
    /// held down.
    pub async fn restart(&self, key: &str, down_ms: u64) -> bool {
        let _one = self.reconciling.lock().await;
        let was_down = self.held_down(key);
        let r = self.running().remove(key);
        if r.is_none() && !was_down {
            return false;
        }
        self.down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key.to_string(),
                std::time::Instant::now() + Duration::from_millis(down_ms),
            );
        if let Some(r) = r {
            stop(r).await;
        }
        true
    }

    fn held_down(&self, key: &str) -> bool {
        let mut down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        match down.get(key) {
            Some(t) if *t > std::time::Instant::now() => true,
            Some(_) => {
                down.remove(key);
                false
            }
            None => false,
        }
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cluster's store (created on first use): one per bootstrap of its etcd, so a cluster
    /// bootstrapped again starts empty.
    pub fn store(&self, key: &str) -> Arc<Store> {
        let generation = self.talos.etcd_generation(key);
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(format!("{key}#{generation}"))
            .or_insert_with(|| Arc::new(Store::new()))
            .clone()
    }

    /// Follow the Talos nodes until `shutdown`: start and stop API servers, let kubelets
    /// register, let etcd members join.
    pub fn spawn(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let k8s = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tokio::select! {
                    _ = tick.tick() => k8s.reconcile().await,
                    _ = shutdown.changed() => break,
                }
            }
            let all: Vec<Running> = k8s.running().drain().map(|(_, r)| r).collect();
            for r in all {
                stop(r).await;
            }
        })
    }

    async fn reconcile(self: &Arc<Self>) {
        let _one = self.reconciling.lock().await;
        self.talos.sync();
        let mut want = Vec::new();
        for key in self.talos.cluster_keys() {
            let nodes = self.talos.cluster(&key);
            let cp_up = nodes
                .iter()
                .any(|n| n.running() && n.config.is_control_plane());
            let delay = std::time::Duration::from_millis(self.talos.opts.apiserver_delay_ms);
            let started = self.running().contains_key(&key);
            let old_enough = started
                || self
                    .talos
                    .bootstrapped_for(&key)
                    .is_some_and(|d| d >= delay);
            if cp_up && old_enough && self.talos.cluster_bootstrapped(&key) && !self.held_down(&key)
            {
                want.push((key, nodes));
            }
        }
        let stale: Vec<String> = self
            .running()
            .keys()
            .filter(|k| !want.iter().any(|(w, _)| w == *k))
            .cloned()
            .collect();
        for k in stale {
            let r = self.running().remove(&k);
            if let Some(r) = r {
                stop(r).await;
            }
        }
        for (key, nodes) in want {
            let up = self.running().get(&key).map(|r| r.api.clone());
            match up {
                Some(api) => {
                    api.sync_nodes();
                    api.collect_garbage();
                }
                None => {
                    if let Some(r) = self.start(&key, &nodes).await {
                        r.api.sync_nodes();
                        self.running().insert(key, r);
                    }
                }
            }
        }
    }

    async fn start(&self, key: &str, nodes: &[ClusterNode]) -> Option<Running> {
        let cp = nodes
            .iter()
            .find(|n| n.running() && n.config.is_control_plane())?;
        let cfg = &cp.config;
        let url = url::Url::parse(&cfg.endpoint).ok()?;
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(6443);
        let ip = match host.as_str() {
            "localhost" => Some(Ipv4Addr::LOCALHOST),
            h => h.parse::<Ipv4Addr>().ok(),
        };
        let listener = match ip.filter(Ipv4Addr::is_loopback) {
            Some(ip) => match TcpListener::bind(SocketAddr::from((ip, port))).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(%ip, port, "cannot bind the API server: {e}; using 127.0.0.1");
                    None
                }
            },
            None => None,
        };
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .ok()?,
        };
        let bound = listener.local_addr().ok()?;
        let service_ip = cfg
            .doc
            .pointer("/cluster/network/serviceSubnets/0")
            .and_then(Value::as_str)
            .and_then(|s| s.split('/').next())
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .map(|ip| Ipv4Addr::from(u32::from(ip) + 1))
            .unwrap_or(Ipv4Addr::new(10, 96, 0, 1));
        let cp_ips: Vec<IpAddr> = nodes
            .iter()
            .filter(|n| n.config.is_control_plane())
            .map(|n| IpAddr::V4(n.node.ip))
            .collect();
        let sans = tls::server_sans(&host, &cp_ips, IpAddr::V4(service_ip));
        let api_tls = match ApiTls::new(cfg, sans) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                tracing::warn!(key, "the API server cannot serve: {e}");
                return None;
            }
        };
        let api = Arc::new(ApiServer {
            key: key.to_string(),
            cluster_name: cfg.cluster_name.clone(),
            endpoint: cfg.endpoint.clone(),
            bound,
            store: self.store(key),
            version: nodes::version_from(cfg, "/cluster/apiServer/image"),
            talos: self.talos.clone(),
            node_status: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = watch::channel(false);
        // In-cluster controllers that are API clients run while the server does.
        let argocd = controllers::argocd::run(api.clone(), self.git_repos.clone(), rx.clone());
        let served = serve(listener, api_tls, api.clone(), rx);
        let task = tokio::spawn(async move {
            tokio::join!(served, argocd);
        });
        Some(Running {
            api,
            stop: tx,
            task,
        })
    }

    /// The `GET /k8s` document.
    pub fn snapshot(&self) -> Value {
        let mut servers: Vec<Value> = self
            .running()
            .values()
            .map(|r| {
                let nodes = store::kind("nodes").expect("nodes");
                let (items, _) = r.api.store.list(nodes, None);
                let names: Vec<Value> = items
                    .iter()
                    .map(|n| n["metadata"]["name"].clone())
                    .collect();
                // As clients see them (the Ready condition is computed when read).
                let ready: Vec<Value> = items
                    .into_iter()
                    .map(|n| r.api.node_view(n))
                    .filter(|n| {
                        n["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                    })
                    .map(|n| n["metadata"]["name"].clone())
                    .collect();
                json!({
                    "cluster_key": r.api.key,
                    "cluster_name": r.api.cluster_name,
                    "endpoint": r.api.endpoint,
                    "bound": format!("https://{}", r.api.bound),
                    "version": r.api.version,
                    "nodes": names,
                    "ready_nodes": ready,
                })
            })
            .collect();
        servers.sort_by(|a, b| {
            a["cluster_name"]
                .to_string()
                .cmp(&b["cluster_name"].to_string())
        });
        json!({ "apiservers": servers })
    }

    /// Mark a cluster's pod network ready (what a CNI install achieves); `false` undoes it.
    pub fn set_cni_ready(&self, key: &str, ready: bool) {
        *self
            .store(key)
            .cni_ready
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = ready;
    }
}

async fn stop(r: Running) {
    let _ = r.stop.send(true);
    let abort = r.task.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), r.task)
        .await
        .is_err()
    {
        abort.abort();
    }
}

async fn serve(
    listener: TcpListener,
    tls: Arc<ApiTls>,
    api: Arc<ApiServer>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls.config.clone());
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tls, api) = (acceptor.clone(), tls.clone(), api.clone());
                conns.spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let identity: Identity = tls.identify(stream.get_ref().1.peer_certificates());
                    let svc = service_fn(move |req| {
                        let (api, identity) = (api.clone(), identity.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(api::handle(api, identity, req).await)
                        }
                    });
                    if let Err(e) = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await
                    {
                        tracing::debug!(%peer, "API connection ended: {e}");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}
