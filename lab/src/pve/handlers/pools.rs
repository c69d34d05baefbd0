//! Resource pools: list, read, create, and membership changes (`PUT /pools/{poolid}` and
//! PVE 8.2+'s `PUT /pools?poolid=…`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Call, Result};
use crate::pve::Pve;
use crate::pve::error::ApiError;
use crate::pve::formats::split_list;
use crate::pve::state::Pool;

pub fn list(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let out: Vec<Value> = st
        .pools
        .iter()
        .filter(|(id, _)| call.str("poolid").is_none_or(|p| p == id.as_str()))
        .map(|(id, p)| {
            let mut v = json!({"poolid": id});
            if let Some(c) = &p.comment {
                v["comment"] = json!(c);
            }
            v
        })
        .collect();
    Ok(Value::Array(out).into())
}

pub fn get(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let id = call.str("poolid").unwrap_or_default();
    let pool = st
        .pools
        .get(id)
        .ok_or_else(|| ApiError::internal(format!("pool '{id}' does not exist")))?;
    let members: Vec<Value> = pool
        .vms
        .iter()
        .filter_map(|vmid| st.vms.get(vmid))
        .map(|vm| {
            json!({
                "id": format!("qemu/{}", vm.vmid), "type": "qemu", "vmid": vm.vmid,
                "node": vm.node, "name": vm.name(),
                "status": if vm.running { "running" } else { "stopped" },
            })
        })
        .collect();
    let mut v = json!({"members": members});
    if let Some(c) = &pool.comment {
        v["comment"] = json!(c);
    }
    Ok(v.into())
}

pub fn create(pve: &Arc<Pve>, call: &Call) -> Result {
    let id = call.str("poolid").unwrap_or_default().to_string();
    let mut st = pve.state();
    if st.pools.contains_key(&id) {
        return Err(ApiError::internal(format!(
            "create pool failed: pool '{id}' already exists"
        )));
    }
    let pool = Pool {
        comment: call.str("comment").map(str::to_string),
        ..Pool::default()
    };
    st.pools.insert(id, pool);
    Ok(Value::Null.into())
}

/// Add (or with `delete=1` remove) `vms`; a VM in another pool moves only with `allow-move`.
pub fn update(pve: &Arc<Pve>, call: &Call) -> Result {
    let id = call.str("poolid").unwrap_or_default().to_string();
    let delete = call.flag("delete");
    let allow_move = call.flag("allow-move");
    let mut st = pve.state();
    if !st.pools.contains_key(&id) {
        return Err(ApiError::internal(format!(
            "update pools failed: pool '{id}' does not exist"
        )));
    }
    let vmids: Vec<u32> = call
        .str("vms")
        .map(|v| split_list(v).filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    for vmid in vmids {
        let fail = |m: String| ApiError::internal(format!("update pools failed: {m}"));
        let member = st.pools.get(&id).is_some_and(|p| p.vms.contains(&vmid));
        if delete {
            if !member {
                return Err(fail(format!("VM {vmid} is not a pool member")));
            }
            if let Some(p) = st.pools.get_mut(&id) {
                p.vms.remove(&vmid);
            }
            continue;
        }
        if member {
            return Err(fail(format!("VM {vmid} is already a pool member")));
        }
        if !st.vms.contains_key(&vmid) {
            return Err(fail(format!("VM {vmid} does not exist")));
        }
        if let Some(other) = st.pool_of(vmid).map(str::to_string) {
            if !allow_move {
                return Err(fail(format!(
                    "VM {vmid} belongs already to pool '{other}' and 'allow-move' is not set"
                )));
            }
            if let Some(p) = st.pools.get_mut(&other) {
                p.vms.remove(&vmid);
            }
        }
        if let Some(p) = st.pools.get_mut(&id) {
            p.vms.insert(vmid);
        }
    }
    if let Some(c) = call.str("comment")
        && let Some(p) = st.pools.get_mut(&id)
    {
        p.comment = Some(c.to_string());
    }
    Ok(Value::Null.into())
}
