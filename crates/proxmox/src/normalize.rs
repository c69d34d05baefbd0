//! PVE's value forms and their canonical counterparts, so that a plan never differs from the
//! API's answer only in spelling: `0/1` booleans, sizes like `32G`, tag lists, and the property
//! strings of NICs (`virtio=AA:BB:…,bridge=vmbr0`) and disks (`local-lvm:vm-100-disk-0,size=32G`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// A PVE boolean in any form the API returns or accepts: `1`/`0`, `"1"`, `on`, `yes`, `true`.
pub fn pve_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => parse_bool(s),
        _ => None,
    }
}

/// PVE's boolean spellings (`1`/`on`/`yes`/`true` and their opposites).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// How PVE wants booleans on the wire.
pub fn bool01(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

const UNITS: [(char, u32); 4] = [('T', 40), ('G', 30), ('M', 20), ('K', 10)];

/// `32G`, `512M`, `1T`, `1.5G`, `1024` (bytes) → bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, shift) = match s.chars().last()? {
        c if c.is_ascii_digit() => (s, 0),
        c => {
            let shift = UNITS.iter().find(|(u, _)| *u == c.to_ascii_uppercase())?.1;
            (&s[..s.len() - c.len_utf8()], shift)
        }
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    match num.split_once('.') {
        None => num.parse::<u64>().ok()?.checked_mul(1u64 << shift),
        Some(_) => {
            let f: f64 = num.parse().ok()?;
            let b = (f * (1u64 << shift) as f64).round();
            (b.is_finite() && b >= 0.0 && b < u64::MAX as f64).then_some(b as u64)
        }
    }
}

/// Bytes → PVE's shortest exact form (`32G`, `1536M`, or plain bytes).
pub fn format_size(bytes: u64) -> String {
    for (u, shift) in UNITS {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{u}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Bytes → whole GiB, rounding up (a disk of 32.5 GiB is reported as 33).
pub fn bytes_to_gib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 30)
}

/// PVE's tag list (`a;b`, also `,` or space separated, any order) → sorted, deduplicated.
pub fn parse_tags(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Tags → the `a;b` form, sorted, so the order users write never matters.
pub fn format_tags<S: AsRef<str>>(tags: &[S]) -> String {
    let mut v: Vec<&str> = tags
        .iter()
        .map(AsRef::as_ref)
        .filter(|t| !t.is_empty())
        .collect();
    v.sort_unstable();
    v.dedup();
    v.join(";")
}

/// Split a property string into (key, value) pairs; a part without `=` has key `None`.
fn parts(s: &str) -> impl Iterator<Item = (Option<&str>, &str)> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (Some(k), v),
            None => (None, p),
        })
}

/// The NIC models a `netN` value may name.
pub const NIC_MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];

/// A `netN` value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetConfig {
    pub model: String,
    /// Upper case, as PVE writes it.
    pub mac: Option<String>,
    pub bridge: Option<String>,
    /// VLAN tag.
    pub tag: Option<u16>,
    pub firewall: Option<bool>,
    pub link_down: Option<bool>,
    pub mtu: Option<u16>,
    /// Keys this struct does not model (`queues`, `rate`, `trunks`, …), kept verbatim.
    pub other: BTreeMap<String, String>,
}

/// A PVE property string that does not parse: what it was, the input, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {what} {input:?}: {why}")]
pub struct ParseError {
    pub what: &'static str,
    pub input: String,
    pub why: String,
}

impl std::str::FromStr for NetConfig {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = |why: String| ParseError {
            what: "network device",
            input: s.to_owned(),
            why,
        };
        let mut n = NetConfig::default();
        for (k, v) in parts(s) {
            let k = k.ok_or_else(|| err(format!("{v:?} has no '='")))?;
            let flag =
                |v: &str| parse_bool(v).ok_or_else(|| err(format!("{k}={v} is not a boolean")));
            let num = |v: &str| {
                v.parse::<u16>()
                    .map_err(|_| err(format!("{k}={v} is not a number")))
            };
            match k {
                m if NIC_MODELS.contains(&m) => {
                    n.model = m.to_owned();
                    n.mac = (!v.is_empty()).then(|| v.to_ascii_uppercase());
                }
                "model" => n.model = v.to_owned(),
                "macaddr" => n.mac = Some(v.to_ascii_uppercase()),
                "bridge" => n.bridge = Some(v.to_owned()),
                "tag" => n.tag = Some(num(v)?),
                "mtu" => n.mtu = Some(num(v)?),
                "firewall" => n.firewall = Some(flag(v)?),
                "link_down" => n.link_down = Some(flag(v)?),
                other => {
                    n.other.insert(other.to_owned(), v.to_owned());
                }
            }
        }
        if n.model.is_empty() {
            return Err(err("no NIC model (e.g. virtio=…)".into()));
        }
        Ok(n)
    }
}

