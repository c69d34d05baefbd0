//! The control endpoint (plain HTTP on loopback): inspect state, count requests, switch faults.
//!
//! Routes:
//! - `GET /state` — VMs, tasks, request counters and faults.
//! - `GET /faults` — the fault settings; `POST /faults` — merge a JSON patch into them.
//! - `GET /requests` — request counters; `POST /requests/reset` — zero them.
//! - `POST /vms/{vmid}/lock` — `{"lock": "clone"}` sets a config lock without holding the
//!   file lock (what a crashed worker leaves behind); `{"lock": null}` clears it.
//! - `GET /talos/nodes` — the simulated Talos nodes (address, stage, config hash…).
//! - `POST /talos/nodes/{vmid|address}/maintenance` — fault: the node reboots into maintenance
//!   mode with a blank disk (as if reinstalled).
//! - `GET /talos/etcd` — etcd membership per cluster (members, health, quorum).
//! - `GET /k8s` — the running Kubernetes API servers (cluster, endpoint, nodes) and, under
//!   `failed`, those that cannot listen on their endpoint (with the error).
//! - `POST /k8s/cni` — `{"cluster_key": …, "ready": true}`: a test seam declaring the cluster's
//!   pod network ready on every node (the real path: a Cilium agent pod ready on the node).
//! - `POST /k8s/restart` — `{"cluster_key": …, "down_ms": N}`: fault: the cluster's API server
//!   stops (connections refused, open watches end) and comes back after N ms, same store;
//!   while it is held down, only the end of the outage moves.
//! - `GET /health` — `{"ok": true}`.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::faults::FaultsPatch;
use crate::http::{self, DropConnection, Req, Resp};
use crate::pve::Pve;
use crate::talos::Talos;

/// What the control endpoint sees.
pub struct Control {
    pub pve: Arc<Pve>,
    pub talos: Arc<Talos>,
    pub k8s: Arc<crate::k8s::K8s>,
}

fn err(status: StatusCode, msg: &str) -> Resp {
    http::json(status, None, &json!({"error": msg}))
}

fn ok(v: &Value) -> Resp {
    http::json(StatusCode::OK, None, v)
}

