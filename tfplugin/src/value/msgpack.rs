//! Type-directed MessagePack codec for `DynamicValue.msgpack`, as cty encodes it.
//!
//! Unknown is an extension value (cty writes fixext1 type 0; refined unknowns use type 12);
//! every extension decodes as unknown. `dynamic` values travel as `[type-json, value]`.
//! Hostile input yields an error, never a panic: lengths are checked against the remaining
//! input and nesting is bounded.

use std::collections::BTreeMap;

use super::{Number, ObjectType, Type, Value};

const MAX_DEPTH: usize = 64;

/// Why bytes are not a msgpack value of the expected type.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("unexpected end of input")]
    Eof,
    /// A value of another kind than the type says.
    #[error("expected {expected} at byte {offset}, found marker 0x{marker:02x}")]
    Mismatch {
        /// What the type wanted.
        expected: String,
        /// Where the value starts.
        offset: usize,
        /// The msgpack marker found there.
        marker: u8,
    },
    /// Bytes that are not a valid value here (bad UTF-8, an unknown attribute...).
    #[error("{0}")]
    Invalid(String),
    /// Nesting beyond what any schema needs: hostile input.
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Bytes left after the value.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Decode `bytes` as a value of `ty`; the whole input must be that one value.
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let v = r.value(ty, 0)?;
    if r.pos != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - r.pos));
    }
    Ok(v)
}

/// Encode `v` as `ty`. A value that does not fit the type is a provider bug; it is reported
/// rather than sent, so Terraform never sees a malformed value.
pub fn encode_msgpack(v: &Value, ty: &Type) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, v, ty)?;
    Ok(out)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

