//! Schema validation of custom objects, as the apiextensions server runs it after pruning and
//! defaulting, whatever `fieldValidation` says: each value against its `type` (`object`,
//! `array`, `string`, `integer`, `number`, `boolean`; a `x-kubernetes-int-or-string` field
//! is not checked) and `enum`. Errors carry the real server's words:
//! `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`
//! (the value named is the JSON type found) and
//! `spec.mode: Unsupported value: "slow": supported values: "fast", "safe"`.

use serde_json::{Map, Value};

/// One field error of a custom object.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `spec.replicas`, `spec.items[0].name`.
    pub field: String,
    /// `FieldValueInvalid` or `FieldValueNotSupported`.
    pub reason: &'static str,
    /// The text after `<field>: `.
    pub detail: String,
}

/// Every type and enum error of `obj` against `schema` (an `openAPIV3Schema`), in document
/// order; `apiVersion`, `kind` and `metadata` of the root (and of embedded resources) are
/// the server's business and not looked at here.
pub fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    walk(obj, schema, "", true, &mut errs);
    errs
}

/// The JSON type of a value as the validator names it (Go decodes integral numbers as
/// integers).
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    let got = type_of(v);
    match want {
        // An integral float counts as an integer, an integer as a number.
        "integer" => got == "integer" || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => matches!(got, "integer" | "number"),
        other => got == other,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `v` as Go's `%q`/`%v` prints it in a field error.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => format!("{other}"),
    }
}

fn walk(v: &Value, s: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    if !s.is_object() {
        return;
    }
    if let Some(want) = s["type"].as_str()
        && s["x-kubernetes-int-or-string"] != true
        && !(v.is_null() && s["nullable"] == true)
        && !type_ok(want, v)
    {
        let got = type_of(v);
        errs.push(FieldError {
            field: path.to_string(),
            reason: "FieldValueInvalid",
            detail: format!(
                "Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
            ),
        });
        return;
    }
    if let Some(allowed) = s["enum"].as_array()
        && !allowed.contains(v)
    {
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
                other => serde_json::to_string(&other.to_string()).unwrap_or_default(),
            })
            .collect();
        errs.push(FieldError {
            field: path.to_string(),
            reason: "FieldValueNotSupported",
            detail: format!(
                "Unsupported value: {}: supported values: {}",
                shown(v),
                supported.join(", ")
            ),
        });
    }
    match v {
        Value::Object(map) => object(map, s, path, root, errs),
        Value::Array(items) if s["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &s["items"], &format!("{path}[{i}]"), false, errs);
            }
        }
        _ => {}
    }
}

fn object(map: &Map<String, Value>, s: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let embedded = root || s["x-kubernetes-embedded-resource"] == true;
    let props = s["properties"].as_object();
    let additional = &s["additionalProperties"];
    for (key, child) in map {
        if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child_schema = props
            .and_then(|p| p.get(key))
            .or_else(|| additional.is_object().then_some(additional));
        if let Some(cs) = child_schema {
            walk(child, cs, &join(path, key), false, errs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "ratio": {"type": "number"},
            "on": {"type": "boolean"},
            "name": {"type": "string"},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "ports": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
            "mode": {"type": "string", "enum": ["fast", "safe"]},
            "level": {"type": "integer", "enum": [1, 2]},
            "port": {"x-kubernetes-int-or-string": true},
        }}}})
    }

    #[test]
    fn valid_objects_pass() {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"replicas": 3, "ratio": 2, "on": true, "name": "x", "tags": {"a": "b"},
            "ports": [{"port": 80}], "mode": "fast", "level": 2, "port": "http"}});
        assert_eq!(validate(&obj, &schema()), []);
        let obj = json!({"spec": {"replicas": 3.0, "port": 8080}});
        assert_eq!(validate(&obj, &schema()), []);
    }

    #[test]
    fn type_and_enum_errors_in_the_servers_words() {
        let obj = json!({"spec": {"replicas": "three", "ratio": "x", "on": "yes", "name": 5,
            "tags": {"a": 1}, "ports": [{"port": "80"}], "mode": "slow", "level": 3}});
        let got: Vec<String> = validate(&obj, &schema())
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.detail))
            .collect();
        let mut want = vec![
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            "spec.ratio: Invalid value: \"string\": spec.ratio in body must be of type number: \"string\"",
            "spec.on: Invalid value: \"string\": spec.on in body must be of type boolean: \"string\"",
            "spec.name: Invalid value: \"integer\": spec.name in body must be of type string: \"integer\"",
            "spec.tags.a: Invalid value: \"integer\": spec.tags.a in body must be of type string: \"integer\"",
            "spec.ports[0].port: Invalid value: \"string\": spec.ports[0].port in body must be of type integer: \"string\"",
            "spec.mode: Unsupported value: \"slow\": supported values: \"fast\", \"safe\"",
            "spec.level: Unsupported value: 3: supported values: \"1\", \"2\"",
        ];
        let mut got = got;
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
