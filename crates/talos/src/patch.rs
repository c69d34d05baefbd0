//! Config patches: strategic merge (YAML, one or more documents) and RFC 6902 (a YAML/JSON list
//! of operations), applied to a machine config held as a list of JSON documents.
//!
//! Strategic merge follows Talos's documented rules (siderolabs/talos
//! `website/content/v1.12/talos-guides/configuration/patching.md`): maps merge recursively, scalars
//! are overwritten, lists are APPENDED, except `podSubnets`/`serviceSubnets` which are replaced;
//! `$patch: delete` removes a key or a whole document. A patch document with `kind` merges into the
//! document of that kind (and `name`, when it has one) or is added; one without `kind` merges into
//! the v1alpha1 document. RFC 6902 patches apply to the v1alpha1 document.

use std::fmt;

use serde_json::{Map, Value};

/// Where a patch came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchSource {
    /// `config_patches[index]` of the cluster.
    Cluster { index: usize },
    /// `config_patches[index]` of the node with this hostname.
    Node { hostname: String, index: usize },
}

impl fmt::Display for PatchSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cluster { index } => write!(f, "cluster config_patches[{index}]"),
            Self::Node { hostname, index } => {
                write!(f, "node {hostname:?} config_patches[{index}]")
            }
        }
    }
}

/// A patch that does not parse or apply, naming the patch and where in the config.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{patch} at {path}: {problem}")]
pub struct PatchError {
    /// Which patch failed.
    pub patch: PatchSource,
    /// A JSON pointer into the config (or into the patch, when the patch does not parse); for
    /// a multi-document config it starts with the document's kind, e.g. `KubeletConfig/image`.
    pub path: String,
    pub problem: String,
}

/// A parsed patch.
#[derive(Clone, Debug)]
pub enum Patch {
    StrategicMerge(Vec<Value>),
    Rfc6902(json_patch::Patch),
}

/// Keys whose lists are replaced, not appended, on merge.
const REPLACED_LISTS: &[&str] = &["podSubnets", "serviceSubnets"];

/// Converts a YAML value into JSON; mapping keys must be strings.
pub(crate) fn yaml_to_json(value: serde_norway::Value, path: &str) -> Result<Value, String> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{path}: number {f} is not representable"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| yaml_to_json(v, &format!("{path}/{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let Y::String(key) = k else {
                    return Err(format!("{path}: mapping keys must be strings"));
                };
                let child = format!("{path}/{}", escape(&key));
                out.insert(key, yaml_to_json(v, &child)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => return Err(format!("{path}: YAML tag {} is not supported", t.tag)),
    })
}

/// Converts JSON into a YAML value (our own conversion: serde_json's arbitrary-precision numbers
/// must not reach another serializer as its private map form).
pub(crate) fn json_to_yaml(value: &Value) -> serde_norway::Value {
    use serde_norway::Value as Y;
    match value {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Y::Number(u.into())
            } else if let Some(i) = n.as_i64() {
                Y::Number(i.into())
            } else {
                Y::Number(n.as_f64().unwrap_or(f64::NAN).into())
            }
        }
        Value::String(s) => Y::String(s.clone()),
        Value::Array(items) => Y::Sequence(items.iter().map(json_to_yaml).collect()),
        Value::Object(map) => Y::Mapping(
            map.iter()
                .map(|(k, v)| (Y::String(k.clone()), json_to_yaml(v)))
                .collect(),
        ),
    }
}

/// JSON-pointer escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Parses every YAML document of `text` into JSON values (empty documents are skipped).
pub(crate) fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize as _;
    let mut docs = Vec::new();
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let y = serde_norway::Value::deserialize(de).map_err(|e| format!("YAML: {e}"))?;
        if y.is_null() {
            continue;
        }
        docs.push(yaml_to_json(y, &format!("document {i}"))?);
    }
    Ok(docs)
}

