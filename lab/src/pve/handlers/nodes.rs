//! `/nodes`, node status, storages and storage content.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Call, Result};
use crate::pve::Pve;
use crate::pve::error::ApiError;

pub fn list(pve: &Arc<Pve>, _call: &Call) -> Result {
    let st = pve.state();
    let nodes: Vec<Value> = st
        .nodes
        .iter()
        .map(|n| {
            json!({
                "node": n, "id": format!("node/{n}"), "type": "node", "status": "online",
                "cpu": 0.03, "maxcpu": 16, "mem": 8u64 << 30, "maxmem": 64u64 << 30,
                "disk": 10u64 << 30, "maxdisk": 100u64 << 30, "uptime": 86400, "level": "",
                "ssl_fingerprint": "lab",
            })
        })
        .collect();
    Ok(Value::Array(nodes).into())
}

pub fn status(_pve: &Arc<Pve>, _call: &Call) -> Result {
    Ok(json!({
        "uptime": 86400,
        "cpu": 0.03,
        "wait": 0.0,
        "loadavg": ["0.12", "0.10", "0.08"],
        "kversion": "Linux 6.14.8-2-pve #1 SMP PREEMPT_DYNAMIC",
        "pveversion": "pve-manager/9.1.1/42f8a6ad3c0b6a0b",
        "cpuinfo": {"cpus": 16, "cores": 8, "sockets": 1, "model": "Lab Virtual CPU", "mhz": "3000.000", "hvm": "1", "flags": "", "user_hz": 100},
        "memory": {"total": 64u64 << 30, "used": 8u64 << 30, "free": 56u64 << 30, "available": 56u64 << 30},
        "swap": {"total": 0, "used": 0, "free": 0},
        "rootfs": {"total": 100u64 << 30, "used": 10u64 << 30, "free": 90u64 << 30, "avail": 90u64 << 30},
        "ksm": {"shared": 0},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {"sysname": "Linux", "release": "6.14.8-2-pve", "machine": "x86_64", "version": "#1 SMP PREEMPT_DYNAMIC"},
    })
    .into())
}

pub fn storage_list(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let node = call.node();
    let want_content = call.str("content");
    let want_storage = call.str("storage");
    let out: Vec<Value> = st
        .storages
        .iter()
        .filter(|s| want_storage.is_none_or(|w| w == s.id))
        .filter(|s| {
            want_content.is_none_or(|w| crate::pve::formats::split_list(w).any(|c| s.supports(c)))
        })
        .map(|s| {
            let used = st.used_bytes(&s.id, node);
            json!({
                "storage": s.id, "type": s.kind, "content": s.content.join(","),
                "active": 1, "enabled": 1, "shared": i64::from(s.shared),
                "total": s.total, "used": used, "avail": s.total.saturating_sub(used),
                "used_fraction": used as f64 / s.total as f64,
            })
        })
        .collect();
    Ok(Value::Array(out).into())
}

pub fn storage_content(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let node = call.node();
    let storage = call.str("storage").unwrap_or_default();
    if st.storage(storage).is_none() {
        return Err(ApiError::internal(format!(
            "storage '{storage}' does not exist"
        )));
    }
    let want = call.str("content");
    let vmid = call.u32("vmid");
    let out: Vec<Value> = st
        .volumes_of(storage, node)
        .into_iter()
        .filter(|v| want.is_none_or(|w| w == v.content))
        .filter(|v| vmid.is_none_or(|id| v.vmid == Some(id)))
        .map(|v| {
            let mut j = json!({
                "volid": v.volid, "format": v.format, "size": v.size,
                "content": v.content, "ctime": v.ctime,
            });
            if let Some(id) = v.vmid {
                j["vmid"] = json!(id);
            }
            if let Some(p) = &v.parent {
                j["parent"] = json!(p);
            }
            j
        })
        .collect();
    Ok(Value::Array(out).into())
}

/// `GET /nodes/{node}/network`: one uplink and the lab's bridges.
pub fn network(_pve: &Arc<Pve>, call: &Call) -> Result {
    let ty = call.str("type");
    let mut out = vec![json!({
        "iface": "eno1", "type": "eth", "method": "manual", "method6": "manual",
        "families": ["inet"], "active": 1, "exists": 1, "priority": 1,
    })];
    for (i, b) in crate::pve::seed::BRIDGES.iter().enumerate() {
        out.push(json!({
            "iface": b, "type": "bridge", "method": "static", "method6": "manual",
            "families": ["inet"], "active": 1, "autostart": 1, "priority": 2 + i,
            "bridge_ports": "eno1", "bridge_stp": "off", "bridge_fd": "0",
            "cidr": "192.0.2.10/24", "address": "192.0.2.10", "netmask": "24",
            "gateway": "192.0.2.1",
        }));
    }
    let out: Vec<Value> = out
        .into_iter()
        .filter(|v| match ty {
            None => true,
            Some("any_bridge") => v["type"] == "bridge" || v["type"] == "OVSBridge",
            Some(t) => v["type"] == t,
        })
        .collect();
    Ok(Value::Array(out).into())
}

/// `GET /nodes/{node}/time`: the node's clock (every lab node keeps UTC).
pub fn time(_pve: &Arc<Pve>, _call: &Call) -> Result {
    let now = crate::pve::auth::unix_now();
    Ok(json!({"time": now, "localtime": now, "timezone": "UTC"}).into())
}
