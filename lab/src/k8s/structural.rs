//! Structural schemas of CustomResourceDefinitions, as the apiextensions server applies them to
//! custom objects written through the API: pruning (fields the schema does not specify are
//! dropped, unless `x-kubernetes-preserve-unknown-fields` keeps them; `apiVersion`, `kind`
//! and `metadata` at the root and in `x-kubernetes-embedded-resource` objects stay) and
//! defaulting (`default` for absent fields; a `null` where the schema is not `nullable` is
//! dropped first, so it is defaulted too).

use serde_json::{Map, Value};

/// Prune and default `obj` by `schema` (an `openAPIV3Schema`); the paths of the pruned fields
/// (`spec.foo`, `spec.list[0].bar`), in document order.
pub fn prune_and_default(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    walk(obj, schema, "", true, &mut pruned);
    pruned
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(v: &mut Value, s: &Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    if !s.is_object() {
        return;
    }
    match v {
        Value::Object(map) => object(map, s, path, root, pruned),
        Value::Array(items) if s["items"].is_object() => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &s["items"], &format!("{path}[{i}]"), false, pruned);
            }
        }
        _ => {}
    }
}

fn object(
    map: &mut Map<String, Value>,
    s: &Value,
    path: &str,
    root: bool,
    pruned: &mut Vec<String>,
) {
    let preserve = s["x-kubernetes-preserve-unknown-fields"] == true;
    let embedded = root || s["x-kubernetes-embedded-resource"] == true;
    let props = s["properties"].as_object();
    let additional = &s["additionalProperties"];
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child_path = join(path, &key);
        let child_schema = props
            .and_then(|p| p.get(&key))
            .or_else(|| additional.is_object().then_some(additional));
        match child_schema {
            Some(cs) => {
                if map[&key].is_null() && cs["nullable"] != true {
                    map.remove(&key);
                    continue;
                }
                if let Some(child) = map.get_mut(&key) {
                    walk(child, cs, &child_path, false, pruned);
                }
            }
            None if preserve || *additional == Value::Bool(true) => {}
            None => {
                map.remove(&key);
                pruned.push(child_path);
            }
        }
    }
    for (key, ps) in props.into_iter().flatten() {
        if map.contains_key(key) {
            continue;
        }
        if let Some(d) = ps.get("default") {
            let mut d = d.clone();
            walk(&mut d, ps, &join(path, key), false, &mut Vec::new());
            map.insert(key.clone(), d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_and_defaults() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "size": {"type": "integer", "default": 3},
                        "mode": {"type": "string", "default": "fast"},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "weight": {"type": "integer", "default": 1}}}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"known": {"type": "object", "properties": {}}}},
                        "nested": {"type": "object", "default": {}, "properties": {"level": {"type": "integer", "default": 2}}},
                        "maybe": {"type": "string", "nullable": true},
                    },
                },
            },
        });
        let mut obj = json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "anything": 1},
            "spec": {
                "mode": null,
                "bogus": 1,
                "tags": {"a": "b"},
                "items": [{"name": "x", "extra": true}, {"name": "y", "weight": 5}],
                "free": {"whatever": {"deep": 1}, "known": {"gone": 1}},
                "maybe": null,
            },
            "status": {"x": 1},
        });
        let pruned = prune_and_default(&mut obj, &schema);
        assert_eq!(
            pruned,
            [
                "spec.bogus",
                "spec.items[0].extra",
                "spec.free.known.gone",
                "status"
            ]
        );
        assert_eq!(
            obj,
            json!({
                "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "anything": 1},
                "spec": {
                    "tags": {"a": "b"},
                    "items": [{"name": "x", "weight": 1}, {"name": "y", "weight": 5}],
                    "free": {"whatever": {"deep": 1}, "known": {}},
                    "maybe": null,
                    "size": 3,
                    "mode": "fast",
                    "nested": {"level": 2},
                },
            })
        );
    }
}
