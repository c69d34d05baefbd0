//! Talos's own machine-config JSON schemas (1.13 and 1.14, derived into `lab/data/`), each
//! compiled once per process; a node validates with the one of the version it runs.
//!
//! The schema's root is a `oneOf` over every document kind, whose failure messages say nothing
//! useful; so each document is checked against the one definition its `kind` (or `version:
//! v1alpha1`) selects, which gives Talos-like "field X: …" reasons.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::{Value, json};

// Talos's schemas without their prose, derived into `lab/data/` by `scripts/derive-reference.py`.
/// The machine-config schema of Talos 1.13.9.
pub const SCHEMA_V1_13: &str = include_str!("../../data/talos-config-schema-v1.13.9.json");
/// The machine-config schema of Talos 1.14.0-rc.1.
pub const SCHEMA_V1_14: &str = include_str!("../../data/talos-config-schema-v1.14.0-rc.1.json");

/// The compiled schema: definitions by document kind, validators built on first use.
pub struct ConfigSchema {
    doc: Value,
    by_kind: HashMap<String, String>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    #[error("Talos config schema: {0}")]
    Load(String),
    #[error("{0}")]
    Unknown(String),
}

/// The minor of a `v1.MINOR.PATCH[-pre]` tag.
fn minor(version: &str) -> Option<u32> {
    let mut parts = version.trim_start_matches('v').split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}

/// The v1alpha1 document's definition name.
pub const V1ALPHA1: &str = "v1alpha1.Config";

impl ConfigSchema {
    /// The schema of the Talos release `version` (`v1.14.0`, …) runs: 1.14's from 1.14 on,
    /// else 1.13's (parsed on first use).
    pub fn for_version(version: &str) -> Result<&'static ConfigSchema, SchemaError> {
        static V13: OnceLock<Result<ConfigSchema, SchemaError>> = OnceLock::new();
        static V14: OnceLock<Result<ConfigSchema, SchemaError>> = OnceLock::new();
        let (cell, text) = if minor(version).is_some_and(|m| m >= 14) {
            (&V14, SCHEMA_V1_14)
        } else {
            (&V13, SCHEMA_V1_13)
        };
        cell.get_or_init(|| Self::parse(text))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn parse(text: &str) -> Result<ConfigSchema, SchemaError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| SchemaError::Load(e.to_string()))?;
        let defs = doc
            .get("$defs")
            .and_then(Value::as_object)
            .ok_or_else(|| SchemaError::Load("no $defs".into()))?;
        let by_kind = defs
            .iter()
            .filter_map(|(name, def)| {
                let kind = def.pointer("/properties/kind/enum/0")?.as_str()?;
                Some((kind.to_string(), name.clone()))
            })
            .collect();
        Ok(ConfigSchema {
            doc,
            by_kind,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// The definition a document must match: `v1alpha1.Config` for the legacy document, else
    /// the one whose `kind` matches.
    pub fn definition_for(&self, doc: &Value) -> Result<String, SchemaError> {
        if doc.get("version").is_some() && doc.get("kind").is_none() {
            return Ok(V1ALPHA1.into());
        }
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.by_kind.get(kind).cloned().ok_or_else(|| {
            SchemaError::Unknown(format!(
                "unknown document: apiVersion={api:?} kind={kind:?}"
            ))
        })
    }

    /// Validate one document against a definition; the errors as "path: message".
    pub fn validate(&self, def: &str, doc: &Value) -> Result<Vec<String>, SchemaError> {
        let v = self.validator(def)?;
        Ok(v.iter_errors(doc)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect())
    }

    fn validator(&self, def: &str) -> Result<Arc<Validator>, SchemaError> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(def) {
            return Ok(v.clone());
        }
        let root = json!({
            "$schema": self.doc.get("$schema").cloned().unwrap_or(Value::Null),
            "$defs": self.doc.get("$defs").cloned().unwrap_or(Value::Null),
            "$ref": format!("#/$defs/{def}"),
        });
        let v = Arc::new(
            jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .map_err(|e| SchemaError::Load(e.to_string()))?,
        );
        cache.insert(def.to_string(), v.clone());
        Ok(v)
    }
}
