//! Named string formats of the PVE schema (`pve-vmid`, `pve-node`, `dns-name`, ...).
//! Formats the lab does not know are accepted.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::Regex;

/// Match against a constant pattern compiled once; a pattern that failed to compile matches
/// nothing (every pattern here is covered by tests).
fn matches(cell: &'static OnceLock<Option<Regex>>, pat: &str, value: &str) -> bool {
    cell.get_or_init(|| Regex::new(pat).ok())
        .as_ref()
        .is_some_and(|r| r.is_match(value))
}

macro_rules! regex_match {
    ($pat:expr, $value:expr) => {{
        static CELL: OnceLock<Option<Regex>> = OnceLock::new();
        matches(&CELL, $pat, $value)
    }};
}

/// Split a PVE list value (`a,b c;d`).
pub fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// Check `value` against the named format; `Err` carries PVE's message.
pub fn check(format: &str, value: &str) -> Result<(), String> {
    if let Some(base) = format.strip_suffix("-list") {
        if base == "pve-configid"
            || base == "pve-vmid"
            || base == "pve-node"
            || base == "pve-storage-id"
            || base == "dns-name"
            || base == "pve-bridge-id"
            || base == "ip"
        {
            for item in split_list(value) {
                check(base, item)?;
            }
        }
        return Ok(());
    }
    match format {
        "pve-vmid" => ok_if(
            regex_match!(r"^[1-9][0-9]{2,8}$", value),
            "value does not look like a valid VM ID",
        ),
        "pve-node" => ok_if(
            regex_match!(r"^(?i:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)$", value),
            "value does not look like a valid node name",
        ),
        "pve-storage-id" => ok_if_owned(
            regex_match!(r"^(?i:[a-z][a-z0-9\-_.]*[a-z0-9])$", value),
            || format!("storage ID '{value}' contains illegal characters"),
        ),
        "pve-configid" => ok_if_owned(regex_match!(r"^(?i:[a-z][a-z0-9_-]+)$", value), || {
            format!("invalid configuration ID '{value}'")
        }),
        "pve-poolid" => ok_if_owned(
            regex_match!(r"^[A-Za-z0-9_][A-Za-z0-9_\-/.]*$", value),
            || format!("pool name '{value}' contains illegal characters"),
        ),
        "dns-name" => ok_if(
            is_dns_name(value),
            "value does not look like a valid DNS name",
        ),
        "pve-bridge-id" => ok_if_owned(regex_match!(r"^[-_.\w\d]+$", value), || {
            format!("invalid bridge ID '{value}'")
        }),
        "mac-addr" => ok_if(
            regex_match!(r"^(?i:[a-f0-9][02468ace](?::[a-f0-9]{2}){5})$", value),
            "value does not look like a valid unicast MAC address",
        ),
        "ipv4" => ok_if(
            value.parse::<Ipv4Addr>().is_ok(),
            "value does not look like a valid IPv4 address",
        ),
        "ipv6" => ok_if(
            value.parse::<Ipv6Addr>().is_ok(),
            "value does not look like a valid IPv6 address",
        ),
        "ip" => ok_if(
            value.parse::<std::net::IpAddr>().is_ok(),
            "value does not look like a valid IP address",
        ),
        "CIDRv4" => ok_if(
            is_cidr4(value),
            "value does not look like a valid IPv4 CIDR network",
        ),
        "CIDRv6" => ok_if(
            is_cidr6(value),
            "value does not look like a valid IPv6 CIDR network",
        ),
        "CIDR" => ok_if(
            is_cidr4(value) || is_cidr6(value),
            "value does not look like a valid CIDR network",
        ),
        "pve-volume-id" => ok_if_owned(is_volume_id(value), || {
            format!("unable to parse volume ID '{value}'")
        }),
        "pve-volume-id-or-qm-path" => ok_if_owned(
            is_volume_id(value) || value == "none" || value == "cdrom" || value.starts_with('/'),
            || format!("unable to parse volume ID '{value}'"),
        ),
        "pve-volume-id-or-absolute-path" => {
            ok_if_owned(is_volume_id(value) || value.starts_with('/'), || {
                format!("unable to parse volume ID '{value}'")
            })
        }
        "disk-size" => ok_if_owned(regex_match!(r"^\d+(?:\.\d+)?[KMGT]?$", value), || {
            format!("unable to parse size '{value}'")
        }),
        "pve-tag-list" => {
            for tag in split_list(value) {
                if !regex_match!(r"^(?i:[a-z0-9_][a-z0-9_\-+.]*)$", tag) {
                    return Err(format!("invalid tag '{tag}'"));
                }
            }
            Ok(())
        }
        "pve-qm-ipconfig" => check_ipconfig(value),
        "pve-qm-boot" => check_boot(value),
        _ => Ok(()),
    }
}

