//! The schema of `infraflux_proxmox_vm`: clone or image import, cpu, memory, disks, NICs,
//! cloud-init, agent, power, tags.

use infraflux_proxmox::normalize::NIC_MODELS;
use tfplugin::framework::planmod::{requires_replace, use_state_for_unknown};
use tfplugin::framework::validate::{int_between, one_of, string_length};
use tfplugin::{Attribute, Block, NestedBlock, Nesting, Schema, Type};

pub const DISK_CACHES: &[&str] = &["none", "writethrough", "writeback", "unsafe", "directsync"];
pub const SCSI_HARDWARE: &[&str] = &[
    "lsi",
    "lsi53c810",
    "virtio-scsi-pci",
    "virtio-scsi-single",
    "megasas",
    "pvscsi",
];

pub const VMID_MIN: i64 = 100;
pub const VMID_MAX: i64 = 999_999_999;

pub fn schema() -> Schema {
    let clone = Block::new()
        .description(
            "Create the VM as a clone of a template or VM (or from an image: a `disk` with \
             `import_from`; exactly one of the two). Changing it replaces the VM; an imported VM \
             may leave it out (Proxmox VE does not record where a VM came from).",
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
            Attribute::number("mtu")
                .optional()
                .validate(int_between(1, 65520))
                .description("MTU of a `virtio` NIC; `1` uses the bridge's MTU. Null: Proxmox VE's default (1500)."),
        )
        .attr(
            Attribute::string("mac")
                .computed()
                .plan_modifier(use_state_for_unknown())
                .description("MAC address Proxmox VE assigned (kept across updates)."),
        );
    let disk = Block::new()
        .description(
            "A disk, keyed by its slot (`scsi0`, `virtio1`, `sata0`, …), so order never matters. Once any disk block is set, every disk of the VM is managed: declare them all.",
        )
        .attr(
            Attribute::string("storage")
                .required()
                .validate(string_length(1, 64))
                .description("Storage the disk lives on (`local-lvm`, `ceph`). Changing it is refused (moving disks comes later)."),
        )
        .attr(
            Attribute::number("size_gb")
                .optional()
                .computed()
                .validate(int_between(1, 131_072))
                .description(
                    "Size in GiB. Growing resizes in place; shrinking is refused at plan time. Required for a new disk without `import_from`; with `import_from`, default: the image's size (rounded up).",
                ),
        )
        .attr(
            Attribute::string("import_from")
                .optional()
                .validate(string_length(3, 255))
                .description(
                    "Volume to import the disk from when the VM is created (`local:import/talos-nocloud-amd64.raw`). Proxmox VE does not record it: only used at creation, never compared afterwards.",
                ),
        )
        .attr(
            Attribute::bool("discard")
                .optional()
                .computed()
                .description("Pass discard/TRIM to the storage (`discard=on`)."),
        )
        .attr(
            Attribute::bool("ssd")
                .optional()
                .computed()
                .description("Present the disk as an SSD (`ssd=1`)."),
        )
        .attr(
            Attribute::bool("iothread")
                .optional()
                .computed()
                .description("A dedicated I/O thread (`iothread=1`; needs `scsi_hardware = \"virtio-scsi-single\"` for SCSI disks)."),
        )
        .attr(
            Attribute::string("cache")
                .optional()
                .computed()
                .validate(one_of(DISK_CACHES))
                .description("Cache mode: `none` (Proxmox VE's default), `writethrough`, `writeback`, `unsafe`, `directsync`."),
        );
    let ip_config = Block::new()
        .description(
            "Cloud-init addresses of one NIC, keyed `ipconfig0` … (`ipconfig0` is `net0`).",
        )
        .attr(
            Attribute::string("ipv4_address")
                .optional()
                .validate(string_length(4, 64))
                .description("`10.0.0.11/24` (CIDR) or `dhcp`."),
        )
        .attr(
            Attribute::string("ipv4_gateway")
                .optional()
                .validate(string_length(7, 15))
                .description("IPv4 gateway (static addresses only)."),
        );
    let dns = Block::new()
        .description("Cloud-init DNS settings.")
        .attr(
            Attribute::new("servers", Type::list(Type::String))
                .optional()
                .description("Name servers (`nameserver`)."),
        )
        .attr(
            Attribute::string("domain")
                .optional()
                .validate(string_length(1, 253))
                .description("Search domain (`searchdomain`)."),
        );
    let initialization = Block::new()
        .description(
            "Cloud-init (nocloud, what Talos reads) as an `ide2` cloud-init drive: static addresses and DNS.",
        )
        .attr(
            Attribute::string("datastore")
                .optional()
                .computed()
                .validate(string_length(1, 64))
                .description("Storage of the cloud-init drive. Default: `local-lvm`."),
        )
        .block(NestedBlock::new("ip_config", Nesting::Map, ip_config))
        .block(NestedBlock::new("dns", Nesting::Single, dns));
    let agent = Block::new()
        .description("QEMU guest agent.")
        .attr(
            Attribute::bool("enabled")
                .optional()
                .computed()
                .description("Enable the guest agent device (`agent=enabled=1`). Default `true`."),
        )
        .attr(
            Attribute::number("timeout")
                .optional()
                .validate(int_between(0, 3600))
                .description(
                    "Seconds a create waits for the agent to report an IPv4 address when no static `ipv4_address` is set. Default 0 (300 with `wait_for_ip`): never wait (later refreshes pick the address up).",
                ),
        )
        .attr(
            Attribute::bool("wait_for_ip")
                .optional()
                .description(
                    "Make a create wait (up to `timeout`, default 300 s) until the agent reports an IPv4 address, when no static `ipv4_address` is set, so `ipv4_addresses` is known right after the apply. Refreshes never wait.",
                ),
        );
    let efi_disk = Block::new()
        .description(
            "The EFI vars disk (`efidisk0`) that `bios = \"ovmf\"` needs. Added to an existing VM in place; changing it is refused (Proxmox VE cannot convert it), removing it deletes it.",
        )
        .attr(
            Attribute::string("storage")
                .required()
                .validate(string_length(1, 64))
                .description("Storage of the EFI vars volume (`local-lvm`)."),
        )
        .attr(
            Attribute::string("type")
                .default("4m")
                .validate(one_of(&["2m", "4m"]))
                .description("OVMF vars size (`efitype`): `4m` (needed for Secure Boot) or the legacy `2m`. Default `4m`."),
        )
        .attr(
            Attribute::bool("pre_enrolled_keys")
                .default(false)
                .description("Enroll Microsoft's and the distribution's Secure Boot keys (`pre-enrolled-keys=1`), which turns Secure Boot on. Default `false` (Talos enrolls its own keys)."),
        );
    let tpm_state = Block::new()
        .description(
            "A TPM (`tpmstate0`). Added to an existing VM in place; changing it is refused, removing it deletes its state.",
        )
        .attr(
            Attribute::string("storage")
                .required()
                .validate(string_length(1, 64))
                .description("Storage of the TPM state volume (`local-lvm`)."),
        )
        .attr(
            Attribute::string("version")
                .default("v2.0")
                .validate(one_of(&["v1.2", "v2.0"]))
                .description("TPM version: `v2.0` (default; what Talos disk encryption uses) or `v1.2`."),
        );
    let cdrom = Block::new()
        .description(
            "A CD-ROM drive. With a `disk` (and no `clone`), an ISO to boot the new VM from: the VM boots from the CD-ROM first, then the disks.",
        )
        .attr(
            Attribute::string("file_id")
                .required()
                .validate(string_length(4, 255))
                .description("ISO volume (`local:iso/talos-metal-amd64.iso`), or `none` for an empty drive."),
        )
        .attr(
            Attribute::string("interface")
                .default("ide3")
                .validate(string_length(4, 6))
                .description("Drive slot: `ide0`…`ide3` (`ide2` holds the cloud-init drive), `sata0`…`sata5` or `scsi0`…`scsi30`. Default `ide3`."),
        );
    Schema::new(
        Block::new()
            .description("A QEMU virtual machine on a Proxmox VE cluster, cloned from a template or created from a disk image.")
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
                    .description("Node the VM lives on. Changing it migrates the VM there (online when it runs, local disks copied along), in place: same VM id, no replacement. A VM that HA or someone else moved is not moved back: `current_node` follows it."),
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
                Attribute::string("pool")
                    .optional()
                    .computed()
                    .validate(string_length(1, 64))
                    .description("Resource pool the VM belongs to. Changing it moves the VM to the new pool (it must exist). Null: whatever pool Proxmox VE has (unmanaged)."),
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
                        "The static cloud-init IPv4 addresses when set; else those the QEMU guest agent reports (empty while it is not running). Never waited for on refresh: refreshed while empty.",
                    ),
            )
            .attr(
                Attribute::string("config_digest")
                    .computed()
                    .description("Proxmox VE's digest of the VM config; changes whenever the config does."),
            )
            .attr(
                Attribute::string("bios")
                    .optional()
                    .computed()
                    .validate(one_of(&["seabios", "ovmf"]))
                    .description("Firmware: `seabios` (Proxmox VE's default) or `ovmf` (UEFI; add an `efi_disk`)."),
            )
            .attr(
                Attribute::string("machine")
                    .optional()
                    .computed()
                    .validate(string_length(1, 64))
                    .description("QEMU machine type (`q35`, `pc`, `pc-q35-9.0`). Null: Proxmox VE's default (`pc`)."),
            )
            .attr(
                Attribute::string("scsi_hardware")
                    .optional()
                    .computed()
                    .validate(one_of(SCSI_HARDWARE))
                    .description("SCSI controller (`scsihw`): `virtio-scsi-single` for Talos. Proxmox VE's default: `lsi`."),
            )
            .attr(
                Attribute::bool("reboot_after_update")
                    .default(true)
                    .description("Reboot a running VM when a change can only take effect at its next start (Proxmox VE keeps it pending: `cpu`, `bios`, `machine`, … or what the VM's `hotplug` setting excludes). Changes Proxmox VE applies live (tags, name, NICs and disks with the default `hotplug`) never reboot. With `false` the changes stay pending and the apply warns, naming them. Default `true`."),
            )
            .attr(
                Attribute::bool("allow_disk_removal")
                    .default(false)
                    .description("Allow removing a `disk` block to delete that disk and its data. Default `false`: removing one is a plan-time error."),
            )
            .block(NestedBlock::new("clone", Nesting::Single, clone))
            .block(NestedBlock::new("disk", Nesting::Map, disk))
            .block(NestedBlock::new("efi_disk", Nesting::Single, efi_disk))
            .block(NestedBlock::new("tpm_state", Nesting::Single, tpm_state))
            .block(NestedBlock::new("cdrom", Nesting::Single, cdrom))
            .block(NestedBlock::new("initialization", Nesting::Single, initialization))
            .block(NestedBlock::new("agent", Nesting::Single, agent))
            .block(NestedBlock::new("cpu", Nesting::Single, cpu))
            .block(NestedBlock::new("memory", Nesting::Single, memory))
            .block(NestedBlock::new("network", Nesting::Map, network))
            .timeouts(&["create", "update", "delete"]),
    )
}
