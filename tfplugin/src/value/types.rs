//! Terraform's type system (cty), and its JSON encoding used in schemas and dynamic values.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

/// A cty type. `Dynamic` is the pseudo-type "any": values of it carry their concrete type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    /// `bool`.
    Bool,
    /// `number`: arbitrary precision.
    Number,
    /// `string`.
    String,
    /// `dynamic`: any type, carried with the value.
    Dynamic,
    /// `list(T)`.
    List(Box<Type>),
    /// `set(T)`.
    Set(Box<Type>),
    /// `map(T)`: string keys.
    Map(Box<Type>),
    /// `object({...})`.
    Object(ObjectType),
    /// `tuple([...])`.
    Tuple(Vec<Type>),
}

/// The attributes of an object type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectType {
    /// Attribute types by name.
    pub attrs: BTreeMap<String, Type>,
    /// Attributes that may be absent in a conversion (`optional()` in HCL type constraints).
    pub optional: BTreeSet<String>,
}

/// A type description that is not one of cty's.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid type description: {0}")]
pub struct TypeError(pub String);

impl Type {
    /// `list(t)`.
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    /// `set(t)`.
    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }
    /// `map(t)`.
    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }
    /// An object type of these attributes, none optional.
    pub fn object<I, S>(attrs: I) -> Type
    where
        I: IntoIterator<Item = (S, Type)>,
        S: Into<String>,
    {
        Type::Object(ObjectType {
            attrs: attrs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            optional: BTreeSet::new(),
        })
    }

    /// The JSON form Terraform uses on the wire (`"string"`, `["list","string"]`, ...).
    pub fn to_json(&self) -> Json {
        match self {
            Type::Bool => Json::from("bool"),
            Type::Number => Json::from("number"),
            Type::String => Json::from("string"),
            Type::Dynamic => Json::from("dynamic"),
            Type::List(t) => Json::Array(vec!["list".into(), t.to_json()]),
            Type::Set(t) => Json::Array(vec!["set".into(), t.to_json()]),
            Type::Map(t) => Json::Array(vec!["map".into(), t.to_json()]),
            Type::Object(o) => {
                let attrs = o
                    .attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect::<serde_json::Map<_, _>>();
                let mut v = vec!["object".into(), Json::Object(attrs)];
                if !o.optional.is_empty() {
                    v.push(Json::Array(
                        o.optional.iter().map(|s| Json::from(s.as_str())).collect(),
                    ));
                }
                Json::Array(v)
            }
            Type::Tuple(ts) => Json::Array(vec![
                "tuple".into(),
                Json::Array(ts.iter().map(Type::to_json).collect()),
            ]),
        }
    }

    /// [`Type::to_json`] as bytes, as schemas carry types.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }

    /// Parse the JSON form Terraform uses.
    pub fn from_json(j: &Json) -> Result<Type, TypeError> {
        let bad = || TypeError(j.to_string());
        match j {
            Json::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                _ => Err(bad()),
            },
            Json::Array(a) => {
                let kind = a.first().and_then(Json::as_str).ok_or_else(bad)?;
                let arg = a.get(1).ok_or_else(bad)?;
                match kind {
                    "list" => Ok(Type::list(Type::from_json(arg)?)),
                    "set" => Ok(Type::set(Type::from_json(arg)?)),
                    "map" => Ok(Type::map(Type::from_json(arg)?)),
                    "tuple" => Ok(Type::Tuple(
                        arg.as_array()
                            .ok_or_else(bad)?
                            .iter()
                            .map(Type::from_json)
                            .collect::<Result<_, _>>()?,
                    )),
                    "object" => {
                        let attrs = arg
                            .as_object()
                            .ok_or_else(bad)?
                            .iter()
                            .map(|(k, v)| Ok((k.clone(), Type::from_json(v)?)))
                            .collect::<Result<BTreeMap<_, _>, TypeError>>()?;
                        let optional = match a.get(2) {
                            Some(Json::Array(o)) => o
                                .iter()
                                .map(|s| s.as_str().map(str::to_owned).ok_or_else(bad))
                                .collect::<Result<_, _>>()?,
                            Some(_) => return Err(bad()),
                            None => BTreeSet::new(),
                        };
                        Ok(Type::Object(ObjectType { attrs, optional }))
                    }
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }

    /// Parse the JSON form from bytes.
    pub fn from_json_bytes(b: &[u8]) -> Result<Type, TypeError> {
        let j: Json = serde_json::from_slice(b).map_err(|e| TypeError(format!("not JSON: {e}")))?;
        Type::from_json(&j)
    }

    /// Element type of a collection.
    pub fn element(&self) -> Option<&Type> {
        match self {
            Type::List(t) | Type::Set(t) | Type::Map(t) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let t = Type::object([
            ("a", Type::list(Type::String)),
            ("b", Type::Tuple(vec![Type::Number, Type::Dynamic])),
            ("c", Type::map(Type::set(Type::Bool))),
        ]);
        assert_eq!(Type::from_json(&t.to_json()).unwrap(), t);
        let j: Json = serde_json::from_str(r#"["object",{"x":"string"},["x"]]"#).unwrap();
        let t = Type::from_json(&j).unwrap();
        assert_eq!(t.to_json(), j);
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            r#""int""#,
            r#"["list"]"#,
            r#"["object","x"]"#,
            "3",
            r#"["tuple",{}]"#,
        ] {
            let j: Json = serde_json::from_str(s).unwrap();
            assert!(Type::from_json(&j).is_err(), "{s}");
        }
    }
}
