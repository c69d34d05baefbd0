//! The Ingress controller: its IngressClass and the shared LoadBalancer Service.

use serde_json::{Value, json};

use crate::meta::{CHART, NAMESPACE};
use crate::resolve::Config;

/// The Ingress objects (none when the controller is off).
pub(crate) fn objects(c: &Config) -> Vec<Value> {
    let Some(ingress) = &c.ingress else {
        return Vec::new();
    };
    let mut class = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "cilium"},
        "spec": {"controller": "cilium.io/ingress-controller"},
    });
    if ingress.default {
        class["metadata"]["annotations"] =
            json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    }
    vec![
        class,
        // The shared load balancer (used by Ingresses in shared mode; made in both modes).
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "cilium-ingress",
                "namespace": NAMESPACE,
                "labels": {"cilium.io/ingress": "true", "app.kubernetes.io/part-of": "cilium", "helm.sh/chart": CHART},
            },
            "spec": {
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "https", "port": 443, "protocol": "TCP"},
                ],
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Cluster",
            },
        }),
        // A placeholder endpoint keeps the selector-less Service from being dropped by load
        // balancer implementations; the agent answers on the Service address itself.
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "cilium-ingress",
                "namespace": NAMESPACE,
                "labels": {"kubernetes.io/service-name": "cilium-ingress"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.192.192.192"], "conditions": {"ready": true}}],
            "ports": [{"port": 9999}],
        }),
    ]
}
