//! PVE config ⇄ Terraform value. Only this file knows PVE's key names for the resource.

use std::collections::BTreeMap;

use infraflux_proxmox::Params;
use infraflux_proxmox::normalize::{DiskConfig, NetConfig, bool01, format_tags, parse_bool};
use infraflux_proxmox::types::VmConfig;
use infraflux_proxmox::vm::VmRead;
use tfplugin::Value;

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

/// `efidisk0` as an `efi_disk` value: storage, `efitype` (PVE's default `2m`) and
/// `pre-enrolled-keys`.
fn efi_disk_value(config: &VmConfig) -> Value {
    let Some(d) = config.disks().unwrap_or_default().remove("efidisk0") else {
        return Value::Null;
    };
    Value::object([
        ("storage", d.storage().map_or(Value::Null, Value::from)),
        (
            "type",
            Value::from(d.options.get("efitype").map_or("2m", String::as_str)),
        ),
        (
            "pre_enrolled_keys",
            Value::from(d.flag("pre-enrolled-keys").unwrap_or(false)),
        ),
    ])
}

/// `tpmstate0` as a `tpm_state` value (PVE's default version `v1.2`).
fn tpm_state_value(config: &VmConfig) -> Value {
    let Some(d) = config.disks().unwrap_or_default().remove("tpmstate0") else {
        return Value::Null;
    };
    Value::object([
        ("storage", d.storage().map_or(Value::Null, Value::from)),
        (
            "version",
            Value::from(d.options.get("version").map_or("v1.2", String::as_str)),
        ),
    ])
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

/// The `cdrom` block: the drive on `interface` (the prior state's, else the first one).
fn cdrom_value(config: &VmConfig, interface: Option<&str>) -> Value {
    let all = cdroms(config);
    let found = match interface {
        Some(i) => all.into_iter().find(|(k, _)| k == i),
        None => all.into_iter().next(),
    };
    match found {
        Some((k, vol)) => {
            Value::object([("file_id", Value::from(vol)), ("interface", Value::from(k))])
        }
        None => Value::Null,
    }
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

/// The static cloud-init IPv4 addresses (without prefix length), in slot order.
pub fn static_ipv4(config: &VmConfig) -> Vec<String> {
    ipconfigs(config)
        .iter()
        .filter_map(|(_, s)| parse_ipconfig(s).0)
        .filter(|ip| ip != "dhcp")
        .map(|ip| ip.split('/').next().unwrap_or_default().to_owned())
        .collect()
}

/// PVE's default when a VM config has no `memory` key.
const PVE_DEFAULT_MEMORY_MB: i64 = 512;

/// `2048` or `current=2048` (PVE 8.1+ property form) → MiB.
pub fn memory_mb(config: &VmConfig) -> Option<i64> {
    let s = config.get_str("memory")?;
    s.split(',')
        .find_map(|p| match p.split_once('=') {
            Some(("current", v)) => Some(v),
            Some(_) => None,
            None => Some(p),
        })
        .and_then(|v| v.trim().parse().ok())
}

/// `host` or `cputype=host,flags=…` → `host`.
pub fn cpu_type(config: &VmConfig) -> Option<String> {
    let s = config.get_str("cpu")?;
    s.split(',').find_map(|p| match p.split_once('=') {
        Some(("cputype", v)) => Some(v.to_owned()),
        Some(_) => None,
        None => Some(p.to_owned()),
    })
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

fn int(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::int)
}

fn u64_int(v: Option<u64>) -> Value {
    int(v.and_then(|n| i64::try_from(n).ok()))
}

fn strings(v: impl IntoIterator<Item = String>) -> Vec<Value> {
    v.into_iter().map(Value::from).collect()
}

/// Slot key order: `net2` before `net10`.
fn slot_order(k: &str) -> u32 {
    k.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(u32::MAX)
}

pub fn nets_sorted(config: &VmConfig) -> Vec<(String, NetConfig)> {
    let mut nets: Vec<(String, NetConfig)> =
        config.nets().unwrap_or_default().into_iter().collect();
    nets.sort_by_key(|(k, _)| slot_order(k));
    nets
}

/// The state PVE describes. `shape` is the prior state (or the plan) and says which optional
/// blocks the user manages; `None` (import) fills every block from PVE.
pub fn state_from_pve(
    read: &VmRead,
    node: &str,
    vmid: u32,
    shape: Option<&Value>,
    ipv4: Vec<String>,
) -> Value {
    let c = &read.config;
    let manages = |block: &str| match shape {
        None => true,
        Some(s) => !s.attr(block).is_null(),
    };
    let nets = nets_sorted(c);
    let cpu = if manages("cpu") {
        Value::object([
            ("cores", u64_int(c.get_u64("cores").or(Some(1)))),
            ("sockets", u64_int(c.get_u64("sockets").or(Some(1)))),
            ("type", cpu_type(c).map_or(Value::Null, Value::from)),
        ])
    } else {
        Value::Null
    };
    let memory = if manages("memory") {
        Value::object([
            (
                "dedicated_mb",
                Value::int(memory_mb(c).unwrap_or(PVE_DEFAULT_MEMORY_MB)),
            ),
            ("floating_mb", u64_int(c.get_u64("balloon"))),
        ])
    } else {
        Value::Null
    };
    let manages_nets = match shape {
        None => true,
        Some(s) => s.attr("network").as_map().is_some_and(|m| !m.is_empty()),
    };
    let network = if manages_nets {
        Value::Map(
            nets.iter()
                .map(|(k, n)| {
                    (
                        k.clone(),
                        Value::object([
                            ("bridge", n.bridge.clone().map_or(Value::Null, Value::from)),
                            ("model", Value::from(n.model.clone())),
                            ("vlan_id", int(n.tag.map(i64::from))),
                            ("mtu", int(n.mtu.map(i64::from))),
                            ("firewall", Value::from(n.firewall.unwrap_or(false))),
                            ("mac", n.mac.clone().map_or(Value::Null, Value::from)),
                        ]),
                    )
                })
                .collect(),
        )
    } else {
        Value::Map(BTreeMap::new())
    };
    // Disks, cloud-init and the agent are reported only once the user manages them (an
    // import leaves them out: the first apply adopts what the configuration declares).
    let manages_disks = match shape {
        None => false,
        Some(s) => s.attr("disk").as_map().is_some_and(|m| !m.is_empty()),
    };
    let disk = if manages_disks {
        let prior = shape.map(|s| s.attr("disk"));
        Value::Map(
            data_disks(c)
                .into_iter()
                .map(|(k, d)| {
                    let import_from = prior
                        .and_then(Value::as_map)
                        .and_then(|m| m.get(&k))
                        .map_or(Value::Null, |p| p.attr("import_from").clone());
                    let flag = |f: &str| Value::from(d.flag(f).unwrap_or(false));
                    let v = Value::object([
                        ("storage", d.storage().map_or(Value::Null, Value::from)),
                        ("size_gb", u64_int(d.size_gib())),
                        ("import_from", import_from),
                        ("discard", flag("discard")),
                        ("ssd", flag("ssd")),
                        ("iothread", flag("iothread")),
                        (
                            "cache",
                            Value::from(d.options.get("cache").map_or("none", String::as_str)),
                        ),
                    ]);
                    (k, v)
                })
                .collect(),
        )
    } else {
        Value::Map(BTreeMap::new())
    };
    let ci = cloudinit_drive(c);
    let ipcs = ipconfigs(c);
    let manages_init = match shape {
        None => false,
        Some(s) => !s.attr("initialization").is_null(),
    };
    let initialization = if manages_init {
        let shape_dns = shape.map(|s| s.attr("initialization").attr("dns"));
        let (ns, sd) = (c.get_str("nameserver"), c.get_str("searchdomain"));
        let manages_dns = match shape_dns {
            None => ns.is_some() || sd.is_some(),
            Some(d) => !d.is_null(),
        };
        let dns = if manages_dns {
            Value::object([
                (
                    "servers",
                    ns.map_or(Value::Null, |n| {
                        Value::List(strings(n.split_whitespace().map(str::to_owned)))
                    }),
                ),
                ("domain", sd.map_or(Value::Null, Value::from)),
            ])
        } else {
            Value::Null
        };
        Value::object([
            ("datastore", ci.map_or(Value::Null, |(_, s)| Value::from(s))),
            (
                "ip_config",
                Value::Map(
                    ipcs.iter()
                        .map(|(k, v)| {
                            let (ip, gw) = parse_ipconfig(v);
                            (
                                k.clone(),
                                Value::object([
                                    ("ipv4_address", ip.map_or(Value::Null, Value::from)),
                                    ("ipv4_gateway", gw.map_or(Value::Null, Value::from)),
                                ]),
                            )
                        })
                        .collect(),
                ),
            ),
            ("dns", dns),
        ])
    } else {
        Value::Null
    };
    let manages_agent = match shape {
        None => false,
        Some(s) => !s.attr("agent").is_null(),
    };
    let agent = if manages_agent {
        Value::object([
            ("enabled", Value::from(agent_enabled(c))),
            (
                "timeout",
                shape.map_or(Value::Null, |s| s.attr("agent").attr("timeout").clone()),
            ),
            (
                "wait_for_ip",
                shape.map_or(Value::Null, |s| s.attr("agent").attr("wait_for_ip").clone()),
            ),
        ])
    } else {
        Value::Null
    };
    // Like disks: reported once the configuration manages them (an import adopts them).
    let manages_block = |b: &str| shape.is_some_and(|s| !s.attr(b).is_null());
    let efi_disk = if manages_block("efi_disk") {
        efi_disk_value(c)
    } else {
        Value::Null
    };
    let tpm_state = if manages_block("tpm_state") {
        tpm_state_value(c)
    } else {
        Value::Null
    };
    let cdrom = if manages_block("cdrom") {
        cdrom_value(
            c,
            shape.and_then(|s| s.attr("cdrom").attr("interface").as_str()),
        )
    } else {
        Value::Null
    };
    let statics = static_ipv4(c);
    let ipv4 = if statics.is_empty() { ipv4 } else { statics };
    let status = read.resource.status.clone();
    let started = match shape {
        Some(s) if !s.attr("started").is_null() => s.attr("started").clone(),
        _ => Value::from(status == "running"),
    };
    let id = match shape.map(|s| s.attr("id")) {
        Some(Value::String(s)) => Value::from(s.clone()),
        _ => Value::from(format!("{node}/{vmid}")),
    };
    Value::object([
        ("id", id),
        ("node", Value::from(node)),
        ("vm_id", Value::int(i64::from(vmid))),
        ("name", c.get_str("name").map_or(Value::Null, Value::from)),
        (
            "description",
            c.get_str("description").map_or(Value::Null, Value::from),
        ),
        ("tags", Value::Set(strings(c.tags()))),
        (
            "pool",
            read.resource.pool.clone().map_or(Value::Null, Value::from),
        ),
        ("started", started),
        (
            "on_boot",
            Value::from(c.get_bool("onboot").unwrap_or(false)),
        ),
        ("current_node", Value::from(read.resource.node.clone())),
        ("status", Value::from(status)),
        (
            "mac_addresses",
            Value::List(strings(nets.iter().filter_map(|(_, n)| n.mac.clone()))),
        ),
        ("ipv4_addresses", Value::List(strings(ipv4))),
        (
            "config_digest",
            c.digest.clone().map_or(Value::Null, Value::from),
        ),
        (
            "clone",
            shape.map_or(Value::Null, |s| s.attr("clone").clone()),
        ),
        ("cpu", cpu),
        ("memory", memory),
        ("network", network),
        (
            "bios",
            Value::from(c.get_str("bios").unwrap_or_else(|| "seabios".into())),
        ),
        (
            "machine",
            c.get_str("machine").map_or(Value::Null, Value::from),
        ),
        (
            "scsi_hardware",
            Value::from(c.get_str("scsihw").unwrap_or_else(|| "lsi".into())),
        ),
        (
            "reboot_after_update",
            shape.map_or(Value::from(true), |s| match s.attr("reboot_after_update") {
                Value::Bool(b) => Value::from(*b),
                _ => Value::from(true),
            }),
        ),
        (
            "allow_disk_removal",
            shape.map_or(Value::from(false), |s| match s.attr("allow_disk_removal") {
                Value::Bool(b) => Value::from(*b),
                _ => Value::from(false),
            }),
        ),
        ("disk", disk),
        ("efi_disk", efi_disk),
        ("tpm_state", tpm_state),
        ("cdrom", cdrom),
        ("initialization", initialization),
        ("agent", agent),
        (
            "timeouts",
            shape.map_or(Value::Null, |s| s.attr("timeouts").clone()),
        ),
    ])
}

/// The plan with its unknowns taken from `fresh` (what PVE says after apply).
pub fn fill_unknowns(planned: &Value, fresh: &Value) -> Value {
    match (planned, fresh) {
        (Value::Unknown, f) => null_unknowns(f),
        (Value::Object(p), _) => Value::Object(
            p.iter()
                .map(|(k, v)| (k.clone(), fill_unknowns(v, fresh.attr(k))))
                .collect(),
        ),
        (Value::Map(p), f) => {
            let empty = BTreeMap::new();
            let fm = f.as_map().unwrap_or(&empty);
            Value::Map(
                p.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            fill_unknowns(v, fm.get(k).unwrap_or(&Value::Null)),
                        )
                    })
                    .collect(),
            )
        }
        (Value::List(_) | Value::Set(_), f) if !planned.is_wholly_known() => null_unknowns(f),
        (p, _) => p.clone(),
    }
}

