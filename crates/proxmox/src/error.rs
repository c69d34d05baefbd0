//! Every way a Proxmox VE call can fail, each rendered as a sentence a user can act on.
//! No variant ever carries a secret: messages are built from ids, paths and PVE's own texts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// A failed Proxmox VE call, its message a sentence a user can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(
        "authentication failed for {who} at {endpoint} (Proxmox VE says: {reason}). Check the API token (user@realm!tokenid=secret) or the username and password."
    )]
    /// The credentials were refused (401).
    Auth {
        who: String,
        endpoint: String,
        reason: String,
    },

    #[error(
        "permission denied: {who} lacks the privilege {privilege} on {path} (needed for {action}). Grant it to the user or API token (a privilege-separated token needs it on the token itself)."
    )]
    /// A 403 naming the privilege that is missing, and where.
    Privilege {
        who: String,
        privilege: String,
        path: String,
        action: String,
    },

    /// A 403 whose text names no privilege.
    #[error("permission denied for {who} ({action}): {message}")]
    Forbidden {
        who: String,
        action: String,
        message: String,
    },

    /// The VM (or task) does not exist; for a destroy or a refresh that means "gone".
    #[error("not found ({action}): {message}")]
    NotFound { action: String, message: String },

    /// A config lock held by someone else; retryable.
    #[error(
        "{action} failed because the VM is locked: {message}. Another task holds the lock; retry later, or clear a stale lock with `qm unlock`."
    )]
    Lock { action: String, message: String },

    /// PVE refused parameters; `errors` maps each parameter to PVE's reason.
    #[error("Proxmox VE rejected the parameters of {action}: {}", fmt_params(.errors))]
    Validation {
        action: String,
        errors: BTreeMap<String, String>,
    },

    /// A task ran and ended with an error; `log_tail` is the end of its log.
    #[error("task {kind} on node {node} failed: {exit_status}{}", fmt_log(.log_tail))]
    TaskFailed {
        upid: String,
        node: String,
        kind: String,
        exit_status: String,
        log_tail: Vec<String>,
    },

    /// A task or wait did not finish in time (the task may still be running).
    #[error("timed out after {}s waiting for {what}", .after.as_secs_f64().round())]
    Timeout { what: String, after: Duration },

    /// No connection, or it broke before an answer.
    #[error("cannot reach Proxmox VE at {address} (timeout {}s): {reason}", .timeout.as_secs())]
    Unreachable {
        address: String,
        timeout: Duration,
        reason: String,
    },

    /// The server's certificate did not pass the configured trust.
    #[error("TLS certificate of {endpoint} is not trusted: {reason}. {}", tls_hint(*.pinned))]
    Tls {
        endpoint: String,
        reason: String,
        /// The failure was a fingerprint pin that did not match.
        pinned: bool,
    },

    /// Any other API error: HTTP status plus PVE's message.
    #[error("{action} failed (HTTP {status}): {message}")]
    Api {
        action: String,
        status: u16,
        message: String,
    },

    /// The answer was not what the API schema promises.
    #[error("unexpected answer to {action}: {reason}")]
    Protocol { action: String, reason: String },

    /// The settings cannot work (bad endpoint, unusable CA, header-unsafe token).
    #[error("invalid Proxmox VE settings: {0}")]
    Config(String),

    /// Every VM id in the configured range is taken.
    #[error("no free VM id in the range {min}..={max}; widen vm_id_range or remove unused VMs")]
    NoFreeVmId { min: u32, max: u32 },
}

fn tls_hint(pinned: bool) -> &'static str {
    if pinned {
        "If the node's certificate was replaced, check the new fingerprint in the Proxmox VE web UI (Certificates) and update tls_fingerprint_sha256."
    } else {
        "Set ca_cert_pem to the CA that signed it, or pin the certificate with tls_fingerprint_sha256."
    }
}

fn fmt_params(errors: &BTreeMap<String, String>) -> String {
    errors
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.trim_end()))
        .collect::<Vec<_>>()
        .join("; ")
}

fn fmt_log(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\nlast lines of the task log:\n  {}", lines.join("\n  "))
    }
}

/// PVE texts that mean "someone else holds the lock; try again".
pub(crate) fn is_lock_message(m: &str) -> bool {
    m.contains("can't lock file") || m.contains("got timeout") || m.contains("VM is locked")
}

