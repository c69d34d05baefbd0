//! Drift: which desired fields the live object no longer has as desired.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ObjectRef;

/// How an object drifted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriftKind {
    /// The object does not exist.
    Missing,
    /// These desired fields (JSON paths such as ".data.x", ".spec.ports[0].port") differ.
    Changed {
        /// Paths of the desired leaf fields whose live value differs or is absent.
        fields: Vec<String>,
    },
}

/// One drifted object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The object.
    pub object: ObjectRef,
    /// What drifted.
    pub kind: DriftKind,
}

/// Paths of the leaves of `desired` that `live` does not match (desired ⊆ live: fields only
/// the live object has — server defaults, status, metadata — are not drift).
pub fn changed_fields(desired: &Value, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(desired, Some(live), &mut String::new(), &mut out);
    out
}

fn walk(desired: &Value, live: Option<&Value>, path: &mut String, out: &mut Vec<String>) {
    match (desired, live) {
        // An empty map or list the server dropped, or a null it never stored: no drift.
        (Value::Null, None | Some(Value::Null)) => {}
        (Value::Object(m), None) if m.is_empty() => {}
        (Value::Array(a), None) if a.is_empty() => {}
        (Value::Object(d), Some(Value::Object(l))) => {
            for (k, dv) in d {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                walk(dv, l.get(k), path, out);
                path.truncate(len);
            }
        }
        (Value::Array(d), Some(Value::Array(l))) => {
            for (i, dv) in d.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(dv, l.get(i), path, out);
                path.truncate(len);
            }
            if l.len() > d.len() {
                out.push(path.clone());
            }
        }
        (Value::Number(a), Some(Value::Number(b))) => {
            if a != b && a.as_f64() != b.as_f64() {
                out.push(path.clone());
            }
        }
        (d, Some(l)) if d == l => {}
        _ => out.push(if path.is_empty() {
            ".".into()
        } else {
            path.clone()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_additions_are_not_drift() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let live = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}},
            "spec": {"replicas": 2, "strategy": {}, "template": {"spec": {"containers": [
                {"name": "c", "image": "i", "imagePullPolicy": "Always"}]}}},
            "status": {"replicas": 2}});
        assert!(changed_fields(&desired, &live).is_empty());
    }

    #[test]
    fn changed_and_missing_leaves_by_path() {
        let desired = json!({"data": {"x": "1", "y": "2", "z": "3"},
            "spec": {"ports": [{"port": 80}, {"port": 443}], "empty": {}, "none": null}});
        let live = json!({"data": {"x": "changed", "y": "2"},
            "spec": {"ports": [{"port": 8080}]}});
        assert_eq!(
            changed_fields(&desired, &live),
            [
                ".data.x",
                ".data.z",
                ".spec.ports[0].port",
                ".spec.ports[1]"
            ]
        );
    }

    #[test]
    fn extra_list_items_and_type_changes() {
        let desired = json!({"a": [1], "b": {"c": 1}, "n": 1});
        let live = json!({"a": [1, 2], "b": "text", "n": 1.0});
        assert_eq!(changed_fields(&desired, &live), [".a", ".b"]);
    }
}
