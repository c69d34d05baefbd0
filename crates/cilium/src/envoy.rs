//! The Envoy DaemonSet (`cilium-envoy`) the L7 proxy runs in, with its bootstrap config, metrics
//! Service and ServiceAccount.

use serde_json::{Value, json};

use crate::meta::{self, CHART, ENVOY_IMAGE, NAMESPACE};
use crate::resolve::Config;

/// Envoy's bootstrap (admin socket, xDS over ADS from the agent, metrics and health listeners).
/// It depends only on chart values this builder does not expose, so it is one fixed text.
const BOOTSTRAP: &str = include_str!("../data/envoy-bootstrap-config.json");

fn probe(failure_threshold: u32, period: u32, initial_delay: u32) -> Value {
    json!({
        "httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": 9878, "scheme": "HTTP"},
        "failureThreshold": failure_threshold, "periodSeconds": period, "successThreshold": 1,
        "initialDelaySeconds": initial_delay, "timeoutSeconds": 5,
    })
}

/// The Envoy objects (none without the L7 proxy).
pub(crate) fn objects(c: &Config) -> Vec<Value> {
    if !c.envoy() {
        return Vec::new();
    }
    vec![
        config_map(),
        daemon_set(c),
        service(),
        meta::service_account("cilium-envoy"),
    ]
}

fn config_map() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cilium-envoy-config", "namespace": NAMESPACE},
        "data": {"bootstrap-config.json": BOOTSTRAP},
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "cilium-envoy",
            "namespace": NAMESPACE,
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9964"},
            "labels": {
                "k8s-app": "cilium-envoy", "app.kubernetes.io/name": "cilium-envoy",
                "app.kubernetes.io/part-of": "cilium", "helm.sh/chart": CHART, "io.cilium/app": "proxy",
            },
        },
        "spec": {
            "clusterIP": "None",
            "type": "ClusterIP",
            "selector": {"k8s-app": "cilium-envoy"},
            "ports": [{"name": "envoy-metrics", "port": 9964, "protocol": "TCP", "targetPort": 9964}],
        },
    })
}

fn daemon_set(c: &Config) -> Value {
    let mut env = meta::downward_env();
    env.extend(meta::k8s_service_env(c));
    let labels = json!({
        "k8s-app": "cilium-envoy", "name": "cilium-envoy", "app.kubernetes.io/name": "cilium-envoy",
        "app.kubernetes.io/part-of": "cilium", "helm.sh/chart": CHART,
    });
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "cilium-envoy",
            "namespace": NAMESPACE,
            "labels": {
                "k8s-app": "cilium-envoy", "app.kubernetes.io/part-of": "cilium",
                "app.kubernetes.io/name": "cilium-envoy", "name": "cilium-envoy", "helm.sh/chart": CHART,
            },
        },
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "cilium-envoy"}},
            "updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}, "type": "RollingUpdate"},
            "template": {
                // The chart leaves an empty `annotations:` (null) here.
                "metadata": {"annotations": null, "labels": labels},
                "spec": {
                    "securityContext": {"appArmorProfile": {"type": "Unconfined"}},
                    "containers": [{
                        "name": "cilium-envoy",
                        "image": ENVOY_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/usr/bin/cilium-envoy-starter"],
                        "args": ["--", "-c /var/run/cilium/envoy/bootstrap-config.json", "--base-id 0", "--log-level info"],
                        "startupProbe": {
                            "httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": 9878, "scheme": "HTTP"},
                            "failureThreshold": 105, "periodSeconds": 2, "successThreshold": 1,
                            "initialDelaySeconds": 5, "timeoutSeconds": 5,
                        },
                        "livenessProbe": probe(10, 30, 0),
                        "readinessProbe": probe(3, 30, 0),
                        "env": env,
                        "ports": [{"name": "envoy-metrics", "containerPort": 9964, "hostPort": 9964, "protocol": "TCP"}],
                        "securityContext": {"seLinuxOptions": meta::selinux(), "capabilities": meta::caps(&["NET_ADMIN", "SYS_ADMIN"])},
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": [
                            {"name": "envoy-sockets", "mountPath": "/var/run/cilium/envoy/sockets", "readOnly": false},
                            {"name": "envoy-artifacts", "mountPath": "/var/run/cilium/envoy/artifacts", "readOnly": true},
                            {"name": "envoy-config", "mountPath": "/var/run/cilium/envoy/", "readOnly": true},
                            {"name": "bpf-maps", "mountPath": "/sys/fs/bpf", "mountPropagation": "HostToContainer"},
                        ],
                    }],
                    "restartPolicy": "Always",
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "cilium-envoy",
                    "automountServiceAccountToken": true,
                    "terminationGracePeriodSeconds": 1,
                    "hostNetwork": true,
                    "hostUsers": true,
                    "affinity": {
                        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "cilium.io/no-schedule", "operator": "NotIn", "values": ["true"]}]},
                        ]}},
                        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": {"k8s-app": "cilium"}}, "topologyKey": "kubernetes.io/hostname"},
                        ]},
                        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": {"k8s-app": "cilium-envoy"}}, "topologyKey": "kubernetes.io/hostname"},
                        ]},
                    },
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],
                    "volumes": [
                        {"name": "envoy-sockets", "hostPath": {"path": "/var/run/cilium/envoy/sockets", "type": "DirectoryOrCreate"}},
                        {"name": "envoy-artifacts", "hostPath": {"path": "/var/run/cilium/envoy/artifacts", "type": "DirectoryOrCreate"}},
                        {"name": "envoy-config", "configMap": {
                            "name": "cilium-envoy-config", "defaultMode": 0o400,
                            "items": [{"key": "bootstrap-config.json", "path": "bootstrap-config.json"}],
                        }},
                        {"name": "bpf-maps", "hostPath": {"path": "/sys/fs/bpf", "type": "DirectoryOrCreate"}},
                    ],
                },
            },
        },
    })
}
