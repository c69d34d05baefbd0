//! Config-only checks (`terraform validate`): values Proxmox VE would store in another form
//! (a perpetual diff) or refuse at apply. Each error names its attribute and what to write.

use infraflux_proxmox::slots::check_slot;
use tfplugin::{AttributePath, Diagnostic, Diagnostics, Value};

/// Every check of this module.
pub(super) fn validate(config: &Value, diags: &mut Diagnostics) {
    check_networks(config, diags);
    check_tags(config, diags);
}

/// NIC slots within `net0…net31`; a MAC in the form Proxmox VE stores (upper case) and
/// unicast (a multicast MAC is refused by QEMU).
fn check_networks(config: &Value, diags: &mut Diagnostics) {
    let Some(nets) = config.attr("network").as_map() else {
        return;
    };
    for (slot, nic) in nets {
        let at = AttributePath::attr("network").push_key(slot.as_str());
        if let Err(why) = check_slot(slot, &["net"]) {
            diags.push(
                Diagnostic::error(
                    "Invalid network slot",
                    format!("network[\"{slot}\"]: {why}. Rename the block."),
                )
                .at(at.clone()),
            );
        }
        if let Some(mac) = nic.attr("mac").as_str()
            && let Err(why) = check_mac(mac)
        {
            diags.push(
                Diagnostic::error(
                    "Invalid MAC address",
                    format!("network[\"{slot}\"].mac: {mac:?} {why}. Leave mac unset to let Proxmox VE assign one."),
                )
                .at(at.push_attr("mac")),
            );
        }
    }
}

/// `Ok` for a unicast MAC written as Proxmox VE stores it (`BC:24:11:0A:1B:2C`).
pub(super) fn check_mac(mac: &str) -> Result<(), String> {
    let octets: Vec<&str> = mac.split(':').collect();
    let hex = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    if !hex {
        return Err(
            "is not a MAC address (six hex pairs separated by colons, e.g. \"BC:24:11:0A:1B:2C\")"
                .into(),
        );
    }
    if mac.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(format!(
            "is in lower case; Proxmox VE stores MACs in upper case, so write {:?}",
            mac.to_ascii_uppercase()
        ));
    }
    let first = u8::from_str_radix(octets[0], 16).unwrap_or(0);
    if first & 1 == 1 {
        return Err("is a multicast address; a NIC needs a unicast one (even first octet)".into());
    }
    Ok(())
}

/// Tags as Proxmox VE keeps them: one tag per element, `[a-z0-9_][a-z0-9_+.-]*`, lower case
/// (PVE splits on `;`, `,` and spaces and compares tags case-insensitively).
fn check_tags(config: &Value, diags: &mut Diagnostics) {
    let Some(tags) = config.attr("tags").as_elements() else {
        return;
    };
    for t in tags.iter().filter_map(Value::as_str) {
        if let Err(why) = check_tag(t) {
            diags.push(
                Diagnostic::error("Invalid tag", format!("tags: {t:?} {why}."))
                    .at(AttributePath::attr("tags")),
            );
        }
    }
}

/// `Ok` for a tag Proxmox VE stores unchanged.
pub(super) fn check_tag(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("is empty; remove it".into());
    }
    if t.contains([';', ',', ' ']) {
        let parts: Vec<&str> = t.split([';', ',', ' ']).filter(|p| !p.is_empty()).collect();
        return Err(format!(
            "holds several tags (Proxmox VE splits on `;`, `,` and spaces); write them as separate elements: {parts:?}"
        ));
    }
    if t.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "has upper case letters; Proxmox VE compares tags case-insensitively, write {:?}",
            t.to_ascii_lowercase()
        ));
    }
    let first_ok = t
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let rest_ok = t
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+.-".contains(&b));
    if !first_ok || !rest_ok {
        return Err(
            "is not a Proxmox VE tag: use letters, digits and `_`, then also `+`, `.`, `-`".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert!(check_mac("BC:24:11:0A:1B:2C").is_ok());
        assert!(
            check_mac("bc:24:11:0a:1b:2c")
                .unwrap_err()
                .contains("\"BC:24:11:0A:1B:2C\"")
        );
        assert!(
            check_mac("01:24:11:0A:1B:2C")
                .unwrap_err()
                .contains("multicast")
        );
        for bad in [
            "BC:24:11:0A:1B",
            "BC-24-11-0A-1B-2C",
            "BC:24:11:0A:1B:2G",
            "",
        ] {
            assert!(
                check_mac(bad).unwrap_err().contains("is not a MAC"),
                "{bad}"
            );
        }
    }

    #[test]
    fn tags() {
        for ok in ["talos", "k8s_cp", "a.b-c+d", "_x", "1a"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        assert!(check_tag("a b").unwrap_err().contains("[\"a\", \"b\"]"));
        assert!(check_tag("a;b").unwrap_err().contains("several"));
        assert!(check_tag("Prod").unwrap_err().contains("\"prod\""));
        assert!(
            check_tag("-x")
                .unwrap_err()
                .contains("not a Proxmox VE tag")
        );
        assert!(
            check_tag("x/y")
                .unwrap_err()
                .contains("not a Proxmox VE tag")
        );
        assert!(check_tag("").is_err());
    }
}
