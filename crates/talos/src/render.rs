//! Renders one node's machine config from the cluster spec, the node spec and the secrets.
//!
//! Talos ≤ 1.13: the v1alpha1 document carries everything; hostname and VIP go in
//! `HostnameConfig` / `Layer2VIPConfig` documents (the 1.13 schema has no `machine.network`).
//! Talos ≥ 1.14: v1alpha1 keeps machine type/token/ca/certSANs/features and cluster token/etcd;
//! the Kubernetes side moves into `Kube*Config` documents.
//! The output is a pure function of its inputs: the same secrets give byte-identical configs.

use std::fmt;
use std::net::IpAddr;

use serde_json::{Value, json};

use crate::patch::{Patch, PatchError, PatchSource, json_to_yaml};
use crate::pem::b64;
use crate::secrets::MachineSecrets;

/// The port KubePrism listens on for the in-cluster API endpoint (Cilium's k8sServicePort).
pub const KUBEPRISM_PORT: u16 = 7445;
const POD_SUBNET: &str = "10.244.0.0/16";
const SERVICE_SUBNET: &str = "10.96.0.0/12";
const DNS_DOMAIN: &str = "cluster.local";
/// Sidero's public discovery service, which Talos's generator configures by default.
const DISCOVERY_ENDPOINT: &str = "https://discovery.talos.dev/";

/// Why a machine config cannot be rendered: a bad input field, a patch, or YAML output.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("invalid {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error("serialising the config to YAML: {0}")]
    Yaml(String),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> RenderError {
    RenderError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// A Talos version, e.g. `v1.13.9` or `1.14.0-rc.1` (pre-release suffix ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TalosVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl TalosVersion {
    /// `v1.13.9`, `1.13` (patch 0) or `1.14.0-rc.1`; the error names `talos_version`.
    pub fn parse(text: &str) -> Result<Self, RenderError> {
        let bad = || {
            invalid(
                "talos_version",
                format!("{text:?} is not a version like v1.13.9"),
            )
        };
        let core = text.strip_prefix('v').unwrap_or(text);
        let core = core.split(['-', '+']).next().unwrap_or(core);
        let mut parts = core.split('.').map(|p| p.parse::<u32>().map_err(|_| bad()));
        let major = parts.next().ok_or_else(bad)??;
        let minor = parts.next().ok_or_else(bad)??;
        let patch = parts.next().unwrap_or(Ok(0))?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            major,
            minor,
            patch,
        })
    }

    /// Whether this version takes the multi-document Kubernetes config (1.14+).
    pub fn multidoc(&self) -> bool {
        (self.major, self.minor) >= (1, 14)
    }
}

impl fmt::Display for TalosVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A machine's role in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    ControlPlane,
    Worker,
}

/// Which CNI the rendered config prepares for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cni {
    /// No CNI from Talos, kube-proxy disabled, KubePrism on 7445: Cilium is installed later.
    Cilium,
    /// Talos's built-in Flannel and kube-proxy.
    Flannel,
}

/// A layer-2 shared VIP held by the control planes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub address: IpAddr,
    /// The interface that carries it, e.g. `eth0`.
    pub link: String,
}

/// What every machine of one cluster shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    /// `https://VIP-or-LB:6443`.
    pub endpoint: String,
    /// e.g. `1.34.1` (with or without `v`).
    pub kubernetes_version: String,
    pub install_disk: String,
    pub install_image: String,
    pub cni: Cni,
    pub vip: Option<Vip>,
    /// Applied to every node, in order, before the node's own patches.
    pub config_patches: Vec<String>,
}

/// One machine: its role, hostname, and what it adds to the cluster's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub role: Role,
    pub hostname: String,
    /// Overrides the cluster's install disk.
    pub install_disk: Option<String>,
    pub config_patches: Vec<String>,
}

