//! `data "infraflux_proxmox_nodes"`: `GET /nodes`, then `GET /nodes/{node}/storage` for each
//! online node.

use std::sync::Arc;

use async_trait::async_trait;
use infraflux_proxmox::types::{NodeInfo, NodeStorage};
use tfplugin::{Attribute, Block, Ctx, DataSource, Diagnostic, Schema, StateResponse, Type, Value};

use crate::provider::Shared;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

pub struct ProxmoxNodes(pub Arc<Shared>);

fn storage_type() -> Type {
    Type::object([
        ("name", Type::String),
        ("type", Type::String),
        ("shared", Type::Bool),
        ("active", Type::Bool),
        ("content", Type::list(Type::String)),
        ("total_gb", Type::Number),
        ("used_gb", Type::Number),
        ("free_gb", Type::Number),
    ])
}

fn node_type() -> Type {
    Type::object([
        ("name", Type::String),
        ("status", Type::String),
        ("cpu_count", Type::Number),
        ("cpu_usage", Type::Number),
        ("cpu_free", Type::Number),
        ("memory_total_mb", Type::Number),
        ("memory_free_mb", Type::Number),
        ("storages", Type::list(storage_type())),
    ])
}

fn int(n: u64) -> Value {
    Value::int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn float(f: f64) -> Value {
    Value::Number(tfplugin::value::Number::Float(f))
}

fn storage_value(s: &NodeStorage) -> Value {
    Value::object([
        ("name", Value::from(s.storage.as_str())),
        ("type", Value::from(s.kind.as_str())),
        ("shared", Value::from(s.shared)),
        ("active", Value::from(s.active)),
        (
            "content",
            Value::List(s.content_types().into_iter().map(Value::from).collect()),
        ),
        ("total_gb", int(s.total / GIB)),
        ("used_gb", int(s.used.div_ceil(GIB))),
        ("free_gb", int(s.avail / GIB)),
    ])
}

/// One node as the data source reports it (storages sorted by name).
pub fn node_value(n: &NodeInfo, mut storages: Vec<NodeStorage>) -> Value {
    storages.sort_by(|a, b| a.storage.cmp(&b.storage));
    let usage = n.cpu.unwrap_or(0.0).clamp(0.0, 1.0);
    let free_cpu = (n.maxcpu as f64 * (1.0 - usage) * 100.0).round() / 100.0;
    Value::object([
        ("name", Value::from(n.node.as_str())),
        ("status", Value::from(n.status.as_str())),
        ("cpu_count", int(n.maxcpu)),
        ("cpu_usage", float(usage)),
        ("cpu_free", float(free_cpu)),
        ("memory_total_mb", int(n.maxmem / MIB)),
        ("memory_free_mb", int(n.maxmem.saturating_sub(n.mem) / MIB)),
        (
            "storages",
            Value::List(storages.iter().map(storage_value).collect()),
        ),
    ])
}

#[async_trait]
impl DataSource for ProxmoxNodes {
    fn type_name(&self) -> &'static str {
        "infraflux_proxmox_nodes"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("The nodes of the Proxmox VE cluster: status, free CPU and memory, and the storages each node sees with their free space and content types. Costs one request plus one per online node.")
                .attr(
                    Attribute::new("names", Type::list(Type::String))
                        .computed()
                        .description("Node names, sorted."),
                )
                .attr(
                    Attribute::new("nodes", Type::list(node_type()))
                        .computed()
                        .description("One object per node, sorted by name: `name`, `status` (`online`, `offline`, `unknown`), `cpu_count`, `cpu_usage` (0–1), `cpu_free` (CPUs idle), `memory_total_mb`, `memory_free_mb`, and `storages` (sorted by name: `name`, `type`, `shared`, `active`, `content` types, `total_gb`, `used_gb`, `free_gb`). Storages of offline nodes are empty."),
                ),
        )
    }

    async fn read(&self, _ctx: &Ctx, _config: &Value) -> StateResponse {
        let client = match self.0.proxmox(self.type_name()) {
            Ok(c) => c,
            Err(d) => return StateResponse::error(d),
        };
        let mut nodes = match client.nodes().await {
            Ok(n) => n,
            Err(e) => {
                return StateResponse::error(Diagnostic::error(
                    "Cannot list the Proxmox VE nodes",
                    e.to_string(),
                ));
            }
        };
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        // One storage request per online node, all at once.
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| {
                let (client, node, online) = (client.clone(), n.node.clone(), n.status == "online");
                tokio::spawn(async move {
                    if online {
                        client.node_storages(&node).await
                    } else {
                        Ok(Vec::new())
                    }
                })
            })
            .collect();
        let mut storages = Vec::new();
        for h in handles {
            storages.push(h.await.unwrap_or_else(|e| {
                Err(infraflux_proxmox::Error::Config(format!(
                    "internal error: {e}"
                )))
            }));
        }
        let mut out = Vec::new();
        for (n, s) in nodes.iter().zip(storages) {
            match s {
                Ok(s) => out.push(node_value(n, s)),
                Err(e) => {
                    return StateResponse::error(Diagnostic::error(
                        format!("Cannot list the storages of node {}", n.node),
                        e.to_string(),
                    ));
                }
            }
        }
        StateResponse::ok(Value::object([
            (
                "names",
                Value::List(nodes.iter().map(|n| Value::from(n.node.as_str())).collect()),
            ),
            ("nodes", Value::List(out)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_values() {
        let n: NodeInfo = serde_json::from_value(serde_json::json!({
            "node": "pve1", "status": "online", "cpu": 0.25, "maxcpu": 16,
            "mem": 8u64 << 30, "maxmem": 64u64 << 30
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let s: NodeStorage = serde_json::from_value(serde_json::json!({
            "storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images",
            "shared": 0, "active": 1, "enabled": 1,
            "total": 500u64 << 30, "used": (10u64 << 30) + 1, "avail": 490u64 << 30
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let v = node_value(&n, vec![s]);
        assert_eq!(v.attr("cpu_free"), &float(12.0));
        assert_eq!(v.attr("memory_free_mb"), &Value::int(56 * 1024));
        let st = &v.attr("storages").as_elements().unwrap_or(&[])[0];
        assert_eq!(st.attr("free_gb"), &Value::int(490));
        assert_eq!(st.attr("used_gb"), &Value::int(11), "rounded up");
        assert_eq!(
            st.attr("content"),
            &Value::List(vec!["images".into(), "rootdir".into()])
        );
    }
}
