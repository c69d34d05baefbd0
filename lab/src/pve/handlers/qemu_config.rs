//! VM config: GET/POST/PUT config, pending, resize, and the drive allocation they share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::util::{check_config_privileges, check_lock, typed_config, typed_value, vm_on};
use super::{Call, Result};
use crate::pve::error::ApiError;
use crate::pve::formats::split_list;
use crate::pve::seed::mac_for;
use crate::pve::state::{
    Cluster, drive_size, drive_volume, is_disk_key, parse_size, with_drive_size,
};
use crate::pve::{Pve, TaskMeta};

/// Parameters that steer an update but are not config keys.
const UPDATE_META: &[&str] = &[
    "node",
    "vmid",
    "digest",
    "delete",
    "revert",
    "skiplock",
    "background_delay",
    "force",
];

/// What a drive value asks for.
#[derive(Debug, Clone)]
pub enum DrivePlan {
    /// `STORAGE:SIZE_GiB[,opts]`
    Alloc {
        storage: String,
        size: u64,
        opts: Vec<String>,
    },
    /// `STORAGE:0,import-from=VOLID[,opts]`
    Import {
        storage: String,
        size: u64,
        opts: Vec<String>,
    },
    /// `STORAGE:cloudinit`
    CloudInit { storage: String, opts: Vec<String> },
    /// An existing volume, CD-ROM or `none`: kept as written.
    Keep(String),
}

fn is_alloc_size(s: &str) -> Option<f64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    s.parse().ok()
}

/// Check a drive value against the cluster and decide what to allocate.
/// Size of a new EFI vars or TPM state volume: PVE ignores the requested size and allocates
/// what the OVMF vars template (`efitype`) or swtpm needs.
fn special_size(key: &str, opts: &[String]) -> Option<u64> {
    if key.starts_with("efidisk") {
        let four = opts.iter().any(|o| o == "efitype=4m");
        return Some(if four { 540_672 } else { 131_072 });
    }
    key.starts_with("tpmstate").then_some(4 << 20)
}

pub fn plan_drive(
    c: &Cluster,
    node: &str,
    key: &str,
    value: &str,
) -> std::result::Result<DrivePlan, String> {
    let mut parts = value.split(',');
    let first = parts.next().unwrap_or_default();
    let vol = first.strip_prefix("file=").unwrap_or(first);
    let mut opts: Vec<String> = parts.map(str::to_string).collect();
    let cdrom = opts.iter().any(|o| o == "media=cdrom");
    let import = opts
        .iter()
        .position(|o| o.starts_with("import-from="))
        .map(|i| opts.remove(i));
    if vol == "none" || vol == "cdrom" || vol.starts_with('/') {
        return Ok(DrivePlan::Keep(value.to_string()));
    }
    let Some((storage, name)) = vol.split_once(':') else {
        return Err(format!("unable to parse volume ID '{vol}'"));
    };
    let sdef = c
        .storage(storage)
        .ok_or_else(|| format!("storage '{storage}' does not exist"))?;
    if name == "cloudinit" {
        return Ok(DrivePlan::CloudInit {
            storage: storage.into(),
            opts,
        });
    }
    if let Some(gib) = is_alloc_size(name) {
        if !sdef.supports("images") {
            return Err(format!(
                "storage '{storage}' does not support content-type 'images'"
            ));
        }
        if let Some(src) = import {
            let src = src.trim_start_matches("import-from=");
            let size = if src.starts_with('/') {
                1 << 30
            } else {
                c.volume(src, node)
                    .map(|v| v.size)
                    .ok_or_else(|| format!("volume '{src}' does not exist"))?
            };
            return Ok(DrivePlan::Import {
                storage: storage.into(),
                size,
                opts,
            });
        }
        let size = special_size(key, &opts).unwrap_or((gib * (1u64 << 30) as f64) as u64);
        return Ok(DrivePlan::Alloc {
            storage: storage.into(),
            size,
            opts,
        });
    }
    if cdrom {
        if c.volume(vol, node).is_none() {
            return Err(format!("volume '{vol}' does not exist"));
        }
        return Ok(DrivePlan::Keep(value.to_string()));
    }
    if import.is_some() {
        return Err(
            "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"
                .into(),
        );
    }
    if c.volume(vol, node).is_none() {
        return Err(format!("volume '{vol}' does not exist"));
    }
    Ok(DrivePlan::Keep(value.to_string()))
}

