//! Gateway API: the CRDs (standard channel), the `cilium` GatewayClass and the admission policy
//! that rejects Gateways the controller cannot serve.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::resolve::Config;

/// The Gateway API v1.6.1 standard-channel CRDs, schema prose dropped
/// (scripts/derive-cilium.py).
const CRDS_JSON: &str = include_str!("../data/gateway-api-crds.json");

/// The CRDs, parsed once.
pub(crate) fn crds() -> Vec<Value> {
    static CRDS: OnceLock<Vec<Value>> = OnceLock::new();
    CRDS.get_or_init(|| match serde_json::from_str::<Value>(CRDS_JSON) {
        Ok(Value::Array(items)) => items,
        // The data is ours and checked by the crate's tests; an unreadable file yields no CRDs
        // rather than a panic on a user's path.
        _ => Vec::new(),
    })
    .clone()
}

fn gateway_rule() -> Value {
    json!({
        "apiGroups": ["gateway.networking.k8s.io"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["gateways"],
    })
}

/// The GatewayClass and admission policy (none without Gateway API). The chart makes them only
/// when the GatewayClass API exists; this builder applies the CRDs first, so it always does.
pub(crate) fn objects(c: &Config) -> Vec<Value> {
    if !c.gateway_api {
        return Vec::new();
    }
    vec![
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "cilium"},
            "spec": {"controllerName": "io.cilium/gateway-controller", "description": "The default Cilium GatewayClass"},
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "gateway.cilium.io"},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [gateway_rule()]},
                "validations": [{
                    // Envoy serves one certificate per terminating listener.
                    "expression": "object.spec.gatewayClassName != 'cilium' || (has(object.spec.listeners)) && object.spec.listeners.filter(e, has(e.tls) && has(e.tls.mode) && e.tls.mode == 'Terminate').all(e, e.tls.certificateRefs.size() == 1)",
                    "message": "cilium GatewayClass requires exactly one certificateRef per listener when tls.mode is Terminate.",
                    "reason": "Invalid",
                }],
            },
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "gateway.cilium.io"},
            "spec": {
                "policyName": "gateway.cilium.io",
                "validationActions": ["Deny"],
                "matchResources": {"resourceRules": [gateway_rule()]},
            },
        }),
    ]
}
