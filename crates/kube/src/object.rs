//! Object identity (`ObjectRef`), the inventory of what an apply made, and content hashes.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Error;

/// Which object: group, version, kind, namespace (None when cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// API group ("" for the core group).
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace; None for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl ObjectRef {
    /// The reference of a manifest: `apiVersion`, `kind`, `metadata.name` and `metadata.namespace`.
    pub fn from_object(obj: &Value) -> Result<ObjectRef, Error> {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let label = format!(
            "{} {}",
            if kind.is_empty() { "object" } else { kind },
            if name.is_empty() { "(unnamed)" } else { name }
        );
        let invalid = |message: &str| Error::Invalid {
            object: label.clone(),
            message: message.to_string(),
        };
        let api_version = obj["apiVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("apiVersion is missing"))?;
        if kind.is_empty() {
            return Err(invalid("kind is missing"));
        }
        if name.is_empty() {
            return Err(invalid("metadata.name is missing"));
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let namespace = match &obj["metadata"]["namespace"] {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err(invalid("metadata.namespace is not a string")),
        };
        Ok(ObjectRef {
            group,
            version,
            kind: kind.to_string(),
            namespace,
            name: name.to_string(),
        })
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One object an apply made, with the hash of what was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// The object.
    pub object: ObjectRef,
    /// `object_hash` of the manifest as passed to `Engine::apply` (before the inventory label
    /// and namespace defaulting are added); empty when imported.
    pub hash: String,
}

/// The objects an apply owns, in apply order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Entries in apply order.
    pub entries: Vec<InventoryEntry>,
}

impl Inventory {
    /// Whether the inventory holds `object`.
    pub fn contains(&self, object: &ObjectRef) -> bool {
        self.entries.iter().any(|e| &e.object == object)
    }
}

/// SHA-256 (hex) of the canonical JSON of `obj`: object keys sorted, no whitespace.
pub fn object_hash(obj: &Value) -> String {
    let mut text = String::new();
    canonical(obj, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_from_manifests() {
        let r = ObjectRef::from_object(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns"}}))
        .expect("ref");
        assert_eq!(r.to_string(), "Deployment ns/d");
        assert_eq!(
            (r.group.as_str(), r.api_version()),
            ("apps", "apps/v1".into())
        );
        let r = ObjectRef::from_object(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "n"}}))
        .expect("ref");
        assert_eq!(
            (r.to_string(), r.group.as_str()),
            ("Namespace n".into(), "")
        );
        let e = ObjectRef::from_object(&json!({"kind": "ConfigMap", "metadata": {"name": "c"}}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ConfigMap c is invalid: apiVersion is missing"
        );
        let e =
            ObjectRef::from_object(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ConfigMap (unnamed) is invalid: metadata.name is missing"
        );
    }

    #[test]
    fn hash_ignores_key_order_but_not_content() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":{"x":null,"y":["x",1]},"b":1}"#).unwrap();
        assert_eq!(object_hash(&a), object_hash(&b));
        assert_ne!(object_hash(&a), object_hash(&c));
        assert_eq!(object_hash(&a).len(), 64);
        // sha256 of `{}`.
        assert_eq!(
            object_hash(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