/// Allocate what a plan asks for; returns the drive string for the config.
pub fn realize_drive(
    c: &mut Cluster,
    node: &str,
    vmid: u32,
    plan: &DrivePlan,
) -> std::result::Result<String, String> {
    let join = |volid: String, opts: &[String], size: Option<u64>| {
        let mut s = volid;
        for o in opts.iter().filter(|o| !o.starts_with("size=")) {
            s.push(',');
            s.push_str(o);
        }
        match size {
            Some(b) => with_drive_size(&s, b),
            None => s,
        }
    };
    match plan {
        DrivePlan::Alloc {
            storage,
            size,
            opts,
        }
        | DrivePlan::Import {
            storage,
            size,
            opts,
        } => {
            let volid = c.alloc_disk(node, storage, vmid, *size, "vm", None)?;
            Ok(join(volid, opts, Some(*size)))
        }
        DrivePlan::CloudInit { storage, opts } => {
            let name = format!("vm-{vmid}-cloudinit");
            c.add_volume(
                node,
                storage,
                &name,
                crate::pve::state::Volume {
                    volid: format!("{storage}:{name}"),
                    size: 4 << 20,
                    format: "raw".into(),
                    content: "images".into(),
                    vmid: Some(vmid),
                    ctime: crate::pve::auth::unix_now(),
                    parent: None,
                },
            );
            let mut o: Vec<String> = opts
                .iter()
                .filter(|o| *o != "media=cdrom")
                .cloned()
                .collect();
            o.push("media=cdrom".into());
            Ok(join(format!("{storage}:{name}"), &o, None))
        }
        DrivePlan::Keep(v) => Ok(v.clone()),
    }
}

/// Give a NIC without a MAC address a generated one, written the way PVE stores it.
pub fn normalize_net(value: &str, vmid: u32, idx: u32, salt: u32) -> String {
    let models = [
        "virtio",
        "e1000",
        "e1000e",
        "vmxnet3",
        "rtl8139",
        "ne2k_pci",
        "pcnet",
        "i82551",
        "i82557b",
        "i82559er",
        "ne2k_isa",
        "e1000-82540em",
        "e1000-82544gc",
        "e1000-82545em",
    ];
    let mut model = None;
    let mut mac = None;
    let mut rest = Vec::new();
    for p in value.split(',').filter(|s| !s.is_empty()) {
        match p.split_once('=') {
            Some(("model", m)) => model = Some(m.to_string()),
            Some(("macaddr", m)) => mac = Some(m.to_string()),
            Some((k, m)) if models.contains(&k) => {
                model = Some(k.to_string());
                mac = Some(m.to_string());
            }
            None if models.contains(&p) => model = Some(p.to_string()),
            _ => rest.push(p.to_string()),
        }
    }
    let model = model.unwrap_or_else(|| "virtio".into());
    let mac = mac.unwrap_or_else(|| mac_for(vmid, idx, salt));
    let mut out = format!("{model}={mac}");
    for r in rest {
        out.push(',');
        out.push_str(&r);
    }
    out
}

/// Options PVE writes to the config of a running VM at once, whatever `hotplug` says.
const FAST_PLUG: &[&str] = &[
    "description",
    "hookscript",
    "lock",
    "migrate_downtime",
    "migrate_speed",
    "name",
    "onboot",
    "protection",
    "shares",
    "startup",
    "tags",
    "vmstatestorage",
];

/// Cloud-init options: live only with the `cloudinit` hotplug feature.
const CLOUDINIT_KEYS: &[&str] = &[
    "ciuser",
    "cipassword",
    "citype",
    "ciupgrade",
    "cicustom",
    "nameserver",
    "searchdomain",
    "sshkeys",
];

