//! Helpers shared by the handlers.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::pve::auth::{Principal, config_key_privilege, require};
use crate::pve::error::ApiError;
use crate::pve::schema::Schema;
use crate::pve::state::{Cluster, Vm, drive_size, drive_volume, is_disk_key};
use crate::pve::validate::lookup_prop;

/// The VM `vmid` as seen from `node`, or PVE's "Configuration file ... does not exist".
pub fn vm_on<'a>(c: &'a Cluster, node: &str, vmid: u32) -> Result<&'a Vm, ApiError> {
    c.vms
        .get(&vmid)
        .filter(|vm| vm.node == node)
        .ok_or_else(|| no_config(node, vmid))
}

pub fn no_config(node: &str, vmid: u32) -> ApiError {
    ApiError::internal(format!(
        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    ))
}

/// Per-key config privileges plus `Datastore.AllocateSpace` on storages that get new disks.
pub fn check_config_privileges(
    who: &Principal,
    vmid: u32,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<(), ApiError> {
    let vm_path = format!("/vms/{vmid}");
    for (k, v) in set {
        require(who, &vm_path, config_key_privilege(k, Some(v)))?;
    }
    for k in delete {
        require(who, &vm_path, config_key_privilege(k, None))?;
    }
    for (k, v) in set {
        if is_disk_key(k) && !v.contains("media=cdrom") {
            let vol = drive_volume(v);
            if let Some((storage, rest)) = vol.split_once(':')
                && (rest == "cloudinit" || rest.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
            {
                require(
                    who,
                    &format!("/storage/{storage}"),
                    "Datastore.AllocateSpace",
                )?;
            }
        }
    }
    Ok(())
}

/// PVE's `check_lock`.
pub fn check_lock(vm: &Vm, skiplock: bool) -> Result<(), ApiError> {
    match vm.lock() {
        Some(l) if !skiplock => Err(ApiError::internal(format!("VM is locked ({l})"))),
        _ => Ok(()),
    }
}

/// PVE's `check_vmid_unused`.
pub fn check_vmid_unused(c: &Cluster, vmid: u32) -> Result<(), ApiError> {
    match c.vms.get(&vmid) {
        Some(vm) => Err(ApiError::internal(format!(
            "VM {vmid} already exists on node '{}'",
            vm.node
        ))),
        None => Ok(()),
    }
}

/// Render config values with the types the schema gives them (integers and booleans as
/// numbers, everything else as strings).
pub fn typed_config(schema: &Schema, config: &BTreeMap<String, String>) -> Map<String, Value> {
    // Borrow the schema's properties (cloning the big map per request cost more than the rest
    // of a config GET).
    let found = schema.lookup("POST", "/nodes/x/qemu");
    let empty = Map::new();
    let props = found.as_ref().map_or(&empty, |f| &f.def.properties);
    config
        .iter()
        .map(|(k, v)| (k.clone(), typed_value(props, k, v)))
        .collect()
}

pub fn typed_value(props: &Map<String, Value>, key: &str, v: &str) -> Value {
    let ty = lookup_prop(props, key)
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("string");
    match ty {
        "integer" | "boolean" => v.parse::<i64>().map(|n| json!(n)).unwrap_or(json!(v)),
        "number" => v.parse::<f64>().map(|n| json!(n)).unwrap_or(json!(v)),
        _ => json!(v),
    }
}

/// Sum of the VM's disk sizes.
pub fn max_disk(vm: &Vm) -> u64 {
    vm.disk_keys()
        .iter()
        .filter_map(|k| vm.config.get(k).and_then(|d| drive_size(d)))
        .sum()
}

/// The address the guest agent reports for NIC 0 (and the Talos node listens on): the
/// cloud-init static address when it is in 127.0.0.0/8, else the VM's lab "DHCP" lease
/// (nothing outside loopback is reachable here).
pub fn guest_ipv4(vm: &Vm) -> (String, u8) {
    if let Some((addr, prefix)) = static_ipv4(vm) {
        return (addr.to_string(), prefix);
    }
    (
        vm.lease
            .unwrap_or_else(|| dhcp_address(vm.vmid, 0))
            .to_string(),
        8,
    )
}

/// The cloud-init static address and prefix, when it is a loopback one.
pub fn static_ipv4(vm: &Vm) -> Option<(std::net::Ipv4Addr, u8)> {
    let cfg = vm.merged_config();
    let ip = cfg
        .get("ipconfig0")?
        .split(',')
        .find_map(|p| p.strip_prefix("ip="))?;
    let (addr, prefix) = ip.split_once('/')?;
    let addr = addr.parse::<std::net::Ipv4Addr>().ok()?;
    addr.is_loopback()
        .then(|| (addr, prefix.parse().unwrap_or(24)))
}

/// The `attempt`-th address the lab's DHCP pool offers a VM: first one derived from its VMID
/// (127.10.x.y), then further blocks (127.11.x.y, …) when other labs on this machine hold it.
pub fn dhcp_address(vmid: u32, attempt: u8) -> std::net::Ipv4Addr {
    // Truncation keeps the low 16 bits of the VMID, as the address layout intends.
    std::net::Ipv4Addr::new(
        127,
        10u8.saturating_add(attempt),
        (vmid >> 8) as u8,
        vmid as u8,
    )
}
