//! Worker tasks: UPIDs in PVE's format, status and logs.

use serde_json::{Value, json};

/// A task (what `pvesh get /nodes/X/tasks/UPID/status` describes).
#[derive(Debug, Clone)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub kind: String,
    pub id: String,
    /// `user@realm` or `user@realm!token`
    pub authid: String,
    /// `None` while running; `Some("OK")` or the error message when stopped.
    pub exitstatus: Option<String>,
    pub endtime: Option<u64>,
    pub log: Vec<String>,
}

/// Build a UPID: `UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{type}:{id}:{user}:`.
pub fn format_upid(
    node: &str,
    pid: u32,
    pstart: u64,
    starttime: u64,
    kind: &str,
    id: &str,
    authid: &str,
) -> String {
    format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{authid}:")
}

/// The parts of a UPID, or `None` when it does not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct UpidParts {
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub kind: String,
    pub id: String,
    pub authid: String,
}

pub fn parse_upid(upid: &str) -> Option<UpidParts> {
    let rest = upid.strip_prefix("UPID:")?.strip_suffix(':')?;
    let parts: Vec<&str> = rest.splitn(7, ':').collect();
    if parts.len() != 7 {
        return None;
    }
    Some(UpidParts {
        node: parts[0].to_string(),
        pid: u32::from_str_radix(parts[1], 16).ok()?,
        pstart: u64::from_str_radix(parts[2], 16).ok()?,
        starttime: u64::from_str_radix(parts[3], 16).ok()?,
        kind: parts[4].to_string(),
        id: parts[5].to_string(),
        authid: parts[6].to_string(),
    })
}

impl Task {
    pub fn is_running(&self) -> bool {
        self.exitstatus.is_none()
    }

    /// The `status` endpoint's answer.
    pub fn status_json(&self) -> Value {
        let mut v = json!({
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.kind,
            "id": self.id,
            // As decoded from the UPID: `user@realm` or `user@realm!token`.
            "user": self.authid,
            "status": if self.is_running() { "running" } else { "stopped" },
        });
        if let Some(e) = &self.exitstatus {
            v["exitstatus"] = json!(e);
        }
        v
    }

    /// Log lines `[{n, t}]` from `start` (0-based), at most `limit`.
    pub fn log_json(&self, start: usize, limit: usize) -> Vec<Value> {
        self.log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, t)| json!({"n": i + 1, "t": t}))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_roundtrip() {
        let u = format_upid(
            "pve1",
            0x1a2b,
            0x99,
            0x6744_0000,
            "qmclone",
            "9000",
            "root@pam!infraflux",
        );
        assert_eq!(
            u,
            "UPID:pve1:00001A2B:00000099:67440000:qmclone:9000:root@pam!infraflux:"
        );
        let p = parse_upid(&u).unwrap();
        assert_eq!(p.node, "pve1");
        assert_eq!(p.kind, "qmclone");
        assert_eq!(p.authid, "root@pam!infraflux");
        assert!(parse_upid("UPID:bad").is_none());
    }
}
