//! A VM's config and status → the resource's state.

use std::collections::BTreeMap;

use infraflux_proxmox::normalize::NetConfig;
use infraflux_proxmox::types::VmConfig;
use infraflux_proxmox::vm::VmRead;
use tfplugin::Value;

use super::{
    agent_enabled, cdroms, cloudinit_drive, data_disks, ipconfigs, parse_ipconfig, slot_order,
};

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

fn int(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::int)
}

fn u64_int(v: Option<u64>) -> Value {
    int(v.and_then(|n| i64::try_from(n).ok()))
}

fn strings(v: impl IntoIterator<Item = String>) -> Vec<Value> {
    v.into_iter().map(Value::from).collect()
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
