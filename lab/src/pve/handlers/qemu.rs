//! VM lifecycle: list, create, clone, destroy, template (migration: [`super::migrate`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::qemu_config::{DrivePlan, normalize_net, plan_drive, realize_drive};
use super::util::{check_config_privileges, check_lock, check_vmid_unused, max_disk, vm_on};
use super::{Call, Result};
use crate::pve::auth::{require, unix_now};
use crate::pve::error::ApiError;
use crate::pve::seed::uuid_for;
use crate::pve::state::{Cluster, Vm, drive_size, drive_volume, is_disk_key};
use crate::pve::{Pve, TaskMeta, VmEvent};

/// Create parameters that are not config keys.
const CREATE_META: &[&str] = &[
    "node",
    "vmid",
    "start",
    "storage",
    "pool",
    "force",
    "archive",
    "unique",
    "live-restore",
    "bwlimit",
    "import-working-storage",
];

pub fn list(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let out: Vec<Value> = st
        .vms
        .values()
        .filter(|vm| vm.node == call.node())
        .map(|vm| {
            let mut v = json!({
                "vmid": vm.vmid, "name": vm.name(),
                "status": if vm.running { "running" } else { "stopped" },
                "cpus": vm.cpus(), "maxmem": vm.memory_mib() << 20, "maxdisk": max_disk(vm),
                "mem": 0, "disk": 0, "cpu": 0, "uptime": vm.uptime(),
                "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
            });
            if vm.is_template() {
                v["template"] = json!(1);
            }
            if let Some(l) = vm.lock() {
                v["lock"] = json!(l);
            }
            if vm.running {
                v["pid"] = json!(vm.pid);
            }
            if let Some(t) = vm.config.get("tags") {
                v["tags"] = json!(t);
            }
            v
        })
        .collect();
    Ok(Value::Array(out).into())
}

fn empty_vm(vmid: u32, node: &str, lock: &str) -> Vm {
    let mut config = BTreeMap::new();
    config.insert("lock".to_string(), lock.to_string());
    Vm {
        vmid,
        node: node.to_string(),
        config,
        pending: BTreeMap::new(),
        pending_delete: BTreeSet::new(),
        running: false,
        started: None,
        pid: 0,
        lease: None,
    }
}

fn start_vm(pve: &Pve, c: &mut Cluster, vmid: u32) -> std::result::Result<(), String> {
    let pid = c.alloc_pid();
    if let Some(vm) = c.vms.get_mut(&vmid) {
        vm.apply_pending();
        pve.power_on_check(vm)?;
        vm.running = true;
        vm.started = Some(std::time::Instant::now());
        vm.pid = pid;
        pve.emit(VmEvent::Started {
            vmid,
            node: vm.node.clone(),
        });
    }
    Ok(())
}

