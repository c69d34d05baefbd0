//! Attribute paths: where in a value a diagnostic or a plan modifier points.

use std::fmt;

/// One step into a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathStep {
    /// An attribute of an object.
    Attr(String),
    /// An element of a map.
    Key(String),
    /// An element of a list, set or tuple.
    Index(i64),
}

/// A path from the top of a value to a part of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributePath(Vec<PathStep>);

impl AttributePath {
    /// The whole value.
    pub fn root() -> Self {
        Self(Vec::new())
    }
    /// A path to a top-level attribute.
    pub fn attr(name: impl Into<String>) -> Self {
        Self(vec![PathStep::Attr(name.into())])
    }
    /// A path of these steps.
    pub fn from_steps(steps: Vec<PathStep>) -> Self {
        Self(steps)
    }
    /// Its steps, outermost first.
    pub fn steps(&self) -> &[PathStep] {
        &self.0
    }
    /// Whether it is the whole value.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// This path, then attribute `name`.
    #[must_use]
    pub fn push_attr(&self, name: impl Into<String>) -> Self {
        self.with(PathStep::Attr(name.into()))
    }
    /// This path, then map key `key`.
    #[must_use]
    pub fn push_key(&self, key: impl Into<String>) -> Self {
        self.with(PathStep::Key(key.into()))
    }
    /// This path, then element `i`.
    #[must_use]
    pub fn push_index(&self, i: usize) -> Self {
        self.with(PathStep::Index(i64::try_from(i).unwrap_or(i64::MAX)))
    }
    fn with(&self, s: PathStep) -> Self {
        let mut v = self.0.clone();
        v.push(s);
        Self(v)
    }
    /// Whether `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &AttributePath) -> bool {
        self.0.starts_with(&other.0)
    }
}

/// HCL-like rendering: `disk["scsi0"].size_gb`, `node[2].address`.
impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                PathStep::Attr(a) if i == 0 => write!(f, "{a}")?,
                PathStep::Attr(a) => write!(f, ".{a}")?,
                PathStep::Key(k) => write!(f, "[{k:?}]")?,
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_hcl() {
        let p = AttributePath::attr("disk")
            .push_key("scsi0")
            .push_attr("size_gb");
        assert_eq!(p.to_string(), r#"disk["scsi0"].size_gb"#);
        assert!(p.starts_with(&AttributePath::attr("disk")));
        assert_eq!(AttributePath::attr("n").push_index(2).to_string(), "n[2]");
    }
}
