//! PVE config ⇄ Terraform value. Only this module knows PVE's key names for the resource.
//!
//! - [`read`]: a VM's config and status → the resource's state (and the plan's unknowns
//!   filled from it).
//! - [`write`](mod@write): the plan against the prior state → config keys to set and delete, disks to grow.
//! - Here: the queries of a PVE config both sides need (which drives are data disks, where the
//!   cloud-init drive is, the `ipconfigN` values).

mod read;
mod write;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use infraflux_proxmox::normalize::{DiskConfig, parse_bool};
use infraflux_proxmox::types::VmConfig;

pub use read::{fill_unknowns, null_unknowns, state_from_pve};
pub use write::config_changes;

/// Cloud-init drive storage when `initialization.datastore` is left out.
pub const DEFAULT_CI_DATASTORE: &str = "local-lvm";

/// A data disk the `disk` block manages: not a CD-ROM, not the cloud-init drive, not an EFI
/// or TPM state volume.
pub fn is_data_disk(slot: &str, d: &DiskConfig) -> bool {
    !slot.starts_with("efidisk")
        && !slot.starts_with("tpmstate")
        && !d.is_cdrom()
        && !d.volume.contains("cloudinit")
}

/// Data disks by slot.
pub fn data_disks(config: &VmConfig) -> BTreeMap<String, DiskConfig> {
    config
        .disks()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, d)| is_data_disk(k, d))
        .collect()
}

/// The cloud-init drive: (slot, storage).
pub fn cloudinit_drive(config: &VmConfig) -> Option<(String, String)> {
    config
        .disks()
        .unwrap_or_default()
        .into_iter()
        .find(|(_, d)| d.volume.contains("cloudinit"))
        .map(|(k, d)| (k, d.storage().unwrap_or_default().to_owned()))
}

/// The CD-ROM drives that are not the cloud-init drive: (slot, volume).
pub fn cdroms(config: &VmConfig) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = config
        .disks()
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, d)| d.is_cdrom() && !d.volume.contains("cloudinit"))
        .map(|(k, d)| (k, d.volume))
        .collect();
    v.sort_by_key(|(k, _)| (!k.starts_with("ide"), slot_order(k)));
    v
}

/// `ip=10.0.0.5/24,gw=10.0.0.1,ip6=…` → (ip, gw).
pub fn parse_ipconfig(s: &str) -> (Option<String>, Option<String>) {
    let mut ip = None;
    let mut gw = None;
    for p in s.split(',') {
        match p.split_once('=') {
            Some(("ip", v)) => ip = Some(v.trim().to_owned()),
            Some(("gw", v)) => gw = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    (ip, gw)
}

/// `ipconfigN` slots, in slot order.
fn ipconfigs(config: &VmConfig) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = config
        .values
        .keys()
        .filter(|k| {
            k.strip_prefix("ipconfig")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .filter_map(|k| config.get_str(k).map(|s| (k.clone(), s)))
        .collect();
    v.sort_by_key(|(k, _)| slot_order(k));
    v
}

/// `1`, `enabled=1,fstrim_cloned_disks=1`, … → whether the guest agent is configured.
pub fn agent_enabled(config: &VmConfig) -> bool {
    config.get_str("agent").is_some_and(|s| {
        s.split(',').any(|p| match p.split_once('=') {
            Some(("enabled", v)) => parse_bool(v) == Some(true),
            Some(_) => false,
            None => parse_bool(p) == Some(true),
        })
    })
}

/// Slot key order: `net2` before `net10`.
fn slot_order(k: &str) -> u32 {
    k.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(u32::MAX)
}
