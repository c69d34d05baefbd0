//! Proxmox VE errors as diagnostics, each on the attribute to blame where there is one.

use infraflux_proxmox::{CloneSpec, Error};
use tfplugin::{AttributePath, Diagnostic};

/// A failed call as an error diagnostic: the summary says what we were doing.
pub(super) fn api_error(summary: impl Into<String>, e: &Error) -> Diagnostic {
    Diagnostic::error(summary, e.to_string())
}

/// The attribute to blame for a failed clone, when one is.
pub(super) fn clone_error(e: &Error, spec: &CloneSpec) -> Diagnostic {
    let summary = format!(
        "Cannot clone VM {} on node {}",
        spec.source_vmid, spec.source_node
    );
    let clone = AttributePath::attr("clone");
    let path = match e {
        e if e.is_vmid_taken() => Some(AttributePath::attr("vm_id")),
        Error::NotFound { .. } => Some(clone.push_attr("source_vm_id")),
        Error::Validation { errors, .. } if errors.contains_key("storage") => {
            Some(clone.push_attr("storage"))
        }
        Error::Validation { errors, .. } if errors.contains_key("target") => {
            Some(AttributePath::attr("node"))
        }
        Error::Validation { errors, .. } => config_key_path(errors.keys()),
        Error::Api { message, .. }
        | Error::TaskFailed {
            exit_status: message,
            ..
        } if message.contains("hostname lookup") => Some(clone.push_attr("source_node")),
        Error::Api { message, .. }
        | Error::TaskFailed {
            exit_status: message,
            ..
        } if message.contains("storage") => Some(clone.push_attr("storage")),
        Error::TaskFailed { exit_status, .. } if exit_status.contains("does not exist") => {
            Some(clone.push_attr("source_vm_id"))
        }
        _ => None,
    };
    let d = api_error(summary, e);
    match path {
        Some(p) => d.at(p),
        None => d,
    }
}

/// The attribute a rejected PVE config key belongs to.
pub(super) fn config_key_path<'a>(
    mut keys: impl Iterator<Item = &'a String>,
) -> Option<AttributePath> {
    let k = keys.next()?;
    let p = match k.as_str() {
        "cores" => AttributePath::attr("cpu").push_attr("cores"),
        "sockets" => AttributePath::attr("cpu").push_attr("sockets"),
        "cpu" => AttributePath::attr("cpu").push_attr("type"),
        "memory" => AttributePath::attr("memory").push_attr("dedicated_mb"),
        "balloon" => AttributePath::attr("memory").push_attr("floating_mb"),
        "onboot" => AttributePath::attr("on_boot"),
        "tags" | "name" | "description" => AttributePath::attr(k.as_str()),
        n if n.starts_with("net") => AttributePath::attr("network").push_key(n),
        "bios" | "machine" | "pool" => AttributePath::attr(k.as_str()),
        "efidisk0" => AttributePath::attr("efi_disk"),
        "tpmstate0" => AttributePath::attr("tpm_state"),
        "scsihw" => AttributePath::attr("scsi_hardware"),
        "agent" => AttributePath::attr("agent"),
        "nameserver" | "searchdomain" => AttributePath::attr("initialization").push_attr("dns"),
        n if n.starts_with("ipconfig") => AttributePath::attr("initialization")
            .push_attr("ip_config")
            .push_key(n),
        n if n.starts_with("ide2") => AttributePath::attr("initialization").push_attr("datastore"),
        n if infraflux_proxmox::types::is_disk_key(n) => AttributePath::attr("disk").push_key(n),
        _ => return None,
    };
    Some(p)
}
