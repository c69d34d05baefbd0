//! Label and field selectors, as lists and watches take them.

use serde_json::Value;

/// A parsed label selector (equality-based and set-based, as `kubectl -l` sends them).
#[derive(Debug, Clone, PartialEq)]
pub enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Parse `a=b,c!=d,e in (f,g),!h,i`. Errors carry the real server's wording where known.
pub fn parse_label_selector(s: &str) -> Result<Vec<Req>, String> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    for p in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("unable to parse requirement: {p}"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        if let Some(k) = p.strip_prefix('!') {
            out.push(Req::NotExists(k.trim().into()));
        } else if let Some((k, v)) = p.split_once("!=") {
            out.push(Req::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once("==") {
            out.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once('=') {
            out.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once(" notin ") {
            out.push(Req::NotIn(k.trim().into(), set(v)?));
        } else if let Some((k, v)) = p.split_once(" in ") {
            out.push(Req::In(k.trim().into(), set(v)?));
        } else if p.contains(char::is_whitespace) {
            return Err(format!("unable to parse requirement: {p}"));
        } else {
            out.push(Req::Exists(p.into()));
        }
    }
    Ok(out)
}

pub fn labels_match(obj: &Value, reqs: &[Req]) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => get(k) == Some(v.as_str()),
        Req::Ne(k, v) => get(k) != Some(v.as_str()),
        Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        Req::Exists(k) => get(k).is_some(),
        Req::NotExists(k) => get(k).is_none(),
    })
}

/// Field selectors every resource supports: `metadata.name` and `metadata.namespace`
/// (`=`, `==`, `!=`). Others are a 400 with the real server's message.
pub fn parse_field_selector(s: &str) -> Result<Vec<(String, bool, String)>, String> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, neg, v) = if let Some((k, v)) = p.split_once("!=") {
            (k, true, v)
        } else if let Some((k, v)) = p.split_once("==") {
            (k, false, v)
        } else if let Some((k, v)) = p.split_once('=') {
            (k, false, v)
        } else {
            return Err(format!("invalid selector: '{s}'; can't understand '{p}'"));
        };
        let k = k.trim();
        if k != "metadata.name" && k != "metadata.namespace" {
            return Err(format!("field label not supported: {k}"));
        }
        out.push((k.to_string(), neg, v.trim().to_string()));
    }
    Ok(out)
}

pub fn fields_match(obj: &Value, reqs: &[(String, bool, String)]) -> bool {
    reqs.iter().all(|(k, neg, v)| {
        let ptr = if k == "metadata.name" {
            "/metadata/name"
        } else {
            "/metadata/namespace"
        };
        let actual = obj.pointer(ptr).and_then(Value::as_str).unwrap_or_default();
        (actual == v) != *neg
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let node = json!({"metadata": {"name": "cp1", "labels": {"a": "1", "role": "cp"}}});
        let ok = |s: &str| labels_match(&node, &parse_label_selector(s).expect("parses"));
        assert!(ok("a=1"));
        assert!(ok("a==1,role"));
        assert!(!ok("a!=1"));
        assert!(ok("role in (cp, worker)"));
        assert!(!ok("role notin (cp)"));
        assert!(ok("!missing"));
        assert!(!ok("missing"));
        let f = parse_field_selector("metadata.name=cp1").expect("field");
        assert!(fields_match(&node, &f));
        assert!(parse_field_selector("spec.unschedulable=true").is_err());
    }
}