impl Patch {
    /// Parses a patch: a list is RFC 6902, one or more maps are a strategic merge.
    pub fn parse(text: &str, source: &PatchSource) -> Result<Self, PatchError> {
        let fail = |path: &str, problem: String| PatchError {
            patch: source.clone(),
            path: path.to_string(),
            problem,
        };
        let docs = parse_yaml_documents(text).map_err(|e| fail("/", e))?;
        match docs.as_slice() {
            [] => Err(fail("/", "the patch is empty".into())),
            [Value::Array(_)] => {
                let ops = docs.into_iter().next().unwrap_or(Value::Null);
                serde_json::from_value::<json_patch::Patch>(ops)
                    .map(Self::Rfc6902)
                    .map_err(|e| fail("/", format!("not an RFC 6902 patch: {e}")))
            }
            _ => {
                for (i, d) in docs.iter().enumerate() {
                    if !d.is_object() {
                        return Err(fail(
                            &format!("/{i}"),
                            "a patch document must be a map (strategic merge) or the only \
                             document, a list (RFC 6902)"
                                .into(),
                        ));
                    }
                }
                Ok(Self::StrategicMerge(docs))
            }
        }
    }

    /// Applies the patch to `docs` (the first document without `kind` is v1alpha1).
    pub fn apply(&self, docs: &mut Vec<Value>, source: &PatchSource) -> Result<(), PatchError> {
        let fail = |path: String, problem: String| PatchError {
            patch: source.clone(),
            path,
            problem,
        };
        match self {
            Self::Rfc6902(ops) => {
                let doc = docs
                    .iter_mut()
                    .find(|d| kind_of(d).is_none())
                    .ok_or_else(|| fail("/".into(), "no v1alpha1 document".into()))?;
                json_patch::patch(doc, ops).map_err(|e| {
                    fail(
                        e.path.to_string(),
                        format!("operation {} failed: {}", e.operation, e.kind),
                    )
                })
            }
            Self::StrategicMerge(patch_docs) => {
                for p in patch_docs {
                    merge_document(docs, p).map_err(|(path, problem)| fail(path, problem))?;
                }
                Ok(())
            }
        }
    }
}

fn kind_of(doc: &Value) -> Option<&str> {
    doc.get("kind").and_then(Value::as_str)
}

fn is_delete(v: &Value) -> bool {
    v.get("$patch").and_then(Value::as_str) == Some("delete")
}

