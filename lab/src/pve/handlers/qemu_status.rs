//! VM power state and the guest agent.

use std::sync::Arc;

use serde_json::json;

use super::util::{check_lock, guest_ipv4, max_disk, vm_on};
use super::{Call, Result};
use crate::pve::error::ApiError;
use crate::pve::{Pve, TaskMeta, VmEvent};

pub fn current(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let vm = vm_on(&st, call.node(), call.vmid())?;
    let status = if vm.running { "running" } else { "stopped" };
    let mut v = json!({
        "vmid": vm.vmid,
        "name": vm.name(),
        "status": status,
        "qmpstatus": status,
        "uptime": vm.uptime(),
        "cpus": vm.cpus(),
        "cpu": if vm.running { 0.01 } else { 0.0 },
        "maxmem": vm.memory_mib() << 20,
        "mem": if vm.running { (vm.memory_mib() << 20) / 4 } else { 0 },
        "maxdisk": max_disk(vm),
        "disk": 0,
        "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
        "ha": {"managed": 0},
    });
    if vm.agent_enabled() {
        v["agent"] = json!(1);
    }
    if vm.running {
        v["pid"] = json!(vm.pid);
        v["running-machine"] = json!("pc-i440fx-9.2+pve1");
        v["running-qemu"] = json!("9.2.0");
    }
    if let Some(l) = vm.lock() {
        v["lock"] = json!(l);
    }
    if vm.is_template() {
        v["template"] = json!(1);
    }
    if let Some(t) = vm.config.get("tags") {
        v["tags"] = json!(t);
    }
    Ok(v.into())
}

pub fn power(pve: &Arc<Pve>, call: &Call) -> Result {
    let node = call.node().to_string();
    let vmid = call.vmid();
    let action = call
        .route
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    {
        let st = pve.state();
        let vm = vm_on(&st, &node, vmid)?;
        if action == "reboot" && !vm.running {
            return Err(ApiError::internal(format!("VM {vmid} not running")));
        }
    }
    let skiplock = call.flag("skiplock");
    let kind = format!("qm{action}");
    let authid = call.who.authid.clone();
    let id = vmid.to_string();
    let task_node = node.clone();
    let upid = pve.spawn_task(
        TaskMeta {
            node: &task_node,
            kind: &kind,
            id: &id,
            authid: &authid,
        },
        move |pve| async move {
            let _lock = pve.lock_file(vmid, false).await?;
            if let Some(vm) = pve.state().vms.get(&vmid) {
                if action == "start" && vm.is_template() {
                    return Err("you can't start a vm if it's a template".into());
                }
                check_lock(vm, skiplock).map_err(|e| e.to_string())?;
            }
            tokio::time::sleep(pve.task_duration()).await;
            let mut st = pve.state();
            let pid = st.alloc_pid();
            let Some(vm) = st.vms.get_mut(&vmid).filter(|v| v.node == node) else {
                return Err(format!(
                    "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
                ));
            };
            check_lock(vm, skiplock).map_err(|e| e.to_string())?;
            match action.as_str() {
                "start" => {
                    if vm.running {
                        return Err(format!("VM {vmid} already running"));
                    }
                    vm.apply_pending();
                    check_bridges(vm)?;
                    pve.power_on_check(vm)?;
                    vm.running = true;
                    vm.started = Some(std::time::Instant::now());
                    vm.pid = pid;
                    pve.emit(VmEvent::Started { vmid, node });
                    Ok(vec![format!("start VM {vmid}: UPID")])
                }
                "stop" | "shutdown" => {
                    if vm.running {
                        vm.running = false;
                        vm.started = None;
                        pve.emit(VmEvent::Stopped { vmid, node });
                    }
                    Ok(Vec::new())
                }
                _ => {
                    vm.apply_pending();
                    vm.started = Some(std::time::Instant::now());
                    vm.pid = pid;
                    pve.emit(VmEvent::Stopped {
                        vmid,
                        node: node.clone(),
                    });
                    pve.emit(VmEvent::Started { vmid, node });
                    Ok(Vec::new())
                }
            }
        },
    );
    Ok(json!(upid).into())
}

pub fn agent_interfaces(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let vm = vm_on(&st, call.node(), call.vmid())?;
    if !vm.agent_enabled() {
        return Err(ApiError::internal("No QEMU guest agent configured"));
    }
    if !vm.running {
        return Err(ApiError::internal(format!("VM {} is not running", vm.vmid)));
    }
    let booting = vm
        .started
        .is_some_and(|s| s.elapsed().as_millis() < u128::from(pve.timing.agent_delay_ms));
    if booting {
        return Err(ApiError::internal("QEMU guest agent is not running"));
    }
    let (ip, prefix) = guest_ipv4(vm);
    let mac = vm
        .config
        .get("net0")
        .and_then(|n| n.split(',').next())
        .and_then(|m| m.split_once('=').map(|(_, mac)| mac.to_ascii_lowercase()))
        .unwrap_or_else(|| "bc:24:11:00:00:00".into());
    let stats = json!({"rx-bytes": 0, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 0,
        "tx-bytes": 0, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 0});
    Ok(json!({"result": [
        {
            "name": "lo",
            "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": [
                {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}
            ],
            "statistics": stats,
        },
        {
            "name": "eth0",
            "hardware-address": mac,
            "ip-addresses": [
                {"ip-address": ip, "ip-address-type": "ipv4", "prefix": prefix}
            ],
            "statistics": stats,
        }
    ]})
    .into())
}

/// `tap_plug` fails at start when a NIC names a bridge the node does not have.
fn check_bridges(vm: &crate::pve::state::Vm) -> std::result::Result<(), String> {
    for (k, v) in &vm.config {
        if !k.starts_with("net") {
            continue;
        }
        if let Some(b) = v.split(',').find_map(|p| p.strip_prefix("bridge="))
            && !crate::pve::seed::BRIDGES.contains(&b)
        {
            return Err(format!("bridge '{b}' does not exist"));
        }
    }
    Ok(())
}
