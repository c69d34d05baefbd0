//! Plan: exactly one boot source; disks never shrink, move or vanish silently; firmware,
//! CD-ROM and address rules (plan-time errors naming the attribute); then the values known
//! before apply and the prior values of what the user leaves unset.

use infraflux_proxmox::types::is_disk_key;
use tfplugin::framework::resource::{PlanRequest, PlanResponse};
use tfplugin::{AttributePath, Diagnostic, Diagnostics, Value};

use super::convert::DEFAULT_CI_DATASTORE;
use super::vmid_of;

/// The resource's `modify_plan`.
pub(super) fn modify_plan(req: &PlanRequest<'_>, resp: &mut PlanResponse) {
    if resp.planned.is_null() {
        return; // destroy
    }
    let prior = req.prior;
    let creating = prior.is_null();
    let planned = &mut resp.planned;
    if creating && !check_boot_source(req.config, &mut resp.diags) {
        return;
    }
    check_disks(req.config, prior, creating, &mut resp.diags);
    check_ip_config(req.config, &mut resp.diags);
    check_firmware_and_cdrom(req.config, prior, creating, &mut resp.diags);
    if resp.diags.has_errors() {
        return;
    }
    let node = planned.attr("node").clone();
    // Defaults inside blocks the framework does not fill (map-nested) or that follow `node`
    // (the node the VM was cloned on: a later migration does not change it).
    let source_node = match prior.attr("clone").attr("source_node") {
        Value::String(s) => Value::from(s.clone()),
        _ => node.clone(),
    };
    if let Some(Value::Object(clone)) = planned.as_object_mut().and_then(|m| m.get_mut("clone"))
        && matches!(
            clone.get("source_node"),
            None | Some(Value::Null | Value::Unknown)
        )
    {
        clone.insert("source_node".into(), source_node);
    }
    if let Some(Value::Map(nets)) = planned.as_object_mut().and_then(|m| m.get_mut("network")) {
        for nic in nets.values_mut() {
            if nic.attr("model").is_null() {
                nic.set_attr("model", Value::from("virtio"));
            }
        }
    }
    plan_blocks(req.config, prior, planned);
    // Values known before apply.
    if let Some(s) = planned.attr("started").as_bool() {
        planned.set_attr("status", Value::from(if s { "running" } else { "stopped" }));
    }
    if creating {
        planned.set_attr("current_node", node.clone());
        if let (Some(n), Some(v)) = (node.as_str(), vmid_of(planned)) {
            planned.set_attr("id", Value::from(format!("{n}/{v}")));
        }
        return;
    }
    for k in ["current_node", "ipv4_addresses", "id"] {
        planned.set_attr(k, prior.attr(k).clone());
    }
    // A new node: the VM migrates there, same VM id.
    if node.is_unknown() {
        planned.set_attr("current_node", Value::Unknown);
        planned.set_attr("id", Value::Unknown);
    } else if !node.equals(prior.attr("node")) {
        planned.set_attr("current_node", node.clone());
        if let (Some(n), Some(v)) = (node.as_str(), vmid_of(prior)) {
            planned.set_attr("id", Value::from(format!("{n}/{v}")));
        }
    }
    // A new static address (or none) changes what ipv4_addresses reports.
    if !planned
        .attr("initialization")
        .attr("ip_config")
        .equals(prior.attr("initialization").attr("ip_config"))
    {
        planned.set_attr("ipv4_addresses", Value::Unknown);
    }
    // What the user leaves unset is not touched, so it keeps its value.
    for k in [
        "name",
        "description",
        "tags",
        "pool",
        "on_boot",
        "bios",
        "machine",
        "scsi_hardware",
    ] {
        if req.config.attr(k).is_null() {
            planned.set_attr(k, prior.attr(k).clone());
        }
    }
    for (block, attrs) in [
        ("cpu", &["cores", "sockets", "type"][..]),
        ("memory", &["dedicated_mb", "floating_mb"][..]),
    ] {
        let (c, p) = (req.config.attr(block), prior.attr(block));
        if p.is_null() {
            continue;
        }
        if let Some(Value::Object(b)) = planned.as_object_mut().and_then(|m| m.get_mut(block)) {
            for a in attrs {
                if c.attr(a).is_null() {
                    b.insert((*a).to_owned(), p.attr(a).clone());
                }
            }
        }
    }
    if let (Some(Value::Map(nets)), Some(prior_nets)) = (
        planned.as_object_mut().and_then(|m| m.get_mut("network")),
        prior.attr("network").as_map(),
    ) {
        let cfg = req
            .config
            .attr("network")
            .as_map()
            .cloned()
            .unwrap_or_default();
        for (k, nic) in nets.iter_mut() {
            let cf = cfg
                .get(k)
                .map(|c| c.attr("firewall").is_null())
                .unwrap_or(true);
            if let (true, Some(p)) = (cf, prior_nets.get(k)) {
                nic.set_attr("firewall", p.attr("firewall").clone());
            }
        }
    }
    if planned.attr("network").equals(prior.attr("network")) {
        planned.set_attr("mac_addresses", prior.attr("mac_addresses").clone());
    }
    // Cloning again is the only way to change the source; an imported VM (no clone in
    // state) adopts the block, and removing the block forgets it, without a replacement.
    let (pc, sc) = (planned.attr("clone"), prior.attr("clone"));
    if !sc.is_null() && !pc.is_null() && !pc.equals(sc) {
        resp.requires_replace.push(AttributePath::attr("clone"));
    }
    if !planned.equals(prior) {
        planned.set_attr("config_digest", Value::Unknown);
    } else {
        planned.set_attr("config_digest", prior.attr("config_digest").clone());
    }
}

