//! Names, labels and images every object group shares.

use serde_json::{Value, json};

use crate::resolve::Config;

/// Where Cilium runs.
pub(crate) const NAMESPACE: &str = "kube-system";
/// Where TLS secrets for policies, Ingress and Gateway API live.
pub(crate) const SECRETS_NAMESPACE: &str = "cilium-secrets";
/// The chart label value (`helm.sh/chart`).
pub(crate) const CHART: &str = "cilium-1.20.0";

/// The agent image (also its init containers).
pub(crate) const AGENT_IMAGE: &str = "quay.io/cilium/cilium:v1.20.0@sha256:383968cd5e8873f7976fa76aa6196045643558f4cc9518a207b9335cb24a0e93";
/// The generic operator image.
pub(crate) const OPERATOR_IMAGE: &str = "quay.io/cilium/operator-generic:v1.20.0@sha256:80744a8cc7c91c2f9e6347629406844eb35d79b30a732c6d41c15b17232a74f3";
/// The Envoy image Cilium 1.20.0 pins.
pub(crate) const ENVOY_IMAGE: &str = "quay.io/cilium/cilium-envoy:v1.37.5-1782911245-7cffc778c923f68a77954a53b1a98d6b5353f004@sha256:583057dd4f7d54cd41efff3c413aa0b148ac201f522e2c3336851fa89c78b039";

/// `app.kubernetes.io/part-of` and `helm.sh/chart`, the labels most objects carry.
pub(crate) fn part_of() -> Value {
    json!({"app.kubernetes.io/part-of": "cilium", "helm.sh/chart": CHART})
}

/// Metadata with the two common labels.
pub(crate) fn labelled(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({"name": name});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m["labels"] = part_of();
    m
}

/// The host cgroup2 mount the agent uses: Talos mounts it at /sys/fs/cgroup itself; elsewhere the
/// chart mounts its own at /run/cilium/cgroupv2.
pub(crate) fn cgroup_root(c: &Config) -> &'static str {
    if c.talos {
        "/sys/fs/cgroup"
    } else {
        "/run/cilium/cgroupv2"
    }
}

/// `KUBERNETES_SERVICE_HOST`/`PORT` environment entries when the API server is set explicitly.
pub(crate) fn k8s_service_env(c: &Config) -> Vec<Value> {
    match &c.k8s_service {
        Some((host, port)) => vec![
            json!({"name": "KUBERNETES_SERVICE_HOST", "value": host}),
            json!({"name": "KUBERNETES_SERVICE_PORT", "value": port.to_string()}),
        ],
        None => Vec::new(),
    }
}

/// The `K8S_NODE_NAME` and `CILIUM_K8S_NAMESPACE` entries from the downward API.
pub(crate) fn downward_env() -> Vec<Value> {
    vec![
        json!({"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}),
        json!({"name": "CILIUM_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}),
    ]
}

/// A ServiceAccount in kube-system (the chart gives them no labels).
pub(crate) fn service_account(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NAMESPACE}})
}

/// The capability set a container adds on top of dropping ALL.
pub(crate) fn caps(add: &[&str]) -> Value {
    json!({"add": add, "drop": ["ALL"]})
}

/// The SELinux type every privileged Cilium container runs as.
pub(crate) fn selinux() -> Value {
    json!({"level": "s0", "type": "spc_t"})
}
