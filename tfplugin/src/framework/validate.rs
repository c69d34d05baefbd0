//! Validators: run at `terraform validate` and plan time on known values only, so a value
//! computed from another resource is checked when it becomes known.

use std::fmt;
use std::sync::Arc;

use crate::diag::Diagnostics;
use crate::value::{AttributePath, Value};

/// Checks one attribute's value; attached with [`Attribute::validate`](super::Attribute::validate).
pub trait Validator: fmt::Debug + Send + Sync {
    /// Markdown sentence for docs ("must be one of `a`, `b`").
    fn description(&self) -> String;
    /// Add an error at `path` when `value` is not allowed. Only known, non-null values
    /// are checked.
    fn validate(&self, path: &AttributePath, value: &Value, diags: &mut Diagnostics);
}

type CheckFn = dyn Fn(&Value) -> Result<(), String> + Send + Sync;

/// A validator from a closure returning the sentence to show on failure.
pub struct Check {
    description: String,
    f: Box<CheckFn>,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Check({})", self.description)
    }
}

impl Validator for Check {
    fn description(&self) -> String {
        self.description.clone()
    }
    fn validate(&self, path: &AttributePath, value: &Value, diags: &mut Diagnostics) {
        if let Err(msg) = (self.f)(value) {
            diags.error_at(path.clone(), format!("Invalid value for {path}"), msg);
        }
    }
}

/// A validator from a closure: `Err` holds the sentence a user reads.
pub fn check(
    description: impl Into<String>,
    f: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
) -> Arc<dyn Validator> {
    Arc::new(Check {
        description: description.into(),
        f: Box::new(f),
    })
}

/// A string from a fixed list.
pub fn one_of(options: &[&str]) -> Arc<dyn Validator> {
    let opts: Vec<String> = options.iter().map(|s| (*s).to_owned()).collect();
    let listed = opts
        .iter()
        .map(|o| format!("`{o}`"))
        .collect::<Vec<_>>()
        .join(", ");
    check(format!("must be one of {listed}"), move |v| {
        match v.as_str() {
            Some(s) if opts.iter().any(|o| o == s) => Ok(()),
            Some(s) => Err(format!("{s:?} is not allowed; use one of {listed}.")),
            None => Ok(()),
        }
    })
}

/// A whole number from `min` to `max`, both included.
pub fn int_between(min: i64, max: i64) -> Arc<dyn Validator> {
    check(
        format!("must be between {min} and {max}"),
        move |v| match v.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(()),
            Some(i) => Err(format!(
                "{i} is out of range; use a whole number from {min} to {max}."
            )),
            None if v.as_f64().is_some() => Err(format!("use a whole number from {min} to {max}.")),
            None => Ok(()),
        },
    )
}

/// A string of `min` to `max` characters.
pub fn string_length(min: usize, max: usize) -> Arc<dyn Validator> {
    check(
        format!("length between {min} and {max}"),
        move |v| match v.as_str() {
            Some(s) if (min..=max).contains(&s.chars().count()) => Ok(()),
            Some(s) => Err(format!(
                "length {} is out of range; use {min} to {max} characters.",
                s.chars().count()
            )),
            None => Ok(()),
        },
    )
}

/// A Go-style duration (`90s`, `20m`, `1h30m`), as the `timeouts` block takes.
pub fn duration() -> Arc<dyn Validator> {
    check("a duration such as `30s`, `20m` or `1h30m`", |v| {
        match v.as_str() {
            Some(s) => super::timeouts::parse_duration(s).map(|_| ()),
            None => Ok(()),
        }
    })
}

/// Run the validators of one value (skipping null and unknown, which Terraform resolves later).
pub(crate) fn run(
    validators: &[Arc<dyn Validator>],
    path: &AttributePath,
    v: &Value,
    diags: &mut Diagnostics,
) {
    if v.is_null() || !v.is_wholly_known() {
        return;
    }
    for val in validators {
        val.validate(path, v, diags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(v: &Arc<dyn Validator>, x: Value) -> Vec<String> {
        let mut d = Diagnostics::new();
        run(
            std::slice::from_ref(v),
            &AttributePath::attr("a"),
            &x,
            &mut d,
        );
        d.iter().map(|d| d.detail.clone()).collect()
    }

    #[test]
    fn builtins() {
        let o = one_of(&["seabios", "ovmf"]);
        assert!(errs(&o, "ovmf".into()).is_empty());
        assert_eq!(
            errs(&o, "uefi".into()),
            vec![r#""uefi" is not allowed; use one of `seabios`, `ovmf`."#]
        );
        assert!(errs(&o, Value::Unknown).is_empty());
        let r = int_between(1, 4);
        assert!(errs(&r, Value::int(4)).is_empty());
        assert_eq!(errs(&r, Value::int(5)).len(), 1);
        assert_eq!(errs(&duration(), "10 minutes".into()).len(), 1);
        assert!(errs(&duration(), "1h10m".into()).is_empty());
        assert_eq!(errs(&string_length(1, 3), "abcd".into()).len(), 1);
    }
}
