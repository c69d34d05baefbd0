//! Plan-time rules and import ids, without a PVE.

use tfplugin::{Diagnostics, Value};

use super::parse_import_id;
use super::plan::{check_boot_source, check_disks, check_firmware_and_cdrom, check_ip_config};
use super::schema;

#[test]
fn schema_is_valid() {
    let errs = tfplugin::framework::schema::check_schema(&schema::schema().block, "");
    assert!(errs.is_empty(), "{errs:?}");
}

fn disks(entries: &[(&str, Option<i64>, Option<&str>)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, size, import)| {
                (
                    (*k).to_owned(),
                    Value::object([
                        ("storage", Value::from("local-lvm")),
                        ("size_gb", size.map_or(Value::Null, Value::int)),
                        ("import_from", import.map_or(Value::Null, Value::from)),
                    ]),
                )
            })
            .collect(),
    )
}

fn errors(d: &Diagnostics) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn plan_time_disk_rules() {
    let prior = Value::object([(
        "disk",
        disks(&[("scsi0", Some(10), None), ("scsi1", Some(2), None)]),
    )]);
    // Shrink, removal without allow_disk_removal, a new disk without size.
    let config = Value::object([
        (
            "disk",
            disks(&[("scsi0", Some(8), None), ("scsi2", None, None)]),
        ),
        ("allow_disk_removal", Value::from(false)),
    ]);
    let mut d = Diagnostics::new();
    check_disks(&config, &prior, false, &mut d);
    let e = errors(&d);
    assert!(e.contains("disk[\"scsi0\"].size_gb: 8 is smaller"), "{e}");
    assert!(e.contains("disk[\"scsi1\"] is no longer"), "{e}");
    assert!(
        e.contains("disk[\"scsi2\"].size_gb: a new empty disk"),
        "{e}"
    );
    let config = Value::object([
        ("disk", disks(&[("scsi0", Some(12), None)])),
        ("allow_disk_removal", Value::from(true)),
    ]);
    let mut d = Diagnostics::new();
    check_disks(&config, &prior, false, &mut d);
    assert!(!d.has_errors(), "{}", errors(&d));
}

#[test]
fn boot_source_and_ip_config() {
    let img = Some("local:import/talos-nocloud-amd64.raw");
    let mut d = Diagnostics::new();
    let ok = check_boot_source(
        &Value::object([("disk", disks(&[("scsi0", None, img)]))]),
        &mut d,
    );
    assert!(ok && !d.has_errors());
    let ok = check_boot_source(&Value::object([("disk", disks(&[]))]), &mut d);
    assert!(!ok && errors(&d).contains("clone"));
    let init = |ip: &str, gw: Option<&str>| {
        Value::object([(
            "initialization",
            Value::object([(
                "ip_config",
                Value::Map(
                    [(
                        "ipconfig0".to_owned(),
                        Value::object([
                            ("ipv4_address", Value::from(ip)),
                            ("ipv4_gateway", gw.map_or(Value::Null, Value::from)),
                        ]),
                    )]
                    .into(),
                ),
            )]),
        )])
    };
    let mut d = Diagnostics::new();
    check_ip_config(&init("10.0.0.11/24", Some("10.0.0.1")), &mut d);
    check_ip_config(&init("dhcp", None), &mut d);
    assert!(!d.has_errors(), "{}", errors(&d));
    check_ip_config(&init("10.0.0.11", None), &mut d);
    check_ip_config(&init("dhcp", Some("10.0.0.1")), &mut d);
    let e = errors(&d);
    assert!(e.contains("ipv4_address: \"10.0.0.11\" is neither"), "{e}");
    assert!(e.contains("a static address"), "{e}");
}

#[test]
fn firmware_cdrom_and_mtu_rules() {
    let efi = |t: &str| {
        Value::object([(
            "efi_disk",
            Value::object([
                ("storage", Value::from("local-lvm")),
                ("type", Value::from(t)),
                ("pre_enrolled_keys", Value::from(false)),
            ]),
        )])
    };
    let mut d = Diagnostics::new();
    check_firmware_and_cdrom(&efi("4m"), &efi("4m"), false, &mut d);
    check_firmware_and_cdrom(&efi("2m"), &Value::Null, true, &mut d);
    assert!(!d.has_errors(), "{}", errors(&d));
    check_firmware_and_cdrom(&efi("2m"), &efi("4m"), false, &mut d);
    assert!(errors(&d).contains("efi_disk.type"), "{}", errors(&d));
    let cd = |iface: &str| {
        Value::object([
            (
                "cdrom",
                Value::object([
                    ("file_id", Value::from("none")),
                    ("interface", Value::from(iface)),
                ]),
            ),
            ("disk", disks(&[("scsi0", Some(8), None)])),
            (
                "initialization",
                Value::object([("datastore", Value::Null)]),
            ),
        ])
    };
    for (iface, want) in [
        ("ide3", None),
        ("sata5", None),
        ("ide2", Some("cloud-init")),
        ("scsi0", Some("also a `disk` slot")),
        ("ide4", Some("not a drive slot")),
        ("nvme0", Some("not a drive slot")),
    ] {
        let mut d = Diagnostics::new();
        check_firmware_and_cdrom(&cd(iface), &Value::Null, true, &mut d);
        match want {
            None => assert!(!d.has_errors(), "{iface}: {}", errors(&d)),
            Some(w) => assert!(errors(&d).contains(w), "{iface}: {}", errors(&d)),
        }
    }
    let nic = |model: &str| {
        Value::object([(
            "network",
            Value::Map(
                [(
                    "net0".to_owned(),
                    Value::object([("model", Value::from(model)), ("mtu", Value::int(9000))]),
                )]
                .into(),
            ),
        )])
    };
    let mut d = Diagnostics::new();
    check_firmware_and_cdrom(&nic("virtio"), &Value::Null, true, &mut d);
    assert!(!d.has_errors(), "{}", errors(&d));
    check_firmware_and_cdrom(&nic("e1000"), &Value::Null, true, &mut d);
    assert!(
        errors(&d).contains("network[\"net0\"].mtu"),
        "{}",
        errors(&d)
    );
}

#[test]
fn import_ids() {
    assert_eq!(parse_import_id("pve1/101").ok(), Some(("pve1".into(), 101)));
    for bad in ["101", "pve1/", "/101", "pve1/abc", "pve1/5"] {
        let e = parse_import_id(bad)
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(e.contains("node/vm_id"), "{bad}: {e}");
    }
}
