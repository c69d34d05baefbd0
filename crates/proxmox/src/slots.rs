//! QEMU device slots (`scsi0`, `net3`, `ipconfig1`, …) and the index ranges Proxmox VE
//! accepts for each family. PVE's schema names the families as `scsi[n]`, `net[n]`, …; the
//! highest index is stated in its descriptions ("n is 0 to 30") for drives and is PVE's
//! `MAX_NETS - 1` for NICs and their cloud-init `ipconfig`. A test checks this table against
//! the schema.

/// Highest index of each family a slot key may have.
pub const SLOT_RANGES: &[(&str, u32)] = &[
    ("ide", 3),
    ("sata", 5),
    ("scsi", 30),
    ("virtio", 15),
    ("efidisk", 0),
    ("tpmstate", 0),
    ("net", 31),
    ("ipconfig", 31),
];

/// Drive families a `disk` may use.
pub const DISK_FAMILIES: &[&str] = &["scsi", "virtio", "sata", "ide"];

/// `scsi12` → (`scsi`, 12). `None` for anything that is not family + decimal index (no
/// leading zeros, as PVE's `[n]` keys).
pub fn split_slot(key: &str) -> Option<(&str, u32)> {
    let digits = key.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let family = &key[..key.len() - digits.len()];
    if family.is_empty()
        || digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    Some((family, digits.parse().ok()?))
}

/// The highest index of `family`, if it is one.
pub fn max_index(family: &str) -> Option<u32> {
    SLOT_RANGES
        .iter()
        .find(|(f, _)| *f == family)
        .map(|(_, n)| *n)
}

/// The slots of the given families as a sentence: `scsi0…scsi30, virtio0…virtio15`.
pub fn describe(families: &[&str]) -> String {
    families
        .iter()
        .filter_map(|f| max_index(f).map(|n| format!("{f}0…{f}{n}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `key` is a slot of one of `families` within PVE's range; the error says what the
/// slots are.
pub fn check_slot(key: &str, families: &[&str]) -> Result<(), String> {
    match split_slot(key) {
        Some((f, n)) if families.contains(&f) => {
            let max = max_index(f).unwrap_or(0);
            if n <= max {
                Ok(())
            } else {
                Err(format!(
                    "{key:?} is beyond Proxmox VE's {f} slots ({f}0…{f}{max})"
                ))
            }
        }
        _ => Err(format!(
            "{key:?} is not a slot name; use {}",
            describe(families)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_ranges() {
        assert_eq!(split_slot("scsi12"), Some(("scsi", 12)));
        assert_eq!(split_slot("net0"), Some(("net", 0)));
        for bad in ["scsi", "12", "scsi01", "scsi-1", "Scsi1", "nvme 0"] {
            assert_eq!(split_slot(bad), None, "{bad}");
        }
        assert!(check_slot("scsi30", DISK_FAMILIES).is_ok());
        assert!(check_slot("virtio15", DISK_FAMILIES).is_ok());
        let e = check_slot("scsi31", DISK_FAMILIES).unwrap_err();
        assert!(e.contains("scsi0…scsi30"), "{e}");
        let e = check_slot("nvme0", DISK_FAMILIES).unwrap_err();
        assert!(
            e.contains("scsi0…scsi30, virtio0…virtio15, sata0…sata5, ide0…ide3"),
            "{e}"
        );
        assert!(check_slot("net31", &["net"]).is_ok());
        assert!(check_slot("net32", &["net"]).is_err());
        assert!(check_slot("efidisk0", DISK_FAMILIES).is_err());
    }

    /// The drive ranges are the ones PVE's schema states ("n is 0 to 30").
    #[test]
    fn drive_ranges_match_the_schema() {
        let Some(p) = infraflux_reference::path("proxmox/apidata-pve-9.1.json") else {
            return;
        };
        let text = std::fs::read_to_string(p).expect("read apidata");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("apidata is JSON");
        fn find<'a>(n: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
            if n.get("path").and_then(|p| p.as_str()) == Some(path) {
                return Some(n);
            }
            n.get("children")?
                .as_array()?
                .iter()
                .find_map(|c| find(c, path))
        }
        let create = doc
            .as_array()
            .and_then(|roots| roots.iter().find_map(|r| find(r, "/nodes/{node}/qemu")))
            .expect("POST /nodes/{node}/qemu in the schema");
        let props = &create["info"]["POST"]["parameters"]["properties"];
        for family in DISK_FAMILIES {
            let desc = props[format!("{family}[n]")]["description"]
                .as_str()
                .unwrap_or_default();
            let stated = desc
                .split_once("(n is 0 to ")
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(n, _)| n.parse::<u32>().ok());
            assert_eq!(stated, max_index(family), "{family}: {desc}");
        }
        for family in ["net", "ipconfig"] {
            assert!(props.get(format!("{family}[n]")).is_some(), "{family}[n]");
        }
    }
}
