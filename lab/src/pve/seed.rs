//! The lab's initial cluster: three nodes, storages, the Talos images and template VMs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::state::{Cluster, Pool, StorageDef, Vm, Volume};

/// Linux bridges present on every node.
pub const BRIDGES: [&str; 1] = ["vmbr0"];

/// Resource pools that exist from the start.
pub const POOLS: [&str; 2] = ["infraflux", "lab"];

/// Node names.
pub const NODES: [&str; 3] = ["pve1", "pve2", "pve3"];
/// The Talos nocloud disk image under `import`.
pub const TALOS_IMAGE: &str = "local:import/talos-nocloud-amd64.raw";
/// The Talos ISO.
pub const TALOS_ISO: &str = "local:iso/talos-metal-amd64.iso";

/// A template VM the lab creates at start.
#[derive(Debug, Clone)]
pub struct TemplateSeed {
    pub vmid: u32,
    pub name: &'static str,
    pub node: &'static str,
    pub storage: &'static str,
}

pub const TEMPLATES: [TemplateSeed; 2] = [
    TemplateSeed {
        vmid: 9000,
        name: "talos-template",
        node: "pve1",
        storage: "local-lvm",
    },
    TemplateSeed {
        vmid: 9001,
        name: "talos-template-ceph",
        node: "pve2",
        storage: "ceph",
    },
];

const GIB: u64 = 1 << 30;

fn storages() -> Vec<StorageDef> {
    let s = |id: &str, kind: &str, content: &[&str], shared: bool, total: u64| StorageDef {
        id: id.into(),
        kind: kind.into(),
        content: content.iter().map(|c| c.to_string()).collect(),
        shared,
        total,
    };
    vec![
        s(
            "local",
            "dir",
            &["iso", "vztmpl", "import", "snippets"],
            false,
            100 * GIB,
        ),
        s(
            "local-lvm",
            "lvmthin",
            &["images", "rootdir"],
            false,
            500 * GIB,
        ),
        s("ceph", "rbd", &["images", "rootdir"], true, 2048 * GIB),
    ]
}

/// A deterministic MAC (BC:24:11 is Proxmox's OUI) for a VM's NIC.
pub fn mac_for(vmid: u32, nic: u32, salt: u32) -> String {
    let x = vmid
        .wrapping_mul(2654435761)
        .wrapping_add(nic.wrapping_mul(7919))
        .wrapping_add(salt.wrapping_mul(104729));
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        (x >> 16) & 0xff,
        (x >> 8) & 0xff,
        x & 0xff
    )
}

/// A deterministic SMBIOS UUID.
pub fn uuid_for(vmid: u32, salt: u32) -> String {
    let a = vmid.wrapping_mul(0x9E37_79B9) ^ salt;
    let b = salt.wrapping_mul(0x85EB_CA6B) ^ vmid;
    format!(
        "{a:08x}-{:04x}-4{:03x}-8{:03x}-{b:08x}{:04x}",
        (b >> 16) & 0xffff,
        a & 0xfff,
        b & 0xfff,
        a & 0xffff
    )
}

/// Build the initial cluster.
pub fn cluster(boot_time: u64) -> Cluster {
    let mut c = Cluster {
        cluster_name: "infraflux-lab".into(),
        pools: POOLS
            .iter()
            .map(|p| {
                let pool = Pool {
                    comment: Some(format!("lab pool {p}")),
                    ..Pool::default()
                };
                (p.to_string(), pool)
            })
            .collect(),
        nodes: NODES.iter().map(|n| n.to_string()).collect(),
        storages: storages(),
        volumes: HashMap::new(),
        vms: BTreeMap::new(),
        tasks: Vec::new(),
        next_pid: 4242,
        boot_time,
    };
    for node in NODES {
        c.add_volume(
            node,
            "local",
            "import/talos-nocloud-amd64.raw",
            Volume {
                volid: TALOS_IMAGE.into(),
                size: 1_306_525_696,
                format: "raw".into(),
                content: "import".into(),
                vmid: None,
                ctime: boot_time,
                parent: None,
            },
        );
        c.add_volume(
            node,
            "local",
            "iso/talos-metal-amd64.iso",
            Volume {
                volid: TALOS_ISO.into(),
                size: 104_857_600,
                format: "iso".into(),
                content: "iso".into(),
                vmid: None,
                ctime: boot_time,
                parent: None,
            },
        );
    }
    for t in TEMPLATES {
        let disk = c
            .alloc_disk(t.node, t.storage, t.vmid, 10 * GIB, "base", None)
            .unwrap_or_default();
        let mut config = BTreeMap::new();
        for (k, v) in [
            ("name", t.name.to_string()),
            ("template", "1".into()),
            ("memory", "2048".into()),
            ("cores", "2".into()),
            ("sockets", "1".into()),
            ("cpu", "host".into()),
            ("ostype", "l26".into()),
            ("bios", "seabios".into()),
            ("scsihw", "virtio-scsi-single".into()),
            ("scsi0", format!("{disk},iothread=1,size=10G")),
            (
                "net0",
                format!("virtio={},bridge=vmbr0", mac_for(t.vmid, 0, 0)),
            ),
            ("agent", "enabled=1".into()),
            ("boot", "order=scsi0".into()),
            ("serial0", "socket".into()),
            ("smbios1", format!("uuid={}", uuid_for(t.vmid, 0))),
            ("vmgenid", uuid_for(t.vmid, 1)),
            ("meta", format!("creation-qemu=9.2.0,ctime={boot_time}")),
            ("tags", "talos".into()),
        ] {
            config.insert(k.to_string(), v);
        }
        c.vms.insert(
            t.vmid,
            Vm {
                vmid: t.vmid,
                node: t.node.into(),
                config,
                pending: BTreeMap::new(),
                pending_delete: BTreeSet::new(),
                running: false,
                started: None,
                pid: 0,
                lease: None,
            },
        );
    }
    c
}
