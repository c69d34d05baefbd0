//! Hubble: the peer Service, the TLS Secrets, hubble-relay, hubble-ui and the metrics Service.

use serde_json::{Value, json};

use crate::certs::{CertKey, Certificates};
use crate::meta::{self, CHART, NAMESPACE};
use crate::rbac;
use crate::resolve::Config;

const RELAY_IMAGE: &str = "quay.io/cilium/hubble-relay:v1.20.0@sha256:2ca16981c7eb98df0ba9c9d18896bb9ca628b5cbd40dc9801339f4741f91ee94";
const UI_IMAGE: &str = "quay.io/cilium/hubble-ui:v0.13.5@sha256:f7d514fc54d784ed6df9d58cf0e97648b143f92b766dd1780ed3fc845bd4c516";
const UI_BACKEND_IMAGE: &str = "quay.io/cilium/hubble-ui-backend:v0.13.5@sha256:fac0c300ae119274edca11fd89b1ad23c788792d8bc4ea2ba631c709e8d3c688";
/// hubble-ui's nginx server block (fixed for the options this builder exposes).
const UI_NGINX_CONF: &str = include_str!("../data/hubble-ui-nginx.conf");

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The `cilium-ca` Secret (present whenever Hubble TLS is: the chart's CA signs its certificates).
pub(crate) fn ca_secret(certs: &Certificates) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "cilium-ca",
            "namespace": NAMESPACE,
            "labels": {"cilium.io/helm-template-non-idempotent": "true"},
        },
        "data": {"ca.crt": b64(&certs.ca.cert_pem), "ca.key": b64(&certs.ca.key_pem)},
    })
}

fn tls_secret(name: &str, ca: &CertKey, leaf: &CertKey) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"cilium.io/helm-template-non-idempotent": "true"},
            // The chart leaves an empty `annotations:` (null).
            "annotations": null,
        },
        "type": "kubernetes.io/tls",
        "data": {"ca.crt": b64(&ca.cert_pem), "tls.crt": b64(&leaf.cert_pem), "tls.key": b64(&leaf.key_pem)},
    })
}

fn labels(app: &str) -> Value {
    json!({"k8s-app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "cilium", "helm.sh/chart": CHART})
}

/// Every Hubble object for the options.
pub(crate) fn objects(c: &Config, certs: &Certificates) -> Vec<Value> {
    if !c.hubble {
        return Vec::new();
    }
    let mut out = vec![
        ca_secret(certs),
        tls_secret("hubble-server-certs", &certs.ca, &certs.hubble_server),
        peer_service(),
    ];
    if c.hubble_metrics_on() {
        out.push(metrics_service(c));
    }
    if c.hubble_relay {
        out.extend(relay(certs));
    }
    if c.hubble_ui {
        out.extend(ui());
    }
    out
}

fn peer_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "hubble-peer",
            "namespace": NAMESPACE,
            "labels": {
                "k8s-app": "cilium", "app.kubernetes.io/part-of": "cilium",
                "app.kubernetes.io/name": "hubble-peer", "helm.sh/chart": CHART,
            },
        },
        "spec": {
            "selector": {"k8s-app": "cilium"},
            "ports": [{"name": "peer-service", "port": 443, "protocol": "TCP", "targetPort": 4244}],
            "internalTrafficPolicy": "Local",
        },
    })
}

fn metrics_service(c: &Config) -> Value {
    // Scrape annotations unless a ServiceMonitor scrapes it; none leaves the chart's empty
    // `annotations:` (null).
    let annotations = if c.service_monitors {
        Value::Null
    } else {
        json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9965"})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "hubble-metrics",
            "namespace": NAMESPACE,
            "labels": labels("hubble"),
            "annotations": annotations,
        },
        "spec": {
            "clusterIP": "None",
            "type": "ClusterIP",
            "ports": [{"name": "hubble-metrics", "port": 9965, "protocol": "TCP", "targetPort": "hubble-metrics"}],
            "selector": {"k8s-app": "cilium"},
        },
    })
}

/// hubble-relay's configuration file.
fn relay_config() -> String {
    [
        "cluster-name: default",
        "peer-service: \"hubble-peer.kube-system.svc.cluster.local.:443\"",
        "listen-address: :4245",
        "gops: true",
        "gops-port: \"9893\"",
        "retry-timeout:",
        "sort-buffer-len-max:",
        "sort-buffer-drain-timeout:",
        "tls-hubble-client-cert-file: /var/lib/hubble-relay/tls/client.crt",
        "tls-hubble-client-key-file: /var/lib/hubble-relay/tls/client.key",
        "tls-hubble-server-ca-files: /var/lib/hubble-relay/tls/hubble-server-ca.crt",
        "",
        "disable-server-tls: true",
        "",
    ]
    .join("\n")
}

