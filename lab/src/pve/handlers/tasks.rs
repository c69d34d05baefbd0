//! `GET /nodes/{node}/tasks/{upid}/status|log`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Call, Reply, Result};
use crate::pve::Pve;
use crate::pve::error::ApiError;
use crate::pve::tasks::{Task, parse_upid};

fn find(pve: &Pve, call: &Call) -> Result<Task> {
    let upid = call.str("upid").unwrap_or_default();
    let Some(parts) = parse_upid(upid) else {
        return Err(ApiError::param(
            "upid",
            format!("unable to parse worker upid '{upid}'"),
        ));
    };
    let st = pve.state();
    match st.task(upid) {
        Some(t) if parts.node == call.node() => Ok(t.clone()),
        _ => Err(ApiError::internal("no such task")),
    }
}

pub fn status(pve: &Arc<Pve>, call: &Call) -> Result {
    Ok(find(pve, call)?.status_json().into())
}

pub fn log(pve: &Arc<Pve>, call: &Call) -> Result {
    let t = find(pve, call)?;
    let start = call.u32("start").unwrap_or(0) as usize;
    let limit = call.u32("limit").unwrap_or(50) as usize;
    let mut lines: Vec<Value> = t.log_json(start, limit);
    if t.log.is_empty() && start == 0 {
        lines.push(json!({"n": 1, "t": "no content"}));
    }
    Ok(Reply {
        data: Value::Array(lines),
        total: Some(t.log.len() as u64),
    })
}

/// `GET /nodes/{node}/tasks`: newest first, with PVE's common filters.
pub fn list(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let node = call.node();
    let vmid = call.str("vmid");
    let typefilter = call.str("typefilter");
    let source = call.str("source").unwrap_or("archive");
    let errors_only = call.flag("errors");
    let start = call.u32("start").unwrap_or(0) as usize;
    let limit = call.u32("limit").unwrap_or(50) as usize;
    let matching: Vec<&Task> = st
        .tasks
        .iter()
        .rev()
        .filter(|t| t.node == node)
        .filter(|t| vmid.is_none_or(|v| t.id == v))
        .filter(|t| typefilter.is_none_or(|f| t.kind == f))
        .filter(|t| match source {
            "active" => t.is_running(),
            "archive" => !t.is_running(),
            _ => true,
        })
        .filter(|t| !errors_only || t.exitstatus.as_deref().is_some_and(|e| e != "OK"))
        .collect();
    let total = matching.len() as u64;
    let items: Vec<Value> = matching
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|t| {
            let user = &t.authid;
            let mut v = json!({
                "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart,
                "starttime": t.starttime, "type": t.kind, "id": t.id, "user": user,
            });
            if let (Some(e), Some(end)) = (&t.exitstatus, t.endtime) {
                v["status"] = json!(e);
                v["endtime"] = json!(end);
            }
            v
        })
        .collect();
    Ok(Reply {
        data: Value::Array(items),
        total: Some(total),
    })
}