fn ok_if(ok: bool, msg: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(msg.to_string()) }
}

fn ok_if_owned(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(msg()) }
}

fn is_dns_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && regex_match!(r"^(?i:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)$", l)
        })
}

fn is_cidr4(v: &str) -> bool {
    v.split_once('/').is_some_and(|(ip, m)| {
        ip.parse::<Ipv4Addr>().is_ok() && m.parse::<u8>().is_ok_and(|m| m <= 32)
    })
}

fn is_cidr6(v: &str) -> bool {
    v.split_once('/').is_some_and(|(ip, m)| {
        ip.parse::<Ipv6Addr>().is_ok() && m.parse::<u8>().is_ok_and(|m| m <= 128)
    })
}

/// `storage:volume`.
pub fn is_volume_id(v: &str) -> bool {
    regex_match!(r"^(?i:([a-z][a-z0-9\-_.]*[a-z0-9]):(.+))$", v)
}

fn check_ipconfig(value: &str) -> Result<(), String> {
    for part in value.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            "invalid format - value without key, but schema does not define a default key\n"
                .to_string()
        })?;
        let ok = match k {
            "ip" => v == "dhcp" || is_cidr4(v),
            "ip6" => v == "dhcp" || v == "auto" || is_cidr6(v),
            "gw" => v.parse::<Ipv4Addr>().is_ok(),
            "gw6" => v.parse::<Ipv6Addr>().is_ok(),
            _ => {
                return Err(format!(
                    "invalid format - invalid key in comma-separated list property: {k}\n"
                ));
            }
        };
        if !ok {
            return Err(format!(
                "invalid format - format error\n{k}: value does not look like a valid {}\n",
                if k.starts_with("gw") {
                    "IP address"
                } else {
                    "CIDR network"
                }
            ));
        }
    }
    Ok(())
}

fn check_boot(value: &str) -> Result<(), String> {
    for part in value.split(',').filter(|s| !s.is_empty()) {
        match part.split_once('=') {
            Some(("order", devs)) => {
                for d in devs.split(';').filter(|s| !s.is_empty()) {
                    if !regex_match!(
                        r"^(?:ide|sata|scsi|virtio|net|efidisk|tpmstate|usb|hostpci)\d+$",
                        d
                    ) {
                        return Err(format!(
                            "invalid format - format error\norder: invalid boot device '{d}'\n"
                        ));
                    }
                }
            }
            Some(("legacy", l)) | Some(("", l)) if regex_match!(r"^[acdn]{1,4}$", l) => {}
            None if regex_match!(r"^[acdn]{1,4}$", part) => {}
            _ => {
                return Err(format!(
                    "invalid format - invalid key in comma-separated list property: {part}\n"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn common_formats() {
        assert!(check("pve-vmid", "100").is_ok());
        assert!(check("pve-vmid", "99").is_err());
        assert!(check("pve-node", "pve1").is_ok());
        assert!(check("pve-node", "-bad").is_err());
        assert!(check("pve-storage-id", "local-lvm").is_ok());
        assert!(check("pve-storage-id", "1x").is_err());
        assert!(check("dns-name", "talos-cp-1").is_ok());
        assert!(check("dns-name", "bad_name").is_err());
        assert!(check("pve-configid-list", "net1,scsi2").is_ok());
        assert!(check("pve-configid-list", "net1,9x").is_err());
        assert!(check("pve-qm-ipconfig", "ip=10.0.0.5/24,gw=10.0.0.1").is_ok());
        assert!(check("pve-qm-ipconfig", "ip=dhcp").is_ok());
        assert!(check("pve-qm-ipconfig", "ip=10.0.0.5").is_err());
        assert!(check("pve-qm-ipconfig", "foo=1").is_err());
        assert!(check("mac-addr", "BC:24:11:00:00:01").is_ok());
        assert!(check("pve-qm-boot", "order=scsi0;net0").is_ok());
        assert!(check("some-unknown-format", "anything").is_ok());
    }
}