impl fmt::Display for NetConfig {
    /// PVE's own form: `model[=MAC]` first, then the other keys in alphabetical order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mac {
            Some(mac) => write!(f, "{}={mac}", self.model)?,
            None => write!(f, "model={}", self.model)?,
        }
        let mut rest: BTreeMap<&str, String> = self
            .other
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if let Some(b) = &self.bridge {
            rest.insert("bridge", b.clone());
        }
        if let Some(t) = self.tag {
            rest.insert("tag", t.to_string());
        }
        if let Some(m) = self.mtu {
            rest.insert("mtu", m.to_string());
        }
        if let Some(b) = self.firewall {
            rest.insert("firewall", bool01(b).to_owned());
        }
        if let Some(b) = self.link_down {
            rest.insert("link_down", bool01(b).to_owned());
        }
        for (k, v) in rest {
            write!(f, ",{k}={v}")?;
        }
        Ok(())
    }
}

/// A disk value (`scsiN`, `virtioN`, `sataN`, `ideN`, `efidisk0`, `tpmstate0`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskConfig {
    /// `storage:volume`, `storage:SIZE_GB` (allocate), `none`, or a path.
    pub volume: String,
    pub size_bytes: Option<u64>,
    /// Every other option verbatim (`discard`, `ssd`, `iothread`, `cache`, `media`, …).
    pub options: BTreeMap<String, String>,
}

impl DiskConfig {
    /// The storage id, for `storage:…` volumes.
    pub fn storage(&self) -> Option<&str> {
        self.volume
            .split_once(':')
            .map(|(s, _)| s)
            .filter(|s| !s.starts_with('/'))
    }

    /// A boolean option; `discard=on` and `ssd=1` are both true, `discard=ignore` is false.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.options.get(key).map(|v| {
            if key == "discard" {
                v == "on"
            } else {
                parse_bool(v).unwrap_or(false)
            }
        })
    }

    /// A CD-ROM drive (`media=cdrom`), not a disk.
    pub fn is_cdrom(&self) -> bool {
        self.options.get("media").is_some_and(|m| m == "cdrom")
    }

    /// The size in whole GiB, rounded up.
    pub fn size_gib(&self) -> Option<u64> {
        self.size_bytes.map(bytes_to_gib_ceil)
    }
}

