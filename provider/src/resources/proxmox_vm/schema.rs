//! The schema of `infraflux_proxmox_vm` (this slice: clone, cpu, memory, NICs, power, tags).

use tfplugin::framework::planmod::{requires_replace, use_state_for_unknown};
use tfplugin::framework::validate::{int_between, one_of, string_length};
use tfplugin::{Attribute, Block, NestedBlock, Nesting, Schema, Type};

use crate::proxmox::normalize::NIC_MODELS;

pub const VMID_MIN: i64 = 100;
pub const VMID_MAX: i64 = 999_999_999;

pub fn schema() -> Schema {
    let clone = Block::new()
        .description(
            "Create the VM as a clone of a template or VM. Changing it replaces the VM; an \
             imported VM may leave it out (Proxmox VE does not record where a VM came from).",
        )
        .attr(
            Attribute::number("source_vm_id")
                .required()
                .validate(int_between(VMID_MIN, VMID_MAX))
                .description("VM id of the template (or VM) to clone."),
        )
        .attr(
            Attribute::string("source_node")
                .optional()
                .computed()
                .description("Node the source lives on. Default: `node`."),
        )
        .attr(
            Attribute::bool("full")
                .default(true)
                .description(
                    "Full clone (an independent copy of the disks). `false` makes a linked clone of a template.",
                ),
        )
        .attr(
            Attribute::string("storage")
                .optional()
                .description("Storage for the copied disks (full clones only). Default: the source's storage."),
        );
    let cpu = Block::new()
        .description("CPU. Attributes left out keep what Proxmox VE has (from the template).")
        .attr(
            Attribute::number("cores")
                .optional()
                .computed()
                .validate(int_between(1, 1024))
                .description("Cores per socket."),
        )
        .attr(
            Attribute::number("sockets")
                .optional()
                .computed()
                .validate(int_between(1, 16))
                .description("Sockets."),
        )
        .attr(
            Attribute::string("type")
                .optional()
                .computed()
                .validate(string_length(1, 64))
                .description("CPU model (`host`, `x86-64-v2-AES`, `kvm64`, …)."),
        );
    let memory = Block::new()
        .description("Memory. Attributes left out keep what Proxmox VE has (from the template).")
        .attr(
            Attribute::number("dedicated_mb")
                .optional()
                .computed()
                .validate(int_between(16, 4_194_304))
                .description("Memory in MiB (`memory`)."),
        )
        .attr(
            Attribute::number("floating_mb")
                .optional()
                .computed()
                .validate(int_between(0, 4_194_304))
                .description(
                    "Minimum memory with ballooning, in MiB (`balloon`); `0` disables the balloon device. Null when Proxmox VE has no `balloon` key.",
                ),
        );
    let network = Block::new()
        .description("A NIC, keyed by its slot (`net0` … `net31`), so order never matters.")
        .attr(
            Attribute::string("bridge")
                .required()
                .validate(string_length(1, 64))
                .description("Bridge to attach to (`vmbr0`)."),
        )
        .attr(
            Attribute::string("model")
                .default("virtio")
                .validate(one_of(NIC_MODELS))
                .description("NIC model. Default `virtio`."),
        )
        .attr(
            Attribute::number("vlan_id")
                .optional()
                .validate(int_between(1, 4094))
                .description("VLAN tag; null = untagged."),
        )
        .attr(
            Attribute::bool("firewall")
                .optional()
                .computed()
                .description("Proxmox VE firewall on this NIC."),
        )
        .attr(
            Attribute::string("mac")
                .computed()
                .plan_modifier(use_state_for_unknown())
                .description("MAC address Proxmox VE assigned (kept across updates)."),
        );
    Schema::new(
        Block::new()
            .description("A QEMU virtual machine on a Proxmox VE cluster, created by cloning a template.")
            .attr(
                Attribute::string("id")
                    .computed()
                    .plan_modifier(use_state_for_unknown())
                    .description("`node/vm_id`, the import id."),
            )
            .attr(
                Attribute::string("node")
                    .required()
                    .validate(string_length(1, 64))
                    .plan_modifier(requires_replace())
                    .description("Node the VM is created on. Changing it replaces the VM (migration comes later)."),
            )
            .attr(
                Attribute::number("vm_id")
                    .optional()
                    .computed()
                    .validate(int_between(VMID_MIN, VMID_MAX))
                    .plan_modifier(requires_replace())
                    .plan_modifier(use_state_for_unknown())
                    .description("VM id. Default: the next free id (within the provider's `vm_id_range`). Changing it replaces the VM."),
            )
            .attr(
                Attribute::string("name")
                    .optional()
                    .computed()
                    .validate(string_length(1, 63))
                    .description("VM name (a DNS name). Default: Proxmox VE's clone name."),
            )
            .attr(
                Attribute::string("description")
                    .optional()
                    .computed()
                    .description("Notes shown in the Proxmox VE UI."),
            )
            .attr(
                Attribute::new("tags", Type::set(Type::String))
                    .optional()
                    .computed()
                    .description("Tags. A set: Proxmox VE's sorted `a;b` form never causes a diff. Changing only tags never restarts the VM."),
            )
            .attr(
                Attribute::bool("started")
                    .default(true)
                    .description("Whether the VM runs. Default `true`."),
            )
            .attr(
                Attribute::bool("on_boot")
                    .optional()
                    .computed()
                    .description("Start the VM when its node boots (`onboot`)."),
            )
            .attr(
                Attribute::string("current_node")
                    .computed()
                    .description("Node the VM runs on now."),
            )
            .attr(
                Attribute::string("status")
                    .computed()
                    .description("`running` or `stopped`."),
            )
            .attr(
                Attribute::new("mac_addresses", Type::list(Type::String))
                    .computed()
                    .description("MAC addresses of all NICs, in slot order."),
            )
            .attr(
                Attribute::new("ipv4_addresses", Type::list(Type::String))
                    .computed()
                    .description(
                        "IPv4 addresses the QEMU guest agent reports (empty while it is not running). Never waited for: refreshed while empty.",
                    ),
            )
            .attr(
                Attribute::string("config_digest")
                    .computed()
                    .description("Proxmox VE's digest of the VM config; changes whenever the config does."),
            )
            .block(NestedBlock::new("clone", Nesting::Single, clone))
            .block(NestedBlock::new("cpu", Nesting::Single, cpu))
            .block(NestedBlock::new("memory", Nesting::Single, memory))
            .block(NestedBlock::new("network", Nesting::Map, network))
            .timeouts(&["create", "update", "delete"]),
    )
}
