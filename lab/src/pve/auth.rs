//! Authentication (API tokens, tickets + CSRF) and privilege checks.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use base64::Engine;
use rand::RngCore;
use serde_json::Value;

use super::error::ApiError;
use super::validate::Params;

/// Every privilege PVE knows; a token without restrictions has all of them.
pub const ALL_PRIVILEGES: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.Unrestricted",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Replicate",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];

/// One configured API token.
#[derive(Debug, Clone)]
pub struct Token {
    /// `user@realm`
    pub userid: String,
    /// the part after `!`
    pub tokenid: String,
    pub secret: String,
    pub privileges: BTreeSet<String>,
}

impl Token {
    pub fn full_id(&self) -> String {
        format!("{}!{}", self.userid, self.tokenid)
    }
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `user@realm` or `user@realm!token` (the task `user` field).
    pub authid: String,
    pub privileges: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct TicketInfo {
    user: String,
    csrf: String,
}

/// Users, tokens and issued tickets.
pub struct AuthStore {
    tokens: Vec<Token>,
    user: String,
    password: String,
    tickets: Mutex<HashMap<String, TicketInfo>>,
}

fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(buf)
}

impl AuthStore {
    pub fn new(user: String, password: String, tokens: Vec<Token>) -> Self {
        Self {
            tokens,
            user,
            password,
            tickets: Mutex::new(HashMap::new()),
        }
    }

    /// `POST /access/ticket`: returns (ticket, csrf token, username).
    pub fn login(
        &self,
        username: &str,
        realm: Option<&str>,
        password: &str,
    ) -> Result<(String, String, String), ApiError> {
        let full = match realm {
            Some(r) if !username.contains('@') => format!("{username}@{r}"),
            _ => username.to_string(),
        };
        if full != self.user || password != self.password {
            return Err(ApiError::AuthFailure("authentication failure".into()));
        }
        let now = unix_now();
        let ticket = format!("PVE:{full}:{now:08X}::{}", random_b64(96));
        let csrf = format!("{now:08X}:{}", random_b64(32));
        let mut g = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        g.insert(
            ticket.clone(),
            TicketInfo {
                user: full.clone(),
                csrf: csrf.clone(),
            },
        );
        Ok((ticket, csrf, full))
    }

    /// Authenticate a request from its headers. `write` is true for POST/PUT/DELETE.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        cookie: Option<&str>,
        csrf: Option<&str>,
        write: bool,
    ) -> Result<Principal, ApiError> {
        if let Some(h) = authorization {
            let h = h.trim();
            if let Some(rest) = h
                .strip_prefix("PVEAPIToken=")
                .or_else(|| h.strip_prefix("PVEAPIToken "))
            {
                return self.verify_token(rest.trim());
            }
        }
        let ticket = cookie.and_then(|c| {
            c.split(';').map(str::trim).find_map(|kv| {
                kv.strip_prefix("PVEAuthCookie=").map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                })
            })
        });
        let Some(ticket) = ticket else {
            return Err(ApiError::Unauthorized("No ticket".into()));
        };
        let info = {
            let g = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
            g.get(&ticket).cloned()
        };
        let Some(info) = info else {
            return Err(ApiError::Unauthorized("invalid PVE ticket".into()));
        };
        if write && csrf != Some(info.csrf.as_str()) {
            return Err(ApiError::Unauthorized(
                "Permission denied - invalid csrf token".into(),
            ));
        }
        Ok(Principal {
            authid: info.user,
            privileges: ALL_PRIVILEGES.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn verify_token(&self, value: &str) -> Result<Principal, ApiError> {
        let Some((tokenid, secret)) = value.rsplit_once('=') else {
            return Err(ApiError::Unauthorized("no tokenid specified".into()));
        };
        let Some((user, name)) = tokenid
            .split_once('!')
            .filter(|(u, n)| !u.is_empty() && !n.is_empty())
        else {
            return Err(ApiError::Unauthorized(format!(
                "'{tokenid}' is not a valid token ID"
            )));
        };
        if !self.tokens.iter().any(|t| t.userid == user) && user != self.user {
            return Err(ApiError::Unauthorized(format!("no such user ('{user}')")));
        }
        let Some(tok) = self
            .tokens
            .iter()
            .find(|t| t.userid == user && t.tokenid == name)
        else {
            return Err(ApiError::Unauthorized(format!(
                "no such token '{name}' for user '{user}'"
            )));
        };
        if tok.secret != secret {
            return Err(ApiError::Unauthorized("invalid token value!".into()));
        }
        Ok(Principal {
            authid: tok.full_id(),
            privileges: tok.privileges.clone(),
        })
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Evaluate a schema `permissions.check` expression for `who` with request `params`.
pub fn check_permissions(perms: &Value, who: &Principal, params: &Params) -> Result<(), ApiError> {
    match perms.get("check") {
        Some(check) => eval(check, who, params),
        None => Ok(()),
    }
}

/// Check one privilege on a path (handlers use this for checks the schema only describes).
pub fn require(who: &Principal, path: &str, privilege: &str) -> Result<(), ApiError> {
    if who.privileges.contains(privilege) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            path: path.to_string(),
            privilege: privilege.to_string(),
        })
    }
}

