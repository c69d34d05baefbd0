//! Numbers as Terraform sends them: msgpack ints, float64s, or decimal strings for values
//! neither can hold exactly. Kept in the form received so nothing is lost on the way back.

use std::cmp::Ordering;

/// A number in the form Terraform sent it; equality is by value across forms.
#[derive(Clone, Debug)]
pub enum Number {
    /// A whole number that fits `i64`.
    Int(i64),
    /// Unsigned values above `i64::MAX`.
    Uint(u64),
    /// A float64: a msgpack float, or a decimal it holds exactly.
    Float(f64),
    /// A decimal literal (arbitrary precision), validated on construction.
    Decimal(String),
}

impl Number {
    /// Parse a decimal literal as Terraform writes big numbers (`-12.5e3`, `123456789012345678901`).
    pub fn parse(s: &str) -> Option<Number> {
        let t = s.trim();
        if let Ok(i) = t.parse::<i64>() {
            return Some(Number::Int(i));
        }
        if let Ok(u) = t.parse::<u64>() {
            return Some(Number::Uint(u));
        }
        if !is_decimal_literal(t) {
            return None;
        }
        let f: f64 = t.parse().ok()?;
        if f.is_finite() && format_f64(f) == t {
            Some(Number::Float(f))
        } else {
            Some(Number::Decimal(t.to_owned()))
        }
    }

    /// The whole number, when it is one that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::Uint(u) => i64::try_from(*u).ok(),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(*f as i64),
            Number::Float(_) => None,
            Number::Decimal(s) => s.parse().ok(),
        }
    }

    /// The nearest float64 (big decimals lose precision).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Number::Int(i) => Some(*i as f64),
            Number::Uint(u) => Some(*u as f64),
            Number::Float(f) => Some(*f),
            Number::Decimal(s) => s.parse().ok(),
        }
    }

    /// Canonical decimal text (used for comparison and for JSON state).
    pub fn to_decimal(&self) -> String {
        match self {
            Number::Int(i) => i.to_string(),
            Number::Uint(u) => u.to_string(),
            Number::Float(f) => format_f64(*f),
            Number::Decimal(s) => s.clone(),
        }
    }
}

fn format_f64(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn is_decimal_literal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mant.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (mant, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    digits(int)
        && frac.is_none_or(digits)
        && exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (a, b) => match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => match (a, b) {
                    (Number::Decimal(x), Number::Decimal(y)) => x == y,
                    _ => {
                        a.as_f64()
                            .zip(b.as_f64())
                            .is_some_and(|(x, y)| x.partial_cmp(&y) == Some(Ordering::Equal))
                            && a.to_decimal() == b.to_decimal()
                    }
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_precision() {
        assert_eq!(Number::parse("42"), Some(Number::Int(42)));
        assert!(matches!(
            Number::parse("18446744073709551615"),
            Some(Number::Uint(_))
        ));
        let big = "123456789012345678901234567890";
        assert_eq!(Number::parse(big).unwrap().to_decimal(), big);
        assert_eq!(Number::parse("0.5"), Some(Number::Float(0.5)));
        assert_eq!(
            Number::parse("0.1000000000000000000001")
                .unwrap()
                .to_decimal(),
            "0.1000000000000000000001"
        );
        for bad in ["", "abc", "1.", ".5", "1e", "--1", "0x10", "NaN", "inf"] {
            assert_eq!(Number::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn equality_across_forms() {
        assert_eq!(Number::Int(3), Number::Float(3.0));
        assert_eq!(Number::Decimal("7".into()), Number::Int(7));
        assert_ne!(Number::Int(3), Number::Float(3.5));
    }
}
