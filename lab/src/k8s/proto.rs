//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as kubectl sends them for
//! `create`: the magic `k8s\0`, then a `runtime.Unknown` whose `raw` is the object. Field
//! numbers follow k8s.io/api's generated.proto for the kinds the lab serves.

use std::collections::BTreeMap;

use base64::Engine;
use prost::Message;
use serde_json::{Map, Value, json};

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, tag = "1")]
    api_version: String,
    #[prost(string, tag = "2")]
    kind: String,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    generate_name: String,
    #[prost(string, tag = "3")]
    namespace: String,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
}

/// Namespace, ServiceAccount: only metadata is kept.
#[derive(Clone, PartialEq, Message)]
struct MetaOnly {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
}

#[derive(Clone, PartialEq, Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    r#type: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

fn meta_json(m: &ObjectMeta) -> Value {
    let mut v = Map::new();
    for (k, s) in [
        ("name", &m.name),
        ("generateName", &m.generate_name),
        ("namespace", &m.namespace),
    ] {
        if !s.is_empty() {
            v.insert(k.into(), json!(s));
        }
    }
    if !m.labels.is_empty() {
        v.insert("labels".into(), json!(m.labels));
    }
    if !m.annotations.is_empty() {
        v.insert("annotations".into(), json!(m.annotations));
    }
    Value::Object(v)
}

/// Decode a protobuf body for `resource` into the JSON object the store keeps.
pub fn decode(resource: &str, body: &[u8]) -> Result<Value, String> {
    let raw = body.strip_prefix(b"k8s\0").ok_or(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
    )?;
    let u = Unknown::decode(raw).map_err(|e| e.to_string())?;
    let tm = u.type_meta.unwrap_or_default();
    let err = |e: prost::DecodeError| e.to_string();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut v = json!({
        "apiVersion": if tm.api_version.is_empty() { "v1".to_string() } else { tm.api_version },
        "kind": tm.kind,
    });
    let meta = match resource {
        "configmaps" => {
            let o = ConfigMap::decode(u.raw.as_slice()).map_err(err)?;
            if !o.data.is_empty() {
                v["data"] = json!(o.data);
            }
            if !o.binary_data.is_empty() {
                let b: BTreeMap<&String, String> =
                    o.binary_data.iter().map(|(k, b)| (k, b64(b))).collect();
                v["binaryData"] = json!(b);
            }
            if let Some(i) = o.immutable {
                v["immutable"] = json!(i);
            }
            o.metadata
        }
        "secrets" => {
            let o = Secret::decode(u.raw.as_slice()).map_err(err)?;
            // The server folds stringData into data.
            let mut data: BTreeMap<String, String> =
                o.data.iter().map(|(k, b)| (k.clone(), b64(b))).collect();
            for (k, s) in &o.string_data {
                data.insert(k.clone(), b64(s.as_bytes()));
            }
            if !data.is_empty() {
                v["data"] = json!(data);
            }
            if let Some(t) = o.r#type {
                v["type"] = json!(t);
            }
            if let Some(i) = o.immutable {
                v["immutable"] = json!(i);
            }
            o.metadata
        }
        _ => MetaOnly::decode(u.raw.as_slice()).map_err(err)?.metadata,
    };
    v["metadata"] = meta.as_ref().map(meta_json).unwrap_or(json!({}));
    Ok(v)
}