/// Serve one control request.
pub async fn handle(ctl: Arc<Control>, req: Req) -> Result<Resp, DropConnection> {
    let pve = ctl.pve.clone();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match (method, path.as_str()) {
        (Method::GET, "/health") => ok(&json!({"ok": true})),
        (Method::GET, "/state") => ok(&state(&pve)),
        (Method::GET, "/faults") => ok(&json!(pve.faults.get())),
        (Method::POST, "/faults") => match http::read_body(req.into_body()).await {
            Ok(body) => match serde_json::from_slice::<FaultsPatch>(&body) {
                Ok(p) => match p.check() {
                    Ok(()) => ok(&json!(pve.faults.patch(&p))),
                    Err(e) => err(StatusCode::BAD_REQUEST, &e.to_string()),
                },
                Err(e) => err(StatusCode::BAD_REQUEST, &format!("invalid faults: {e}")),
            },
            Err(e) => err(StatusCode::BAD_REQUEST, &e),
        },
        (Method::GET, "/requests") => ok(&json!(pve.counters())),
        (Method::POST, "/requests/reset") => {
            pve.reset_counters();
            ok(&json!(pve.counters()))
        }
        (Method::GET, "/talos/nodes") => ok(&ctl.talos.snapshot()),
        (Method::GET, "/talos/etcd") => ok(&ctl.talos.etcd_snapshot()),
        (Method::GET, "/k8s") => ok(&ctl.k8s.snapshot()),
        (Method::POST, "/k8s/cni") => match http::read_body(req.into_body()).await {
            Ok(body) => match serde_json::from_slice::<CniBody>(&body) {
                Ok(b) => {
                    ctl.k8s.set_cni_ready(&b.cluster_key, b.ready);
                    ok(&json!({"cluster_key": b.cluster_key, "ready": b.ready}))
                }
                Err(e) => err(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")),
            },
            Err(e) => err(StatusCode::BAD_REQUEST, &e),
        },
        (Method::POST, "/k8s/restart") => match http::read_body(req.into_body()).await {
            Ok(body) => match serde_json::from_slice::<RestartBody>(&body) {
                Ok(b) => {
                    if ctl.k8s.restart(&b.cluster_key, b.down_ms).await {
                        ok(&json!({"cluster_key": b.cluster_key, "down_ms": b.down_ms}))
                    } else {
                        err(
                            StatusCode::NOT_FOUND,
                            "no running API server for that cluster",
                        )
                    }
                }
                Err(e) => err(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")),
            },
            Err(e) => err(StatusCode::BAD_REQUEST, &e),
        },
        (Method::POST, p) if p.starts_with("/talos/nodes/") && p.ends_with("/maintenance") => {
            into_maintenance(&ctl.talos, p)
        }
        (Method::POST, p) if p.starts_with("/vms/") && p.ends_with("/lock") => {
            set_lock(&pve, p, req).await
        }
        _ => err(StatusCode::NOT_FOUND, "no such control route"),
    };
    Ok(resp)
}

fn into_maintenance(talos: &Talos, path: &str) -> Resp {
    let key = path
        .strip_prefix("/talos/nodes/")
        .and_then(|r| r.strip_suffix("/maintenance"))
        .unwrap_or_default();
    match talos.find(key) {
        Some(node) => {
            node.into_maintenance();
            ok(
                &json!({"vmid": node.vmid, "address": node.ip.to_string(), "stage": node.state().stage.name()}),
            )
        }
        None => err(
            StatusCode::NOT_FOUND,
            "no running Talos node with that VMID or address",
        ),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CniBody {
    cluster_key: String,
    ready: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartBody {
    cluster_key: String,
    down_ms: u64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LockBody {
    lock: Option<String>,
}

async fn set_lock(pve: &Pve, path: &str, req: Req) -> Resp {
    let Some(vmid) = path
        .strip_prefix("/vms/")
        .and_then(|r| r.strip_suffix("/lock"))
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return err(StatusCode::BAD_REQUEST, "bad VMID");
    };
    let body = match http::read_body(req.into_body()).await {
        Ok(b) => b,
        Err(e) => return err(StatusCode::BAD_REQUEST, &e),
    };
    let lock = match serde_json::from_slice::<LockBody>(&body) {
        Ok(b) => b.lock,
        Err(e) => return err(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")),
    };
    let mut st = pve.state();
    let Some(vm) = st.vms.get_mut(&vmid) else {
        return err(StatusCode::NOT_FOUND, "no such VM");
    };
    match lock {
        Some(l) => vm.config.insert("lock".into(), l),
        None => vm.config.remove("lock"),
    };
    ok(&json!({"vmid": vmid, "lock": vm.lock()}))
}

/// The `GET /state` document.
pub fn state(pve: &Pve) -> Value {
    let (vms, tasks) = {
        let st = pve.state();
        let vms: Vec<Value> = st
            .vms
            .values()
            .map(|vm| {
                json!({
                    "vmid": vm.vmid,
                    "node": vm.node,
                    "name": vm.name(),
                    "status": if vm.running { "running" } else { "stopped" },
                    "lock": vm.lock(),
                    "template": vm.is_template(),
                    "config": vm.config,
                    "pending": vm.pending,
                    "pending_delete": vm.pending_delete,
                })
            })
            .collect();
        let tasks: Vec<Value> = st
            .tasks
            .iter()
            .map(|t| {
                let mut s = t.status_json();
                s["log"] = json!(t.log);
                s
            })
            .collect();
        (vms, tasks)
    };
    json!({
        "vms": vms,
        "tasks": tasks,
        "requests": pve.counters(),
        "faults": pve.faults.get(),
    })
}