/// The VM's `hotplug` features: default `network,disk,usb`; `0` none; `1` the default.
pub fn hotplug_features(config: &BTreeMap<String, String>) -> BTreeSet<String> {
    let default = || ["network", "disk", "usb"].map(str::to_string).into();
    match config.get("hotplug").map(String::as_str) {
        None | Some("1") => default(),
        Some("0") => BTreeSet::new(),
        Some(v) => split_list(v).map(str::to_string).collect(),
    }
}

/// Whether setting (`value` = `Some`) or deleting `key` takes effect on the running VM with
/// `config` right away, as PVE's `vmconfig_hotplug_pending` decides; otherwise the change
/// stays pending until the next start.
pub fn hotpluggable(key: &str, value: Option<&str>, config: &BTreeMap<String, String>) -> bool {
    if FAST_PLUG.contains(&key) {
        return true;
    }
    let hp = hotplug_features(config);
    let family = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let numa = config.get("numa").is_some_and(|n| n == "1");
    match family {
        "unused" => true,
        "net" => hp.contains("network"),
        "usb" => hp.contains("usb"),
        // PVE hot-plugs SCSI and VirtIO disks; IDE and SATA only change a CD-ROM's medium.
        "scsi" | "virtio" => hp.contains("disk"),
        "ide" | "sata" => {
            let cdrom = |v: Option<&String>| v.is_some_and(|v| v.contains("media=cdrom"));
            hp.contains("disk")
                && cdrom(config.get(key))
                && value.is_some_and(|v| v.contains("media=cdrom") && !v.contains("cloudinit"))
        }
        "ipconfig" => hp.contains("cloudinit"),
        _ => match key {
            "memory" => hp.contains("memory") && numa,
            "vcpus" => hp.contains("cpu"),
            // Enabling or disabling the balloon device needs a restart; a new target does not.
            "balloon" => {
                let on = |v: Option<&str>| v.is_some_and(|v| v != "0");
                on(config.get("balloon").map(String::as_str)) && on(value)
            }
            k if CLOUDINIT_KEYS.contains(&k) => hp.contains("cloudinit"),
            _ => false,
        },
    }
}

pub fn get(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let vm = vm_on(&st, call.node(), call.vmid())?;
    let cfg = if call.flag("current") {
        vm.config.clone()
    } else {
        vm.merged_config()
    };
    let mut out = typed_config(&pve.schema, &cfg);
    out.insert("digest".into(), json!(vm.digest()));
    Ok(Value::Object(out).into())
}

pub fn pending(pve: &Arc<Pve>, call: &Call) -> Result {
    let st = pve.state();
    let vm = vm_on(&st, call.node(), call.vmid())?;
    let found = pve.schema.lookup("POST", "/nodes/x/qemu");
    let empty = serde_json::Map::new();
    let props = found.as_ref().map_or(&empty, |f| &f.def.properties);
    let keys: BTreeSet<&String> = vm
        .config
        .keys()
        .chain(vm.pending.keys())
        .chain(vm.pending_delete.iter())
        .collect();
    let mut out = Vec::new();
    for k in keys {
        let mut e = json!({"key": k});
        if let Some(v) = vm.config.get(k) {
            e["value"] = typed_value(props, k, v);
        }
        if let Some(v) = vm.pending.get(k) {
            e["pending"] = typed_value(props, k, v);
        }
        if vm.pending_delete.contains(k) {
            e["delete"] = json!(1);
        }
        out.push(e);
    }
    Ok(Value::Array(out).into())
}

/// A validated config change.
#[derive(Debug, Clone)]
struct Change {
    set: BTreeMap<String, String>,
    plans: BTreeMap<String, DrivePlan>,
    delete: Vec<String>,
    revert: Vec<String>,
}

