//! The official PVE API schema (apidata), parsed once per process and indexed by path.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// The schema document (PVE 9.1's apidata without its prose, derived into `lab/data/` by
/// `scripts/derive-reference.py`), embedded at build time.
pub const APIDATA: &str = include_str!("../../data/pve-apidata-9.1.json");

/// Errors loading the schema.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    #[error("API schema is not valid JSON: {0}")]
    Json(String),
    #[error("API schema has an unexpected shape: {0}")]
    Shape(String),
}

/// One API method (e.g. `POST /nodes/{node}/qemu`).
#[derive(Debug)]
pub struct MethodDef {
    pub method: String,
    pub path: String,
    pub name: String,
    pub properties: Map<String, Value>,
    pub additional_properties: bool,
    pub permissions: Value,
    pub allowtoken: bool,
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<String, Node>,
    param: Option<(String, Box<Node>)>,
    methods: HashMap<String, Arc<MethodDef>>,
}

/// The indexed schema.
#[derive(Debug)]
pub struct Schema {
    root: Node,
    method_count: usize,
}

/// A successful path lookup.
#[derive(Debug, Clone)]
pub struct Found {
    pub def: Arc<MethodDef>,
    /// Values bound by `{param}` path segments, in order.
    pub uri_params: Vec<(String, String)>,
}

static GLOBAL: OnceLock<Result<Arc<Schema>, SchemaError>> = OnceLock::new();

impl Schema {
    /// The process-wide schema, parsed on first use.
    pub fn global() -> Result<Arc<Schema>, SchemaError> {
        GLOBAL
            .get_or_init(|| Schema::parse(APIDATA).map(Arc::new))
            .clone()
    }

    /// Parse an apidata document.
    pub fn parse(text: &str) -> Result<Schema, SchemaError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| SchemaError::Json(e.to_string()))?;
        let roots = doc
            .as_array()
            .ok_or_else(|| SchemaError::Shape("top level is not an array".into()))?;
        let mut schema = Schema {
            root: Node::default(),
            method_count: 0,
        };
        for r in roots {
            schema.add(r)?;
        }
        Ok(schema)
    }

    fn add(&mut self, node: &Value) -> Result<(), SchemaError> {
        let path = node
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError::Shape("node without path".into()))?;
        if let Some(info) = node.get("info").and_then(Value::as_object) {
            for (method, def) in info {
                let params = def.get("parameters");
                let properties = params
                    .and_then(|p| p.get("properties"))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let additional = params
                    .and_then(|p| p.get("additionalProperties"))
                    .map(truthy)
                    .unwrap_or(false);
                let md = MethodDef {
                    method: method.clone(),
                    path: path.to_string(),
                    name: def
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    properties,
                    additional_properties: additional,
                    permissions: def.get("permissions").cloned().unwrap_or(Value::Null),
                    allowtoken: def.get("allowtoken").map(truthy).unwrap_or(true),
                };
                let slot = self.slot(path);
                slot.methods.insert(method.clone(), Arc::new(md));
                self.method_count += 1;
            }
        }
        if let Some(children) = node.get("children").and_then(Value::as_array) {
            for c in children {
                self.add(c)?;
            }
        }
        Ok(())
    }

    fn slot(&mut self, path: &str) -> &mut Node {
        let mut cur = &mut self.root;
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                cur = &mut cur
                    .param
                    .get_or_insert_with(|| (name.to_string(), Box::default()))
                    .1;
            } else {
                cur = cur.literal.entry(seg.to_string()).or_default();
            }
        }
        cur
    }

    /// Number of API methods in the schema.
    pub fn method_count(&self) -> usize {
        self.method_count
    }

    /// Find the method for `method` on the concrete `path` (relative to `/api2/json`).
    /// Literal path segments win over `{param}` ones, as PVE's handler lookup does.
    pub fn lookup(&self, method: &str, path: &str) -> Option<Found> {
        let mut cur = &self.root;
        let mut uri_params = Vec::new();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if let Some(next) = cur.literal.get(seg) {
                cur = next;
            } else if let Some((name, next)) = &cur.param {
                uri_params.push((name.clone(), seg.to_string()));
                cur = next;
            } else {
                return None;
            }
        }
        cur.methods.get(method).map(|def| Found {
            def: def.clone(),
            uri_params,
        })
    }
}

/// PVE's schema writes booleans as 0/1 (sometimes strings).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => s == "1" || s == "true",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_finds_paths() {
        let t = std::time::Instant::now();
        let s = Schema::global().unwrap();
        eprintln!("schema parse + index: {:?}", t.elapsed());
        assert!(s.method_count() > 500);
        let f = s.lookup("POST", "/nodes/pve1/qemu/100/clone").unwrap();
        assert_eq!(f.def.path, "/nodes/{node}/qemu/{vmid}/clone");
        assert_eq!(
            f.uri_params,
            vec![
                ("node".into(), "pve1".into()),
                ("vmid".into(), "100".into())
            ]
        );
        assert!(
            s.lookup("GET", "/nodes/pve1/qemu/100/status/current")
                .is_some()
        );
        assert!(s.lookup("GET", "/cluster/nextid").is_some());
        assert!(s.lookup("GET", "/xyz").is_none());
        assert!(s.lookup("PATCH", "/version").is_none());
        assert!(t.elapsed().as_secs() < 5);
    }
}
