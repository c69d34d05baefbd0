//! `POST /nodes/{node}/qemu/{vmid}/migrate`: PVE's checks before the worker forks, then a
//! `qmigrate` task on the source node that sets `lock: migrate`, scans the VM's local volumes
//! the way PVE's migration does (and fails with its messages), copies them and moves the VM.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::util::{check_lock, vm_on};
use super::{Call, Result};
use crate::pve::auth::require;
use crate::pve::error::ApiError;
use crate::pve::state::{Cluster, Vm, drive_volume, is_disk_key};
use crate::pve::{Pve, TaskMeta};

/// `targetstorage`: `1` (each storage to itself), one storage id for all, or `src:dst` pairs
/// with an optional lone default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageMap {
    pub identity: bool,
    pub default: Option<String>,
    pub entries: BTreeMap<String, String>,
}

impl StorageMap {
    pub fn parse(s: &str) -> std::result::Result<StorageMap, String> {
        let mut m = StorageMap::default();
        for item in s.split([',', ';', ' ']).filter(|i| !i.is_empty()) {
            match item.split_once(':') {
                Some((src, dst)) if !src.is_empty() && !dst.is_empty() => {
                    if m.entries.insert(src.into(), dst.into()).is_some() {
                        return Err(format!("duplicate mapping for source '{src}'"));
                    }
                }
                Some(_) => return Err(format!("invalid mapping '{item}'")),
                None if item == "1" => m.identity = true,
                None => {
                    if m.default.replace(item.into()).is_some() {
                        return Err("more than one default mapping".into());
                    }
                }
            }
        }
        Ok(m)
    }

    /// The target storage of a volume on `sid` (only local storages are mapped).
    pub fn map<'a>(&'a self, sid: &'a str) -> &'a str {
        if self.identity {
            return sid;
        }
        self.entries
            .get(sid)
            .map(String::as_str)
            .or(self.default.as_deref())
            .unwrap_or(sid)
    }

    fn targets(&self) -> impl Iterator<Item = &String> {
        self.entries.values().chain(self.default.iter())
    }
}

/// A local volume the migration copies.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalVolume {
    pub volid: String,
    /// Config key referencing it (`None`: found on the storage only).
    pub key: Option<String>,
    pub target_storage: String,
    /// `config`, `generated` (cloud-init, TPM state) or `storage`.
    pub reference: &'static str,
}

/// PVE's `scan_local_volumes`: the local volumes to copy, or the task's error (after log lines).
pub fn scan_local_volumes(
    c: &Cluster,
    vm: &Vm,
    running: bool,
    with_local_disks: bool,
    map: &StorageMap,
    log: &mut Vec<String>,
) -> std::result::Result<Vec<LocalVolume>, String> {
    let mut found = Vec::new();
    let mut vol_errors: BTreeMap<String, String> = BTreeMap::new();
    let mut other_errors = Vec::new();
    for (k, v) in &vm.config {
        if !is_disk_key(k) {
            continue;
        }
        let volid = drive_volume(v).to_string();
        let cdrom = v.contains("media=cdrom");
        if cdrom && volid == "cdrom" {
            other_errors.push("can't migrate local cdrom drive".to_string());
            continue;
        }
        if volid == "none" {
            continue;
        }
        if volid.starts_with('/') {
            vol_errors.insert(volid, "local file/device".into());
            continue;
        }
        let Some((sid, _)) = volid.split_once(':') else {
            continue;
        };
        let Some(def) = c.storage(sid) else {
            vol_errors.insert(volid.clone(), format!("storage '{sid}' does not exist"));
            continue;
        };
        if def.shared {
            continue;
        }
        let target_storage = map.map(sid).to_string();
        let generated = (cdrom && volid.contains("-cloudinit")) || k.starts_with("tpmstate");
        if cdrom && !generated {
            vol_errors.insert(volid, "local cdrom image".into());
            continue;
        }
        let reference = if generated {
            "generated"
        } else if k.starts_with("unused") {
            "storage"
        } else {
            "config"
        };
        found.push(LocalVolume {
            volid,
            key: Some(k.clone()),
            target_storage,
            reference,
        });
    }
    // Volumes of this VM on local storages that no config key references.
    for def in c.storages.iter().filter(|s| !s.shared) {
        for v in c.volumes_of(&def.id, &vm.node) {
            if v.vmid == Some(vm.vmid)
                && v.content == "images"
                && !found.iter().any(|f| f.volid == v.volid)
            {
                found.push(LocalVolume {
                    volid: v.volid.clone(),
                    key: None,
                    target_storage: map.map(&def.id).to_string(),
                    reference: "storage",
                });
            }
        }
    }
    for f in &found {
        match f.reference {
            "config" if running && !with_local_disks => {
                vol_errors.insert(
                    f.volid.clone(),
                    "can't live migrate attached local disks without with-local-disks option"
                        .into(),
                );
            }
            "config" => log.push(format!(
                "found local disk '{}' (in current VM config)",
                f.volid
            )),
            "generated" => log.push(format!(
                "found generated disk '{}' (in current VM config)",
                f.volid
            )),
            _ => log.push(format!("found local disk '{}' (via storage)", f.volid)),
        }
    }
    for (vol, e) in &vol_errors {
        log.push(format!("can't migrate local disk '{vol}': {e}"));
    }
    log.extend(other_errors.iter().cloned());
    if !vol_errors.is_empty() || !other_errors.is_empty() {
        return Err("Problem found while scanning volumes - can't migrate VM - check log".into());
    }
    for f in &found {
        if let Some(parent) = c.volume(&f.volid, &vm.node).and_then(|v| v.parent.clone()) {
            return Err(format!(
                "Problem found while scanning volumes - can't migrate '{}' as it's a clone of '{parent}'",
                f.volid
            ));
        }
    }
    Ok(found)
}

