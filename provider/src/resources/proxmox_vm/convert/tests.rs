//! PVE forms, changes and state, without a PVE.

use infraflux_proxmox::types::VmConfig;
use serde_json::json;
use tfplugin::Value;

use super::read::{cpu_type, fill_unknowns, memory_mb, static_ipv4};
use super::write::{Changes, config_changes};
use super::{agent_enabled, cloudinit_drive, data_disks};

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
            ("vlan_id", tag.map_or(Value::Null, Value::int)),
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
