//! A config hash that survives Talos re-encoding a config: the documents are compared as data,
//! with Go's `omitempty` zero values (null, false, 0, "", [], {}) dropped and keys sorted.

use serde::Deserialize as _;
use serde_json::Value;

/// Drops zero values recursively; `None` when the value itself is zero.
fn prune(v: Value) -> Option<Value> {
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(prune).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        v => Some(v),
    }
}

/// Canonical JSON text: sorted keys at every level.
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
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(e, out);
            }
            out.push(']');
        }
        v => out.push_str(&v.to_string()),
    }
}

/// `sha256:<hex>` of a (multi-document) machine config YAML, insensitive to formatting, key
/// order and omitted zero values. `None` when the text is not YAML.
pub fn config_hash(yaml: &str) -> Option<String> {
    let mut text = String::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let v = Value::deserialize(doc).ok()?;
        if let Some(v) = prune(v) {
            canonical(&v, &mut text);
            text.push('\n');
        }
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    Some(format!("sha256:{}", hex::encode(d.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::config_hash;

    #[test]
    fn ignores_formatting_order_and_zero_values() {
        let a = "version: v1alpha1\nmachine:\n  type: worker\n  certSANs: []\n  install: {disk: /dev/sda, wipe: false}\n---\nkind: HostnameConfig\nhostname: w1\n";
        let b = "machine:\n  install:\n    disk: /dev/sda\n  type: worker\nversion: v1alpha1\n---\nhostname: w1\nkind: HostnameConfig\n";
        assert_eq!(config_hash(a), config_hash(b));
    }

    #[test]
    fn sees_real_changes_and_document_order() {
        let a = "machine: {type: worker}\n---\nkind: HostnameConfig\nhostname: w1\n";
        let b = "machine: {type: worker}\n---\nkind: HostnameConfig\nhostname: w2\n";
        let c = "kind: HostnameConfig\nhostname: w1\n---\nmachine: {type: worker}\n";
        assert_ne!(config_hash(a), config_hash(b));
        assert_ne!(config_hash(a), config_hash(c));
        assert!(config_hash("a: [").is_none());
    }
}
