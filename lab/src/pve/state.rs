//! The simulated cluster: nodes, storages, volumes, VMs and tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use serde::Serialize;
use sha1::{Digest, Sha1};

use super::tasks::Task;

/// A storage definition (`/etc/pve/storage.cfg`).
#[derive(Debug, Clone, Serialize)]
pub struct StorageDef {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: Vec<String>,
    pub shared: bool,
    pub total: u64,
}

impl StorageDef {
    pub fn supports(&self, content: &str) -> bool {
        self.content.iter().any(|c| c == content)
    }
}

/// A volume on a storage.
#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub volid: String,
    pub size: u64,
    pub format: String,
    pub content: String,
    pub vmid: Option<u32>,
    pub ctime: u64,
    pub parent: Option<String>,
}

/// A QEMU VM.
#[derive(Debug, Clone)]
pub struct Vm {
    pub vmid: u32,
    pub node: String,
    /// The config file, key → raw value (includes `lock` while locked).
    pub config: BTreeMap<String, String>,
    pub pending: BTreeMap<String, String>,
    pub pending_delete: BTreeSet<String>,
    pub running: bool,
    pub started: Option<Instant>,
    pub pid: u32,
    /// The lab "DHCP" lease of a VM without a static loopback address (see `guest_ipv4`).
    pub lease: Option<std::net::Ipv4Addr>,
}

impl Vm {
    pub fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    pub fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|v| v == "1")
    }

    pub fn name(&self) -> String {
        self.config
            .get("name")
            .cloned()
            .unwrap_or_else(|| format!("VM {}", self.vmid))
    }

    pub fn agent_enabled(&self) -> bool {
        self.config
            .get("agent")
            .is_some_and(|a| a.split(',').any(|p| p == "1" || p == "enabled=1"))
    }

    /// SHA1 over the config file text, like PVE's `digest`.
    pub fn digest(&self) -> String {
        let mut text = String::new();
        for (k, v) in &self.config {
            text.push_str(&format!("{k}: {v}\n"));
        }
        if !self.pending.is_empty() || !self.pending_delete.is_empty() {
            text.push_str("\n[PENDING]\n");
            for (k, v) in &self.pending {
                text.push_str(&format!("{k}: {v}\n"));
            }
            if !self.pending_delete.is_empty() {
                let d: Vec<&str> = self.pending_delete.iter().map(String::as_str).collect();
                text.push_str(&format!("delete: {}\n", d.join(",")));
            }
        }
        hex::encode(Sha1::digest(text.as_bytes()))
    }

    /// Config with pending values applied (what `GET config` shows by default).
    pub fn merged_config(&self) -> BTreeMap<String, String> {
        let mut c = self.config.clone();
        for (k, v) in &self.pending {
            c.insert(k.clone(), v.clone());
        }
        for k in &self.pending_delete {
            c.remove(k);
        }
        c
    }

    /// Apply pending changes (at start / stop / reboot).
    pub fn apply_pending(&mut self) {
        self.config = self.merged_config();
        self.pending.clear();
        self.pending_delete.clear();
    }

    pub fn memory_mib(&self) -> u64 {
        self.config
            .get("memory")
            .and_then(|m| {
                let v = m.strip_prefix("current=").unwrap_or(m);
                v.split(',').next().and_then(|s| s.parse().ok())
            })
            .unwrap_or(512)
    }

    pub fn cpus(&self) -> u64 {
        let cores: u64 = self
            .config
            .get("cores")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let sockets: u64 = self
            .config
            .get("sockets")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        cores * sockets
    }

    /// Disk keys (`scsi0`, `virtio1`, ...) that hold a volume, excluding CD-ROMs.
    pub fn disk_keys(&self) -> Vec<String> {
        self.config
            .iter()
            .filter(|(k, v)| is_disk_key(k) && !v.contains("media=cdrom"))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn uptime(&self) -> u64 {
        match (self.running, self.started) {
            (true, Some(s)) => s.elapsed().as_secs(),
            _ => 0,
        }
    }
}

