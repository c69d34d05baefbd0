//! Crash safety of a create. The VM is created with a marker line in its description (an
//! "unfinished create" token derived from what identifies this VM: node, name, VM id, boot
//! source), removed only when the create has finished. When the provider or Terraform dies
//! in between, nothing reaches state; the next create finds the marked VM and adopts it
//! instead of making a duplicate (same name, same static addresses).
//!
//! PVE writes a new VM's name and description only once its clone or create task has copied
//! the disks, so tasks of this user that still run for the same source are waited for first.
//! Adoption needs `name` or `vm_id`: without either, looking would mean reading every VM's
//! config.

use std::time::Instant;

use infraflux_proxmox::{Client, Error, Params};
use tfplugin::Value;

use super::task::remaining;

/// The start of the marker line.
const MARKER: &str = "infraflux-unfinished-create:";

/// The token of the VM `planned` describes on `node`.
pub(super) fn token(planned: &Value, node: &str) -> String {
    let s = |k: &Value| match k {
        Value::String(s) => s.clone(),
        Value::Number(_) => k.as_i64().map(|n| n.to_string()).unwrap_or_default(),
        _ => String::new(),
    };
    let source = match planned.attr("clone") {
        Value::Null => planned
            .attr("disk")
            .as_map()
            .and_then(|m| m.values().find_map(|d| d.attr("import_from").as_str()))
            .or_else(|| planned.attr("cdrom").attr("file_id").as_str())
            .unwrap_or_default()
            .to_owned(),
        c => format!("clone {}", s(c.attr("source_vm_id"))),
    };
    let id = format!(
        "{node}\n{}\n{}\n{source}",
        s(planned.attr("name")),
        s(planned.attr("vm_id"))
    );
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    hex::encode(&d.as_ref()[..8])
}

/// `description` with the marker line of `token` appended.
pub(super) fn marked(description: Option<&str>, token: &str) -> String {
    match description.filter(|d| !d.is_empty()) {
        Some(d) => format!("{d}\n{MARKER} {token}"),
        None => format!("{MARKER} {token}"),
    }
}

/// `description` without a marker line; `None` when it has none.
pub(super) fn unmarked(description: &str) -> Option<String> {
    if !description.contains(MARKER) {
        return None;
    }
    let kept: Vec<&str> = description
        .lines()
        .filter(|l| !l.trim_start().starts_with(MARKER))
        .collect();
    Some(kept.join("\n"))
}

fn has_token(description: &str, token: &str) -> bool {
    description
        .lines()
        .any(|l| l.trim_start().strip_prefix(MARKER).map(str::trim) == Some(token))
}

/// Where to find the task that made a VM: PVE's task type and the node and id it runs under.
pub(super) struct Origin<'a> {
    pub kind: &'static str,
    pub node: &'a str,
    pub id: Option<String>,
}

/// A VM an earlier, interrupted create of the same VM left behind, claimed for this create.
pub(super) async fn find(
    client: &Client,
    planned: &Value,
    token: &str,
    origin: &Origin<'_>,
    deadline: Instant,
) -> Result<Option<u32>, Error> {
    let name = planned.attr("name").as_str();
    let wanted = planned
        .attr("vm_id")
        .as_i64()
        .and_then(|n| u32::try_from(n).ok());
    if name.is_none() && wanted.is_none() {
        return Ok(None);
    }
    // Tasks of this user this process did not start, still running: an earlier run's.
    for upid in client
        .foreign_tasks(origin.node, origin.kind, origin.id.as_deref(), None)
        .await?
    {
        tracing::info!(%upid, "waiting for a task an interrupted run left running");
        match client.wait_task(&upid, remaining(deadline)).await {
            Ok(_) | Err(Error::TaskFailed { .. } | Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    client.invalidate_vm_resources().await;
    let all = client.vm_resources().await?;
    for r in all.iter().filter(|r| {
        !r.template
            && wanted.is_none_or(|w| u64::from(w) == r.vmid)
            && name.is_none_or(|n| r.name.as_deref() == Some(n))
    }) {
        let Ok(vmid) = u32::try_from(r.vmid) else {
            continue;
        };
        if client.is_claimed(vmid) {
            continue;
        }
        let config = match client.vm_config(&r.node, vmid).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let marked = config
            .get_str("description")
            .is_some_and(|d| has_token(&d, token));
        if marked && config.get_str("lock").is_none() && client.claim_vm(vmid) {
            tracing::info!(vmid, node = %r.node, "adopting the VM an interrupted create left");
            return Ok(Some(vmid));
        }
    }
    Ok(None)
}

/// Remove the marker: the create has finished.
pub(super) async fn clear(client: &Client, node: &str, vmid: u32) -> Result<(), Error> {
    let config = client.vm_config(node, vmid).await?;
    let Some(kept) = config.get_str("description").and_then(|d| unmarked(&d)) else {
        return Ok(());
    };
    let digest = config.digest.as_deref();
    if kept.trim().is_empty() {
        client
            .update_config_sync(node, vmid, Params::new(), &["description"], digest)
            .await
    } else {
        client
            .update_config_sync(
                node,
                vmid,
                Params::new().set("description", kept),
                &[],
                digest,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        let t = "0123456789abcdef";
        let m = marked(Some("notes\nmore"), t);
        assert!(has_token(&m, t));
        assert!(!has_token(&m, "other"));
        assert_eq!(unmarked(&m).as_deref(), Some("notes\nmore"));
        let m = marked(None, t);
        assert_eq!(unmarked(&m).as_deref(), Some(""));
        assert_eq!(unmarked("plain"), None);
    }

    #[test]
    fn token_follows_identity() {
        let vm = |name: &str, src: i64| {
            Value::object([
                ("name", Value::from(name)),
                ("vm_id", Value::Unknown),
                ("clone", Value::object([("source_vm_id", Value::int(src))])),
            ])
        };
        assert_eq!(token(&vm("a", 9000), "pve1"), token(&vm("a", 9000), "pve1"));
        assert_ne!(token(&vm("a", 9000), "pve1"), token(&vm("b", 9000), "pve1"));
        assert_ne!(token(&vm("a", 9000), "pve1"), token(&vm("a", 9001), "pve1"));
        assert_ne!(token(&vm("a", 9000), "pve1"), token(&vm("a", 9000), "pve2"));
    }
}