enum Head {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(usize),
    Bin(usize),
    Array(usize),
    Map(usize),
    Ext(usize),
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Eof)?;
        let s = self.b.get(self.pos..end).ok_or(DecodeError::Eof)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn len16(&mut self) -> Result<usize, DecodeError> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }
    fn len32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    fn head(&mut self) -> Result<Head, DecodeError> {
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Head::Int(i64::from(m)),
            0x80..=0x8f => Head::Map((m & 0x0f) as usize),
            0x90..=0x9f => Head::Array((m & 0x0f) as usize),
            0xa0..=0xbf => Head::Str((m & 0x1f) as usize),
            0xc0 => Head::Nil,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => Head::Bin(self.u8()? as usize),
            0xc5 => Head::Bin(self.len16()?),
            0xc6 => Head::Bin(self.len32()?),
            0xc7 => Head::Ext(self.u8()? as usize + 1),
            0xc8 => Head::Ext(self.len16()? + 1),
            0xc9 => Head::Ext(self.len32()? + 1),
            0xca => Head::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Head::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Head::Int(i64::from(self.u8()?)),
            0xcd => Head::Int(i64::from(u16::from_be_bytes(self.be()?))),
            0xce => Head::Int(i64::from(u32::from_be_bytes(self.be()?))),
            0xcf => Head::Uint(u64::from_be_bytes(self.be()?)),
            0xd0 => Head::Int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => Head::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Head::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Head::Int(i64::from_be_bytes(self.be()?)),
            0xd4 => Head::Ext(2),
            0xd5 => Head::Ext(3),
            0xd6 => Head::Ext(5),
            0xd7 => Head::Ext(9),
            0xd8 => Head::Ext(17),
            0xd9 => Head::Str(self.u8()? as usize),
            0xda => Head::Str(self.len16()?),
            0xdb => Head::Str(self.len32()?),
            0xdc => Head::Array(self.len16()?),
            0xdd => Head::Array(self.len32()?),
            0xde => Head::Map(self.len16()?),
            0xdf => Head::Map(self.len32()?),
            0xe0..=0xff => Head::Int(i64::from(m as i8)),
            0xc1 => return Err(DecodeError::Invalid("reserved marker 0xc1".into())),
        })
    }

    fn mismatch(&self, expected: &str, start: usize) -> DecodeError {
        DecodeError::Mismatch {
            expected: expected.to_owned(),
            offset: start,
            marker: self.b.get(start).copied().unwrap_or(0),
        }
    }

    fn str_body(&mut self, n: usize) -> Result<String, DecodeError> {
        let s = self.take(n)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| DecodeError::Invalid("string is not UTF-8".into()))
    }

    /// Collection lengths count items of at least one byte each: refuse lengths the input
    /// cannot hold, before allocating for them.
    fn check_len(&self, n: usize) -> Result<(), DecodeError> {
        if n > self.b.len() - self.pos {
            return Err(DecodeError::Eof);
        }
        Ok(())
    }

    fn value(&mut self, ty: &Type, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let start = self.pos;
        let head = self.head()?;
        match head {
            Head::Nil => return Ok(Value::Null),
            Head::Ext(n) => {
                self.take(n)?;
                return Ok(Value::Unknown);
            }
            _ => {}
        }
        match (ty, head) {
            (Type::Bool, Head::Bool(b)) => Ok(Value::Bool(b)),
            (Type::Number, Head::Int(i)) => Ok(Value::Number(Number::Int(i))),
            (Type::Number, Head::Uint(u)) => Ok(Value::Number(Number::Uint(u))),
            (Type::Number, Head::Float(f)) if f.is_finite() => Ok(Value::Number(Number::Float(f))),
            (Type::Number, Head::Str(n)) => {
                let s = self.str_body(n)?;
                Number::parse(&s)
                    .map(Value::Number)
                    .ok_or_else(|| DecodeError::Invalid(format!("{s:?} is not a number")))
            }
            (Type::String, Head::Str(n)) => Ok(Value::String(self.str_body(n)?)),
            (Type::List(et) | Type::Set(et), Head::Array(n)) => {
                self.check_len(n)?;
                let items = (0..n)
                    .map(|_| self.value(et, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if matches!(ty, Type::Set(_)) {
                    Value::Set(items)
                } else {
                    Value::List(items)
                })
            }
            (Type::Tuple(ts), Head::Array(n)) => {
                if n != ts.len() {
                    return Err(DecodeError::Invalid(format!(
                        "tuple of {} elements, found {n}",
                        ts.len()
                    )));
                }
                let items = ts
                    .iter()
                    .map(|t| self.value(t, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::Tuple(items))
            }
            (Type::Map(et), Head::Map(n)) => {
                self.check_len(n)?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let k = self.key()?;
                    m.insert(k, self.value(et, depth + 1)?);
                }
                Ok(Value::Map(m))
            }
            (Type::Object(ot), Head::Map(n)) => self.object(ot, n, depth),
            (Type::Dynamic, Head::Array(2)) => {
                let tstart = self.pos;
                let tj = match self.head()? {
                    Head::Bin(n) | Head::Str(n) => self.take(n)?,
                    _ => return Err(self.mismatch("type JSON of a dynamic value", tstart)),
                };
                let t =
                    Type::from_json_bytes(tj).map_err(|e| DecodeError::Invalid(e.to_string()))?;
                let v = self.value(&t, depth + 1)?;
                Ok(Value::Dynamic(Box::new(t), Box::new(v)))
            }
            (t, _) => Err(self.mismatch(&format!("{}", t.to_json()), start)),
        }
    }

    fn key(&mut self) -> Result<String, DecodeError> {
        let s = self.pos;
        match self.head()? {
            Head::Str(n) => self.str_body(n),
            _ => Err(self.mismatch("string key", s)),
        }
    }

    fn object(&mut self, ot: &ObjectType, n: usize, depth: usize) -> Result<Value, DecodeError> {
        self.check_len(n)?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.key()?;
            let t = ot
                .attrs
                .get(&k)
                .ok_or_else(|| DecodeError::Invalid(format!("unsupported attribute {k:?}")))?;
            pairs.push((k, self.value(t, depth + 1)?));
        }
        // Terraform sends keys sorted: built in bulk, without a search per key.
        let mut m = BTreeMap::from_iter(pairs);
        super::fill_absent(&mut m, ot);
        Ok(Value::Object(m))
    }
}