fn relay(certs: &Certificates) -> Vec<Value> {
    let grpc_probe = |extra: Value| {
        let mut p = json!({"grpc": {"port": 4222}});
        if let (Some(p), Value::Object(e)) = (p.as_object_mut(), extra) {
            p.extend(e);
        }
        p
    };
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hubble-relay", "namespace": NAMESPACE, "labels": labels("hubble-relay")},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"k8s-app": "hubble-relay"}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 1}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"annotations": null, "labels": labels("hubble-relay")},
                "spec": {
                    "securityContext": {"fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "hubble-relay",
                        "securityContext": {
                            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": true, "runAsGroup": 65532, "runAsNonRoot": true,
                            "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "image": RELAY_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["hubble-relay"],
                        "args": ["serve"],
                        "ports": [{"name": "grpc", "containerPort": 4245}],
                        "readinessProbe": grpc_probe(json!({"timeoutSeconds": 3})),
                        "livenessProbe": grpc_probe(json!({"timeoutSeconds": 10, "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 12})),
                        "startupProbe": grpc_probe(json!({"initialDelaySeconds": 10, "failureThreshold": 20, "periodSeconds": 3})),
                        "volumeMounts": [
                            {"name": "tmp-volume", "mountPath": "/tmp"},
                            {"name": "config", "mountPath": "/etc/hubble-relay", "readOnly": true},
                            {"name": "tls", "mountPath": "/var/lib/hubble-relay/tls", "readOnly": true},
                        ],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                    "restartPolicy": "Always",
                    "priorityClassName": null,
                    "serviceAccountName": "hubble-relay",
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 1,
                    "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"k8s-app": "cilium"}}, "topologyKey": "kubernetes.io/hostname"},
                    ]}},
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "volumes": [
                        {"name": "tmp-volume", "emptyDir": {}},
                        {"name": "config", "configMap": {"name": "hubble-relay-config", "items": [{"key": "config.yaml", "path": "config.yaml"}]}},
                        {"name": "tls", "projected": {"defaultMode": 0o400, "sources": [{"secret": {
                            "name": "hubble-relay-client-certs",
                            "items": [
                                {"key": "tls.crt", "path": "client.crt"},
                                {"key": "tls.key", "path": "client.key"},
                                {"key": "ca.crt", "path": "hubble-server-ca.crt"},
                            ],
                        }}]}},
                    ],
                },
            },
        },
    });
    vec![
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "hubble-relay", "namespace": NAMESPACE},
            "automountServiceAccountToken": false,
        }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "hubble-relay-config", "namespace": NAMESPACE},
            "data": {"config.yaml": relay_config()},
        }),
        tls_secret(
            "hubble-relay-client-certs",
            &certs.ca,
            &certs.hubble_relay_client,
        ),
        deployment,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "hubble-relay", "namespace": NAMESPACE, "annotations": null, "labels": labels("hubble-relay")},
            "spec": {"type": "ClusterIP", "selector": {"k8s-app": "hubble-relay"}, "ports": [{"protocol": "TCP", "port": 80, "targetPort": "grpc"}]},
        }),
    ]
}

fn ui() -> Vec<Value> {
    let no_privileges =
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hubble-ui", "namespace": NAMESPACE, "labels": labels("hubble-ui")},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"k8s-app": "hubble-ui"}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 1}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"annotations": null, "labels": labels("hubble-ui")},
                "spec": {
                    "securityContext": {
                        "fsGroup": 1001, "runAsGroup": 1001, "runAsNonRoot": true, "runAsUser": 1001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "priorityClassName": null,
                    "serviceAccountName": "hubble-ui",
                    "automountServiceAccountToken": true,
                    "containers": [
                        {
                            "name": "frontend",
                            "image": UI_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "http", "containerPort": 8081}],
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                            "volumeMounts": [
                                {"name": "hubble-ui-nginx-conf", "mountPath": "/etc/nginx/conf.d/default.conf", "subPath": "nginx.conf"},
                                {"name": "tmp-dir", "mountPath": "/tmp"},
                            ],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "securityContext": no_privileges,
                        },
                        {
                            "name": "backend",
                            "image": UI_BACKEND_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                {"name": "EVENTS_SERVER_PORT", "value": "8090"},
                                {"name": "FLOWS_API_ADDR", "value": "hubble-relay:80"},
                            ],
                            "ports": [{"name": "grpc", "containerPort": 8090}],
                            "volumeMounts": null,
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "securityContext": no_privileges,
                        },
                    ],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "volumes": [
                        {"configMap": {"defaultMode": 0o644, "name": "hubble-ui-nginx"}, "name": "hubble-ui-nginx-conf"},
                        {"name": "tmp-dir", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    });
    vec![
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta::labelled("hubble-ui", None),
            "rules": [
                {"apiGroups": [""], "resources": ["componentstatuses", "namespaces", "nodes", "pods", "services"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get", "list", "watch"]},
            ],
        }),
        rbac::cluster_role_binding("hubble-ui"),
        meta::service_account("hubble-ui"),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "hubble-ui-nginx", "namespace": NAMESPACE},
            "data": {"nginx.conf": UI_NGINX_CONF},
        }),
        deployment,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "hubble-ui", "namespace": NAMESPACE, "labels": labels("hubble-ui")},
            "spec": {"type": "ClusterIP", "selector": {"k8s-app": "hubble-ui"}, "ports": [{"name": "http", "port": 80, "targetPort": 8081}]},
        }),
    ]
}