/// Exactly one boot source on create: `clone`, or a disk with `import_from`.
pub(super) fn check_boot_source(config: &Value, diags: &mut Diagnostics) -> bool {
    let clone = !config.attr("clone").is_null();
    let imports: Vec<&String> = config
        .attr("disk")
        .as_map()
        .map(|m| {
            m.iter()
                .filter(|(_, d)| !d.attr("import_from").is_null())
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    let iso = config
        .attr("cdrom")
        .attr("file_id")
        .as_str()
        .is_some_and(|f| f != "none");
    match (clone, imports.as_slice()) {
        (true, []) | (false, [_]) => true,
        (false, []) if iso => true,
        (false, []) => {
            diags.push(
                Diagnostic::error(
                    "A boot source is needed",
                    "infraflux_proxmox_vm creates a VM by cloning (`clone { source_vm_id = <template id> }`), from a disk image (`disk \"scsi0\" { storage = \"local-lvm\", import_from = \"local:import/talos-nocloud-amd64.raw\" }`) or booting an ISO (`cdrom { file_id = \"local:iso/talos-metal-amd64.iso\" }` with an empty `disk`): set exactly one. (Import an existing VM with `terraform import … node/vm_id`.)",
                )
                .at(AttributePath::attr("clone")),
            );
            false
        }
        (true, [slot, ..]) => {
            diags.push(
                Diagnostic::error(
                    "Two boot sources",
                    format!("disk[\"{slot}\"].import_from and clone are both set: a VM is created either by cloning or from an image. Remove one of them."),
                )
                .at(AttributePath::attr("disk").push_key(slot.as_str()).push_attr("import_from")),
            );
            false
        }
        (false, [_, second, ..]) => {
            diags.push(
                Diagnostic::error(
                    "Two boot sources",
                    format!("disk[\"{second}\"].import_from: only one disk can be imported as the boot disk when the VM is created. Remove import_from from all but one disk."),
                )
                .at(AttributePath::attr("disk").push_key(second.as_str()).push_attr("import_from")),
            );
            false
        }
    }
}

/// Disk rules checked at plan time: no shrink, no storage move, no silent removal, a size for
/// new empty disks.
pub(super) fn check_disks(config: &Value, prior: &Value, creating: bool, diags: &mut Diagnostics) {
    let empty = std::collections::BTreeMap::new();
    let cfg = config.attr("disk").as_map().unwrap_or(&empty);
    let old = if creating {
        &empty
    } else {
        prior.attr("disk").as_map().unwrap_or(&empty)
    };
    let at = |slot: &str, a: &str| AttributePath::attr("disk").push_key(slot).push_attr(a);
    for (slot, want) in cfg {
        if !is_disk_key(slot) || slot.starts_with("efidisk") || slot.starts_with("tpmstate") {
            diags.push(
                Diagnostic::error(
                    "Invalid disk slot",
                    format!("disk[\"{slot}\"]: a disk slot is scsi0…scsi30, virtio0…virtio15, sata0…sata5 or ide0…ide3 (ide2 holds the cloud-init drive). Rename the block."),
                )
                .at(AttributePath::attr("disk").push_key(slot.as_str())),
            );
            continue;
        }
        let Some(have) = old.get(slot) else {
            if want.attr("import_from").is_null() && want.attr("size_gb").is_null() {
                diags.push(
                    Diagnostic::error(
                        "Disk size missing",
                        format!("disk[\"{slot}\"].size_gb: a new empty disk needs a size; set size_gb (GiB), or import_from to create it from an image."),
                    )
                    .at(at(slot, "size_gb")),
                );
            }
            continue;
        };
        if let (Some(w), Some(h)) = (want.attr("size_gb").as_i64(), have.attr("size_gb").as_i64())
            && w < h
        {
            diags.push(
                Diagnostic::error(
                    "Disks cannot shrink",
                    format!("disk[\"{slot}\"].size_gb: {w} is smaller than the disk's {h} GiB, and Proxmox VE cannot shrink disks. Set size_gb to {h} or more; to start over with a smaller disk, remove the block with allow_disk_removal = true (its data is lost) and add it again."),
                )
                .at(at(slot, "size_gb")),
            );
        }
        if let (Some(w), Some(h)) = (want.attr("storage").as_str(), have.attr("storage").as_str())
            && w != h
        {
            diags.push(
                Diagnostic::error(
                    "Moving disks is not supported",
                    format!("disk[\"{slot}\"].storage: the disk lives on {h:?}; moving it to {w:?} is not supported yet. Set storage = {h:?}, or move it in Proxmox VE first."),
                )
                .at(at(slot, "storage")),
            );
        }
    }
    let allow = config.attr("allow_disk_removal").as_bool().unwrap_or(false);
    if !cfg.is_empty() && !allow {
        for slot in old.keys().filter(|k| !cfg.contains_key(*k)) {
            diags.push(
                Diagnostic::error(
                    "Removing a disk deletes its data",
                    format!("disk[\"{slot}\"] is no longer in the configuration: applying would delete that disk and its data. Put the block back, or set allow_disk_removal = true to delete it."),
                )
                .at(AttributePath::attr("allow_disk_removal")),
            );
        }
    }
}

/// EFI vars and TPM state cannot be converted in place; a CD-ROM needs a free drive slot; an
/// MTU needs a virtio NIC.
pub(super) fn check_firmware_and_cdrom(
    config: &Value,
    prior: &Value,
    creating: bool,
    diags: &mut Diagnostics,
) {
    for (block, attrs) in [
        ("efi_disk", &["storage", "type", "pre_enrolled_keys"][..]),
        ("tpm_state", &["storage", "version"][..]),
    ] {
        let (want, have) = (config.attr(block), prior.attr(block));
        if creating || want.is_null() || have.is_null() {
            continue;
        }
        for a in attrs {
            let (w, h) = (want.attr(a), have.attr(a));
            if w.is_wholly_known() && !w.is_null() && !w.equals(h) {
                let h = match h {
                    Value::String(s) => format!("{s:?}"),
                    Value::Bool(b) => b.to_string(),
                    _ => "another value".into(),
                };
                diags.push(
                    Diagnostic::error(
                        format!("{block} cannot change"),
                        format!("{block}.{a}: the VM has {h}; Proxmox VE cannot convert it in place. Set it back, or remove the {block} block (its contents are lost), apply, and add it again."),
                    )
                    .at(AttributePath::attr(block).push_attr(*a)),
                );
            }
        }
    }
    if let Some(nets) = config.attr("network").as_map() {
        for (slot, n) in nets {
            let model = n.attr("model").as_str().unwrap_or("virtio");
            if !n.attr("mtu").is_null() && !n.attr("mtu").is_unknown() && model != "virtio" {
                diags.push(
                    Diagnostic::error(
                        "MTU needs a virtio NIC",
                        format!("network[\"{slot}\"].mtu: Proxmox VE sets the MTU of virtio NICs only, and this one is {model:?}. Remove mtu or use model = \"virtio\"."),
                    )
                    .at(AttributePath::attr("network").push_key(slot.as_str()).push_attr("mtu")),
                );
            }
        }
    }
    let Some(iface) = config.attr("cdrom").attr("interface").as_str() else {
        return;
    };
    let (family, n) = iface.split_at(
        iface
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(iface.len()),
    );
    let n: Option<u32> = n.parse().ok();
    let ok = match (family, n) {
        ("ide", Some(n)) => n <= 3,
        ("sata", Some(n)) => n <= 5,
        ("scsi", Some(n)) => n <= 30,
        _ => false,
    };
    let at = AttributePath::attr("cdrom").push_attr("interface");
    if !ok {
        diags.push(
            Diagnostic::error(
                "Invalid CD-ROM interface",
                format!("cdrom.interface: {iface:?} is not a drive slot; use ide0…ide3, sata0…sata5 or scsi0…scsi30 (default ide3)."),
            )
            .at(at),
        );
    } else if iface == "ide2" && !config.attr("initialization").is_null() {
        diags.push(
            Diagnostic::error(
                "CD-ROM slot taken",
                "cdrom.interface: ide2 holds the cloud-init drive of `initialization`; use ide3 (the default) or another free slot.",
            )
            .at(at),
        );
    } else if config
        .attr("disk")
        .as_map()
        .is_some_and(|m| m.contains_key(iface))
    {
        diags.push(
            Diagnostic::error(
                "CD-ROM slot taken",
                format!("cdrom.interface: {iface} is also a `disk` slot; pick a free one."),
            )
            .at(at),
        );
    }
}

/// `ip_config` slots are `ipconfigN`; addresses are `dhcp` or IPv4 CIDR; a gateway needs a
/// static address.
pub(super) fn check_ip_config(config: &Value, diags: &mut Diagnostics) {
    let Some(ipcs) = config.attr("initialization").attr("ip_config").as_map() else {
        return;
    };
    let base = AttributePath::attr("initialization").push_attr("ip_config");
    for (slot, c) in ipcs {
        let n = slot.strip_prefix("ipconfig").unwrap_or_default();
        if n.is_empty()
            || !n.chars().all(|c| c.is_ascii_digit())
            || n.parse::<u32>().is_ok_and(|n| n > 31)
        {
            diags.push(
                Diagnostic::error(
                    "Invalid ip_config slot",
                    format!("initialization.ip_config[\"{slot}\"]: slots are ipconfig0 … ipconfig31 (ipconfigN configures netN). Rename the block."),
                )
                .at(base.push_key(slot.as_str())),
            );
            continue;
        }
        let addr = c.attr("ipv4_address");
        if let Some(a) = addr.as_str()
            && a != "dhcp"
        {
            let ok = a.split_once('/').is_some_and(|(ip, len)| {
                ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
            });
            if !ok {
                diags.push(
                    Diagnostic::error(
                        "Invalid IPv4 address",
                        format!("initialization.ip_config[\"{slot}\"].ipv4_address: {a:?} is neither \"dhcp\" nor an address with its prefix length, e.g. \"10.0.0.11/24\"."),
                    )
                    .at(base.push_key(slot.as_str()).push_attr("ipv4_address")),
                );
            }
        }
        if let Some(g) = c.attr("ipv4_gateway").as_str() {
            if g.parse::<std::net::Ipv4Addr>().is_err() {
                diags.push(
                    Diagnostic::error(
                        "Invalid IPv4 gateway",
                        format!("initialization.ip_config[\"{slot}\"].ipv4_gateway: {g:?} is not an IPv4 address, e.g. \"10.0.0.1\"."),
                    )
                    .at(base.push_key(slot.as_str()).push_attr("ipv4_gateway")),
                );
            } else if addr.as_str().is_none_or(|a| a == "dhcp") && !addr.is_unknown() {
                diags.push(
                    Diagnostic::error(
                        "A gateway needs a static address",
                        format!("initialization.ip_config[\"{slot}\"].ipv4_gateway is set but ipv4_address is not a static address: set ipv4_address = \"a.b.c.d/len\", or remove ipv4_gateway (DHCP provides the gateway)."),
                    )
                    .at(base.push_key(slot.as_str()).push_attr("ipv4_gateway")),
                );
            }
        }
    }
}

/// Defaults and prior values inside `disk`, `initialization` and `agent` (map-nested blocks
/// get no framework defaults; unset optional+computed values keep what PVE has).
fn plan_blocks(config: &Value, prior: &Value, planned: &mut Value) {
    // A block left out of the configuration is not managed: never plan it (Terraform may
    // propose the prior one, e.g. after an import).
    for b in [
        "cpu",
        "memory",
        "initialization",
        "agent",
        "efi_disk",
        "tpm_state",
        "cdrom",
    ] {
        if config.attr(b).is_null() {
            planned.set_attr(b, Value::Null);
        }
    }
    let empty = std::collections::BTreeMap::new();
    let prior_disks = prior.attr("disk").as_map().cloned().unwrap_or_default();
    let cfg_disks = config.attr("disk").as_map().unwrap_or(&empty);
    if let Some(Value::Map(disks)) = planned.as_object_mut().and_then(|m| m.get_mut("disk")) {
        for (slot, d) in disks.iter_mut() {
            let c = cfg_disks.get(slot).unwrap_or(&Value::Null);
            let p = prior_disks.get(slot);
            for a in ["size_gb", "discard", "ssd", "iothread", "cache"] {
                if !c.attr(a).is_null() {
                    continue;
                }
                // A new disk keeps the framework's unknown: PVE (or the template) decides.
                if let Some(p) = p {
                    d.set_attr(a, p.attr(a).clone());
                }
            }
        }
    }
    if let Some(init @ Value::Object(_)) = planned
        .as_object_mut()
        .and_then(|m| m.get_mut("initialization"))
        && config.attr("initialization").attr("datastore").is_null()
    {
        let ds = match prior.attr("initialization").attr("datastore") {
            Value::String(s) => Value::from(s.clone()),
            _ => Value::from(DEFAULT_CI_DATASTORE),
        };
        init.set_attr("datastore", ds);
    }
    if let Some(agent @ Value::Object(_)) = planned.as_object_mut().and_then(|m| m.get_mut("agent"))
        && config.attr("agent").attr("enabled").is_null()
    {
        agent.set_attr("enabled", Value::from(true));
    }
}
