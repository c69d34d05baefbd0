//! Parameter validation against the PVE schema, with PVE's own error texts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

use super::formats;
use super::schema::{MethodDef, truthy};

/// Per-parameter error messages, as PVE puts them under `errors`.
pub type ParamErrors = BTreeMap<String, String>;

/// Request parameters (query, body and path), by name.
pub type Params = BTreeMap<String, String>;

pub const MSG_ADDITIONAL: &str =
    "property is not defined in schema and the schema does not allow additional properties";
pub const MSG_MISSING: &str = "property is missing and it is not optional";

/// Highest index of each `name[n]` family (PVE's limits).
fn max_index(family: &str) -> u32 {
    match family {
        "net" | "ipconfig" => 31,
        "scsi" | "mp" => 30,
        "virtio" | "hostpci" => 15,
        "sata" => 5,
        "ide" | "serial" | "parallel" => 3,
        "usb" => 13,
        "numa" => 7,
        "virtiofs" => 9,
        "unused" => 255,
        _ => 255,
    }
}

/// Find the schema entry for `key`, mapping `net0` to `net[n]`.
pub fn lookup_prop<'a>(props: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(p) = props.get(key) {
        return Some(p);
    }
    let digits = key.trim_start_matches(|c: char| !c.is_ascii_digit());
    let family = &key[..key.len() - digits.len()];
    if family.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    let idx: u32 = digits.parse().ok()?;
    if idx > max_index(family) {
        return None;
    }
    props.get(&format!("{family}[n]"))
}