/// Unknowns → null (a state must be wholly known).
pub fn null_unknowns(v: &Value) -> Value {
    match v {
        Value::Unknown => Value::Null,
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), null_unknowns(v)))
                .collect(),
        ),
        Value::Map(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), null_unknowns(v)))
                .collect(),
        ),
        Value::List(l) => Value::List(
            l.iter()
                .filter(|v| !v.is_unknown())
                .map(null_unknowns)
                .collect(),
        ),
        Value::Set(l) => Value::Set(
            l.iter()
                .filter(|v| !v.is_unknown())
                .map(null_unknowns)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A planned value worth sending: known, and different from the prior one.
fn changed<'a>(planned: &'a Value, prior: &Value) -> Option<&'a Value> {
    (planned.is_wholly_known() && !planned.is_null() && !planned.equals(prior)).then_some(planned)
}

/// What an apply sends: config keys to set and delete, then disks to grow.
#[derive(Debug, Default)]
pub struct Changes {
    pub set: Params,
    pub delete: Vec<String>,
    /// (slot, GiB): grow with `resize` after the config change.
    pub resizes: Vec<(String, u64)>,
    /// The change allocates volumes (new disk, cloud-init drive): send it as a task.
    pub allocates: bool,
    /// Volumes of removed disks: PVE keeps them as `unusedN`; those entries are deleted too.
    pub removed_volumes: Vec<String>,
}