fn write_len(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, m16: u8, m32: u8) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(m16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= u8::MAX as usize {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else {
        write_len(out, n, 0, 0, 0xda, 0xdb);
    }
    out.extend_from_slice(s.as_bytes());
}

fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n <= u8::MAX as usize {
        out.extend_from_slice(&[0xc4, n as u8]);
    } else if n <= u16::MAX as usize {
        out.push(0xc5);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    if (0..=0x7f).contains(&i) || (-32..0).contains(&i) {
        out.push(i as u8);
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn write_number(out: &mut Vec<u8>, n: &Number) {
    match n {
        Number::Int(i) => write_int(out, *i),
        Number::Uint(u) => {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
        Number::Float(f) => match n.as_i64() {
            Some(i) => write_int(out, i),
            None => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            }
        },
        Number::Decimal(s) => write_str(out, s),
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value, ty: &Type) -> Result<(), String> {
    match (ty, v) {
        (_, Value::Null) => out.push(0xc0),
        (_, Value::Unknown) => out.extend_from_slice(&[0xd4, 0, 0]),
        (Type::Bool, Value::Bool(b)) => out.push(if *b { 0xc3 } else { 0xc2 }),
        (Type::Number, Value::Number(n)) => write_number(out, n),
        (Type::String, Value::String(s)) => write_str(out, s),
        (Type::List(et), Value::List(items)) | (Type::Set(et), Value::Set(items)) => {
            write_len(out, items.len(), 0x90, 15, 0xdc, 0xdd);
            for i in items {
                write_value(out, i, et)?;
            }
        }
        (Type::Tuple(ts), Value::Tuple(items)) if ts.len() == items.len() => {
            write_len(out, items.len(), 0x90, 15, 0xdc, 0xdd);
            for (i, t) in items.iter().zip(ts) {
                write_value(out, i, t)?;
            }
        }
        (Type::Map(et), Value::Map(m)) => {
            write_len(out, m.len(), 0x80, 15, 0xde, 0xdf);
            for (k, i) in m {
                write_str(out, k);
                write_value(out, i, et)?;
            }
        }
        (Type::Object(ot), Value::Object(m)) => {
            if let Some(k) = m.keys().find(|k| !ot.attrs.contains_key(*k)) {
                return Err(format!("attribute {k:?} is not in the schema"));
            }
            write_len(out, ot.attrs.len(), 0x80, 15, 0xde, 0xdf);
            for (k, t) in &ot.attrs {
                write_str(out, k);
                write_value(out, m.get(k).unwrap_or(&Value::Null), t)?;
            }
        }
        (Type::Dynamic, Value::Dynamic(t, inner)) => {
            out.push(0x92);
            write_bin(out, &t.to_json_bytes());
            write_value(out, inner, t)?;
        }
        (Type::Dynamic, other) => {
            let t = infer_type(other);
            out.push(0x92);
            write_bin(out, &t.to_json_bytes());
            write_value(out, other, &t)?;
        }
        (t, Value::Dynamic(_, inner)) => write_value(out, inner, t)?,
        (t, v) => return Err(format!("value {v:?} does not fit type {}", t.to_json())),
    }
    Ok(())
}

/// The type of a value written under `dynamic` without an explicit type.
fn infer_type(v: &Value) -> Type {
    match v {
        Value::Null | Value::Unknown => Type::Dynamic,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::List(items) => Type::list(items.first().map_or(Type::Dynamic, infer_type)),
        Value::Set(items) => Type::set(items.first().map_or(Type::Dynamic, infer_type)),
        Value::Tuple(items) => Type::Tuple(items.iter().map(infer_type).collect()),
        Value::Map(m) => Type::map(m.values().next().map_or(Type::Dynamic, infer_type)),
        Value::Object(m) => Type::object(m.iter().map(|(k, v)| (k.clone(), infer_type(v)))),
        Value::Dynamic(t, _) => (**t).clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_type() -> impl Strategy<Value = Type> {
        let leaf = prop_oneof![Just(Type::Bool), Just(Type::Number), Just(Type::String)];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(Type::list),
                inner.clone().prop_map(Type::set),
                inner.clone().prop_map(Type::map),
                prop::collection::btree_map("[a-z_]{1,8}", inner.clone(), 0..4)
                    .prop_map(Type::object),
                prop::collection::vec(inner, 0..3).prop_map(Type::Tuple),
            ]
        })
    }

    fn arb_value(t: &Type) -> BoxedStrategy<Value> {
        let special = prop_oneof![Just(Value::Null), Just(Value::Unknown)];
        let known: BoxedStrategy<Value> = match t {
            Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Type::Number => prop_oneof![
                any::<i64>().prop_map(|i| Value::Number(Number::Int(i))),
                any::<u64>().prop_map(|u| Value::Number(Number::Uint(u))),
                (-1e300f64..1e300).prop_map(|f| Value::Number(Number::Float(f))),
                "[1-9][0-9]{20,40}".prop_map(|s| Value::Number(Number::Decimal(s))),
            ]
            .boxed(),
            Type::String => ".{0,40}".prop_map(Value::String).boxed(),
            Type::List(et) => prop::collection::vec(arb_value(et), 0..4)
                .prop_map(Value::List)
                .boxed(),
            Type::Set(et) => prop::collection::vec(arb_value(et), 0..4)
                .prop_map(Value::Set)
                .boxed(),
            Type::Map(et) => prop::collection::btree_map(".{0,6}", arb_value(et), 0..4)
                .prop_map(Value::Map)
                .boxed(),
            Type::Object(ot) => {
                let parts: Vec<_> = ot
                    .attrs
                    .iter()
                    .map(|(k, t)| (Just(k.clone()), arb_value(t)))
                    .collect();
                parts
                    .prop_map(|kv| Value::Object(kv.into_iter().collect()))
                    .boxed()
            }
            Type::Tuple(ts) => {
                let parts: Vec<_> = ts.iter().map(arb_value).collect();
                parts.prop_map(Value::Tuple).boxed()
            }
            Type::Dynamic => Just(Value::Null).boxed(),
        };
        prop_oneof![1 => special, 4 => known].boxed()
    }

    proptest! {
        #[test]
        fn round_trip((t, v) in arb_type().prop_flat_map(|t| { let s = arb_value(&t); (Just(t), s) })) {
            let bytes = encode_msgpack(&v, &t).unwrap();
            let back = decode_msgpack(&bytes, &t).unwrap();
            prop_assert!(back.equals(&v), "{v:?} -> {back:?}");
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), t in arb_type()) {
            let _ = decode_msgpack(&bytes, &t);
            let _ = decode_msgpack(&bytes, &Type::Dynamic);
        }
    }

    #[test]
    fn unknown_and_refined_unknown() {
        assert_eq!(
            decode_msgpack(&[0xd4, 0, 0], &Type::String),
            Ok(Value::Unknown)
        );
        // A refined unknown: ext type 12 carrying a map of refinements.
        let refined = [0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc3];
        assert_eq!(decode_msgpack(&refined, &Type::String), Ok(Value::Unknown));
        assert_eq!(
            encode_msgpack(&Value::Unknown, &Type::Bool).unwrap(),
            vec![0xd4, 0, 0]
        );
    }

    #[test]
    fn dynamic_carries_type() {
        let v = Value::Dynamic(
            Box::new(Type::list(Type::String)),
            Box::new(Value::List(vec!["a".into()])),
        );
        let b = encode_msgpack(&v, &Type::Dynamic).unwrap();
        assert_eq!(decode_msgpack(&b, &Type::Dynamic).unwrap(), v);
        // Terraform may send the type JSON as a str as well as a bin.
        let mut s = vec![0x92, 0xa8];
        s.extend_from_slice(b"\"string\"");
        s.extend_from_slice(&[0xa1, b'x']);
        assert_eq!(
            decode_msgpack(&s, &Type::Dynamic).unwrap(),
            Value::Dynamic(Box::new(Type::String), Box::new("x".into()))
        );
    }

    #[test]
    fn hostile_lengths_fail_cleanly() {
        // array32 claiming 4 billion items in a 5-byte message.
        assert_eq!(
            decode_msgpack(&[0xdd, 0xff, 0xff, 0xff, 0xff], &Type::list(Type::Bool)),
            Err(DecodeError::Eof)
        );
        let deep = vec![0x91; 200];
        let mut t = Type::Bool;
        for _ in 0..200 {
            t = Type::list(t);
        }
        assert_eq!(decode_msgpack(&deep, &t), Err(DecodeError::TooDeep));
        assert!(matches!(
            decode_msgpack(&[0xa1, b'x', 0x00], &Type::String),
            Err(DecodeError::Trailing(1))
        ));
        let obj = Type::object([("a", Type::String)]);
        assert!(decode_msgpack(&[0x81, 0xa1, b'b', 0xc0], &obj).is_err());
    }

    #[test]
    fn big_numbers_survive() {
        let n = Value::Number(Number::Decimal("123456789012345678901234567890".into()));
        let b = encode_msgpack(&n, &Type::Number).unwrap();
        assert_eq!(decode_msgpack(&b, &Type::Number).unwrap(), n);
    }
}