fn merge_document(docs: &mut Vec<Value>, patch: &Value) -> Result<(), (String, String)> {
    let Some(kind) = kind_of(patch) else {
        let doc = docs
            .iter_mut()
            .find(|d| kind_of(d).is_none())
            .ok_or_else(|| ("/".to_string(), "no v1alpha1 document".to_string()))?;
        return merge(doc, patch, "");
    };
    let name = patch.get("name");
    let position = docs
        .iter()
        .position(|d| kind_of(d) == Some(kind) && (name.is_none() || d.get("name") == name));
    let label = match name.and_then(Value::as_str) {
        Some(n) => format!("{kind}[{n}]"),
        None => kind.to_string(),
    };
    match position {
        Some(i) if is_delete(patch) => {
            docs.remove(i);
            Ok(())
        }
        None if is_delete(patch) => Err((label, "no such document to delete".into())),
        Some(i) => merge(&mut docs[i], patch, &label),
        None => {
            docs.push(patch.clone());
            Ok(())
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn merge(target: &mut Value, patch: &Value, path: &str) -> Result<(), (String, String)> {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        return Err((path.to_string(), "expected maps".into()));
    };
    for (key, value) in p {
        if key == "$patch" {
            continue;
        }
        let child = format!("{path}/{}", escape(key));
        if is_delete(value) {
            t.remove(key);
            continue;
        }
        match (t.get_mut(key), value) {
            (None, v) | (Some(Value::Null), v) => {
                t.insert(key.clone(), v.clone());
            }
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                merge(existing, value, &child)?;
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                if REPLACED_LISTS.contains(&key.as_str()) {
                    *existing = items.clone();
                } else {
                    existing.extend(items.iter().cloned());
                }
            }
            (Some(existing), v)
                if existing.is_object() || existing.is_array() || v.is_object() || v.is_array() =>
            {
                if !v.is_null() {
                    return Err((
                        child,
                        format!(
                            "the patch has {} where the config has {}",
                            type_name(v),
                            type_name(existing)
                        ),
                    ));
                }
                t.insert(key.clone(), Value::Null);
            }
            (Some(_), v) => {
                t.insert(key.clone(), v.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src() -> PatchSource {
        PatchSource::Node {
            hostname: "cp-1".into(),
            index: 2,
        }
    }

    fn base() -> Vec<Value> {
        vec![
            json!({"version": "v1alpha1", "machine": {"certSANs": ["a"], "install": {"disk": "/dev/sda"}},
                   "cluster": {"network": {"podSubnets": ["10.244.0.0/16"]}}}),
            json!({"apiVersion": "v1alpha1", "kind": "KubeletConfig", "image": "k:1"}),
        ]
    }

    #[test]
    fn talos_strategic_merge_merges_maps_appends_lists_replaces_subnets() {
        let mut docs = base();
        let p = Patch::parse(
            "machine:\n  certSANs: [b]\n  install: {wipe: true}\ncluster:\n  network:\n    podSubnets: [10.0.0.0/8]\n---\napiVersion: v1alpha1\nkind: KubeletConfig\nimage: k:2\n---\napiVersion: v1alpha1\nkind: KubePrismConfig\nport: 7445\n",
            &src(),
        )
        .unwrap();
        p.apply(&mut docs, &src()).unwrap();
        assert_eq!(docs[0]["machine"]["certSANs"], json!(["a", "b"]));
        assert_eq!(
            docs[0]["machine"]["install"],
            json!({"disk": "/dev/sda", "wipe": true})
        );
        assert_eq!(
            docs[0]["cluster"]["network"]["podSubnets"],
            json!(["10.0.0.0/8"])
        );
        assert_eq!(docs[1]["image"], json!("k:2"));
        assert_eq!(docs[2]["kind"], json!("KubePrismConfig"));
        assert_eq!(docs[2]["port"], json!(7445));
    }

    #[test]
    fn talos_strategic_merge_deletes_keys_and_documents() {
        let mut docs = base();
        Patch::parse(
            "machine:\n  install:\n    $patch: delete\n---\napiVersion: v1alpha1\nkind: KubeletConfig\n$patch: delete\n",
            &src(),
        )
        .unwrap()
        .apply(&mut docs, &src())
        .unwrap();
        assert!(docs[0]["machine"].get("install").is_none());
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn talos_rfc6902_applies_to_v1alpha1() {
        let mut docs = base();
        Patch::parse(
            "- op: replace\n  path: /machine/install/disk\n  value: /dev/vda\n- op: add\n  path: /machine/certSANs/-\n  value: c\n",
            &src(),
        )
        .unwrap()
        .apply(&mut docs, &src())
        .unwrap();
        assert_eq!(docs[0]["machine"]["install"]["disk"], json!("/dev/vda"));
        assert_eq!(docs[0]["machine"]["certSANs"], json!(["a", "c"]));
    }

    #[test]
    fn talos_bad_patches_name_the_patch_and_the_path() {
        let mut docs = base();
        let err = Patch::parse("- op: remove\n  path: /machine/nope/x\n", &src())
            .unwrap()
            .apply(&mut docs, &src())
            .unwrap_err();
        assert_eq!(err.patch, src());
        assert_eq!(err.path, "/machine/nope/x");
        assert!(
            err.to_string()
                .starts_with("node \"cp-1\" config_patches[2] at /machine/nope/x: operation 0"),
            "{err}"
        );

        let cluster = PatchSource::Cluster { index: 0 };
        let err = Patch::parse("machine:\n  install: [x]\n", &cluster)
            .unwrap()
            .apply(&mut docs, &cluster)
            .unwrap_err();
        assert_eq!(err.path, "/machine/install");
        assert!(err.to_string().starts_with("cluster config_patches[0] at /machine/install: the patch has a list where the config has a map"), "{err}");

        let err = Patch::parse("machine: [unclosed\n", &cluster).unwrap_err();
        assert!(err.problem.starts_with("YAML:"), "{err}");
        let err = Patch::parse("- {op: frobnicate, path: /x}\n", &cluster).unwrap_err();
        assert!(err.problem.contains("RFC 6902"), "{err}");
        let err = Patch::parse("", &cluster).unwrap_err();
        assert_eq!(err.problem, "the patch is empty");
        let err = Patch::parse(
            "apiVersion: v1alpha1\nkind: Nope\n$patch: delete\n",
            &cluster,
        )
        .unwrap()
        .apply(&mut docs, &cluster)
        .unwrap_err();
        assert_eq!(err.path, "Nope");
    }
}
