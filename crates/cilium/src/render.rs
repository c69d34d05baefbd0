//! Object order, YAML rendering and content hashes.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why objects could not be rendered as YAML.
#[derive(Debug, thiserror::Error)]
#[error("rendering the Cilium objects as YAML failed: {0}")]
pub struct RenderError(String);

/// Apply order of kinds: what others refer to comes first (CRDs before their objects,
/// Namespaces before what lives in them, identities and RBAC before the workloads that use them,
/// configuration before the pods that read it).
const KIND_ORDER: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "EndpointSlice",
    "DaemonSet",
    "Deployment",
    "IngressClass",
    "GatewayClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ServiceMonitor",
];

fn sort_key(o: &Value) -> (usize, String, String, String) {
    let kind = o["kind"].as_str().unwrap_or_default();
    let rank = KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len());
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        rank,
        kind.to_string(),
        text(&o["metadata"]["namespace"]),
        text(&o["metadata"]["name"]),
    )
}

/// Sorts objects into apply order (stable: kind rank, then namespace, then name).
pub(crate) fn sort(objects: &mut [Value]) {
    objects.sort_by_cached_key(sort_key);
}

/// The objects as one multi-document YAML text (`---` before each document).
pub fn rendered_manifests(objects: &[Value]) -> Result<String, RenderError> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(
            &serde_norway::to_string(&to_yaml(o)?).map_err(|e| RenderError(e.to_string()))?,
        );
    }
    Ok(out)
}

/// The YAML value of a JSON value. Going through serde directly would not do: with serde_json's
/// `arbitrary_precision` (on in this workspace) numbers serialize as a private map.
fn to_yaml(v: &Value) -> Result<serde_norway::Value, RenderError> {
    use serde_norway::Value as Y;
    Ok(match v {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                Y::Number(i.into())
            } else if let Some(i) = n.as_i64() {
                Y::Number(i.into())
            } else if let Some(f) = n.as_f64() {
                Y::Number(f.into())
            } else {
                return Err(RenderError(format!("number {n} has no YAML form")));
            }
        }
        Value::String(s) => Y::String(s.clone()),
        Value::Array(items) => Y::Sequence(items.iter().map(to_yaml).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut m = serde_norway::Mapping::new();
            for (k, child) in map {
                m.insert(Y::String(k.clone()), to_yaml(child)?);
            }
            Y::Mapping(m)
        }
    })
}

/// A stable content hash of one object: SHA-256 (hex) of its JSON with object keys sorted, so
/// field order never changes it.
pub fn object_hash(object: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(object, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
