//! Type-directed decoding of `DynamicValue.json` and of JSON state (UpgradeResourceState).
//! JSON cannot express unknown, so it never yields one.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Number, Type, Value};

/// Decode JSON as a value of `ty`; the error says where it does not fit.
pub fn decode_json(j: &Json, ty: &Type) -> Result<Value, String> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    match (ty, j) {
        (Type::Bool, Json::Bool(b)) => Ok(Value::Bool(*b)),
        (Type::Number, Json::Number(n)) => Number::parse(&n.to_string())
            .map(Value::Number)
            .ok_or_else(|| format!("{n} is not a number")),
        (Type::Number, Json::String(s)) => Number::parse(s)
            .map(Value::Number)
            .ok_or_else(|| format!("{s:?} is not a number")),
        (Type::String, Json::String(s)) => Ok(Value::String(s.clone())),
        // Terraform's JSON state may hold primitives in string form after type changes.
        (Type::String, Json::Number(n)) => Ok(Value::String(n.to_string())),
        (Type::String, Json::Bool(b)) => Ok(Value::String(b.to_string())),
        (Type::List(et), Json::Array(a)) => Ok(Value::List(elements(a, et)?)),
        (Type::Set(et), Json::Array(a)) => Ok(Value::Set(elements(a, et)?)),
        (Type::Tuple(ts), Json::Array(a)) if ts.len() == a.len() => Ok(Value::Tuple(
            a.iter()
                .zip(ts)
                .map(|(j, t)| decode_json(j, t))
                .collect::<Result<_, _>>()?,
        )),
        (Type::Map(et), Json::Object(o)) => Ok(Value::Map(
            o.iter()
                .map(|(k, v)| Ok((k.clone(), decode_json(v, et)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()?,
        )),
        (Type::Object(ot), Json::Object(o)) => {
            let mut m = BTreeMap::new();
            for (k, v) in o {
                let t = ot
                    .attrs
                    .get(k)
                    .ok_or_else(|| format!("unsupported attribute {k:?}"))?;
                m.insert(k.clone(), decode_json(v, t)?);
            }
            super::fill_absent(&mut m, ot);
            Ok(Value::Object(m))
        }
        (Type::Dynamic, Json::Object(o)) if o.contains_key("type") && o.contains_key("value") => {
            let t = Type::from_json(&o["type"]).map_err(|e| e.to_string())?;
            let v = decode_json(&o["value"], &t)?;
            Ok(Value::Dynamic(Box::new(t), Box::new(v)))
        }
        (t, j) => Err(format!("expected {}, found {j}", t.to_json())),
    }
}

fn elements(a: &[Json], et: &Type) -> Result<Vec<Value>, String> {
    a.iter().map(|j| decode_json(j, et)).collect()
}

/// The JSON form of a value, as Terraform writes state (`dynamic` as `{"value","type"}`).
/// Unknowns become null: JSON state never holds them.
pub fn encode_json(v: &Value) -> Json {
    match v {
        Value::Null | Value::Unknown => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => match n {
            Number::Int(i) => Json::from(*i),
            Number::Uint(u) => Json::from(*u),
            Number::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Number::Decimal(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone()))
            }
        },
        Value::String(s) => Json::String(s.clone()),
        Value::List(a) | Value::Set(a) | Value::Tuple(a) => {
            Json::Array(a.iter().map(encode_json).collect())
        }
        Value::Map(m) | Value::Object(m) => {
            Json::Object(m.iter().map(|(k, v)| (k.clone(), encode_json(v))).collect())
        }
        Value::Dynamic(t, v) => serde_json::json!({ "value": encode_json(v), "type": t.to_json() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_state_shapes() {
        let t = Type::object([
            ("id", Type::String),
            ("n", Type::Number),
            ("tags", Type::set(Type::String)),
            ("extra", Type::Dynamic),
        ]);
        let j: Json = serde_json::from_str(
            r#"{"id":"a","n":12345678901234567890123,"tags":["x"],"extra":{"value":[1],"type":["list","number"]}}"#,
        )
        .unwrap();
        let v = decode_json(&j, &t).unwrap();
        assert_eq!(v.attr("id").as_str(), Some("a"));
        assert_eq!(v.attr("tags"), &Value::Set(vec!["x".into()]));
        assert!(matches!(v.attr("extra"), Value::Dynamic(..)));
        assert!(decode_json(&serde_json::json!({"nope": 1}), &t).is_err());
    }

    #[test]
    fn json_round_trip_keeps_values() {
        let t = Type::object([
            ("a", Type::list(Type::Number)),
            ("b", Type::map(Type::Bool)),
        ]);
        let j = serde_json::json!({"a":[1,2.5],"b":{"k":true}});
        let v = decode_json(&j, &t).unwrap();
        assert_eq!(encode_json(&v), j);
    }
}
