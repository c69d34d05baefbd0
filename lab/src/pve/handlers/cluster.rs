//! `/version`, `/cluster/nextid`, `/cluster/resources`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::util::max_disk;
use super::{Call, Result};
use crate::pve::Pve;
use crate::pve::error::ApiError;

pub fn version(_pve: &Arc<Pve>, _call: &Call) -> Result {
    Ok(json!({"version": "9.1.1", "release": "9.1", "repoid": "42f8a6ad3c0b6a0b"}).into())
}

pub fn nextid(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    if let Some(vmid) = call.u32("vmid") {
        if st.vms.contains_key(&vmid) {
            return Err(ApiError::param("vmid", format!("VM {vmid} already exists")));
        }
        return Ok(json!(vmid.to_string()).into());
    }
    Ok(json!(st.next_free_vmid().to_string()).into())
}

pub fn resources(pve: &Arc<Pve>, call: &Call) -> Result {
    let ty = call.str("type");
    let st = pve.state();
    let mut out: Vec<Value> = Vec::new();
    if ty.is_none() || ty == Some("node") {
        for n in &st.nodes {
            out.push(json!({
                "id": format!("node/{n}"), "type": "node", "node": n, "status": "online",
                "cpu": 0.03, "maxcpu": 16, "mem": 8u64 << 30, "maxmem": 64u64 << 30,
                "disk": 10u64 << 30, "maxdisk": 100u64 << 30, "uptime": 86400, "level": "",
                "cgroup-mode": 2,
            }));
        }
    }
    if ty.is_none() || ty == Some("vm") {
        for vm in st.vms.values() {
            let mut v = json!({
                "id": format!("qemu/{}", vm.vmid), "type": "qemu", "vmid": vm.vmid,
                "name": vm.name(), "node": vm.node,
                "status": if vm.running { "running" } else { "stopped" },
                "template": i64::from(vm.is_template()),
                "maxcpu": vm.cpus(), "maxmem": vm.memory_mib() << 20, "maxdisk": max_disk(vm),
                "cpu": if vm.running { 0.01 } else { 0.0 },
                "mem": if vm.running { (vm.memory_mib() << 20) / 4 } else { 0 },
                "disk": 0, "uptime": vm.uptime(), "netin": 0, "netout": 0,
                "diskread": 0, "diskwrite": 0,
            });
            if let Some(tags) = vm.config.get("tags") {
                v["tags"] = json!(tags);
            }
            if let Some(l) = vm.lock() {
                v["lock"] = json!(l);
            }
            if let Some(p) = st.pool_of(vm.vmid) {
                v["pool"] = json!(p);
            }
            out.push(v);
        }
    }
    if ty.is_none() || ty == Some("storage") {
        for n in &st.nodes {
            for s in &st.storages {
                out.push(json!({
                    "id": format!("storage/{n}/{}", s.id), "type": "storage",
                    "storage": s.id, "node": n, "status": "available",
                    "plugintype": s.kind, "content": s.content.join(","),
                    "shared": i64::from(s.shared),
                    "disk": st.used_bytes(&s.id, n), "maxdisk": s.total,
                }));
            }
        }
    }
    Ok(Value::Array(out).into())
}

/// `GET /cluster/status`: the cluster entry, then one entry per node.
pub fn status(pve: &Arc<Pve>, _call: &Call) -> Result {
    let st = pve.state();
    let mut out = vec![json!({
        "id": "cluster", "type": "cluster", "name": st.cluster_name,
        "nodes": st.nodes.len(), "quorate": 1, "version": st.nodes.len() + 1,
    })];
    for (i, n) in st.nodes.iter().enumerate() {
        out.push(json!({
            "id": format!("node/{n}"), "type": "node", "name": n, "nodeid": i + 1,
            "ip": format!("127.0.0.{}", i + 1), "local": i64::from(i == 0), "online": 1,
            "level": "",
        }));
    }
    Ok(Value::Array(out).into())
}

/// `GET /storage`: the datacenter storage configuration.
pub fn storage_config(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let ty = call.str("type");
    let out: Vec<Value> = st
        .storages
        .iter()
        .filter(|s| ty.is_none_or(|t| t == s.kind))
        .map(|s| {
            let mut v = json!({
                "storage": s.id, "type": s.kind, "content": s.content.join(","),
                "digest": "0000000000000000000000000000000000000000",
            });
            if s.shared {
                v["shared"] = json!(1);
            }
            match s.kind.as_str() {
                "dir" => v["path"] = json!("/var/lib/vz"),
                "lvmthin" => {
                    v["vgname"] = json!("pve");
                    v["thinpool"] = json!("data");
                }
                "rbd" => {
                    v["pool"] = json!("rbd");
                    v["krbd"] = json!(0);
                }
                _ => {}
            }
            v
        })
        .collect();
    Ok(Value::Array(out).into())
}