fn subst(path: &str, params: &Params) -> Option<String> {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let name = &rest[start + 1..end];
        out.push_str(params.get(name)?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn eval(expr: &Value, who: &Principal, params: &Params) -> Result<(), ApiError> {
    let Some(items) = expr.as_array() else {
        return Ok(());
    };
    let op = items.first().and_then(Value::as_str).unwrap_or_default();
    match op {
        "and" => {
            for e in &items[1..] {
                eval(e, who, params)?;
            }
            Ok(())
        }
        "or" => {
            let mut first_err = None;
            for e in &items[1..] {
                match eval(e, who, params) {
                    Ok(()) => return Ok(()),
                    Err(err) => {
                        first_err.get_or_insert(err);
                    }
                }
            }
            first_err.map_or(Ok(()), Err)
        }
        "perm" => {
            let path_t = items.get(1).and_then(Value::as_str).unwrap_or("/");
            let privs: Vec<&str> = items
                .get(2)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let opts = &items[3.min(items.len())..];
            let mut any = false;
            let mut i = 0;
            while i + 1 < opts.len() {
                match opts[i].as_str() {
                    Some("any") => any = super::schema::truthy(&opts[i + 1]),
                    Some("require_param") => {
                        let p = opts[i + 1].as_str().unwrap_or_default();
                        if !params.contains_key(p) {
                            return Err(ApiError::ForbiddenMsg("Permission check failed".into()));
                        }
                    }
                    _ => {}
                }
                i += 2;
            }
            let path = subst(path_t, params).unwrap_or_else(|| path_t.to_string());
            let has = |p: &&str| who.privileges.contains(*p);
            let ok = if any {
                privs.iter().any(has)
            } else {
                privs.iter().all(has)
            };
            if ok {
                Ok(())
            } else {
                let missing = privs
                    .iter()
                    .find(|p| !has(p))
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let privilege = if any { privs.join("|") } else { missing };
                Err(ApiError::Forbidden { path, privilege })
            }
        }
        // userid-group, userid-param, perm-modify: the lab's users are administrators.
        _ => Ok(()),
    }
}

/// The privilege PVE requires to set or delete a VM config key (`check_vm_modify_config_perm`).
pub fn config_key_privilege(key: &str, value: Option<&str>) -> &'static str {
    let family = key.trim_end_matches(|c: char| c.is_ascii_digit());
    if value.is_some_and(|v| v.contains("media=cdrom")) && family != "unused" {
        return "VM.Config.CDROM";
    }
    match family {
        "cores" | "cpu" | "cpulimit" | "cpuunits" | "numa" | "sockets" | "vcpus" | "affinity" => {
            "VM.Config.CPU"
        }
        "memory" | "balloon" | "shares" | "hugepages" | "keephugepages" => "VM.Config.Memory",
        "acpi" | "hotplug" | "kvm" | "machine" | "scsihw" | "smbios" | "tablet" | "vga"
        | "watchdog" | "audio" | "rng" | "vmgenid" | "arch" | "amd-sev" | "intel-tdx" => {
            "VM.Config.HWType"
        }
        "net" => "VM.Config.Network",
        "ipconfig" | "ciuser" | "cipassword" | "citype" | "ciupgrade" | "cicustom"
        | "nameserver" | "searchdomain" | "sshkeys" => "VM.Config.Cloudinit",
        "ide" | "sata" | "scsi" | "virtio" | "efidisk" | "tpmstate" | "unused" | "boot"
        | "bootdisk" | "virtiofs" => "VM.Config.Disk",
        "hostpci" | "usb" | "serial" | "parallel" => "VM.Config.HWType",
        _ => "VM.Config.Options",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(without: &[&str]) -> Principal {
        Principal {
            authid: "u@pve!t".into(),
            privileges: ALL_PRIVILEGES
                .iter()
                .filter(|p| !without.contains(p))
                .map(|s| s.to_string())
                .collect(),
        }
    }

    #[test]
    fn evaluates_schema_checks() {
        let mut params = Params::new();
        params.insert("vmid".into(), "9000".into());
        params.insert("newid".into(), "150".into());
        let clone = json!({"check": ["and", ["perm", "/vms/{vmid}", ["VM.Clone"]],
            ["or", ["perm", "/vms/{newid}", ["VM.Allocate"]],
                   ["perm", "/pool/{pool}", ["VM.Allocate"], "require_param", "pool"]]]});
        assert!(check_permissions(&clone, &principal(&[]), &params).is_ok());
        let e = check_permissions(&clone, &principal(&["VM.Allocate"]), &params).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Permission check failed (/vms/150, VM.Allocate)"
        );
        let e = check_permissions(&clone, &principal(&["VM.Clone"]), &params).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Permission check failed (/vms/9000, VM.Clone)"
        );
        let any = json!({"check": ["perm", "/storage/x", ["Datastore.Audit", "Datastore.AllocateSpace"], "any", 1]});
        assert!(check_permissions(&any, &principal(&["Datastore.Audit"]), &params).is_ok());
        assert!(
            check_permissions(&json!({"user": "all"}), &principal(ALL_PRIVILEGES), &params).is_ok()
        );
    }

    #[test]
    fn token_errors_match_pve() {
        let store = AuthStore::new(
            "root@pam".into(),
            "pw".into(),
            vec![Token {
                userid: "root@pam".into(),
                tokenid: "t".into(),
                secret: "s".into(),
                privileges: Default::default(),
            }],
        );
        let msg = |h: &str| {
            store
                .authenticate(Some(h), None, None, false)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(msg("PVEAPIToken=root@pam!t=x"), "invalid token value!");
        assert_eq!(
            msg("PVEAPIToken=root@pam!u=s"),
            "no such token 'u' for user 'root@pam'"
        );
        assert_eq!(
            msg("PVEAPIToken=nobody@pve!t=s"),
            "no such user ('nobody@pve')"
        );
        assert_eq!(msg("PVEAPIToken=root@pam"), "no tokenid specified");
        assert!(
            store
                .authenticate(Some("PVEAPIToken=root@pam!t=s"), None, None, true)
                .is_ok()
        );
        assert_eq!(
            store
                .authenticate(None, None, None, false)
                .unwrap_err()
                .to_string(),
            "No ticket"
        );
    }

    #[test]
    fn config_privileges() {
        assert_eq!(config_key_privilege("cores", None), "VM.Config.CPU");
        assert_eq!(config_key_privilege("memory", None), "VM.Config.Memory");
        assert_eq!(config_key_privilege("net1", None), "VM.Config.Network");
        assert_eq!(
            config_key_privilege("scsi0", Some("local-lvm:8")),
            "VM.Config.Disk"
        );
        assert_eq!(
            config_key_privilege("ide2", Some("none,media=cdrom")),
            "VM.Config.CDROM"
        );
        assert_eq!(
            config_key_privilege("ipconfig0", None),
            "VM.Config.Cloudinit"
        );
        assert_eq!(config_key_privilege("name", None), "VM.Config.Options");
    }
}