pub async fn update(pve: &Arc<Pve>, call: &Call, asynchronous: bool) -> Result {
    let node = call.node().to_string();
    let vmid = call.vmid();
    let set: BTreeMap<String, String> = call
        .params
        .iter()
        .filter(|(k, _)| !UPDATE_META.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete: Vec<String> = call
        .str("delete")
        .map(|d| split_list(d).map(str::to_string).collect())
        .unwrap_or_default();
    let revert: Vec<String> = call
        .str("revert")
        .map(|d| split_list(d).map(str::to_string).collect())
        .unwrap_or_default();
    for k in &delete {
        if set.contains_key(k) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{k}' and -delete {k}' at the same time"),
            ));
        }
    }
    if set.is_empty() && delete.is_empty() && revert.is_empty() {
        return Err(ApiError::internal("no options specified"));
    }
    check_config_privileges(&call.who, vmid, &set, &delete)?;
    // PVE runs the whole update under the config lock.
    let lock = pve
        .lock_file(vmid, false)
        .await
        .map_err(ApiError::internal)?;
    let mut plans = BTreeMap::new();
    {
        let st = pve.state();
        let vm = vm_on(&st, &node, vmid)?;
        if let Some(d) = call.str("digest")
            && d != vm.digest()
        {
            return Err(ApiError::internal(
                "detected modified configuration - file changed by other user? Try again.",
            ));
        }
        check_lock(vm, call.flag("skiplock"))?;
        for (k, v) in &set {
            if is_disk_key(k) && !k.starts_with("unused") {
                let p = plan_drive(&st, &node, k, v).map_err(|e| ApiError::param(k, e))?;
                plans.insert(k.clone(), p);
            }
        }
    }
    let change = Change {
        set,
        plans,
        delete,
        revert,
    };
    if !asynchronous {
        apply(&mut pve.state(), &node, vmid, &change).map_err(ApiError::internal)?;
        return Ok(Value::Null.into());
    }
    drop(lock);
    let authid = call.who.authid.clone();
    let id = vmid.to_string();
    let n2 = node.clone();
    let upid = pve.spawn_task(
        TaskMeta {
            node: &node,
            kind: "qmconfig",
            id: &id,
            authid: &authid,
        },
        move |pve| async move {
            tokio::time::sleep(pve.task_duration()).await;
            let _lock = pve.lock_file(vmid, false).await?;
            apply(&mut pve.state(), &n2, vmid, &change)?;
            Ok(vec![format!("update VM {vmid}: applied")])
        },
    );
    Ok(json!(upid).into())
}

fn apply(c: &mut Cluster, node: &str, vmid: u32, ch: &Change) -> std::result::Result<(), String> {
    let exists = c.vms.get(&vmid).is_some_and(|vm| vm.node == node);
    if !exists {
        return Err(format!(
            "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
        ));
    }
    let mut values = BTreeMap::new();
    for (k, v) in &ch.set {
        let v = match ch.plans.get(k) {
            Some(p) => realize_drive(c, node, vmid, p)?,
            None if k.starts_with("net") => {
                let idx = k[3..].parse().unwrap_or(0);
                normalize_net(v, vmid, idx, 0)
            }
            None => v.clone(),
        };
        values.insert(k.clone(), v);
    }
    let Some(vm) = c.vms.get_mut(&vmid) else {
        return Err(format!("VM {vmid} vanished"));
    };
    let running = vm.running;
    let mut unused_new = Vec::new();
    for k in &ch.revert {
        vm.pending.remove(k);
        vm.pending_delete.remove(k);
    }
    let before = vm.config.clone();
    for (k, v) in values {
        if running && !hotpluggable(&k, Some(&v), &before) {
            vm.pending.insert(k.clone(), v);
            vm.pending_delete.remove(&k);
            continue;
        }
        if is_disk_key(&k)
            && let Some(old) = vm.config.get(&k)
            && drive_volume(old) != drive_volume(&v)
            && !old.contains("media=cdrom")
        {
            unused_new.push(drive_volume(old).to_string());
        }
        vm.config.insert(k, v);
    }
    for k in &ch.delete {
        if running && !hotpluggable(k, None, &before) {
            vm.pending_delete.insert(k.clone());
            vm.pending.remove(k);
            continue;
        }
        if let Some(old) = vm.config.remove(k)
            && is_disk_key(k)
            && !k.starts_with("unused")
            && !old.contains("media=cdrom")
        {
            unused_new.push(drive_volume(&old).to_string());
        }
    }
    for vol in unused_new {
        let mut i = 0;
        while vm.config.contains_key(&format!("unused{i}")) {
            i += 1;
        }
        vm.config.insert(format!("unused{i}"), vol);
    }
    Ok(())
}

