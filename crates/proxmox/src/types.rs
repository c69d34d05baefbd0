//! Typed answers of the API, decoded leniently: PVE sends booleans as 0/1 and some numbers as
//! strings, and adds fields over time; unknown fields are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::normalize::{self, DiskConfig, NetConfig, ParseError};

fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(normalize::pve_bool(&Value::deserialize(d)?).unwrap_or(false))
}

fn de_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match &v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    })
}

fn de_tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .map(|s| normalize::parse_tags(&s))
        .unwrap_or_default())
}

/// `GET /version`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Version {
    pub version: String,
    pub release: String,
    #[serde(default)]
    pub repoid: String,
}

/// One `type=vm` entry of `/cluster/resources`: where a VM runs and its coarse state.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VmResource {
    #[serde(deserialize_with = "de_u64")]
    pub vmid: u64,
    pub node: String,
    /// `qemu` or `lxc`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "de_bool")]
    pub template: bool,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "de_tags")]
    pub tags: Vec<String>,
    /// Resource pool, when the VM is in one.
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default, deserialize_with = "de_u64")]
    pub maxmem: u64,
    #[serde(default, deserialize_with = "de_u64")]
    pub maxdisk: u64,
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeInfo {
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default)]
    pub status: String,
    /// CPU usage, 0..=1.
    #[serde(default)]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "de_u64")]
    pub maxcpu: u64,
    #[serde(default, deserialize_with = "de_u64")]
    pub mem: u64,
    #[serde(default, deserialize_with = "de_u64")]
    pub maxmem: u64,
}

/// One entry of `GET /nodes/{node}/storage`: a storage as that node sees it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeStorage {
    pub storage: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `images,rootdir`
    #[serde(default)]
    pub content: String,
    #[serde(default, deserialize_with = "de_bool")]
    pub shared: bool,
    #[serde(default, deserialize_with = "de_bool")]
    pub active: bool,
    #[serde(default, deserialize_with = "de_bool")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "de_u64")]
    pub total: u64,
    #[serde(default, deserialize_with = "de_u64")]
    pub used: u64,
    #[serde(default, deserialize_with = "de_u64")]
    pub avail: u64,
}

impl NodeStorage {
    /// The content types the storage takes (`images`, `iso`, …), sorted.
    pub fn content_types(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .content
            .split([',', ';', ' '])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    }
}

/// One volume of `GET /nodes/{node}/storage/{storage}/content`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StorageItem {
    pub volid: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub format: String,
    #[serde(default, deserialize_with = "de_u64")]
    pub size: u64,
    #[serde(default)]
    pub vmid: Option<u64>,
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TaskStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// `OK`, `WARNINGS: n`, or the error; only once stopped.
    #[serde(default)]
    pub exitstatus: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub node: String,
}

impl TaskStatus {
    /// The task has not finished.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
    /// PVE counts warnings as success.
    pub fn succeeded(&self) -> bool {
        self.exitstatus
            .as_deref()
            .is_some_and(|e| e == "OK" || e.starts_with("WARNINGS"))
    }
}

/// `GET /nodes/{node}/qemu/{vmid}/config`: keys with values typed as the schema says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VmConfig {
    pub digest: Option<String>,
    pub values: Map<String, Value>,
}

impl<'de> Deserialize<'de> for VmConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut values = Map::deserialize(d)?;
        let digest = match values.remove("digest") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(VmConfig { digest, values })
    }
}

/// Keys that hold disks (`unusedN` are detached volumes, not disks).
pub fn is_disk_key(k: &str) -> bool {
    let family = k.trim_end_matches(|c: char| c.is_ascii_digit());
    family.len() < k.len()
        && matches!(
            family,
            "scsi" | "virtio" | "sata" | "ide" | "efidisk" | "tpmstate"
        )
}

impl VmConfig {
    /// A value as PVE's string form (numbers and booleans rendered as PVE sends them).
    pub fn get_str(&self, k: &str) -> Option<String> {
        match self.values.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
    /// A numeric key, whether PVE sent it as a number or a string.
    pub fn get_u64(&self, k: &str) -> Option<u64> {
        match self.values.get(k)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
    /// A boolean key in any of PVE's spellings.
    pub fn get_bool(&self, k: &str) -> Option<bool> {
        self.values.get(k).and_then(normalize::pve_bool)
    }
    /// The VM's tags, sorted and deduplicated.
    pub fn tags(&self) -> Vec<String> {
        self.get_str("tags")
            .map(|t| normalize::parse_tags(&t))
            .unwrap_or_default()
    }
    /// `netN` → parsed, keyed by slot.
    pub fn nets(&self) -> Result<BTreeMap<String, NetConfig>, ParseError> {
        self.family(|k| {
            k.starts_with("net") && k[3..].chars().all(|c| c.is_ascii_digit()) && k.len() > 3
        })
    }
    /// Disk slots (`scsi0`, `virtio1`, `ide2`, `efidisk0`, …) → parsed, CD-ROMs included.
    pub fn disks(&self) -> Result<BTreeMap<String, DiskConfig>, ParseError> {
        self.family(is_disk_key)
    }
    fn family<T: std::str::FromStr<Err = ParseError>>(
        &self,
        pick: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, T>, ParseError> {
        self.values
            .iter()
            .filter(|(k, _)| pick(k))
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s)))
            .map(|(k, s)| Ok((k.clone(), s.parse()?)))
            .collect()
    }
}

/// One entry of `GET …/pending`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PendingItem {
    pub key: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub pending: Option<Value>,
    #[serde(default, deserialize_with = "de_u64")]
    pub delete: u64,
}

impl PendingItem {
    /// A change that waits for the next start or reboot.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some() || self.delete > 0
    }
}

/// `GET …/status/current` (the fields we use).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VmStatus {
    pub status: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "de_bool")]
    pub agent: bool,
    #[serde(default, deserialize_with = "de_u64")]
    pub uptime: u64,
}

/// One interface from the guest agent.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AgentInterface {
    pub name: String,
    #[serde(rename = "hardware-address", default)]
    pub mac: Option<String>,
    #[serde(rename = "ip-addresses", default)]
    pub ip_addresses: Vec<AgentIp>,
}

/// One address of a guest interface, as the guest agent reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AgentIp {
    #[serde(rename = "ip-address")]
    pub address: String,
    /// `ipv4` or `ipv6`.
    #[serde(rename = "ip-address-type")]
    pub kind: String,
    #[serde(default)]
    pub prefix: Option<u8>,
}

/// The guest's IPv4 addresses, the loopback interface and link-local addresses excluded.
/// (By interface name, not by 127.0.0.0/8: the lab hands guests 127.10.x.y addresses.)
pub fn ipv4_addresses(ifaces: &[AgentInterface]) -> Vec<String> {
    ifaces
        .iter()
        .filter(|i| i.name != "lo")
        .flat_map(|i| &i.ip_addresses)
        .filter(|ip| ip.kind == "ipv4" && !ip.address.starts_with("169.254."))
        .map(|ip| ip.address.clone())
        .collect()
}