/// Is this a drive key (`ide0`, `sata1`, `scsi2`, `virtio3`, `efidisk0`, `tpmstate0`, `unused0`)?
pub fn is_disk_key(k: &str) -> bool {
    let family = k.trim_end_matches(|c: char| c.is_ascii_digit());
    family.len() < k.len()
        && matches!(
            family,
            "ide" | "sata" | "scsi" | "virtio" | "efidisk" | "tpmstate" | "unused"
        )
}

/// The volume id inside a drive string (`local-lvm:vm-100-disk-0,size=8G` → `local-lvm:vm-100-disk-0`).
pub fn drive_volume(drive: &str) -> &str {
    let first = drive.split(',').next().unwrap_or_default();
    first.strip_prefix("file=").unwrap_or(first)
}

/// Drive size in bytes from its `size=` option.
pub fn drive_size(drive: &str) -> Option<u64> {
    drive
        .split(',')
        .find_map(|p| p.strip_prefix("size="))
        .and_then(parse_size)
}

/// Replace (or add) the `size=` option of a drive string.
pub fn with_drive_size(drive: &str, bytes: u64) -> String {
    let mut parts: Vec<String> = drive
        .split(',')
        .filter(|p| !p.starts_with("size="))
        .map(str::to_string)
        .collect();
    parts.push(format!("size={}", format_size(bytes)));
    parts.join(",")
}

/// Parse `10G`, `512M`, `1.5T`, `1024` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.parse().ok()?;
    if v < 0.0 {
        return None;
    }
    Some((v * mult as f64) as u64)
}

