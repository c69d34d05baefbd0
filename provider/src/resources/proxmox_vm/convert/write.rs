//! The plan against the prior state → what to send to PVE.

use std::collections::BTreeMap;

use infraflux_proxmox::Params;
use infraflux_proxmox::normalize::{DiskConfig, NetConfig, bool01, format_tags};
use infraflux_proxmox::types::VmConfig;
use tfplugin::Value;

use super::{
    DEFAULT_CI_DATASTORE, agent_enabled, cdroms, cloudinit_drive, data_disks, ipconfigs,
    parse_ipconfig,
};

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