impl Error {
    /// Worth trying again after a pause: locks, overload, a worker that did not start, a
    /// failed connection. Failed tasks count when they failed on a lock.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Lock { .. } => true,
            Error::Api {
                status,
                message,
                action,
            } => {
                // pveproxy relays AnyEvent::HTTP's pseudo-statuses when it forwards a call to
                // the node that owns the VM: 595 = connecting failed (nothing sent, safe to
                // repeat), 596 = failed while sending (may have run: only reads repeat it).
                matches!(status, 502..=504 | 595)
                    || (*status == 596 && action.starts_with("GET "))
                    || message.contains("got no worker upid")
                    || is_lock_message(message)
            }
            Error::TaskFailed { exit_status, .. } => is_lock_message(exit_status),
            Error::Unreachable { .. } => true,
            _ => false,
        }
    }

    /// The object does not exist (for a delete or a refresh: it is gone).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// A VM id someone else took between `nextid` and our create/clone.
    pub fn is_vmid_taken(&self) -> bool {
        let m = match self {
            Error::Api { message, .. } => message,
            Error::TaskFailed { exit_status, .. } => exit_status,
            Error::Validation { errors, .. } => {
                return errors
                    .get("vmid")
                    .or(errors.get("newid"))
                    .is_some_and(|m| m.contains("already exists"));
            }
            _ => return false,
        };
        m.contains("already exists")
    }
}

impl Error {
    /// Map a PVE error answer (status, message from the body or the status line, body) to an
    /// error. `who` and `endpoint` name the caller in auth and privilege errors.
    pub(crate) fn from_answer(
        status: u16,
        action: &str,
        message: String,
        body: &Value,
        who: &str,
        endpoint: &str,
    ) -> Error {
        let who = who.to_owned();
        let action = action.to_owned();
        match status {
            401 => Error::Auth {
                who,
                endpoint: endpoint.to_owned(),
                reason: message,
            },
            403 => match parse_permission(&message) {
                Some((path, privilege)) => Error::Privilege {
                    who,
                    privilege,
                    path,
                    action,
                },
                None => Error::Forbidden {
                    who,
                    action,
                    message,
                },
            },
            400 => {
                let errors: BTreeMap<String, String> = body
                    .get("errors")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if errors.is_empty() {
                    Error::Api {
                        action,
                        status: 400,
                        message,
                    }
                } else {
                    Error::Validation { action, errors }
                }
            }
            _ if is_lock_message(&message) => Error::Lock { action, message },
            _ if is_missing(&message) => Error::NotFound { action, message },
            s => Error::Api {
                action,
                status: s,
                message,
            },
        }
    }
}

/// PVE's "Permission check failed (/vms/100, VM.Allocate)" → (path, privilege).
fn parse_permission(m: &str) -> Option<(String, String)> {
    let inner = m.split_once("Permission check failed (")?.1;
    let inner = inner.rsplit_once(')')?.0;
    let (path, privs) = inner.split_once(", ")?;
    Some((path.trim().to_owned(), privs.trim().to_owned()))
}

fn is_missing(m: &str) -> bool {
    // Only texts about the object itself: "storage 'x' does not exist" is a bad parameter, not
    // a vanished VM, and callers treat NotFound as "gone".
    (m.contains("Configuration file") && m.contains("does not exist"))
        || m.starts_with("no such task")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, message: &str) -> Error {
        Error::Api {
            action: "POST /x".into(),
            status,
            message: message.into(),
        }
    }

    #[test]
    fn permission_messages() {
        assert_eq!(
            parse_permission("Permission check failed (/vms/100, VM.Allocate)"),
            Some(("/vms/100".into(), "VM.Allocate".into()))
        );
        assert_eq!(
            parse_permission("Permission check failed (/storage/ceph, Datastore.AllocateSpace)\n")
                .map(|p| p.1),
            Some("Datastore.AllocateSpace".into())
        );
        assert_eq!(parse_permission("something else"), None);
    }

    #[test]
    fn what_is_retried() {
        assert!(api(503, "lab fault: injected server error").is_retryable());
        assert!(api(500, "got no worker upid - start worker failed").is_retryable());
        assert!(
            api(
                500,
                "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"
            )
            .is_retryable()
        );
        assert!(!api(500, "VM 100 already running").is_retryable());
        assert!(!api(501, "Method 'GET /x' not implemented").is_retryable());
        let task = |exit: &str| Error::TaskFailed {
            upid: String::new(),
            node: "pve1".into(),
            kind: "qmclone".into(),
            exit_status: exit.into(),
            log_tail: vec![],
        };
        assert!(
            task("can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout")
                .is_retryable()
        );
        assert!(!task("clone failed: out of space").is_retryable());
        assert!(task("unable to create VM 100: config file already exists").is_vmid_taken());
        assert!(
            api(
                500,
                "unable to create VM 100 - VM 100 already exists on node 'pve2'"
            )
            .is_vmid_taken()
        );
        let v = Error::Validation {
            action: "GET /cluster/nextid".into(),
            errors: [("vmid".into(), "VM 100 already exists".into())].into(),
        };
        assert!(v.is_vmid_taken() && !v.is_retryable());
    }
}