/// Validate and normalize `params` against `def`.
pub fn validate(def: &MethodDef, params: &mut Params) -> Result<(), ParamErrors> {
    let mut errors = ParamErrors::new();
    let keys: Vec<String> = params.keys().cloned().collect();
    for key in keys {
        let Some(prop) = lookup_prop(&def.properties, &key) else {
            if !def.additional_properties {
                errors.insert(key, MSG_ADDITIONAL.to_string());
            }
            continue;
        };
        let Some(value) = params.get(&key).cloned() else {
            continue;
        };
        match check_value(prop, &value, &key) {
            Ok(normalized) => {
                params.insert(key, normalized);
            }
            Err(msg) => {
                errors.insert(key, msg);
            }
        }
    }
    for (name, prop) in &def.properties {
        if name.ends_with("[n]") {
            continue;
        }
        let optional = prop.get("optional").map(truthy).unwrap_or(false);
        if !optional && !params.contains_key(name) && !errors.contains_key(name) {
            errors.insert(name.clone(), MSG_MISSING.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn fmt_num(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Check one value against a property schema; returns the normalized value.
pub fn check_value(prop: &Value, value: &str, key: &str) -> Result<String, String> {
    let ty = prop.get("type").and_then(Value::as_str).unwrap_or("string");
    let mut out = value.to_string();
    match ty {
        "integer" if !is_integer(value) => {
            return Err(format!("type check ('integer') failed - got '{value}'"));
        }
        "number" if value.parse::<f64>().is_err() || value.trim() != value => {
            return Err(format!("type check ('number') failed - got '{value}'"));
        }
        "boolean" => {
            out = match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => "1".into(),
                "0" | "false" | "no" | "off" => "0".into(),
                _ => return Err(format!("type check ('boolean') failed - got '{value}'")),
            };
        }
        _ => {}
    }
    if ty == "integer" || ty == "number" {
        let n: f64 = value.parse().unwrap_or(0.0);
        if let Some(min) = num(prop.get("minimum"))
            && n < min
        {
            let shown = prop.get("minimum").map(fmt_num).unwrap_or_default();
            return Err(format!("value must have a minimum value of {shown}"));
        }
        if let Some(max) = num(prop.get("maximum"))
            && n > max
        {
            let shown = prop.get("maximum").map(fmt_num).unwrap_or_default();
            return Err(format!("value must have a maximum value of {shown}"));
        }
    }
    if ty == "string" || ty == "array" {
        check_string(prop, value, key)?;
    }
    Ok(out)
}

fn is_integer(v: &str) -> bool {
    let d = v.strip_prefix(['-', '+']).unwrap_or(v);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && d.len() <= 18
}

fn check_string(prop: &Value, value: &str, key: &str) -> Result<(), String> {
    if let Some(max) = num(prop.get("maxLength"))
        && value.chars().count() as f64 > max
    {
        return Err(format!(
            "value may only be {} characters long",
            prop.get("maxLength").map(fmt_num).unwrap_or_default()
        ));
    }
    if let Some(min) = num(prop.get("minLength"))
        && (value.chars().count() as f64) < min
    {
        return Err(format!(
            "value must be at least {} characters long",
            prop.get("minLength").map(fmt_num).unwrap_or_default()
        ));
    }
    if let Some(pat) = prop.get("pattern").and_then(Value::as_str)
        && !pattern_matches(pat, value)
    {
        return Err("value does not match the regex pattern".to_string());
    }
    if let Some(list) = prop.get("enum").and_then(Value::as_array)
        && !list.iter().any(|e| e.as_str() == Some(value))
    {
        let names: Vec<String> = list.iter().map(fmt_num).collect();
        return Err(format!(
            "value '{value}' does not have a value in the enumeration '{}'",
            names.join(", ")
        ));
    }
    match prop.get("format") {
        Some(Value::String(f)) => formats::check(f, value),
        Some(Value::Object(f)) => check_property_string(f, value, key),
        _ => Ok(()),
    }
}

/// PVE anchors schema patterns (`^(?:pattern)$`). Compiled regexes are cached.
fn pattern_matches(pat: &str, value: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut g = cache.lock().unwrap_or_else(|e| e.into_inner());
    let re = g
        .entry(pat.to_string())
        .or_insert_with(|| Regex::new(&format!("^(?:{pat})$")).ok());
    match re {
        Some(r) => r.is_match(value),
        // A pattern the regex crate cannot compile (look-around etc.) is not enforced.
        None => true,
    }
}

/// Parse `key=value,...` against a property-string format definition.
pub fn parse_property_string(
    format: &Map<String, Value>,
    value: &str,
) -> Result<BTreeMap<String, String>, String> {
    let default_key = format
        .iter()
        .find(|(_, d)| d.get("default_key").map(truthy).unwrap_or(false))
        .map(|(k, _)| k.clone());
    let mut out = BTreeMap::new();
    for part in value.split(',').filter(|s| !s.is_empty()) {
        let (mut k, v) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match &default_key {
                Some(dk) if !out.contains_key(dk) => (dk.clone(), part.to_string()),
                Some(_) => {
                    return Err(format!(
                        "duplicate key in comma-separated list property: {}",
                        default_key.clone().unwrap_or_default()
                    ));
                }
                None => {
                    return Err(
                        "value without key, but schema does not define a default key".into(),
                    );
                }
            },
        };
        if let Some(def) = format.get(&k) {
            if let Some(target) = def.get("alias").and_then(Value::as_str) {
                if let Some(key_alias) = def.get("keyAlias").and_then(Value::as_str) {
                    out.insert(key_alias.to_string(), k.clone());
                }
                k = target.to_string();
            }
        } else {
            return Err(format!("invalid key in comma-separated list property: {k}"));
        }
        if out.contains_key(&k) {
            return Err(format!(
                "duplicate key in comma-separated list property: {k}"
            ));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn check_property_string(
    format: &Map<String, Value>,
    value: &str,
    key: &str,
) -> Result<(), String> {
    let parsed =
        parse_property_string(format, value).map_err(|e| format!("invalid format - {e}\n"))?;
    let mut errs = Vec::new();
    for (k, v) in &parsed {
        if let Some(def) = format.get(k)
            && let Err(e) = check_value(def, v, k)
        {
            errs.push(format!("{key}.{k}: {e}"));
        }
    }
    for (k, def) in format {
        if def.get("alias").is_some() || def.get("keyAlias").is_some() {
            continue;
        }
        let optional = def.get("optional").map(truthy).unwrap_or(false);
        if !optional && !parsed.contains_key(k) && def.get("default").is_none() {
            errs.push(format!("{key}.{k}: {MSG_MISSING}"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "invalid format - format error\n{}\n",
            errs.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::schema::Schema;

    fn run(method: &str, path: &str, kv: &[(&str, &str)]) -> Result<Params, ParamErrors> {
        let s = Schema::global().unwrap();
        let f = s.lookup(method, path).unwrap();
        let mut p: Params = f.uri_params.into_iter().collect();
        for (k, v) in kv {
            p.insert(k.to_string(), v.to_string());
        }
        validate(&f.def, &mut p).map(|_| p)
    }

    #[test]
    fn pve_messages() {
        let e = run("POST", "/nodes/pve1/qemu", &[("vmid", "abc")]).unwrap_err();
        assert_eq!(e["vmid"], "type check ('integer') failed - got 'abc'");
        let e = run(
            "POST",
            "/nodes/pve1/qemu",
            &[("vmid", "100"), ("cores", "0")],
        )
        .unwrap_err();
        assert_eq!(e["cores"], "value must have a minimum value of 1");
        let e = run(
            "POST",
            "/nodes/pve1/qemu",
            &[("vmid", "100"), ("bogus", "1")],
        )
        .unwrap_err();
        assert_eq!(e["bogus"], MSG_ADDITIONAL);
        let e = run(
            "POST",
            "/nodes/pve1/qemu",
            &[("vmid", "100"), ("ostype", "dos")],
        )
        .unwrap_err();
        assert!(
            e["ostype"]
                .starts_with("value 'dos' does not have a value in the enumeration 'other, wxp")
        );
        let e = run("POST", "/nodes/pve1/qemu/100/clone", &[]).unwrap_err();
        assert_eq!(e["newid"], MSG_MISSING);
        let p = run(
            "POST",
            "/nodes/pve1/qemu",
            &[("vmid", "100"), ("onboot", "true")],
        )
        .unwrap();
        assert_eq!(p["onboot"], "1");
    }

    #[test]
    fn property_strings() {
        let ok = run(
            "POST",
            "/nodes/pve1/qemu",
            &[
                ("vmid", "100"),
                ("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"),
                (
                    "scsi0",
                    "local-lvm:0,import-from=local:import/talos-nocloud-amd64.raw",
                ),
                ("ipconfig0", "ip=10.0.0.5/24,gw=10.0.0.1"),
            ],
        );
        assert!(ok.is_ok(), "{ok:?}");
        let e = run(
            "POST",
            "/nodes/pve1/qemu",
            &[("vmid", "100"), ("net0", "virtio,firewall=abc")],
        )
        .unwrap_err();
        assert!(e["net0"].contains("net0.firewall: type check ('boolean') failed - got 'abc'"));
        let e = run(
            "POST",
            "/nodes/pve1/qemu",
            &[("vmid", "100"), ("net0", "virtio,foo=1")],
        )
        .unwrap_err();
        assert!(e["net0"].contains("invalid key in comma-separated list property: foo"));
        let e = run(
            "POST",
            "/nodes/pve1/qemu",
            &[("vmid", "100"), ("net99", "virtio")],
        )
        .unwrap_err();
        assert_eq!(e["net99"], MSG_ADDITIONAL);
    }
}
