//! Node objects as a Talos kubelet registers them, and their status as the kubelet (and the
//! node lifecycle controller) keep it: Ready follows the CNI, Unknown when the kubelet is gone.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::talos::cluster::ClusterNode;
use crate::talos::config::{MachineConfig, image_tag};

/// Kubernetes version when the config names no image (Talos 1.13's default line).
pub const DEFAULT_K8S_VERSION: &str = "v1.34.1";

/// The Kubernetes version of a component image (`…/kube-apiserver:v1.34.1`), else the default.
pub fn version_from(cfg: &MachineConfig, ptr: &str) -> String {
    cfg.str_at(ptr)
        .and_then(image_tag)
        .filter(|t| t.starts_with('v'))
        .unwrap_or(DEFAULT_K8S_VERSION)
        .to_string()
}

/// The CNI Talos deploys (`cluster.network.cni.name`, default flannel).
pub fn cni_name(cfg: &MachineConfig) -> String {
    cfg.str_at("/cluster/network/cni/name")
        .unwrap_or("flannel")
        .to_string()
}

/// What the kubelet posts when it registers.
pub fn registration(n: &ClusterNode) -> Value {
    let cp = n.config.is_control_plane();
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": n.hostname,
        "kubernetes.io/os": "linux",
    });
    if cp {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": n.hostname,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {},
    })
}

/// Live view of a Node's kubelet: its Talos node (if powered on) and cluster settings.
pub struct Kubelet<'a> {
    pub node: Option<&'a ClusterNode>,
    /// The pod network on this node is up (a CNI agent runs here, or the control seam said so).
    pub cni_ready: bool,
    /// The cilium-operator's agent-not-ready taint key, when it tainted this node.
    pub cilium_taint: Option<String>,
    /// When the cilium-operator posted NetworkUnavailable=False (CiliumIsUp), if it did.
    pub cilium_up: Option<String>,
}

fn condition(t: &str, status: &str, reason: &str, message: &str, since: &str) -> Value {
    json!({
        "type": t,
        "status": status,
        "lastHeartbeatTime": since,
        "lastTransitionTime": since,
        "reason": reason,
        "message": message,
    })
}

/// Fill `spec.taints` and `status` of a stored Node from the live state.
pub fn with_status(mut obj: Value, k: &Kubelet<'_>) -> Value {
    let since = obj["metadata"]["creationTimestamp"].clone();
    let since = since.as_str().unwrap_or_default();
    let running = k.node.is_some_and(ClusterNode::running);
    let mut taints = Vec::new();
    let ready = match k.node {
        Some(n) if running => {
            let cni = cni_name(&n.config);
            let net_ok = cni == "flannel" || k.cni_ready;
            if net_ok {
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    since,
                )
            } else {
                taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
                condition(
                    "Ready",
                    "False",
                    "KubeletNotReady",
                    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
                    since,
                )
            }
        }
        _ => {
            taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}));
            taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}));
            condition(
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                since,
            )
        }
    };
    let unknown = !running;
    let pressure = |t: &str, ok_reason: &str, ok_msg: &str| {
        if unknown {
            condition(
                t,
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                since,
            )
        } else {
            condition(t, "False", ok_reason, ok_msg, since)
        }
    };
    let mut conditions = json!([
        pressure(
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        pressure(
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        pressure(
            "PIDPressure",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        ready,
    ]);
    if let (Some(at), Some(list)) = (&k.cilium_up, conditions.as_array_mut()) {
        list.insert(
            0,
            condition(
                "NetworkUnavailable",
                "False",
                "CiliumIsUp",
                "Cilium is running on this node",
                at,
            ),
        );
    }
    if let Some(n) = k.node
        && n.config.is_control_plane()
        && n.config
            .doc
            .pointer("/cluster/allowSchedulingOnControlPlanes")
            .and_then(Value::as_bool)
            != Some(true)
    {
        taints.insert(
            0,
            json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}),
        );
    }
    if let Some(key) = &k.cilium_taint {
        taints.push(json!({"key": key, "effect": "NoSchedule"}));
    }
    if !taints.is_empty() {
        obj["spec"]["taints"] = json!(taints);
    } else if let Some(spec) = obj["spec"].as_object_mut() {
        spec.remove("taints");
    }
    let (ip, name, kubelet, os_image, boot) = match k.node {
        Some(n) => (
            n.node.ip,
            n.hostname.clone(),
            version_from(&n.config, "/machine/kubelet/image"),
            format!("Talos ({})", n.version),
            n.boots,
        ),
        None => (
            Ipv4Addr::UNSPECIFIED,
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            String::new(),
            String::new(),
            0,
        ),
    };
    let mut status = json!({
        "capacity": {"cpu": "2", "ephemeral-storage": "10218772Ki", "hugepages-2Mi": "0", "memory": "4025176Ki", "pods": "110"},
        "allocatable": {"cpu": "1950m", "ephemeral-storage": "9155497193", "hugepages-2Mi": "0", "memory": "3546968Ki", "pods": "110"},
        "conditions": conditions,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
    });
    if k.node.is_some() {
        status["addresses"] = json!([
            {"type": "InternalIP", "address": ip.to_string()},
            {"type": "Hostname", "address": name},
        ]);
        status["nodeInfo"] = json!({
            "architecture": "amd64",
            "bootID": format!("{:08x}-0000-4000-8000-{:012x}", boot, u64::from(u32::from(ip))),
            "containerRuntimeVersion": "containerd://2.1.4",
            "kernelVersion": "6.12.48-talos",
            "kubeProxyVersion": "",
            "kubeletVersion": kubelet,
            "machineID": format!("{:032x}", u128::from(u32::from(ip))),
            "operatingSystem": "linux",
            "osImage": os_image,
            "systemUUID": format!("{:08x}-0000-0000-0000-000000000000", u32::from(ip)),
        });
    } else if let Some(prev) = obj.get("status") {
        // A powered-off node keeps what its kubelet last posted.
        for f in ["addresses", "nodeInfo"] {
            if let Some(v) = prev.get(f) {
                status[f] = v.clone();
            }
        }
    }
    obj["status"] = status;
    obj
}