pub fn resize(pve: &Arc<Pve>, call: &Call) -> Result {
    let node = call.node().to_string();
    let vmid = call.vmid();
    let disk = call.str("disk").unwrap_or_default().to_string();
    let size = call.str("size").unwrap_or_default().to_string();
    {
        let st = pve.state();
        let vm = vm_on(&st, &node, vmid)?;
        if let Some(d) = call.str("digest")
            && d != vm.digest()
        {
            return Err(ApiError::internal(
                "detected modified configuration - file changed by other user? Try again.",
            ));
        }
        check_lock(vm, call.flag("skiplock"))?;
    }
    let authid = call.who.authid.clone();
    let id = vmid.to_string();
    let n2 = node.clone();
    let upid = pve.spawn_task(
        TaskMeta {
            node: &node,
            kind: "resize",
            id: &id,
            authid: &authid,
        },
        move |pve| async move {
            tokio::time::sleep(pve.task_duration()).await;
            let _lock = pve.lock_file(vmid, false).await?;
            let mut st = pve.state();
            let vm = st
                .vms
                .get_mut(&vmid)
                .filter(|v| v.node == n2)
                .ok_or_else(|| format!("VM {vmid} vanished"))?;
            let drive = vm
                .config
                .get(&disk)
                .cloned()
                .ok_or_else(|| format!("disk '{disk}' does not exist"))?;
            if drive.contains("media=cdrom") {
                return Err("you can't resize a cdrom".into());
            }
            let cur = drive_size(&drive).unwrap_or(0);
            let (add, spec) = match size.strip_prefix('+') {
                Some(s) => (true, s),
                None => (false, size.as_str()),
            };
            let n = parse_size(spec).ok_or_else(|| format!("unable to parse size '{size}'"))?;
            let new = if add { cur.saturating_add(n) } else { n };
            if new < cur {
                return Err("shrinking disks is not supported".into());
            }
            let volid = drive_volume(&drive).to_string();
            vm.config.insert(disk.clone(), with_drive_size(&drive, new));
            if let Some((storage, name)) = volid.split_once(':')
                && let Some(def) = st.storage(storage).cloned()
            {
                let key = (crate::pve::state::scope(&def, &n2), storage.to_string());
                if let Some(v) = st.volumes.get_mut(&key).and_then(|m| m.get_mut(name)) {
                    v.size = new;
                }
            }
            Ok(vec![format!(
                "resize disk {disk} of VM {vmid} to {new} bytes"
            )])
        },
    );
    Ok(json!(upid).into())
}

#[cfg(test)]
mod hotplug_tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn hotplug_follows_the_vm_setting() {
        let default = cfg(&[("balloon", "1024")]);
        for k in [
            "name", "tags", "onboot", "net1", "scsi1", "virtio0", "unused0",
        ] {
            assert!(hotpluggable(k, Some("x"), &default), "{k}");
        }
        for k in [
            "cores",
            "sockets",
            "cpu",
            "memory",
            "bios",
            "machine",
            "agent",
            "ipconfig0",
        ] {
            assert!(!hotpluggable(k, Some("x"), &default), "{k}");
        }
        assert!(!hotpluggable("sata1", Some("local-lvm:2"), &default));
        assert!(hotpluggable("balloon", Some("512"), &default));
        assert!(
            !hotpluggable("balloon", Some("0"), &default),
            "disabling the device"
        );
        let none = cfg(&[("hotplug", "0")]);
        assert!(!hotpluggable("net1", Some("x"), &none));
        assert!(
            hotpluggable("tags", Some("x"), &none),
            "fast-plug options ignore hotplug"
        );
        let all = cfg(&[
            ("hotplug", "network,disk,usb,memory,cpu,cloudinit"),
            ("numa", "1"),
        ]);
        assert!(hotpluggable("memory", Some("4096"), &all));
        assert!(hotpluggable("vcpus", Some("2"), &all));
        assert!(hotpluggable("ipconfig0", Some("ip=dhcp"), &all));
        let no_numa = cfg(&[("hotplug", "memory")]);
        assert!(
            !hotpluggable("memory", Some("4096"), &no_numa),
            "memory hotplug needs NUMA"
        );
    }
}
