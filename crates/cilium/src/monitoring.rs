//! Monitoring: the metrics Services, prometheus-operator ServiceMonitors and Grafana dashboards.

use serde_json::{Value, json};

use crate::meta::{CHART, NAMESPACE};
use crate::resolve::Config;

/// The chart's Grafana dashboards, verbatim (scripts/derive-cilium.py); each becomes a ConfigMap
/// of the same name with one `<name>.json` key.
const AGENT_DASHBOARDS: &[(&str, &str)] = &[(
    "cilium-dashboard",
    include_str!("../data/dashboards/cilium-dashboard.json"),
)];
const OPERATOR_DASHBOARDS: &[(&str, &str)] = &[(
    "cilium-operator-dashboard",
    include_str!("../data/dashboards/cilium-operator-dashboard.json"),
)];
const HUBBLE_DASHBOARDS: &[(&str, &str)] = &[
    (
        "hubble-dashboard",
        include_str!("../data/dashboards/hubble-dashboard.json"),
    ),
    (
        "hubble-dns-namespace",
        include_str!("../data/dashboards/hubble-dns-namespace.json"),
    ),
    (
        "hubble-l7-http-metrics-by-workload",
        include_str!("../data/dashboards/hubble-l7-http-metrics-by-workload.json"),
    ),
    (
        "hubble-network-overview-namespace",
        include_str!("../data/dashboards/hubble-network-overview-namespace.json"),
    ),
];

fn node_relabeling() -> Value {
    json!([{"action": "replace", "replacement": "${1}", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}])
}

fn service_monitor(name: &str, app_name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "cilium", "app.kubernetes.io/name": app_name, "helm.sh/chart": CHART},
        },
        "spec": spec,
    })
}

fn dashboard(name: &str, text: &str, k8s_app: &str, app_name: &str) -> Value {
    let mut data = serde_json::Map::new();
    data.insert(format!("{name}.json"), json!(text));
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                "k8s-app": k8s_app, "app.kubernetes.io/name": app_name, "app.kubernetes.io/part-of": "cilium",
                "helm.sh/chart": CHART, "grafana_dashboard": "1",
            },
        },
        "data": data,
    })
}

/// The monitoring objects for the options.
pub(crate) fn objects(c: &Config) -> Vec<Value> {
    let mut out = Vec::new();
    let agent_labels = json!({
        "k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent", "app.kubernetes.io/part-of": "cilium", "helm.sh/chart": CHART,
    });
    let envoy_port = json!({"name": "envoy-metrics", "port": 9964, "protocol": "TCP", "targetPort": "envoy-metrics"});
    if c.prometheus && c.service_monitors {
        let mut ports = vec![
            json!({"name": "metrics", "port": 9962, "protocol": "TCP", "targetPort": "prometheus"}),
        ];
        if !c.envoy() {
            ports.push(envoy_port);
        }
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "cilium-agent", "namespace": NAMESPACE, "labels": agent_labels},
            "spec": {"clusterIP": "None", "type": "ClusterIP", "selector": {"k8s-app": "cilium"}, "ports": ports},
        }));
        out.push(service_monitor(
            "cilium-agent",
            "cilium-agent",
            json!({
                "selector": {"matchLabels": {"app.kubernetes.io/name": "cilium-agent"}},
                "namespaceSelector": {"matchNames": [NAMESPACE]},
                "endpoints": [{"port": "metrics", "interval": "10s", "honorLabels": true, "path": "/metrics", "relabelings": node_relabeling()}],
                "targetLabels": ["k8s-app"],
            }),
        ));
    } else if c.prometheus && !c.envoy() {
        // Without the Envoy DaemonSet the agent serves Envoy's metrics; this Service exposes them.
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "cilium-agent",
                "namespace": NAMESPACE,
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9964"},
                "labels": agent_labels,
            },
            "spec": {"clusterIP": "None", "type": "ClusterIP", "selector": {"k8s-app": "cilium"}, "ports": [envoy_port]},
        }));
    }
    if c.operator_prometheus && c.service_monitors {
        let selector = json!({"io.cilium/app": "operator", "name": "cilium-operator"});
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "cilium-operator",
                "namespace": NAMESPACE,
                "labels": {
                    "io.cilium/app": "operator", "name": "cilium-operator", "app.kubernetes.io/part-of": "cilium",
                    "app.kubernetes.io/name": "cilium-operator", "helm.sh/chart": CHART,
                },
            },
            "spec": {
                "clusterIP": "None",
                "type": "ClusterIP",
                "ports": [{"name": "metrics", "port": 9963, "protocol": "TCP", "targetPort": "prometheus"}],
                "selector": selector,
            },
        }));
        out.push(service_monitor(
            "cilium-operator",
            "cilium-operator",
            json!({
                "selector": {"matchLabels": selector},
                "namespaceSelector": {"matchNames": [NAMESPACE]},
                "endpoints": [{"port": "metrics", "interval": "10s", "honorLabels": true, "path": "/metrics"}],
                "targetLabels": ["io.cilium/app"],
            }),
        ));
    }
    if c.hubble_metrics_on() && c.service_monitors {
        out.push(service_monitor(
            "hubble",
            "hubble",
            json!({
                "selector": {"matchLabels": {"k8s-app": "hubble"}},
                "namespaceSelector": {"matchNames": [NAMESPACE]},
                "endpoints": [{
                    "port": "hubble-metrics", "interval": "10s", "honorLabels": true, "path": "/metrics",
                    "scheme": "http", "relabelings": node_relabeling(),
                }],
            }),
        ));
    }
    if c.dashboards {
        for (name, text) in AGENT_DASHBOARDS {
            out.push(dashboard(name, text, "cilium", "cilium-agent"));
        }
        for (name, text) in OPERATOR_DASHBOARDS {
            out.push(dashboard(name, text, "cilium", "cilium-operator"));
        }
        if c.hubble_metrics_on() {
            for (name, text) in HUBBLE_DASHBOARDS {
                out.push(dashboard(name, text, "hubble", "hubble"));
            }
        }
    }
    out
}