fn check(cluster: &ClusterSpec, node: &NodeSpec) -> Result<String, RenderError> {
    if cluster.name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    let rest = cluster
        .endpoint
        .strip_prefix("https://")
        .ok_or_else(|| invalid("endpoint", "must start with https://"))?;
    let host_port = rest.trim_end_matches('/');
    if host_port.is_empty() || host_port.contains('/') || !host_port.contains(':') {
        return Err(invalid(
            "endpoint",
            "must be https://HOST:PORT, e.g. https://10.0.0.10:6443",
        ));
    }
    let k8s = cluster
        .kubernetes_version
        .strip_prefix('v')
        .unwrap_or(&cluster.kubernetes_version);
    if k8s.is_empty()
        || !k8s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
    {
        return Err(invalid("kubernetes_version", "must look like 1.34.1"));
    }
    if node.hostname.is_empty() {
        return Err(invalid("hostname", "must not be empty"));
    }
    if cluster.install_image.is_empty() {
        return Err(invalid("install.image", "must not be empty"));
    }
    if let Some(vip) = &cluster.vip
        && vip.link.is_empty()
    {
        return Err(invalid("vip.link", "must not be empty"));
    }
    Ok(format!("v{k8s}"))
}

fn kube_images(k8s: &str) -> [(&'static str, String); 5] {
    [
        ("kubelet", format!("ghcr.io/siderolabs/kubelet:{k8s}")),
        ("apiServer", format!("registry.k8s.io/kube-apiserver:{k8s}")),
        (
            "controllerManager",
            format!("registry.k8s.io/kube-controller-manager:{k8s}"),
        ),
        ("scheduler", format!("registry.k8s.io/kube-scheduler:{k8s}")),
        ("proxy", format!("registry.k8s.io/kube-proxy:{k8s}")),
    ]
}

fn image(images: &[(&'static str, String); 5], which: &str) -> String {
    images
        .iter()
        .find(|(k, _)| *k == which)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// `{crt, key}` with base64(PEM), the key empty on workers.
fn ca_pair(crt: &str, key: Option<&str>) -> Value {
    json!({"crt": b64(crt), "key": key.map(b64).unwrap_or_default()})
}

fn network_documents(cluster: &ClusterSpec, node: &NodeSpec) -> Vec<Value> {
    let mut docs = vec![json!({
        "apiVersion": "v1alpha1",
        "kind": "HostnameConfig",
        "hostname": node.hostname,
    })];
    if let (Some(vip), Role::ControlPlane) = (&cluster.vip, node.role) {
        docs.push(json!({
            "apiVersion": "v1alpha1",
            "kind": "Layer2VIPConfig",
            "name": vip.address.to_string(),
            "link": vip.link,
        }));
    }
    docs
}

fn v1alpha1_legacy(cluster: &ClusterSpec, node: &NodeSpec, s: &MachineSecrets, k8s: &str) -> Value {
    let cp = node.role == Role::ControlPlane;
    let images = kube_images(k8s);
    let cilium = cluster.cni == Cni::Cilium;
    let disk = node
        .install_disk
        .as_deref()
        .unwrap_or(&cluster.install_disk);
    let machine = json!({
        "type": if cp { "controlplane" } else { "worker" },
        "token": s.trustd_token,
        "ca": ca_pair(&s.os_ca.crt, cp.then_some(s.os_ca.key.as_str())),
        "certSANs": [],
        "kubelet": {
            "image": image(&images, "kubelet"),
            "defaultRuntimeSeccompProfileEnabled": true,
            "disableManifestsDirectory": true,
        },
        "install": {"disk": disk, "image": cluster.install_image, "wipe": false},
        // Talos's generator leaves rbac/apidCheckExtKeyUsage out for contracts > 1.11 (they are
        // always on); the hostname comes from our HostnameConfig document.
        "features": {
            "diskQuotaSupport": true,
            "kubePrism": {"enabled": true, "port": KUBEPRISM_PORT},
            "hostDNS": {"enabled": true, "forwardKubeDNSToHost": true},
        },
    });
    let mut c = serde_json::Map::new();
    c.insert("id".into(), json!(s.cluster_id));
    c.insert("secret".into(), json!(s.cluster_secret));
    c.insert("controlPlane".into(), json!({"endpoint": cluster.endpoint}));
    c.insert("clusterName".into(), json!(cluster.name));
    let mut network = json!({
        "dnsDomain": DNS_DOMAIN,
        "podSubnets": [POD_SUBNET],
        "serviceSubnets": [SERVICE_SUBNET],
    });
    if cilium {
        network["cni"] = json!({"name": "none"});
    }
    c.insert("network".into(), network);
    c.insert("token".into(), json!(s.bootstrap_token));
    if cp {
        c.insert(
            "secretboxEncryptionSecret".into(),
            json!(s.secretbox_encryption_secret),
        );
    }
    c.insert(
        "ca".into(),
        ca_pair(
            &s.kubernetes_ca.crt,
            cp.then_some(s.kubernetes_ca.key.as_str()),
        ),
    );
    if cp {
        c.insert(
            "aggregatorCA".into(),
            ca_pair(&s.aggregator_ca.crt, Some(&s.aggregator_ca.key)),
        );
        c.insert(
            "serviceAccount".into(),
            json!({"key": b64(&s.service_account_key)}),
        );
        c.insert(
            "apiServer".into(),
            json!({"image": image(&images, "apiServer")}),
        );
        c.insert(
            "controllerManager".into(),
            json!({"image": image(&images, "controllerManager")}),
        );
        c.insert(
            "scheduler".into(),
            json!({"image": image(&images, "scheduler")}),
        );
    }
    c.insert(
        "proxy".into(),
        if cilium {
            json!({"disabled": true})
        } else {
            json!({"image": image(&images, "proxy")})
        },
    );
    if cp {
        c.insert(
            "etcd".into(),
            json!({"ca": ca_pair(&s.etcd_ca.crt, Some(&s.etcd_ca.key))}),
        );
    }
    c.insert(
        "discovery".into(),
        json!({"enabled": true, "registries": {"kubernetes": {"disabled": true}, "service": {}}}),
    );
    json!({"version": "v1alpha1", "machine": machine, "cluster": Value::Object(c)})
}

fn doc(kind: &str, body: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("apiVersion".into(), json!("v1alpha1"));
    m.insert("kind".into(), json!(kind));
    if let Value::Object(fields) = body {
        m.extend(fields);
    }
    Value::Object(m)
}

fn multidoc(cluster: &ClusterSpec, node: &NodeSpec, s: &MachineSecrets, k8s: &str) -> Vec<Value> {
    let cp = node.role == Role::ControlPlane;
    let images = kube_images(k8s);
    let cilium = cluster.cni == Cni::Cilium;
    let disk = node
        .install_disk
        .as_deref()
        .unwrap_or(&cluster.install_disk);
    let mut cluster_v1 = json!({"token": s.bootstrap_token});
    if cp {
        cluster_v1["etcd"] = json!({"ca": ca_pair(&s.etcd_ca.crt, Some(&s.etcd_ca.key))});
    }
    let mut docs = vec![json!({
        "version": "v1alpha1",
        "machine": {
            "type": if cp { "controlplane" } else { "worker" },
            "token": s.trustd_token,
            "ca": ca_pair(&s.os_ca.crt, cp.then_some(s.os_ca.key.as_str())),
            "certSANs": [],
            "features": {"diskQuotaSupport": true},
        },
        "cluster": cluster_v1,
    })];
    docs.push(doc(
        "KubeClusterConfig",
        json!({"clusterName": cluster.name, "endpoint": cluster.endpoint}),
    ));
    docs.push(doc(
        "DiscoveryServiceConfig",
        json!({"name": "default", "endpoint": DISCOVERY_ENDPOINT}),
    ));
    docs.push(doc(
        "DiscoveryIdentityConfig",
        json!({"clusterID": s.cluster_id, "clusterSecret": s.cluster_secret}),
    ));
    docs.push(doc(
        "UnattendedInstall",
        json!({
            "installer": {"image": cluster.install_image},
            "provisioning": {
                "diskSelector": {"match": format!("disk.dev_path == {}", json!(disk))},
                "wipe": false,
            },
        }),
    ));
    docs.push(doc(
        "ResolverConfig",
        json!({"hostDNS": {"enabled": true, "forwardKubeDNSToHost": true}}),
    ));
    docs.push(doc(
        "KubeletConfig",
        json!({"image": image(&images, "kubelet"), "defaultRuntimeSeccompProfileEnabled": true}),
    ));
    docs.push(doc(
        "KubeNetworkConfig",
        json!({"dnsDomain": DNS_DOMAIN, "podSubnets": [POD_SUBNET], "serviceSubnets": [SERVICE_SUBNET]}),
    ));
    docs.push(doc("KubePrismConfig", json!({"port": KUBEPRISM_PORT})));
    // Kubernetes-side PEM in the Kube*Config documents is plain text, not base64 (Talos's
    // generator writes string(pem) there, unlike v1alpha1's byte fields).
    if !cp {
        docs.push(doc(
            "KubeAPIServerCAConfig",
            json!({"acceptedCAs": [s.kubernetes_ca.crt]}),
        ));
        return docs;
    }
    docs.push(doc(
        "KubeAPIServerCAConfig",
        json!({"issuingCA": {"cert": s.kubernetes_ca.crt, "key": s.kubernetes_ca.key}}),
    ));
    docs.push(doc(
        "KubeAggregatorCAConfig",
        json!({"issuingCA": {"cert": s.aggregator_ca.crt, "key": s.aggregator_ca.key}}),
    ));
    docs.push(doc(
        "KubeEtcdEncryptionConfig",
        json!({"config": {"resources": [{
            "providers": [{"secretbox": {"keys": [{"name": "key1", "secret": s.secretbox_encryption_secret}]}}],
            "resources": ["secrets"],
        }]}}),
    ));
    docs.push(doc(
        "KubeServiceAccountConfig",
        json!({"issuer": {"issuerURL": cluster.endpoint, "privateKey": s.service_account_key}}),
    ));
    for (kind, which) in [
        ("KubeAPIServerConfig", "apiServer"),
        ("KubeControllerManagerConfig", "controllerManager"),
        ("KubeSchedulerConfig", "scheduler"),
    ] {
        docs.push(doc(kind, json!({"image": image(&images, which)})));
    }
    let mut proxy = json!({"image": image(&images, "proxy")});
    if cilium {
        proxy["enabled"] = json!(false);
    }
    docs.push(doc("KubeProxyConfig", proxy));
    if !cilium {
        docs.push(doc("KubeFlannelCNIConfig", json!({})));
    }
    docs.push(doc("KubeCoreDNSConfig", json!({"enabled": true})));
    docs
}

/// The machine config documents for one node, patches applied (cluster's first, then the
/// node's). Exposed for the resource's plan-time checks and for tests.
pub fn render_documents(
    cluster: &ClusterSpec,
    node: &NodeSpec,
    secrets: &MachineSecrets,
    talos_version: &TalosVersion,
) -> Result<Vec<Value>, RenderError> {
    let k8s = check(cluster, node)?;
    let mut docs = if talos_version.multidoc() {
        multidoc(cluster, node, secrets, &k8s)
    } else {
        vec![v1alpha1_legacy(cluster, node, secrets, &k8s)]
    };
    docs.extend(network_documents(cluster, node));
    let sources = cluster
        .config_patches
        .iter()
        .enumerate()
        .map(|(index, p)| (PatchSource::Cluster { index }, p))
        .chain(node.config_patches.iter().enumerate().map(|(index, p)| {
            (
                PatchSource::Node {
                    hostname: node.hostname.clone(),
                    index,
                },
                p,
            )
        }));
    for (source, text) in sources {
        Patch::parse(text, &source)?.apply(&mut docs, &source)?;
    }
    Ok(docs)
}

/// Renders one node's machine config as YAML (documents separated by `---`).
pub fn render(
    cluster: &ClusterSpec,
    node: &NodeSpec,
    secrets: &MachineSecrets,
    talos_version: &TalosVersion,
) -> Result<String, RenderError> {
    let docs = render_documents(cluster, node, secrets, talos_version)?;
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let text = serde_norway::to_string(&json_to_yaml(d))
            .map_err(|e| RenderError::Yaml(e.to_string()))?;
        out.push_str(&text);
    }
    Ok(out)
}