/// Format a size the way PVE writes `size=` (largest exact unit).
pub fn format_size(bytes: u64) -> String {
    for (unit, m) in [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    bytes.to_string()
}

/// Where a storage's volumes live: `*` for shared storages, else the node name.
pub fn scope(def: &StorageDef, node: &str) -> String {
    if def.shared { "*".into() } else { node.into() }
}

/// A resource pool (`/etc/pve/user.cfg`).
#[derive(Debug, Clone, Default)]
pub struct Pool {
    pub comment: Option<String>,
    pub vms: BTreeSet<u32>,
}

/// The whole simulated cluster.
#[derive(Debug)]
pub struct Cluster {
    pub cluster_name: String,
    pub pools: BTreeMap<String, Pool>,
    pub nodes: Vec<String>,
    pub storages: Vec<StorageDef>,
    /// (scope, storage) → volname → volume
    pub volumes: HashMap<(String, String), BTreeMap<String, Volume>>,
    pub vms: BTreeMap<u32, Vm>,
    pub tasks: Vec<Task>,
    pub next_pid: u32,
    pub boot_time: u64,
}

impl Cluster {
    pub fn storage(&self, id: &str) -> Option<&StorageDef> {
        self.storages.iter().find(|s| s.id == id)
    }

    /// The pool a VM belongs to.
    pub fn pool_of(&self, vmid: u32) -> Option<&str> {
        self.pools
            .iter()
            .find(|(_, p)| p.vms.contains(&vmid))
            .map(|(id, _)| id.as_str())
    }

    /// PVE's `assert_pool_exists`.
    pub fn check_pool(&self, pool: &str) -> Result<(), String> {
        if self.pools.contains_key(pool) {
            Ok(())
        } else {
            Err(format!("pool '{pool}' does not exist"))
        }
    }

    pub fn has_node(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n == node)
    }

    pub fn task(&self, upid: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.upid == upid)
    }

    pub fn task_mut(&mut self, upid: &str) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| t.upid == upid)
    }

    pub fn volumes_of(&self, storage: &str, node: &str) -> Vec<&Volume> {
        let Some(def) = self.storage(storage) else {
            return Vec::new();
        };
        self.volumes
            .get(&(scope(def, node), storage.to_string()))
            .map(|m| m.values().collect())
            .unwrap_or_default()
    }

    /// Look a volume up by volid as seen from `node`.
    pub fn volume(&self, volid: &str, node: &str) -> Option<&Volume> {
        let (storage, name) = volid.split_once(':')?;
        let def = self.storage(storage)?;
        self.volumes
            .get(&(scope(def, node), storage.to_string()))?
            .get(name)
    }

    pub fn used_bytes(&self, storage: &str, node: &str) -> u64 {
        self.volumes_of(storage, node).iter().map(|v| v.size).sum()
    }

    pub fn add_volume(&mut self, node: &str, storage: &str, name: &str, vol: Volume) {
        let Some(def) = self.storage(storage) else {
            return;
        };
        let key = (scope(def, node), storage.to_string());
        self.volumes
            .entry(key)
            .or_default()
            .insert(name.to_string(), vol);
    }

    pub fn remove_volume(&mut self, node: &str, volid: &str) -> Option<Volume> {
        let (storage, name) = volid.split_once(':')?;
        let def = self.storage(storage)?;
        let key = (scope(def, node), storage.to_string());
        self.volumes.get_mut(&key)?.remove(name)
    }

    /// Allocate a new disk volume `vm-{vmid}-disk-{n}` (or `base-...` for templates).
    pub fn alloc_disk(
        &mut self,
        node: &str,
        storage: &str,
        vmid: u32,
        size: u64,
        prefix: &str,
        parent: Option<String>,
    ) -> Result<String, String> {
        let def = self
            .storage(storage)
            .cloned()
            .ok_or_else(|| format!("storage '{storage}' does not exist"))?;
        if !def.supports("images") {
            return Err(format!(
                "storage '{storage}' does not support content-type 'images'"
            ));
        }
        if !def.shared && !self.has_node(node) {
            return Err(format!(
                "storage '{storage}' is not available on node '{node}'"
            ));
        }
        let existing: BTreeSet<String> = self
            .volumes_of(storage, node)
            .iter()
            .map(|v| v.volid.clone())
            .collect();
        let mut n = 0;
        let name = loop {
            let base = format!("{prefix}-{vmid}-disk-{n}");
            let name = match &parent {
                Some(p) => format!("{p}/{base}"),
                None => base.clone(),
            };
            let plain = format!("{storage}:{base}");
            if !existing
                .iter()
                .any(|e| e == &plain || e.ends_with(&format!("/{base}")))
            {
                break name;
            }
            n += 1;
        };
        let volid = format!("{storage}:{name}");
        self.add_volume(
            node,
            storage,
            &name,
            Volume {
                volid: volid.clone(),
                size,
                format: "raw".into(),
                content: "images".into(),
                vmid: Some(vmid),
                ctime: super::auth::unix_now(),
                parent: parent.map(|p| p.to_string()),
            },
        );
        Ok(volid)
    }

    /// Smallest free VMID ≥ 100.
    pub fn next_free_vmid(&self) -> u32 {
        let mut id = 100;
        while self.vms.contains_key(&id) {
            id += 1;
        }
        id
    }

    pub fn alloc_pid(&mut self) -> u32 {
        self.next_pid = self.next_pid.wrapping_add(17) % 4_000_000 + 1000;
        self.next_pid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("1.5K"), Some(1536));
        assert_eq!(format_size(10 << 30), "10G");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(
            with_drive_size("local-lvm:vm-100-disk-0,iothread=1,size=8G", 12 << 30),
            "local-lvm:vm-100-disk-0,iothread=1,size=12G"
        );
        assert_eq!(
            drive_volume("file=ceph:vm-1-disk-0,size=1G"),
            "ceph:vm-1-disk-0"
        );
        assert!(is_disk_key("scsi0") && is_disk_key("unused3") && !is_disk_key("net0"));
    }
}