impl std::str::FromStr for DiskConfig {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = |why: String| ParseError {
            what: "disk",
            input: s.to_owned(),
            why,
        };
        let mut d = DiskConfig::default();
        for (k, v) in parts(s) {
            match k {
                None | Some("file") if d.volume.is_empty() => d.volume = v.to_owned(),
                None => return Err(err(format!("{v:?} has no '='"))),
                Some("size") => {
                    d.size_bytes =
                        Some(parse_size(v).ok_or_else(|| err(format!("size={v} is not a size")))?)
                }
                Some(k) => {
                    d.options.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        if d.volume.is_empty() {
            return Err(err("no volume".into()));
        }
        Ok(d)
    }
}

impl fmt::Display for DiskConfig {
    /// The volume first, then the options in alphabetical order (as PVE prints them).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.volume)?;
        let mut rest: BTreeMap<&str, String> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if let Some(b) = self.size_bytes {
            rest.insert("size", format_size(b));
        }
        for (k, v) in rest {
            write!(f, ",{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn booleans_and_sizes() {
        assert_eq!(pve_bool(&json!(1)), Some(true));
        assert_eq!(pve_bool(&json!("0")), Some(false));
        assert_eq!(pve_bool(&json!("on")), Some(true));
        assert_eq!(pve_bool(&json!(null)), None);
        assert_eq!(parse_size("32G"), Some(32 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("4096"), Some(4096));
        for bad in ["", "G", "12X", "-1G", "1.2.3G", "99999999999999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(format_size(32 << 30), "32G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(1 << 40), "1T");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(bytes_to_gib_ceil((32 << 30) + 1), 33);
    }

    #[test]
    fn tags_sorted_and_deduplicated() {
        assert_eq!(parse_tags("web;db;web"), vec!["db", "web"]);
        assert_eq!(parse_tags("b,a c"), vec!["a", "b", "c"]);
        assert_eq!(format_tags(&["talos", "k8s", "talos"]), "k8s;talos");
        assert_eq!(format_tags::<&str>(&[]), "");
    }

    #[test]
    fn net_strings() {
        let n: NetConfig = "virtio=bc:24:11:AA:BB:CC,bridge=vmbr0,tag=10,firewall=1"
            .parse()
            .expect("net");
        assert_eq!(n.model, "virtio");
        assert_eq!(n.mac.as_deref(), Some("BC:24:11:AA:BB:CC"));
        assert_eq!(
            (n.bridge.as_deref(), n.tag, n.firewall),
            (Some("vmbr0"), Some(10), Some(true))
        );
        assert_eq!(
            n.to_string(),
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1,tag=10"
        );
        let n: NetConfig = "model=e1000,bridge=vmbr1,queues=4".parse().expect("net");
        assert_eq!(n.to_string(), "model=e1000,bridge=vmbr1,queues=4");
        assert!("bridge=vmbr0".parse::<NetConfig>().is_err());
        assert!("virtio=AA,tag=x".parse::<NetConfig>().is_err());
    }

    #[test]
    fn disk_strings() {
        let d: DiskConfig = "local-lvm:vm-100-disk-0,size=32G,discard=on,ssd=1,iothread=1"
            .parse()
            .expect("disk");
        assert_eq!((d.storage(), d.size_gib()), (Some("local-lvm"), Some(32)));
        assert_eq!(
            (
                d.flag("discard"),
                d.flag("ssd"),
                d.flag("iothread"),
                d.flag("cache")
            ),
            (Some(true), Some(true), Some(true), None)
        );
        assert_eq!(
            d.to_string(),
            "local-lvm:vm-100-disk-0,discard=on,iothread=1,size=32G,ssd=1"
        );
        let c: DiskConfig = "local:iso/talos.iso,media=cdrom".parse().expect("cdrom");
        assert!(c.is_cdrom() && c.size_bytes.is_none());
        let f: DiskConfig = "file=ceph:vm-1-disk-0,size=1T".parse().expect("file=");
        assert_eq!(f.volume, "ceph:vm-1-disk-0");
        assert!("".parse::<DiskConfig>().is_err());
        assert!("local-lvm:x,size=huge".parse::<DiskConfig>().is_err());
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_]{0,7}"
    }

    proptest! {
        #[test]
        fn sizes_round_trip(b in 0u64..(1 << 50)) {
            prop_assert_eq!(parse_size(&format_size(b)), Some(b));
        }

        #[test]
        fn tags_are_order_independent(mut tags in proptest::collection::vec(word(), 0..6)) {
            let a = format_tags(&tags);
            tags.reverse();
            prop_assert_eq!(&a, &format_tags(&tags));
            prop_assert_eq!(parse_tags(&a).join(";"), a);
        }

        #[test]
        fn net_round_trips(model in proptest::sample::select(NIC_MODELS), mac in proptest::option::of("[0-9A-F]{2}(:[0-9A-F]{2}){5}"),
                           bridge in proptest::option::of("vmbr[0-9]"), tag in proptest::option::of(1u16..4095),
                           fw in proptest::option::of(any::<bool>()), mtu in proptest::option::of(576u16..9000)) {
            let n = NetConfig { model: model.to_owned(), mac, bridge, tag, firewall: fw, link_down: None, mtu, other: BTreeMap::new() };
            let back: NetConfig = n.to_string().parse().map_err(|e: ParseError| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, n);
        }

        #[test]
        fn disk_round_trips(storage in word(), vol in "vm-[1-9][0-9]{2}-disk-[0-9]", size in proptest::option::of(1u64..(1 << 44)),
                            opts in proptest::collection::btree_map(proptest::sample::select(&["discard", "ssd", "iothread", "cache", "backup"][..]), word(), 0..4)) {
            let d = DiskConfig { volume: format!("{storage}:{vol}"), size_bytes: size, options: opts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() };
            let back: DiskConfig = d.to_string().parse().map_err(|e: ParseError| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, d);
        }
    }
}