fn bool_opt(v: &Value) -> Option<bool> {
    v.as_bool()
}

/// The `disk` block as a PVE drive value, based on `base` (the current drive, or a new one).
fn disk_value(want: &Value, base: DiskConfig) -> DiskConfig {
    let mut d = base;
    for f in ["discard", "ssd", "iothread"] {
        match (f, bool_opt(want.attr(f))) {
            ("discard", Some(true)) => {
                d.options.insert("discard".into(), "on".into());
            }
            (_, Some(true)) => {
                d.options.insert(f.into(), "1".into());
            }
            (_, Some(false)) => {
                d.options.remove(f);
            }
            (_, None) => {}
        }
    }
    match want.attr("cache").as_str() {
        Some("none") => {
            d.options.remove("cache");
        }
        Some(c) => {
            d.options.insert("cache".into(), c.to_owned());
        }
        None => {}
    }
    d
}

/// `ip=…,gw=…` for an `ip_config` block; `None` when it sets nothing.
fn ipconfig_value(want: &Value) -> Option<String> {
    let ip = want.attr("ipv4_address").as_str();
    let gw = want.attr("ipv4_gateway").as_str();
    let mut parts = Vec::new();
    if let Some(ip) = ip {
        parts.push(format!("ip={ip}"));
    }
    if let Some(gw) = gw {
        parts.push(format!("gw={gw}"));
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Config keys to set and delete to go from `prior` (null on create) to `planned`, given the
/// VM's current config (whose NICs keep their MACs and unmodelled options).
pub fn config_changes(planned: &Value, prior: &Value, current: &VmConfig) -> Changes {
    let mut ch = Changes::default();
    let mut set = Params::new();
    let mut delete: Vec<String> = Vec::new();
    if let Some(Value::String(d)) = changed(planned.attr("description"), prior.attr("description"))
    {
        set = set.set("description", d);
    }
    if let Some(Value::Set(tags)) = changed(planned.attr("tags"), prior.attr("tags")) {
        let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
        if tags.is_empty() {
            if current.get_str("tags").is_some() {
                delete.push("tags".into());
            }
        } else {
            set = set.set("tags", format_tags(&tags));
        }
    }
    if let Some(Value::String(n)) = changed(planned.attr("name"), prior.attr("name"))
        && current.get_str("name").as_deref() != Some(n)
    {
        set = set.set("name", n);
    }
    if let Some(Value::Bool(b)) = changed(planned.attr("on_boot"), prior.attr("on_boot")) {
        set = set.set("onboot", bool01(*b));
    }
    let (pc, sc) = (planned.attr("cpu"), prior.attr("cpu"));
    if let Some(n) = changed(pc.attr("cores"), sc.attr("cores")).and_then(Value::as_i64) {
        set = set.set("cores", n);
    }
    if let Some(n) = changed(pc.attr("sockets"), sc.attr("sockets")).and_then(Value::as_i64) {
        set = set.set("sockets", n);
    }
    if let Some(t) = changed(pc.attr("type"), sc.attr("type")).and_then(Value::as_str) {
        set = set.set("cpu", t);
    }
    let (pm, sm) = (planned.attr("memory"), prior.attr("memory"));
    if let Some(n) =
        changed(pm.attr("dedicated_mb"), sm.attr("dedicated_mb")).and_then(Value::as_i64)
    {
        set = set.set("memory", n);
    }
    if let Some(n) = changed(pm.attr("floating_mb"), sm.attr("floating_mb")).and_then(Value::as_i64)
    {
        set = set.set("balloon", n);
    }
    let empty = BTreeMap::new();
    let pn = planned.attr("network").as_map().unwrap_or(&empty);
    let sn = prior.attr("network").as_map().unwrap_or(&empty);
    let current_nets = current.nets().unwrap_or_default();
    for (slot, want) in pn {
        let mut net = current_nets.get(slot).cloned().unwrap_or_default();
        if let Some(m) = want.attr("model").as_str() {
            net.model = m.to_owned();
        } else if net.model.is_empty() {
            net.model = "virtio".into();
        }
        net.bridge = want
            .attr("bridge")
            .as_str()
            .map(str::to_owned)
            .or(net.bridge);
        net.tag = want
            .attr("vlan_id")
            .as_i64()
            .and_then(|t| u16::try_from(t).ok());
        if let Some(f) = want.attr("firewall").as_bool() {
            net.firewall = Some(f);
        }
        if want.attr("mtu").is_wholly_known() {
            net.mtu = want
                .attr("mtu")
                .as_i64()
                .and_then(|m| u16::try_from(m).ok());
        }
        let now = current.get_str(slot);
        if now.as_deref() != Some(net.to_string().as_str())
            && now.and_then(|s| s.parse::<NetConfig>().ok()).as_ref() != Some(&net)
        {
            set = set.set(slot, net.to_string());
        }
    }
    for slot in sn.keys() {
        if !pn.contains_key(slot) && current_nets.contains_key(slot) {
            delete.push(slot.clone());
        }
    }
    for (k, key) in [
        ("bios", "bios"),
        ("machine", "machine"),
        ("scsi_hardware", "scsihw"),
    ] {
        if let Some(Value::String(v)) = changed(planned.attr(k), prior.attr(k))
            && current.get_str(key).as_deref() != Some(v)
        {
            set = set.set(key, v);
        }
    }
    if let Some(b) = planned.attr("agent").attr("enabled").as_bool()
        && (agent_enabled(current) != b || current.get_str("agent").is_none())
    {
        set = set.set("agent", format!("enabled={}", bool01(b)));
    }
    // Disks: only when the user manages them (an empty map leaves them alone).
    let pd = planned.attr("disk").as_map().unwrap_or(&empty);
    let sd = prior.attr("disk").as_map().unwrap_or(&empty);
    let current_disks = data_disks(current);
    for (slot, want) in pd {
        match current_disks.get(slot) {
            Some(have) => {
                let d = disk_value(want, have.clone());
                if &d != have {
                    set = set.set(slot, d.to_string());
                }
                if let Some(gb) = want
                    .attr("size_gb")
                    .as_i64()
                    .and_then(|n| u64::try_from(n).ok())
                    && have.size_gib().is_none_or(|h| gb > h)
                {
                    ch.resizes.push((slot.clone(), gb));
                }
            }
            None => {
                let storage = want.attr("storage").as_str().unwrap_or_default();
                let size = want.attr("size_gb").as_i64();
                let mut base = DiskConfig::default();
                match want.attr("import_from").as_str() {
                    Some(src) => {
                        base.volume = format!("{storage}:0");
                        base.options.insert("import-from".into(), src.to_owned());
                        // Grown to size_gb after the import, when bigger than the image.
                        if let Some(gb) = size.and_then(|n| u64::try_from(n).ok()) {
                            ch.resizes.push((slot.clone(), gb));
                        }
                    }
                    None => base.volume = format!("{storage}:{}", size.unwrap_or(1)),
                }
                set = set.set(slot, disk_value(want, base).to_string());
                ch.allocates = true;
            }
        }
    }
    if !pd.is_empty() {
        for slot in sd.keys() {
            if !pd.contains_key(slot)
                && let Some(have) = current_disks.get(slot)
            {
                delete.push(slot.clone());
                ch.removed_volumes.push(have.volume.clone());
            }
        }
    }
    // EFI vars and TPM state: added or removed (changes are refused at plan time).
    let all_disks = current.disks().unwrap_or_default();
    for (block, key) in [("efi_disk", "efidisk0"), ("tpm_state", "tpmstate0")] {
        let (want, had) = (planned.attr(block), prior.attr(block));
        match (all_disks.get(key), want.attr("storage").as_str()) {
            (None, Some(storage)) => {
                let opts = if block == "efi_disk" {
                    format!(
                        "efitype={},pre-enrolled-keys={}",
                        want.attr("type").as_str().unwrap_or("4m"),
                        bool01(want.attr("pre_enrolled_keys").as_bool().unwrap_or(false))
                    )
                } else {
                    format!(
                        "version={}",
                        want.attr("version").as_str().unwrap_or("v2.0")
                    )
                };
                set = set.set(key, format!("{storage}:1,{opts}"));
                ch.allocates = true;
            }
            (Some(d), None) if want.is_null() && !had.is_null() => {
                delete.push(key.to_owned());
                ch.removed_volumes.push(d.volume.clone());
            }
            _ => {}
        }
    }
    let (pc, sc) = (planned.attr("cdrom"), prior.attr("cdrom"));
    let cds = cdroms(current);
    let want_cd = (pc.attr("interface").as_str(), pc.attr("file_id").as_str());
    if let (Some(iface), Some(file)) = want_cd
        && cds
            .iter()
            .find(|(k, _)| k == iface)
            .map(|(_, v)| v.as_str())
            != Some(file)
    {
        set = set.set(iface, format!("{file},media=cdrom"));
    }
    if let Some(old_iface) = sc.attr("interface").as_str()
        && pc.attr("interface").as_str() != Some(old_iface)
        && cds.iter().any(|(k, _)| k == old_iface)
    {
        delete.push(old_iface.to_owned());
    }
    // Cloud-init.
    let (pi, si) = (planned.attr("initialization"), prior.attr("initialization"));
    let ci = cloudinit_drive(current);
    let current_ipcs = ipconfigs(current);
    if !pi.is_null() {
        let store = pi
            .attr("datastore")
            .as_str()
            .unwrap_or(DEFAULT_CI_DATASTORE);
        match &ci {
            Some((_, s)) if s == store => {}
            Some((slot, _)) => {
                set = set.set(slot, format!("{store}:cloudinit"));
                ch.allocates = true;
            }
            None => {
                set = set.set("ide2", format!("{store}:cloudinit"));
                ch.allocates = true;
            }
        }
        let pip = pi.attr("ip_config").as_map().unwrap_or(&empty);
        for (slot, want) in pip {
            let have = current_ipcs.iter().find(|(k, _)| k == slot).map(|(_, v)| v);
            match ipconfig_value(want) {
                Some(v) => {
                    if have.map(|h| parse_ipconfig(h)) != Some(parse_ipconfig(&v)) {
                        set = set.set(slot, v);
                    }
                }
                None => {
                    if have.is_some() {
                        delete.push(slot.clone());
                    }
                }
            }
        }
        for (slot, _) in &current_ipcs {
            if !pip.contains_key(slot) {
                delete.push(slot.clone());
            }
        }
        let dns = pi.attr("dns");
        let servers: Option<String> = dns.attr("servers").as_elements().map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        });
        for (key, want) in [
            ("nameserver", servers.filter(|s| !s.is_empty())),
            (
                "searchdomain",
                dns.attr("domain").as_str().map(str::to_owned),
            ),
        ] {
            let have = current.get_str(key);
            match want {
                Some(w) if have.as_deref() != Some(w.as_str()) => set = set.set(key, w),
                None if have.is_some() && !si.is_null() => delete.push(key.to_owned()),
                _ => {}
            }
        }
    }
    ch.set = set;
    ch.delete = delete;
    ch
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(j: serde_json::Value) -> VmConfig {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn pve_forms() {
        let c = config(
            json!({"memory": "current=4096", "cpu": "cputype=host,flags=+aes", "agent": "enabled=1"}),
        );
        assert_eq!(memory_mb(&c), Some(4096));
        assert_eq!(cpu_type(&c).as_deref(), Some("host"));
        assert!(agent_enabled(&c));
        let c = config(json!({"memory": 2048, "cpu": "kvm64", "agent": "0"}));
        assert_eq!(memory_mb(&c), Some(2048));
        assert_eq!(cpu_type(&c).as_deref(), Some("kvm64"));
        assert!(!agent_enabled(&c));
    }

    #[test]
    fn changes_keep_macs_and_sort_tags() {
        let current = config(
            json!({"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "net1": "virtio=BC:24:11:00:00:02,bridge=vmbr1", "tags": "x"}),
        );
        let nic = |b: &str, tag: Option<i64>| {
            Value::object([
                ("bridge", Value::from(b)),
                ("model", Value::from("virtio")),
                ("vlan_id", int(tag)),
                ("firewall", Value::Unknown),
                ("mac", Value::Unknown),
            ])
        };
        let planned = Value::object([
            ("tags", Value::Set(vec!["b".into(), "a".into()])),
            (
                "network",
                Value::Map([("net0".to_owned(), nic("vmbr0", Some(5)))].into()),
            ),
        ]);
        let prior = Value::object([
            ("tags", Value::Set(vec!["x".into()])),
            (
                "network",
                Value::Map(
                    [
                        ("net0".to_owned(), nic("vmbr0", None)),
                        ("net1".to_owned(), nic("vmbr1", None)),
                    ]
                    .into(),
                ),
            ),
        ]);
        let Changes { set, delete, .. } = config_changes(&planned, &prior, &current);
        assert_eq!(
            set.0,
            vec![
                ("tags".to_owned(), "a;b".to_owned()),
                (
                    "net0".to_owned(),
                    "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=5".to_owned()
                )
            ]
        );
        assert_eq!(delete, vec!["net1".to_owned()]);
        // Nothing changed: nothing sent.
        let Changes { set, delete, .. } = config_changes(&prior, &prior, &current);
        assert!(set.0.is_empty() && delete.is_empty(), "{set:?} {delete:?}");
    }

    fn disk(storage: &str, size: i64, import_from: Option<&str>) -> Value {
        Value::object([
            ("storage", Value::from(storage)),
            ("size_gb", Value::int(size)),
            ("import_from", import_from.map_or(Value::Null, Value::from)),
            ("discard", Value::from(true)),
            ("ssd", Value::Unknown),
            ("iothread", Value::from(false)),
            ("cache", Value::from("none")),
        ])
    }

    #[test]
    fn disks_grow_change_options_and_import() {
        let current = config(json!({
            "scsi0": "local-lvm:vm-100-disk-0,cache=writeback,iothread=1,size=10G",
            "ide2": "local-lvm:vm-100-cloudinit,media=cdrom",
            "ide0": "local:iso/x.iso,media=cdrom"
        }));
        assert_eq!(
            data_disks(&current).len(),
            1,
            "CD-ROMs and cloud-init are not disks"
        );
        let planned = Value::object([(
            "disk",
            Value::Map(
                [
                    ("scsi0".to_owned(), disk("local-lvm", 12, None)),
                    (
                        "scsi1".to_owned(),
                        disk("local-lvm", 4, Some("local:import/talos.raw")),
                    ),
                ]
                .into(),
            ),
        )]);
        let ch = config_changes(&planned, &Value::Null, &current);
        assert_eq!(
            ch.set.0,
            vec![
                (
                    "scsi0".to_owned(),
                    "local-lvm:vm-100-disk-0,discard=on,size=10G".to_owned()
                ),
                (
                    "scsi1".to_owned(),
                    "local-lvm:0,discard=on,import-from=local:import/talos.raw".to_owned()
                ),
            ]
        );
        assert!(ch.allocates);
        assert_eq!(
            ch.resizes,
            vec![("scsi0".to_owned(), 12), ("scsi1".to_owned(), 4)]
        );
    }

    #[test]
    fn cloud_init_values() {
        let c = config(json!({
            "ipconfig0": "ip=127.0.0.11/8,gw=127.0.0.1",
            "ipconfig1": "ip=dhcp",
            "ide2": "local-lvm:vm-100-cloudinit,media=cdrom",
            "nameserver": "1.1.1.1 9.9.9.9"
        }));
        assert_eq!(static_ipv4(&c), vec!["127.0.0.11".to_owned()]);
        assert_eq!(
            cloudinit_drive(&c),
            Some(("ide2".to_owned(), "local-lvm".to_owned()))
        );
        let init = Value::object([
            ("datastore", Value::from("local-lvm")),
            (
                "ip_config",
                Value::Map(
                    [(
                        "ipconfig0".to_owned(),
                        Value::object([
                            ("ipv4_address", Value::from("127.0.0.11/8")),
                            ("ipv4_gateway", Value::from("127.0.0.1")),
                        ]),
                    )]
                    .into(),
                ),
            ),
            (
                "dns",
                Value::object([
                    (
                        "servers",
                        Value::List(vec!["1.1.1.1".into(), "9.9.9.9".into()]),
                    ),
                    ("domain", Value::Null),
                ]),
            ),
        ]);
        let planned = Value::object([("initialization", init)]);
        let ch = config_changes(&planned, &planned, &c);
        assert!(ch.set.0.is_empty(), "{:?}", ch.set);
        assert_eq!(ch.delete, vec!["ipconfig1".to_owned()]);
        let ch = config_changes(&planned, &Value::Null, &config(json!({})));
        assert_eq!(
            ch.set.keys(),
            vec!["ide2", "ipconfig0", "nameserver"],
            "{:?}",
            ch.set
        );
    }

    #[test]
    fn unknowns_are_filled() {
        let planned = Value::object([
            ("a", Value::Unknown),
            ("b", Value::from("x")),
            (
                "m",
                Value::Map([("k".to_owned(), Value::object([("mac", Value::Unknown)]))].into()),
            ),
        ]);
        let fresh = Value::object([
            ("a", Value::from("A")),
            ("b", Value::from("y")),
            (
                "m",
                Value::Map([("k".to_owned(), Value::object([("mac", Value::from("M"))]))].into()),
            ),
        ]);
        let v = fill_unknowns(&planned, &fresh);
        assert_eq!(v.attr("a"), &Value::from("A"));
        assert_eq!(v.attr("b"), &Value::from("x"));
        assert_eq!(
            v.attr("m").as_map().unwrap()["k"].attr("mac"),
            &Value::from("M")
        );
    }
}
