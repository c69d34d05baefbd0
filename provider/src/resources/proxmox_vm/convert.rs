//! PVE config ⇄ Terraform value. Only this file knows PVE's key names for the resource.

use std::collections::BTreeMap;

use tfplugin::Value;

use crate::proxmox::Params;
use crate::proxmox::normalize::{NetConfig, bool01, format_tags, parse_bool};
use crate::proxmox::types::VmConfig;
use crate::proxmox::vm::VmRead;

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

/// Config keys to set and delete to go from `prior` (null on create) to `planned`, given the
/// VM's current config (whose NICs keep their MACs and unmodelled options).
pub fn config_changes(planned: &Value, prior: &Value, current: &VmConfig) -> (Params, Vec<String>) {
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
    (set, delete)
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
        let (set, delete) = config_changes(&planned, &prior, &current);
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
        let (set, delete) = config_changes(&prior, &prior, &current);
        assert!(set.0.is_empty() && delete.is_empty(), "{set:?} {delete:?}");
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