pub fn create(pve: &Arc<Pve>, call: &Call) -> Result {
    let node = call.node().to_string();
    let vmid = call.vmid();
    require(&call.who, &format!("/vms/{vmid}"), "VM.Allocate")?;
    let mut config: BTreeMap<String, String> = call
        .params
        .iter()
        .filter(|(k, _)| !CREATE_META.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check_config_privileges(&call.who, vmid, &config, &[])?;
    let pool = call.str("pool").map(str::to_string);
    if let Some(p) = &pool {
        require(&call.who, &format!("/pool/{p}"), "VM.Allocate")?;
    }
    let mut plans = BTreeMap::new();
    {
        let st = pve.state();
        if let Some(p) = &pool {
            st.check_pool(p).map_err(ApiError::internal)?;
        }
        check_vmid_unused(&st, vmid)
            .map_err(|e| ApiError::internal(format!("unable to create VM {vmid} - {e}")))?;
        for (k, v) in &config {
            if is_disk_key(k) && !k.starts_with("unused") {
                let p = plan_drive(&st, &node, k, v).map_err(|e| ApiError::param(k, e))?;
                plans.insert(k.clone(), p);
            }
        }
    }
    for (k, v) in config.iter_mut() {
        if let Some(idx) = k.strip_prefix("net").and_then(|i| i.parse().ok()) {
            *v = normalize_net(v, vmid, idx, 0);
        }
    }
    let now = unix_now();
    config
        .entry("smbios1".into())
        .or_insert_with(|| format!("uuid={}", uuid_for(vmid, now as u32)));
    config
        .entry("vmgenid".into())
        .or_insert_with(|| uuid_for(vmid, now as u32 ^ 0x5a5a));
    config
        .entry("meta".into())
        .or_insert_with(|| format!("creation-qemu=9.2.0,ctime={now}"));
    let start = call.flag("start");
    let authid = call.who.authid.clone();
    let id = vmid.to_string();
    let n2 = node.clone();
    let upid = pve.spawn_task(
        TaskMeta {
            node: &node,
            kind: "qmcreate",
            id: &id,
            authid: &authid,
        },
        move |pve| async move {
            let d = pve.task_duration();
            tokio::time::sleep(d / 3).await;
            {
                // create_and_lock_config: the flock is held only while `lock: create` is written.
                let _lock = pve.lock_file(vmid, false).await?;
                let mut st = pve.state();
                if let Some(other) = st.vms.get(&vmid) {
                    return Err(format!(
                        "unable to create VM {vmid} - VM {vmid} already exists on node '{}'",
                        other.node
                    ));
                }
                st.vms.insert(vmid, empty_vm(vmid, &n2, "create"));
            }
            tokio::time::sleep(d - d / 3).await;
            let mut st = pve.state();
            let mut log = Vec::new();
            for (k, p) in &plans {
                match realize_drive(&mut st, &n2, vmid, p) {
                    Ok(v) => {
                        if let DrivePlan::Import { .. } = p {
                            log.push(format!("importing disk to {}", drive_volume(&v)));
                        }
                        config.insert(k.clone(), v);
                    }
                    Err(e) => {
                        st.vms.remove(&vmid);
                        return Err(format!("unable to create VM {vmid} - {e}"));
                    }
                }
            }
            if let Some(vm) = st.vms.get_mut(&vmid) {
                vm.config = config;
            } else {
                return Err(format!("VM {vmid} vanished during create"));
            }
            if let Some(p) = pool.as_deref().and_then(|p| st.pools.get_mut(p)) {
                p.vms.insert(vmid);
            }
            if start {
                start_vm(&pve, &mut st, vmid)?;
            }
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

pub async fn clone(pve: &Arc<Pve>, call: &Call) -> Result {
    let node = call.node().to_string();
    let vmid = call.vmid();
    let newid = call.u32("newid").unwrap_or_default();
    let target = call.str("target").unwrap_or(&node).to_string();
    let storage = call.str("storage").map(str::to_string);
    // PVE's early checks, run before the worker forks; they run again under the locks.
    let full = load_and_check(pve, call, &node, &target, storage.as_deref())?;
    let pool = call.str("pool").map(str::to_string);
    if let Some(p) = &pool {
        require(&call.who, &format!("/pool/{p}"), "VM.Allocate")?;
        pve.state().check_pool(p).map_err(ApiError::internal)?;
    }
    let running = pve.state().vms.get(&vmid).is_some_and(|v| v.running);
    let shared_lock = !running && !pve.timing.exclusive_clone_lock;
    let name = call.str("name").map(str::to_string);
    let description = call.str("description").map(str::to_string);
    let authid = call.who.authid.clone();
    let id = vmid.to_string();
    let check_call = call.clone();
    let task_node = node.clone();
    let upid = pve.spawn_task(
        TaskMeta {
            node: &task_node,
            kind: "qmclone",
            id: &id,
            authid: &authid,
        },
        move |pve| async move {
            let _source = pve.lock_file(vmid, shared_lock).await?;
            let _target = pve.lock_file(newid, false).await?;
            load_and_check(&pve, &check_call, &node, &target, storage.as_deref())
                .map_err(|e| e.to_string())?;
            let (cfg, src_name) = {
                let mut st = pve.state();
                let vm = st
                    .vms
                    .get(&vmid)
                    .ok_or_else(|| format!("VM {vmid} vanished"))?;
                let cfg = vm.config.clone();
                let src_name = vm.config.get("name").cloned().unwrap_or(vmid.to_string());
                st.vms.insert(newid, empty_vm(newid, &node, "clone"));
                (cfg, src_name)
            };
            let d = pve.task_duration();
            tokio::time::sleep(d).await;
            let mut st = pve.state();
            let mut new_cfg: BTreeMap<String, String> = BTreeMap::new();
            let mut log = vec![format!(
                "create {} clone of drives",
                if full { "full" } else { "linked" }
            )];
            let mut salt = 1u32;
            let mut new_vols = Vec::new();
            for (k, v) in &cfg {
                if k == "template" || k == "lock" || k.starts_with("unused") {
                    continue;
                }
                let v = if is_disk_key(k) && !v.contains("media=cdrom") {
                    let vol = drive_volume(v).to_string();
                    let size = drive_size(v).unwrap_or(1 << 30);
                    let (src_storage, src_vol) = vol.split_once(':').unwrap_or(("", ""));
                    let opts: Vec<&str> = v.split(',').skip(1).collect();
                    let res = if full {
                        let s = storage.clone().unwrap_or_else(|| src_storage.to_string());
                        st.alloc_disk(&target, &s, newid, size, "vm", None)
                    } else {
                        st.alloc_disk(
                            &target,
                            src_storage,
                            newid,
                            size,
                            "vm",
                            Some(src_vol.to_string()),
                        )
                    };
                    match res {
                        Ok(new_vol) => {
                            log.push(format!("{k}: {vol} -> {new_vol}"));
                            new_vols.push(new_vol.clone());
                            let mut s = new_vol;
                            for o in opts {
                                s.push(',');
                                s.push_str(o);
                            }
                            s
                        }
                        Err(e) => {
                            for nv in &new_vols {
                                st.remove_volume(&target, nv);
                            }
                            st.vms.remove(&newid);
                            return Err(format!("clone failed: {e}"));
                        }
                    }
                } else if let Some(idx) = k.strip_prefix("net").and_then(|i| i.parse().ok()) {
                    salt += 1;
                    let without_mac: Vec<&str> = v
                        .split(',')
                        .map(|p| match p.split_once('=') {
                            Some((m, mac)) if mac.contains(':') => m,
                            _ => p,
                        })
                        .collect();
                    normalize_net(
                        &without_mac.join(","),
                        newid,
                        idx,
                        salt.wrapping_add(unix_now() as u32),
                    )
                } else if k == "smbios1" {
                    format!("uuid={}", uuid_for(newid, unix_now() as u32))
                } else if k == "vmgenid" {
                    uuid_for(newid, unix_now() as u32 ^ 0x5a5a)
                } else {
                    v.clone()
                };
                new_cfg.insert(k.clone(), v);
            }
            new_cfg.insert(
                "name".into(),
                name.unwrap_or_else(|| format!("Copy-of-VM-{src_name}")),
            );
            if let Some(desc) = description {
                new_cfg.insert("description".into(), desc);
            }
            match st.vms.get_mut(&newid) {
                Some(vm) => {
                    vm.config = new_cfg;
                    vm.node = target.clone();
                }
                None => return Err(format!("VM {newid} vanished during clone")),
            }
            if let Some(p) = pool.as_deref().and_then(|p| st.pools.get_mut(p)) {
                p.vms.insert(newid);
            }
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

/// PVE's clone `load_and_check`: returns whether the clone is full.
fn load_and_check(
    pve: &Pve,
    call: &Call,
    node: &str,
    target: &str,
    storage: Option<&str>,
) -> Result<bool> {
    let vmid = call.vmid();
    let newid = call.u32("newid").unwrap_or_default();
    let st = pve.state();
    if target != node && !st.has_node(target) {
        return Err(ApiError::internal(format!(
            "no such cluster node '{target}'"
        )));
    }
    if let Some(s) = storage {
        let def = st
            .storage(s)
            .ok_or_else(|| ApiError::internal(format!("storage '{s}' does not exist")))?;
        if target != node && !def.shared {
            return Err(ApiError::internal(format!(
                "can't clone to non-shared storage '{s}'"
            )));
        }
    }
    let vm = vm_on(&st, node, vmid)?;
    check_lock(vm, false)?;
    let full = match call.str("full") {
        Some(f) => f == "1",
        None => !vm.is_template(),
    };
    if storage.is_some() && !full {
        return Err(ApiError::internal(
            "parameter 'storage' not allowed for linked clones",
        ));
    }
    if call.str("format").is_some() && !full {
        return Err(ApiError::internal(
            "parameter 'format' not allowed for linked clones",
        ));
    }
    let mut shared_vm = true;
    for k in vm.disk_keys() {
        let Some(d) = vm.config.get(&k) else { continue };
        if k.starts_with("unused") {
            continue;
        }
        let vol = drive_volume(d);
        let Some(sdef) = vol.split_once(':').and_then(|(s, _)| st.storage(s)) else {
            continue;
        };
        if !sdef.shared && storage.is_none() {
            shared_vm = false;
        }
        let linkable = vm.is_template() && vol.contains(":base-");
        if !full && !linkable {
            return Err(ApiError::internal(format!(
                "Linked clone feature is not supported for drive '{k}'"
            )));
        }
        if full && let Some(s) = storage.or(Some(sdef.id.as_str())) {
            require(
                &call.who,
                &format!("/storage/{s}"),
                "Datastore.AllocateSpace",
            )?;
        }
    }
    if target != node && !shared_vm {
        return Err(ApiError::internal(format!(
            "can't clone VM to node '{target}' (VM uses local storage)"
        )));
    }
    if let Some(other) = st.vms.get(&newid) {
        if other.node == node {
            return Err(ApiError::internal(format!(
                "unable to create VM {newid}: config file already exists"
            )));
        }
        return Err(ApiError::internal(format!(
            "VM {newid} already exists on node '{}'",
            other.node
        )));
    }
    Ok(full)
}

pub fn destroy(pve: &Arc<Pve>, call: &Call) -> Result {
    let node = call.node().to_string();
    let vmid = call.vmid();
    {
        let st = pve.state();
        let vm = vm_on(&st, &node, vmid)?;
        check_lock(vm, call.flag("skiplock"))?;
        if vm.running {
            return Err(ApiError::internal(format!(
                "VM {vmid} is running - destroy failed"
            )));
        }
        if vm.config.get("protection").is_some_and(|p| p == "1") {
            return Err(ApiError::internal(format!(
                "can't remove VM {vmid} - protection mode enabled"
            )));
        }
    }
    let unreferenced = call.flag("destroy-unreferenced-disks");
    let authid = call.who.authid.clone();
    let id = vmid.to_string();
    let n2 = node.clone();
    let upid = pve.spawn_task(
        TaskMeta {
            node: &node,
            kind: "qmdestroy",
            id: &id,
            authid: &authid,
        },
        move |pve| async move {
            tokio::time::sleep(pve.task_duration()).await;
            let _lock = pve.lock_file(vmid, false).await?;
            let mut st = pve.state();
            let Some(vm) = st.vms.get(&vmid).cloned() else {
                return Err(format!(
                    "Configuration file 'nodes/{n2}/qemu-server/{vmid}.conf' does not exist"
                ));
            };
            if vm.is_template() {
                let base = format!("base-{vmid}-disk-");
                let in_use = st.vms.values().any(|o| {
                    o.vmid != vmid && o.config.values().any(|v| drive_volume(v).contains(&base))
                });
                if in_use {
                    return Err(format!(
                        "base volume of VM {vmid} is still in use by linked cloned"
                    ));
                }
            }
            let mut log = Vec::new();
            for (k, v) in &vm.config {
                if is_disk_key(k) && !v.contains("media=cdrom") {
                    let vol = drive_volume(v);
                    if st.remove_volume(&n2, vol).is_some() {
                        log.push(format!("Removed volume '{vol}'"));
                    }
                }
            }
            let cloudinit = format!("vm-{vmid}-cloudinit");
            let storages: Vec<String> = st.storages.iter().map(|s| s.id.clone()).collect();
            for s in storages {
                let vols: Vec<String> = st
                    .volumes_of(&s, &n2)
                    .iter()
                    .filter(|v| {
                        v.vmid == Some(vmid) && (unreferenced || v.volid.ends_with(&cloudinit))
                    })
                    .map(|v| v.volid.clone())
                    .collect();
                for v in vols {
                    st.remove_volume(&n2, &v);
                    log.push(format!("Removed unreferenced volume '{v}'"));
                }
            }
            st.vms.remove(&vmid);
            for p in st.pools.values_mut() {
                p.vms.remove(&vmid);
            }
            pve.emit(VmEvent::Destroyed { vmid });
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

/// `POST …/template`: turn a stopped VM into a template; its disks become `base-` volumes.
pub fn template(pve: &Arc<Pve>, call: &Call) -> Result {
    let node = call.node().to_string();
    let vmid = call.vmid();
    let only_disk = call.str("disk").map(str::to_string);
    {
        let st = pve.state();
        let vm = vm_on(&st, &node, vmid)?;
        check_lock(vm, false)?;
        if vm.is_template() && only_disk.is_none() {
            return Err(ApiError::internal(
                "you can't convert a template to a template",
            ));
        }
        if vm.running {
            return Err(ApiError::internal(
                "you can't convert a VM to template if VM is running",
            ));
        }
    }
    let authid = call.who.authid.clone();
    let id = vmid.to_string();
    let task_node = node.clone();
    let upid = pve.spawn_task(
        TaskMeta {
            node: &task_node,
            kind: "qmtemplate",
            id: &id,
            authid: &authid,
        },
        move |pve| async move {
            let _lock = pve.lock_file(vmid, false).await?;
            tokio::time::sleep(pve.task_duration()).await;
            let mut st = pve.state();
            let vm = st
                .vms
                .get(&vmid)
                .cloned()
                .ok_or_else(|| format!("VM {vmid} vanished"))?;
            if vm.running {
                return Err("you can't convert a VM to template if VM is running".into());
            }
            let mut log = Vec::new();
            let mut config = vm.config.clone();
            for k in vm.disk_keys() {
                if k.starts_with("unused") || only_disk.as_ref().is_some_and(|d| *d != k) {
                    continue;
                }
                let Some(drive) = vm.config.get(&k) else {
                    continue;
                };
                let volid = drive_volume(drive).to_string();
                let Some((storage, name)) = volid.split_once(':') else {
                    continue;
                };
                let Some(base_name) = name
                    .strip_prefix("vm-")
                    .filter(|_| !name.contains("cloudinit"))
                    .map(|rest| format!("base-{rest}"))
                else {
                    continue;
                };
                let Some(mut vol) = st.remove_volume(&node, &volid) else {
                    return Err(format!("volume '{volid}' does not exist"));
                };
                let new_volid = format!("{storage}:{base_name}");
                vol.volid = new_volid.clone();
                st.add_volume(&node, storage, &base_name, vol);
                config.insert(k.clone(), drive.replacen(&volid, &new_volid, 1));
                log.push(format!("{k}: renamed {volid} to {new_volid}"));
            }
            config.insert("template".into(), "1".into());
            if let Some(v) = st.vms.get_mut(&vmid) {
                v.config = config;
            }
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}