/// Copy the local volumes to `target` (renamed when they change storage) and return the
/// config with the new volume ids.
fn move_volumes(
    c: &mut Cluster,
    vm: &Vm,
    target: &str,
    vols: &[LocalVolume],
    log: &mut Vec<String>,
) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut config = vm.config.clone();
    for f in vols {
        let (sid, name) = f.volid.split_once(':').unwrap_or_default();
        let Some(mut vol) = c.remove_volume(&vm.node, &f.volid) else {
            continue;
        };
        let new_volid = if f.target_storage == sid {
            c.add_volume(target, sid, name, vol);
            f.volid.clone()
        } else {
            let new = c
                .alloc_disk(target, &f.target_storage, vm.vmid, vol.size, "vm", None)
                .map_err(|e| {
                    format!(
                        "storage migration for '{}' to storage '{}' failed - {e}",
                        f.volid, f.target_storage
                    )
                })?;
            vol.volid = new.clone();
            new
        };
        log.push(format!(
            "volume '{}' is '{new_volid}' on the target",
            f.volid
        ));
        if let Some(k) = &f.key
            && let Some(v) = config.get_mut(k)
        {
            *v = v.replacen(&f.volid, &new_volid, 1);
        }
    }
    Ok(config)
}

pub fn migrate(pve: &Arc<Pve>, call: &Call) -> Result {
    let node = call.node().to_string();
    let vmid = call.vmid();
    let target = call.str("target").unwrap_or_default().to_string();
    if target == node {
        return Err(ApiError::param("target", "target is local node."));
    }
    let map = match call.str("targetstorage") {
        Some(s) => StorageMap::parse(s).map_err(|e| {
            ApiError::param("targetstorage", format!("failed to parse storage map: {e}"))
        })?,
        None => StorageMap::default(),
    };
    let mut online = call.flag("online");
    let mut api_warnings = Vec::new();
    {
        let st = pve.state();
        let vm = vm_on(&st, &node, vmid)?;
        if !st.has_node(&target) {
            return Err(ApiError::internal(format!(
                "no such cluster node '{target}'"
            )));
        }
        if vm.running {
            if !online {
                return Err(ApiError::internal(
                    "can't migrate running VM without --online",
                ));
            }
        } else {
            if online {
                api_warnings.push("VM isn't running. Doing offline migration instead.".to_string());
            }
            online = false;
        }
        if !map.identity && map.targets().next().is_some() {
            require(&call.who, &format!("/vms/{vmid}"), "VM.Config.Disk")?;
        }
        for sid in map.targets() {
            let def = st
                .storage(sid)
                .ok_or_else(|| ApiError::internal(format!("storage '{sid}' does not exist")))?;
            require(
                &call.who,
                &format!("/storage/{sid}"),
                "Datastore.AllocateSpace",
            )?;
            if !def.supports("images") {
                return Err(ApiError::internal(format!(
                    "storage '{sid}' does not support vm images"
                )));
            }
        }
    }
    let with_local_disks = call.flag("with-local-disks");
    let authid = call.who.authid.clone();
    let id = vmid.to_string();
    let source = node.clone();
    let upid = pve.spawn_task(
        TaskMeta {
            node: &node,
            kind: "qmigrate",
            id: &id,
            authid: &authid,
        },
        move |pve| async move {
            let mut log = api_warnings;
            let vols = {
                // The flock is held while `lock: migrate` is set, not during the transfer.
                let _lock = pve.lock_file(vmid, false).await?;
                let mut st = pve.state();
                let vm = st
                    .vms
                    .get_mut(&vmid)
                    .filter(|v| v.node == source)
                    .ok_or_else(|| {
                        format!(
                            "Configuration file 'nodes/{source}/qemu-server/{vmid}.conf' does not exist"
                        )
                    })?;
                check_lock(vm, false).map_err(|e| e.to_string())?;
                if online && !vm.running {
                    return Err(format!("VM {vmid} not running"));
                }
                log.push(format!(
                    "starting migration of VM {vmid} to node '{target}' (192.0.2.{})",
                    10 + st.nodes.iter().position(|n| *n == target).unwrap_or(0)
                ));
                let Some(vm) = st.vms.get_mut(&vmid) else {
                    return Err(format!("VM {vmid} vanished"));
                };
                vm.config.insert("lock".into(), "migrate".into());
                let vm = vm.clone();
                match scan_local_volumes(&st, &vm, online, with_local_disks, &map, &mut log) {
                    Ok(v) => v,
                    Err(e) => {
                    // phase1_cleanup: the lock goes, nothing was copied.
                    if let Some(vm) = st.vms.get_mut(&vmid) {
                        vm.config.remove("lock");
                    }
                    log.push(format!("ERROR: {e}"));
                    log.push("aborting phase 1 - cleanup resources".into());
                    log.push(format!("ERROR: migration aborted (duration 00:00:00): {e}"));
                    log.push("migration aborted".into());
                    return Err(log.join("\n"));
                    }
                }
            };
            tokio::time::sleep(pve.task_duration() * 2).await;
            let _lock = pve.lock_file(vmid, false).await?;
            let mut st = pve.state();
            let Some(vm) = st.vms.get(&vmid).cloned() else {
                return Err(format!("VM {vmid} vanished during migration"));
            };
            let config = match move_volumes(&mut st, &vm, &target, &vols, &mut log) {
                Ok(c) => c,
                Err(e) => {
                    if let Some(vm) = st.vms.get_mut(&vmid) {
                        vm.config.remove("lock");
                    }
                    return Err(e);
                }
            };
            if let Some(vm) = st.vms.get_mut(&vmid) {
                vm.config = config;
                vm.config.remove("lock");
                vm.node = target.clone();
            }
            log.push("migration finished successfully (duration 00:00:01)".into());
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::seed;

    fn vm_with(c: &mut Cluster, vmid: u32, disks: &[(&str, &str)]) -> Vm {
        let mut vm = c
            .vms
            .get(&9000)
            .cloned()
            .unwrap_or_else(|| panic!("template"));
        vm.vmid = vmid;
        vm.config.retain(|k, _| !is_disk_key(k) && k != "template");
        for (k, v) in disks {
            vm.config.insert((*k).into(), (*v).into());
        }
        vm
    }

    #[test]
    fn storage_maps() {
        let m = StorageMap::parse("local-lvm:ceph,other").unwrap_or_default();
        assert_eq!(m.map("local-lvm"), "ceph");
        assert_eq!(m.map("x"), "other");
        assert!(StorageMap::parse("1").is_ok_and(|m| m.identity));
        assert!(StorageMap::parse("a,b").is_err());
    }

    #[test]
    fn local_disks_follow_pve_rules() {
        let mut c = seed::cluster(0);
        let disk = c
            .alloc_disk("pve1", "local-lvm", 150, 1 << 30, "vm", None)
            .unwrap_or_default();
        let vm = vm_with(
            &mut c,
            150,
            &[
                ("scsi0", &format!("{disk},size=1G")),
                ("ide2", "local-lvm:vm-150-cloudinit,media=cdrom"),
            ],
        );
        let mut vm = vm;
        vm.node = "pve1".into();
        let none = StorageMap::default();
        // Offline: local disks are copied without any option.
        let mut log = Vec::new();
        let vols = scan_local_volumes(&c, &vm, false, false, &none, &mut log).unwrap_or_default();
        assert_eq!(vols.len(), 2, "{log:?}");
        // Online without with-local-disks: PVE's message, per disk, then the abort.
        let mut log = Vec::new();
        let e = scan_local_volumes(&c, &vm, true, false, &none, &mut log).unwrap_err();
        assert!(e.contains("can't migrate VM - check log"), "{e}");
        assert!(
            log.iter().any(|l| l.contains(&format!(
                "can't migrate local disk '{disk}': can't live migrate attached local disks without with-local-disks option"
            ))),
            "{log:?}"
        );
        assert!(scan_local_volumes(&c, &vm, true, true, &none, &mut Vec::new()).is_ok());
        // An ISO on local storage cannot follow.
        let mut iso = vm.clone();
        iso.config
            .insert("ide3".into(), format!("{},media=cdrom", seed::TALOS_ISO));
        let mut log = Vec::new();
        assert!(scan_local_volumes(&c, &iso, false, false, &none, &mut log).is_err());
        assert!(
            log.iter().any(|l| l.ends_with("local cdrom image")),
            "{log:?}"
        );
        // A linked clone of a local template cannot move.
        let linked = c
            .alloc_disk(
                "pve1",
                "local-lvm",
                151,
                1 << 30,
                "vm",
                Some("base-9000-disk-0".into()),
            )
            .unwrap_or_default();
        let mut lc = vm_with(&mut c, 151, &[("scsi0", &format!("{linked},size=1G"))]);
        lc.node = "pve1".into();
        let e = scan_local_volumes(&c, &lc, false, false, &none, &mut Vec::new()).unwrap_err();
        assert!(e.contains("as it's a clone of 'base-9000-disk-0'"), "{e}");
    }
}
