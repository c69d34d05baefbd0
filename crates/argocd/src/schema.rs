//! A cheap structural check of an object against its CustomResourceDefinition's OpenAPI v3
//! schema: types, required fields, enums and unknown fields (which the API server would drop
//! without a word). Enough to catch a builder bug before the cluster does; not a full validator
//! (no formats, patterns, CEL rules or size limits).

use serde_json::Value;

use crate::Error;

/// The `openAPIV3Schema` of `version` in `crd`.
pub fn crd_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| &v["schema"]["openAPIV3Schema"])
        .filter(|s| s.is_object())
}

/// Checks `object` against `crd`: its group, kind and version must be the CRD's, and its
/// content must fit the version's schema. The error names the object and the field's path.
pub fn validate(object: &Value, crd: &Value) -> Result<(), Error> {
    let name = format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    );
    let fail = |path: &str, message: String| Error::Schema {
        object: name.clone(),
        path: path.into(),
        message,
    };
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let kind = &crd["spec"]["names"]["kind"];
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let Some((g, version)) = api_version.split_once('/') else {
        return Err(fail(".apiVersion", format!("must be {group}/<version>")));
    };
    if g != group || object["kind"] != *kind {
        return Err(fail(
            ".kind",
            format!(
                "the CRD defines {kind} in {group}, not {} in {g}",
                object["kind"]
            ),
        ));
    }
    let schema = crd_schema(crd, version)
        .ok_or_else(|| fail(".apiVersion", format!("the CRD has no version {version}")))?;
    check(object, schema, "").map_err(|(path, message)| fail(&path, message))
}

fn check(value: &Value, schema: &Value, path: &str) -> Result<(), (String, String)> {
    let at = |p: &str| {
        if p.is_empty() {
            ".".to_owned()
        } else {
            p.to_owned()
        }
    };
    if schema["x-kubernetes-int-or-string"] == true {
        return if value.is_string() || value.is_i64() || value.is_u64() {
            Ok(())
        } else {
            Err((at(path), "must be an integer or a string".into()))
        };
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err((
            at(path),
            format!("must be one of {}", Value::from(allowed.clone())),
        ));
    }
    let ty = schema["type"].as_str().unwrap_or_default();
    let type_ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        return Err((at(path), format!("must be of type {ty}, not {value}")));
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check(item, &schema["items"], &format!("{path}[{i}]"))?;
        }
    }
    let Some(fields) = value.as_object() else {
        return Ok(());
    };
    for req in schema["required"].as_array().into_iter().flatten() {
        if let Some(r) = req.as_str()
            && !fields.contains_key(r)
        {
            return Err((format!("{path}.{r}"), "is required".into()));
        }
    }
    let properties = schema["properties"].as_object();
    let additional = &schema["additionalProperties"];
    let open = schema["x-kubernetes-preserve-unknown-fields"] == true
        || additional == &Value::Bool(true)
        || (properties.is_none() && additional.is_null());
    for (k, v) in fields {
        let p = format!("{path}.{k}");
        match properties.and_then(|props| props.get(k)) {
            Some(s) => check(v, s, &p)?,
            None if additional.is_object() => check(v, additional, &p)?,
            None if open => {}
            None => {
                return Err((
                    p,
                    "is not in the schema; the API server would drop it".into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Thing"},
                "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer"},
                                "mode": {"type": "string", "enum": ["a", "b"]},
                                "port": {"x-kubernetes-int-or-string": true},
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "labels": {"type": "object",
                                           "additionalProperties": {"type": "string"}},
                                "free": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": true},
                            },
                        },
                    },
                }}}],
            },
        })
    }

    fn thing(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Thing",
               "metadata": {"name": "t", "anything": 1}, "spec": spec})
    }

    #[test]
    fn a_fitting_object_passes() {
        let t = thing(
            json!({"size": 1, "mode": "a", "port": "http", "tags": ["x"],
                             "labels": {"k": "v"}, "free": {"any": [1]}}),
        );
        validate(&t, &crd()).unwrap();
    }

    #[test]
    fn misfits_are_named_by_path() {
        let cases = [
            (thing(json!({})), ".spec.size: is required"),
            (
                thing(json!({"size": "1"})),
                ".spec.size: must be of type integer",
            ),
            (
                thing(json!({"size": 1, "mode": "c"})),
                ".spec.mode: must be one of",
            ),
            (
                thing(json!({"size": 1, "port": true})),
                ".spec.port: must be an integer or",
            ),
            (
                thing(json!({"size": 1, "tags": [1]})),
                ".spec.tags[0]: must be of type string",
            ),
            (
                thing(json!({"size": 1, "labels": {"k": 1}})),
                ".spec.labels.k: must be",
            ),
            (
                thing(json!({"size": 1, "sise": 1})),
                ".spec.sise: is not in the schema",
            ),
        ];
        for (t, want) in cases {
            let e = validate(&t, &crd()).unwrap_err().to_string();
            assert_eq!(&e[..8], "Thing/t:");
            assert!(e.contains(want), "{want} vs {e}");
        }
    }

    #[test]
    fn the_wrong_kind_or_version_is_refused() {
        let mut t = thing(json!({"size": 1}));
        t["apiVersion"] = json!("example.com/v2");
        assert!(
            validate(&t, &crd())
                .unwrap_err()
                .to_string()
                .contains("no version v2")
        );
        t["apiVersion"] = json!("other.com/v1");
        assert!(
            validate(&t, &crd())
                .unwrap_err()
                .to_string()
                .contains(".kind")
        );
    }
}
