//! The value model: what Terraform sends and receives as `DynamicValue`, decoded against a type.
//!
//! Values carry no type of their own (the schema gives it) except under the `dynamic`
//! pseudo-type, where the wire carries the concrete type and so does [`Value::Dynamic`].

mod json;
mod msgpack;
mod number;
mod path;
mod types;

use std::collections::BTreeMap;

pub use json::{decode_json, encode_json};
pub use msgpack::{DecodeError, decode_msgpack, encode_msgpack};
pub use number::Number;
pub use path::{AttributePath, PathStep};
pub use types::{ObjectType, Type, TypeError};

/// Absent attributes of a decoded object are null: every object is complete for the code
/// that reads it. (Its keys are the type's, so equal counts mean nothing is absent.)
fn fill_absent(m: &mut BTreeMap<String, Value>, ot: &ObjectType) {
    if m.len() < ot.attrs.len() {
        for k in ot.attrs.keys() {
            m.entry(k.clone()).or_insert(Value::Null);
        }
    }
}

/// A Terraform value. Its type comes from the schema, except under `dynamic`.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// Absent, or unset in the configuration.
    #[default]
    Null,
    /// Not known until apply. Refinements (ext 12) are accepted on input and dropped.
    Unknown,
    /// A bool.
    Bool(bool),
    /// A number, in the form received.
    Number(Number),
    /// A string.
    String(String),
    /// A list.
    List(Vec<Value>),
    /// Set elements in the order received; equality is order-insensitive.
    Set(Vec<Value>),
    /// A map by string key.
    Map(BTreeMap<String, Value>),
    /// An object: attributes by name.
    Object(BTreeMap<String, Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A value of the `dynamic` pseudo-type, with its concrete type.
    Dynamic(Box<Type>, Box<Value>),
}

impl Value {
    /// Whether it is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// Whether it is unknown as a whole (parts may be unknown otherwise).
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    /// Known all the way down (no `Unknown` anywhere inside).
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                v.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, v) => v.is_wholly_known(),
            _ => true,
        }
    }

    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
    /// A whole number.
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }
    /// An object of these attributes.
    pub fn object<I, S>(attrs: I) -> Value
    where
        I: IntoIterator<Item = (S, Value)>,
        S: Into<String>,
    {
        Value::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The string, also inside a `dynamic` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Dynamic(_, v) => v.as_str(),
            _ => None,
        }
    }
    /// The bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The whole number, when it fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
    /// The number as a float64.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    /// An object's attributes.
    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }
    /// An object's attributes, to change.
    pub fn as_object_mut(&mut self) -> Option<&mut BTreeMap<String, Value>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }
    /// Elements of a list, set or tuple.
    pub fn as_elements(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }
    /// A map's elements.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// An attribute of an object; `Null` when absent or when `self` is not an object.
    pub fn attr(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Object(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// Set an attribute of an object (no-op on anything else).
    pub fn set_attr(&mut self, name: &str, v: Value) {
        if let Value::Object(m) = self {
            m.insert(name.to_owned(), v);
        }
    }

    /// The value at `path`, if the path leads anywhere.
    pub fn at(&self, path: &AttributePath) -> Option<&Value> {
        let mut cur = self;
        for step in path.steps() {
            cur = match (step, cur) {
                (PathStep::Attr(a), Value::Object(m)) => m.get(a)?,
                (PathStep::Key(k), Value::Map(m)) => m.get(k)?,
                (PathStep::Index(i), Value::List(v) | Value::Tuple(v) | Value::Set(v)) => {
                    v.get(usize::try_from(*i).ok()?)?
                }
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Mutable access to the value at `path`.
    pub fn at_mut(&mut self, path: &AttributePath) -> Option<&mut Value> {
        let mut cur = self;
        for step in path.steps() {
            cur = match (step, cur) {
                (PathStep::Attr(a), Value::Object(m)) => m.get_mut(a)?,
                (PathStep::Key(k), Value::Map(m)) => m.get_mut(k)?,
                (PathStep::Index(i), Value::List(v) | Value::Tuple(v) | Value::Set(v)) => {
                    v.get_mut(usize::try_from(*i).ok()?)?
                }
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Semantic equality: sets compare without order, numbers by value.
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Set(a), Value::Set(b)) => {
                a.len() == b.len()
                    && a.iter().all(|x| b.iter().any(|y| x.equals(y)))
                    && b.iter().all(|y| a.iter().any(|x| x.equals(y)))
            }
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            (Value::Map(a), Value::Map(b)) | (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, x)| b.get(k).is_some_and(|y| x.equals(y)))
            }
            (Value::Dynamic(ta, a), Value::Dynamic(tb, b)) => ta == tb && a.equals(b),
            (Value::Number(a), Value::Number(b)) => a == b,
            (a, b) => a == b,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::int(i)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}
