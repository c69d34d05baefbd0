//! The operator Deployment (`cilium-operator`).

use serde_json::{Map, Value, json};

use crate::meta::{self, CHART, NAMESPACE, OPERATOR_IMAGE};
use crate::resolve::Config;

fn labels() -> Value {
    json!({
        "io.cilium/app": "operator", "name": "cilium-operator", "app.kubernetes.io/part-of": "cilium",
        "app.kubernetes.io/name": "cilium-operator", "helm.sh/chart": CHART,
    })
}

fn probe(initial_delay: u32, period: u32, failure_threshold: Option<u32>) -> Value {
    let mut p = json!({
        "httpGet": {"host": "127.0.0.1", "path": "/healthz", "port": "health", "scheme": "HTTP"},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 3,
    });
    if let Some(f) = failure_threshold {
        p["failureThreshold"] = json!(f);
    }
    p
}

/// The operator Deployment.
pub(crate) fn deployment(c: &Config) -> Value {
    let mut env = meta::downward_env();
    env.push(json!({"name": "CILIUM_DEBUG", "valueFrom": {"configMapKeyRef": {"key": "debug", "name": "cilium-config", "optional": true}}}));
    env.extend(meta::k8s_service_env(c));

    let mut ports = vec![json!({"name": "health", "containerPort": 9234, "hostPort": 9234})];
    if c.operator_prometheus {
        ports.push(json!({"name": "prometheus", "containerPort": 9963, "hostPort": 9963, "protocol": "TCP"}));
    }

    // With one replica a rolling update may take the only pod down: the anti-affinity would
    // otherwise keep the new pod from starting on a single node.
    let strategy = if c.operator_replicas == 1 {
        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "100%"}, "type": "RollingUpdate"})
    } else {
        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "50%"}, "type": "RollingUpdate"})
    };

    // Scrape annotations only when no ServiceMonitor does the scraping; none at all leaves the
    // chart's empty `annotations:` (null).
    let annotations = if c.operator_prometheus && !c.service_monitors {
        let mut a = Map::new();
        a.insert("prometheus.io/port".into(), json!("9963"));
        a.insert("prometheus.io/scrape".into(), json!("true"));
        Value::Object(a)
    } else {
        Value::Null
    };

    let tolerations: Vec<Value> = [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
        "node.kubernetes.io/not-ready",
        "node.cloudprovider.kubernetes.io/uninitialized",
        "node.cilium.io/agent-not-ready",
    ]
    .iter()
    .map(|k| json!({"key": k, "operator": "Exists"}))
    .collect();

    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cilium-operator", "namespace": NAMESPACE, "labels": labels()},
        "spec": {
            "replicas": c.operator_replicas,
            "selector": {"matchLabels": {"io.cilium/app": "operator", "name": "cilium-operator"}},
            "strategy": strategy,
            "template": {
                "metadata": {"annotations": annotations, "labels": labels()},
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "cilium-operator",
                        "image": OPERATOR_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["cilium-operator-generic"],
                        "args": ["--config-dir=/tmp/cilium/config-map", "--debug=$(CILIUM_DEBUG)"],
                        "env": env,
                        "ports": ports,
                        "livenessProbe": probe(60, 10, None),
                        "readinessProbe": probe(0, 5, Some(5)),
                        "volumeMounts": [{"name": "cilium-config-path", "mountPath": "/tmp/cilium/config-map", "readOnly": true}],
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                    "hostNetwork": true,
                    "hostUsers": true,
                    "restartPolicy": "Always",
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "cilium-operator",
                    "automountServiceAccountToken": true,
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"io.cilium/app": "operator"}}, "topologyKey": "kubernetes.io/hostname"},
                    ]}},
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": tolerations,
                    "volumes": [{"name": "cilium-config-path", "configMap": {"name": "cilium-config"}}],
                },
            },
        },
    })
}
