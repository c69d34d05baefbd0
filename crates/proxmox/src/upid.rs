//! Task ids: `UPID:node:pid:pstart:starttime:type:id:user:` (pid, pstart, starttime in hex).
//! The node in the UPID is where the task runs, so that is where its status is polled.

use std::fmt;
use std::str::FromStr;

/// A parsed task id; it keeps the original text, which is what PVE's paths take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    /// Task type, e.g. `qmclone`.
    pub kind: String,
    /// Usually the VM id; may be empty.
    pub id: String,
    /// `user@realm` or `user@realm!token`.
    pub user: String,
    raw: String,
}

/// Text that is not a UPID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Proxmox VE task id (UPID:node:pid:pstart:starttime:type:id:user:)")]
pub struct UpidError(pub String);

impl Upid {
    /// The UPID as PVE wrote it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromStr for Upid {
    type Err = UpidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UpidError(s.to_owned());
        let rest = s.strip_prefix("UPID:").ok_or_else(bad)?;
        let f: Vec<&str> = rest.splitn(8, ':').collect();
        // node pid pstart starttime type id user "" (the trailing colon).
        if f.len() != 8 || f[0].is_empty() || f[4].is_empty() || f[6].is_empty() {
            return Err(bad());
        }
        let hex32 = |x: &str| u32::from_str_radix(x, 16).map_err(|_| bad());
        let hex64 = |x: &str| u64::from_str_radix(x, 16).map_err(|_| bad());
        Ok(Upid {
            node: f[0].to_owned(),
            pid: hex32(f[1])?,
            pstart: hex64(f[2])?,
            starttime: hex64(f[3])?,
            kind: f[4].to_owned(),
            id: f[5].to_owned(),
            user: f[6].to_owned(),
            raw: s.to_owned(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pve_upids() {
        let s = "UPID:pve2:000ABCDE:0012D687:6745F1A2:qmclone:9000:root@pam!infraflux:";
        let u: Upid = s.parse().expect("valid");
        assert_eq!(
            (u.node.as_str(), u.pid, u.kind.as_str(), u.id.as_str()),
            ("pve2", 0xABCDE, "qmclone", "9000")
        );
        assert_eq!(u.user, "root@pam!infraflux");
        assert_eq!(u.starttime, 0x6745F1A2);
        assert_eq!(u.to_string(), s);
        // Tasks without an id (e.g. node-wide) keep an empty field.
        assert!(
            "UPID:pve1:1:2:3:srvreload::root@pam:"
                .parse::<Upid>()
                .is_ok()
        );
        for bad in [
            "",
            "UPID:",
            "UPID:pve1:zz:2:3:qmstart:100:root@pam:",
            "TASK:pve1:1:2:3:x:1:u:",
            "UPID:pve1:1:2:3:qmstart:100:root@pam",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad}");
        }
    }
}
