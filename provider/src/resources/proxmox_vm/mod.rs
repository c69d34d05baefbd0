//! `infraflux_proxmox_vm`: one QEMU VM on Proxmox VE, cloned from a template or created from
//! a disk image (`disk { import_from }`).
//!
//! - [`schema`]: attributes; [`convert`]: PVE config ⇄ Terraform value.
//! - Plan: exactly one boot source; disks never shrink, move or vanish silently (plan-time
//!   errors naming the attribute).
//! - Create: clone (limiter, lock retries, VM id races in the client) → config, or one create
//!   call with the whole config → grow disks → start. As soon as the VM exists its state goes
//!   back with any later error, so Terraform saves it (tainted).
//! - Read: one shared `/cluster/resources` answer + one config GET; the guest agent is asked
//!   only while `ipv4_addresses` is empty and the VM runs with an agent, and never waited for.
//! - Update: one config PUT with the digest read just before; power changes after it.
//! - Delete: shutdown (bounded) → stop → delete with purge; already gone is success.

mod convert;
mod schema;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use infraflux_proxmox::types::ipv4_addresses;
use infraflux_proxmox::types::{TaskStatus, VmConfig};
use infraflux_proxmox::vm::VmRead;
use infraflux_proxmox::{Client, CloneSpec, DeleteOptions, Error, Upid};
use tfplugin::framework::resource::{IdentityAttribute, PlanRequest, PlanResponse, Private};
use tfplugin::framework::timeouts::timeout;
use tfplugin::{
    AttributePath, CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics, ReadRequest,
    Resource, Schema, StateResponse, Type, UpdateRequest, Value,
};

use crate::provider::Shared;
use convert::{
    DEFAULT_CI_DATASTORE, agent_enabled, config_changes, data_disks, fill_unknowns, null_unknowns,
    state_from_pve,
};

const CREATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a destroy waits for the guest to shut down before stopping it hard.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

pub struct ProxmoxVm {
    shared: Arc<Shared>,
}

impl ProxmoxVm {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The provider process's one Proxmox VE client, shared with the data sources.
    fn client(&self) -> Result<Client, Diagnostic> {
        self.shared.proxmox("infraflux_proxmox_vm")
    }
}

fn vmid_of(v: &Value) -> Option<u32> {
    v.attr("vm_id").as_i64().and_then(|n| u32::try_from(n).ok())
}

fn api_error(summary: impl Into<String>, e: &Error) -> Diagnostic {
    Diagnostic::error(summary, e.to_string())
}

/// The attribute to blame for a failed clone, when one is.
fn clone_error(e: &Error, spec: &CloneSpec) -> Diagnostic {
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

/// Run `fut`, giving up when Terraform cancels.
async fn cancellable<T>(
    ctx: &Ctx,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, Diagnostic>>,
) -> Result<T, Diagnostic> {
    tokio::select! {
        r = fut => r,
        () = ctx.cancel.cancelled() => Err(Diagnostic::error(
            "Interrupted",
            format!("Terraform stopped the provider while it was {what}; what exists so far is saved in state."),
        )),
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

/// Private-state key of a PVE task an apply started and did not see finish.
const PRIVATE_TASK: &str = "pending_task";

/// The task an apply is waiting for, and the VM id a create is making. What is left in it
/// when an apply fails goes to private state, so the next apply waits for that task instead
/// of starting it again.
#[derive(Debug, Default)]
struct TaskSlot {
    task: Mutex<Option<(Upid, String)>>,
    vmid: Mutex<Option<u32>>,
}

impl TaskSlot {
    fn set(&self, upid: &Upid, what: &str) {
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some((upid.clone(), what.into()));
    }
    fn clear(&self) {
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    fn get(&self) -> Option<(Upid, String)> {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set_vmid(&self, vmid: u32) {
        *self.vmid.lock().unwrap_or_else(|e| e.into_inner()) = Some(vmid);
    }
    fn vmid(&self) -> Option<u32> {
        *self.vmid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `private` plus the unfinished task, if any.
    fn private(&self, mut private: Private) -> Private {
        match self.get() {
            Some((upid, what)) => {
                private.insert(
                    PRIVATE_TASK.into(),
                    serde_json::json!({"upid": upid.as_str(), "what": what}),
                );
            }
            None => {
                private.remove(PRIVATE_TASK);
            }
        }
        private
    }

    /// Start a task (`start` again only where [`Client::run_task`] allows) and wait for it,
    /// remembering its UPID until it has finished.
    async fn run<F, Fut>(
        &self,
        client: &Client,
        what: &str,
        timeout: Duration,
        start: F,
    ) -> Result<TaskStatus, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Upid, Error>>,
    {
        let r = client
            .run_task(what, timeout, || async {
                let upid = start().await?;
                self.set(&upid, what);
                Ok(upid)
            })
            .await;
        self.settle(&r);
        r
    }

    async fn wait(
        &self,
        client: &Client,
        upid: &Upid,
        what: &str,
        timeout: Duration,
    ) -> Result<TaskStatus, Error> {
        self.set(upid, what);
        let r = client.wait_task(upid, timeout).await;
        self.settle(&r);
        r
    }

    /// A task that ran to its end (success or failure) is no longer pending.
    fn settle(&self, r: &Result<TaskStatus, Error>) {
        if matches!(r, Ok(_) | Err(Error::TaskFailed { .. })) {
            self.clear();
        }
    }
}

/// The unfinished task a previous apply left in private state.
fn pending_task(private: &Private) -> Option<(Upid, String)> {
    let t = private.get(PRIVATE_TASK)?;
    let upid = t.get("upid")?.as_str()?.parse().ok()?;
    let what = t
        .get("what")
        .and_then(|w| w.as_str())
        .unwrap_or("a task")
        .to_owned();
    Some((upid, what))
}

/// Wait for the task a previous apply started and did not see finish. A task that failed is
/// reported in the log and forgotten: the caller starts what is still needed.
async fn resume_task(
    client: &Client,
    slot: &TaskSlot,
    private: &Private,
    deadline: Instant,
) -> Result<(), Diagnostic> {
    let Some((upid, what)) = pending_task(private) else {
        return Ok(());
    };
    tracing::info!(%upid, %what, "waiting for the task a previous apply started");
    match slot.wait(client, &upid, &what, remaining(deadline)).await {
        Ok(_) => Ok(()),
        Err(e @ Error::TaskFailed { .. }) => {
            tracing::warn!(%upid, error = %e, "the task a previous apply started failed; starting over");
            Ok(())
        }
        Err(Error::NotFound { .. }) => {
            slot.clear();
            Ok(())
        }
        Err(e) => Err(api_error(
            format!("Still waiting for {what} started by a previous apply"),
            &e,
        )),
    }
}

impl ProxmoxVm {
    /// Clone `clone.source_vm_id` (under the limiter); returns the new VM id.
    async fn create_by_clone(
        client: &Client,
        slot: &TaskSlot,
        planned: &Value,
        node: &str,
        wanted: Option<u32>,
        deadline: Instant,
    ) -> Result<u32, Diagnostic> {
        let clone = planned.attr("clone");
        let Some(source_vmid) = clone
            .attr("source_vm_id")
            .as_i64()
            .and_then(|n| u32::try_from(n).ok())
        else {
            return Err(
                Diagnostic::error("A clone block is needed", "Set clone.source_vm_id.")
                    .at(AttributePath::attr("clone")),
            );
        };
        let source_node = clone
            .attr("source_node")
            .as_str()
            .unwrap_or(node)
            .to_owned();
        let spec = CloneSpec {
            target_node: (source_node != node).then(|| node.to_owned()),
            source_node,
            source_vmid,
            name: planned.attr("name").as_str().map(str::to_owned),
            description: None,
            full: clone.attr("full").as_bool(),
            storage: clone.attr("storage").as_str().map(str::to_owned),
            pool: planned.attr("pool").as_str().map(str::to_owned),
        };
        // Not cancellable: a clone abandoned half-way would be a VM nobody knows of. It is
        // bounded by the create timeout instead; a clone still running then is kept in
        // private state.
        // The qmclone task runs on the source node (its UPID names it), so that node's slots.
        let _permit = client
            .limiter()
            .acquire(&spec.source_node, spec.storage.as_deref())
            .await;
        let spec_ref = &spec;
        let clone = |vmid: u32| async move {
            slot.set_vmid(vmid);
            slot.run(
                client,
                &format!("clone of VM {source_vmid} to {vmid}"),
                remaining(deadline),
                || client.clone_vm(spec_ref, vmid),
            )
            .await
            .map(|_| vmid)
        };
        let r = match wanted {
            Some(vmid) => clone(vmid).await,
            None => client.with_new_vmid(clone).await,
        };
        r.map_err(|e| clone_error(&e, &spec))
    }

    /// `POST /nodes/{node}/qemu` with the whole config, the boot disk imported from its image.
    async fn create_from_image(
        client: &Client,
        slot: &TaskSlot,
        planned: &Value,
        node: &str,
        wanted: Option<u32>,
        deadline: Instant,
    ) -> Result<u32, Diagnostic> {
        let ch = config_changes(planned, &Value::Null, &Default::default());
        let boot = planned
            .attr("disk")
            .as_map()
            .and_then(|m| {
                m.iter()
                    .find(|(_, d)| !d.attr("import_from").is_null())
                    .map(|(k, _)| k.clone())
            })
            .unwrap_or_else(|| "scsi0".into());
        let from_iso = !planned
            .attr("disk")
            .as_map()
            .is_some_and(|m| m.values().any(|d| !d.attr("import_from").is_null()));
        let order = match planned.attr("cdrom").attr("interface").as_str() {
            Some(cd) if from_iso => format!("order={cd};{boot}"),
            _ => format!("order={boot}"),
        };
        let params = ch
            .set
            .set("boot", order)
            .opt("pool", planned.attr("pool").as_str());
        let storage = planned
            .attr("disk")
            .as_map()
            .and_then(|m| m.get(&boot))
            .and_then(|d| d.attr("storage").as_str())
            .map(str::to_owned);
        let _permit = client.limiter().acquire(node, storage.as_deref()).await;
        let create = |vmid: u32| {
            let params = params.clone();
            async move {
                slot.set_vmid(vmid);
                slot.run(
                    client,
                    &format!("creation of VM {vmid}"),
                    remaining(deadline),
                    || client.create_vm(node, vmid, params.clone()),
                )
                .await
                .map(|_| vmid)
            }
        };
        let r = match wanted {
            Some(vmid) => create(vmid).await,
            None => client.with_new_vmid(create).await,
        };
        r.map_err(|e| {
            let d = api_error(format!("Cannot create a VM on node {node}"), &e);
            let path = match &e {
                e if e.is_vmid_taken() => Some(AttributePath::attr("vm_id")),
                Error::Validation { errors, .. } => config_key_path(errors.keys()),
                Error::Api { message, .. }
                | Error::TaskFailed {
                    exit_status: message,
                    ..
                } if message.contains("import") || message.contains("volume") => Some(
                    AttributePath::attr("disk")
                        .push_key(boot.as_str())
                        .push_attr("import_from"),
                ),
                _ => None,
            };
            match path {
                Some(p) => d.at(p),
                None => d,
            }
        })
    }

    /// With `agent.timeout` and no static address, wait that long for the agent's IPv4
    /// addresses; `None` = ask once (never wait).
    async fn wait_agent_ipv4(
        client: &Client,
        planned: &Value,
        node: &str,
        vmid: u32,
        started: bool,
    ) -> Option<Vec<String>> {
        let agent = planned.attr("agent");
        let wait_for_ip = agent.attr("wait_for_ip").as_bool() == Some(true);
        let secs = match agent.attr("timeout").as_i64() {
            Some(s) if s > 0 => s,
            _ if wait_for_ip => 300,
            _ => 0,
        };
        let statics = planned
            .attr("initialization")
            .attr("ip_config")
            .as_map()
            .is_some_and(|m| {
                m.values()
                    .any(|c| c.attr("ipv4_address").as_str().is_some_and(|a| a != "dhcp"))
            });
        if !started || statics || secs <= 0 || agent.attr("enabled").as_bool() != Some(true) {
            return None;
        }
        let timeout = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        match client.wait_for_ipv4(node, vmid, timeout).await {
            Ok(ips) => Some(ips),
            Err(e) => {
                tracing::warn!(vmid, error = %e, "no IPv4 address from the guest agent in time");
                None
            }
        }
    }

    /// Where the VM is and its config; `None` = gone.
    async fn locate(&self, client: &Client, vmid: u32) -> Result<Option<VmRead>, Error> {
        client.read_vm(vmid).await
    }

    /// The guest agent's IPv4 addresses, if it answers right now (never waits).
    async fn agent_ipv4(client: &Client, read: &VmRead, vmid: u32) -> Vec<String> {
        if read.resource.status != "running" || !agent_enabled(&read.config) {
            return Vec::new();
        }
        match client.agent_interfaces(&read.resource.node, vmid).await {
            Ok(ifaces) => ipv4_addresses(&ifaces),
            Err(e) => {
                tracing::debug!(vmid, error = %e, "guest agent not answering; ipv4_addresses stays empty");
                Vec::new()
            }
        }
    }

    /// The state after create/update: the plan, unknowns filled from a fresh read.
    async fn applied_state(
        &self,
        client: &Client,
        planned: &Value,
        node: &str,
        vmid: u32,
        prior_ipv4: Option<Vec<String>>,
    ) -> Result<Value, Diagnostic> {
        client.invalidate_vm_resources().await;
        let read = self
            .locate(client, vmid)
            .await
            .map_err(|e| api_error(format!("Cannot read VM {vmid}"), &e))?
            .ok_or_else(|| {
                Diagnostic::error(
                    format!("VM {vmid} vanished"),
                    format!("VM {vmid} no longer exists on the cluster right after it was changed; someone else deleted it."),
                )
            })?;
        let ipv4 = match prior_ipv4 {
            Some(ips) => ips,
            None => Self::agent_ipv4(client, &read, vmid).await,
        };
        let fresh = state_from_pve(&read, node, vmid, Some(planned), ipv4);
        Ok(fill_unknowns(planned, &fresh))
    }

    /// Apply config changes with the digest of the config read just before, then grow disks
    /// and drop the volumes of removed disks.
    async fn apply_config(
        client: &Client,
        tasks: &TaskSlot,
        node: &str,
        vmid: u32,
        planned: &Value,
        prior: &Value,
        deadline: Instant,
    ) -> Result<Vec<String>, Diagnostic> {
        let current = client
            .vm_config(node, vmid)
            .await
            .map_err(|e| api_error(format!("Cannot read the config of VM {vmid}"), &e))?;
        let ch = config_changes(planned, prior, &current);
        let changed: Vec<String> = ch
            .set
            .keys()
            .into_iter()
            .map(str::to_owned)
            .chain(ch.delete.iter().cloned())
            .collect();
        if !ch.set.0.is_empty() || !ch.delete.is_empty() {
            tracing::debug!(vmid, keys = ?ch.set.keys(), delete = ?ch.delete, "updating VM config");
            let delete: Vec<&str> = ch.delete.iter().map(String::as_str).collect();
            let config_err = |e: Error| {
                let d = api_error(format!("Cannot update the config of VM {vmid}"), &e);
                match &e {
                    Error::Validation { errors, .. } => match config_key_path(errors.keys()) {
                        Some(p) => d.at(p),
                        None => d,
                    },
                    _ => d,
                }
            };
            if ch.allocates {
                // Allocating volumes runs as a task (POST); wait for it.
                let upid = client
                    .update_config(
                        node,
                        vmid,
                        ch.set.clone(),
                        &delete,
                        current.digest.as_deref(),
                    )
                    .await
                    .map_err(config_err)?;
                if let Some(upid) = upid {
                    tasks
                        .wait(
                            client,
                            &upid,
                            &format!("config change of VM {vmid}"),
                            remaining(deadline),
                        )
                        .await
                        .map_err(config_err)?;
                }
            } else {
                client
                    .update_config_sync(
                        node,
                        vmid,
                        ch.set.clone(),
                        &delete,
                        current.digest.as_deref(),
                    )
                    .await
                    .map_err(config_err)?;
            }
        }
        if !ch.removed_volumes.is_empty() {
            Self::drop_unused(client, node, vmid, &ch.removed_volumes).await?;
        }
        if !ch.resizes.is_empty() {
            let now = client
                .vm_config(node, vmid)
                .await
                .map_err(|e| api_error(format!("Cannot read the config of VM {vmid}"), &e))?;
            let disks = data_disks(&now);
            for (slot, gb) in &ch.resizes {
                let have = disks.get(slot).and_then(|d| d.size_gib()).unwrap_or(0);
                if *gb <= have {
                    continue;
                }
                tracing::info!(vmid, slot = %slot, gb, "growing disk");
                let size = format!("{gb}G");
                tasks
                    .run(
                        client,
                        &format!("resize of disk {slot} of VM {vmid}"),
                        remaining(deadline),
                        || client.resize_disk(node, vmid, slot, &size),
                    )
                    .await
                    .map_err(|e| {
                        api_error(format!("Cannot grow disk {slot} of VM {vmid}"), &e).at(
                            AttributePath::attr("disk")
                                .push_key(slot.as_str())
                                .push_attr("size_gb"),
                        )
                    })?;
            }
        }
        Ok(changed)
    }

    /// PVE keeps a removed disk as `unusedN`; delete those entries, which frees the volumes.
    async fn drop_unused(
        client: &Client,
        node: &str,
        vmid: u32,
        volumes: &[String],
    ) -> Result<(), Diagnostic> {
        let now = client
            .vm_config(node, vmid)
            .await
            .map_err(|e| api_error(format!("Cannot read the config of VM {vmid}"), &e))?;
        let unused: Vec<String> = now
            .values
            .keys()
            .filter(|k| k.starts_with("unused"))
            .filter(|k| {
                now.get_str(k).is_some_and(|v| {
                    let vol = v.split(',').next().unwrap_or_default();
                    volumes.iter().any(|r| r == vol)
                })
            })
            .cloned()
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        let delete: Vec<&str> = unused.iter().map(String::as_str).collect();
        client
            .update_config_sync(
                node,
                vmid,
                Default::default(),
                &delete,
                now.digest.as_deref(),
            )
            .await
            .map_err(|e| {
                api_error(
                    format!(
                        "Cannot delete the removed disks of VM {vmid} ({})",
                        unused.join(", ")
                    ),
                    &e,
                )
            })
    }

    /// Move the VM from `from` to `to`: online when it runs (with its local disks, which PVE
    /// copies on its own only offline), waiting for the task on the source node.
    async fn migrate(
        client: &Client,
        tasks: &TaskSlot,
        from: &str,
        to: &str,
        vmid: u32,
        config: &VmConfig,
        deadline: Instant,
    ) -> Result<(), Diagnostic> {
        let fail = |e: &Error| {
            api_error(
                format!("Cannot migrate VM {vmid} from node {from} to {to}"),
                e,
            )
            .at(AttributePath::attr("node"))
        };
        let running = client
            .vm_status(from, vmid)
            .await
            .map_err(|e| fail(&e))?
            .status
            == "running";
        let local_disks = if running {
            let storages = client.node_storages(from).await.map_err(|e| fail(&e))?;
            config.disks().unwrap_or_default().values().any(|d| {
                !d.is_cdrom()
                    && d.storage()
                        .is_some_and(|s| storages.iter().any(|st| st.storage == s && !st.shared))
            })
        } else {
            false
        };
        tracing::info!(vmid, from, to, running, local_disks, "migrating VM");
        tasks
            .run(
                client,
                &format!("migration of VM {vmid} to node {to}"),
                remaining(deadline),
                || client.migrate_vm(from, vmid, to, running, local_disks),
            )
            .await
            .map_err(|e| fail(&e))?;
        client.invalidate_vm_resources().await;
        Ok(())
    }

    /// After a config change on a running VM: what PVE keeps pending (`GET …/pending`) needs a
    /// reboot. Reboot when this apply changed one of those keys (or `reboot_after_update` was
    /// just turned on) and it is allowed; else warn, naming the keys.
    #[allow(clippy::too_many_arguments)]
    async fn apply_pending(
        client: &Client,
        tasks: &TaskSlot,
        node: &str,
        vmid: u32,
        changed: &[String],
        allowed: bool,
        leftovers: bool,
        deadline: Instant,
        diags: &mut Diagnostics,
    ) -> Result<(), Diagnostic> {
        if changed.is_empty() && !leftovers {
            return Ok(());
        }
        let pending: Vec<String> = client
            .vm_pending(node, vmid)
            .await
            .map_err(|e| api_error(format!("Cannot read the pending changes of VM {vmid}"), &e))?
            .into_iter()
            .filter(|p| p.is_pending())
            .map(|p| p.key)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let ours = pending.iter().any(|k| changed.contains(k));
        if !ours && !leftovers {
            return Ok(());
        }
        if !allowed {
            diags.push(
                Diagnostic::warning(
                    format!("VM {vmid} needs a reboot"),
                    format!(
                        "Proxmox VE keeps these changes pending until VM {vmid} restarts: {}. reboot_after_update = false, so it was not rebooted: restart it when convenient, or set reboot_after_update = true.",
                        pending.join(", ")
                    ),
                )
                .at(AttributePath::attr("reboot_after_update")),
            );
            return Ok(());
        }
        tracing::info!(vmid, keys = ?pending, "rebooting to apply pending changes");
        tasks
            .run(
                client,
                &format!("reboot of VM {vmid}"),
                remaining(deadline),
                || client.reboot_vm(node, vmid, None),
            )
            .await
            .map_err(|e| {
                api_error(
                    format!("Cannot reboot VM {vmid} to apply {}", pending.join(", ")),
                    &e,
                )
                .at(AttributePath::attr("reboot_after_update"))
            })?;
        Ok(())
    }

    /// Start or stop to match `started`.
    async fn converge_power(
        client: &Client,
        node: &str,
        vmid: u32,
        started: bool,
        deadline: Instant,
    ) -> Result<(), Diagnostic> {
        client.invalidate_vm_resources().await;
        let status = client
            .vm_status(node, vmid)
            .await
            .map_err(|e| api_error(format!("Cannot read the status of VM {vmid}"), &e))?;
        let running = status.status == "running";
        if started && !running {
            client
                .run_task(&format!("start of VM {vmid}"), remaining(deadline), || {
                    client.start_vm(node, vmid)
                })
                .await
                .map_err(|e| {
                    api_error(format!("Cannot start VM {vmid}"), &e)
                        .at(AttributePath::attr("started"))
                })?;
        } else if !started && running {
            Self::power_off(client, node, vmid, deadline)
                .await
                .map_err(|e| {
                    api_error(format!("Cannot stop VM {vmid}"), &e)
                        .at(AttributePath::attr("started"))
                })?;
        }
        Ok(())
    }

    /// Shutdown (bounded by the grace period and the deadline), then a hard stop.
    async fn power_off(
        client: &Client,
        node: &str,
        vmid: u32,
        deadline: Instant,
    ) -> Result<(), Error> {
        let grace = SHUTDOWN_GRACE.min(remaining(deadline) / 2);
        let secs = u32::try_from(grace.as_secs()).unwrap_or(60).max(1);
        let shutdown = async {
            let upid = client.shutdown_vm(node, vmid, Some(secs), false).await?;
            client
                .wait_task(&upid, grace + Duration::from_secs(5))
                .await
        };
        match shutdown.await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => {
                tracing::debug!(vmid, error = %e, "shutdown did not finish; stopping");
            }
        }
        let status = client.vm_status(node, vmid).await?;
        if status.status != "running" {
            return Ok(());
        }
        client
            .run_task(&format!("stop of VM {vmid}"), remaining(deadline), || {
                client.stop_vm(node, vmid, true)
            })
            .await
            .map(|_| ())
    }
}

/// The attribute a rejected PVE config key belongs to.
fn config_key_path<'a>(mut keys: impl Iterator<Item = &'a String>) -> Option<AttributePath> {
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

/// Exactly one boot source on create: `clone`, or a disk with `import_from`.
fn check_boot_source(config: &Value, diags: &mut Diagnostics) -> bool {
    let clone = !config.attr("clone").is_null();
    let imports: Vec<&String> = config
        .attr("disk")
        .as_map()
        .map(|m| {
            m.iter()
                .filter(|(_, d)| !d.attr("import_from").is_null())
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    let iso = config
        .attr("cdrom")
        .attr("file_id")
        .as_str()
        .is_some_and(|f| f != "none");
    match (clone, imports.as_slice()) {
        (true, []) | (false, [_]) => true,
        (false, []) if iso => true,
        (false, []) => {
            diags.push(
                Diagnostic::error(
                    "A boot source is needed",
                    "infraflux_proxmox_vm creates a VM by cloning (`clone { source_vm_id = <template id> }`), from a disk image (`disk \"scsi0\" { storage = \"local-lvm\", import_from = \"local:import/talos-nocloud-amd64.raw\" }`) or booting an ISO (`cdrom { file_id = \"local:iso/talos-metal-amd64.iso\" }` with an empty `disk`): set exactly one. (Import an existing VM with `terraform import … node/vm_id`.)",
                )
                .at(AttributePath::attr("clone")),
            );
            false
        }
        (true, [slot, ..]) => {
            diags.push(
                Diagnostic::error(
                    "Two boot sources",
                    format!("disk[\"{slot}\"].import_from and clone are both set: a VM is created either by cloning or from an image. Remove one of them."),
                )
                .at(AttributePath::attr("disk").push_key(slot.as_str()).push_attr("import_from")),
            );
            false
        }
        (false, [_, second, ..]) => {
            diags.push(
                Diagnostic::error(
                    "Two boot sources",
                    format!("disk[\"{second}\"].import_from: only one disk can be imported as the boot disk when the VM is created. Remove import_from from all but one disk."),
                )
                .at(AttributePath::attr("disk").push_key(second.as_str()).push_attr("import_from")),
            );
            false
        }
    }
}

/// Disk rules checked at plan time: no shrink, no storage move, no silent removal, a size for
/// new empty disks.
fn check_disks(config: &Value, prior: &Value, creating: bool, diags: &mut Diagnostics) {
    let empty = std::collections::BTreeMap::new();
    let cfg = config.attr("disk").as_map().unwrap_or(&empty);
    let old = if creating {
        &empty
    } else {
        prior.attr("disk").as_map().unwrap_or(&empty)
    };
    let at = |slot: &str, a: &str| AttributePath::attr("disk").push_key(slot).push_attr(a);
    for (slot, want) in cfg {
        if !infraflux_proxmox::types::is_disk_key(slot)
            || slot.starts_with("efidisk")
            || slot.starts_with("tpmstate")
        {
            diags.push(
                Diagnostic::error(
                    "Invalid disk slot",
                    format!("disk[\"{slot}\"]: a disk slot is scsi0…scsi30, virtio0…virtio15, sata0…sata5 or ide0…ide3 (ide2 holds the cloud-init drive). Rename the block."),
                )
                .at(AttributePath::attr("disk").push_key(slot.as_str())),
            );
            continue;
        }
        let Some(have) = old.get(slot) else {
            if want.attr("import_from").is_null() && want.attr("size_gb").is_null() {
                diags.push(
                    Diagnostic::error(
                        "Disk size missing",
                        format!("disk[\"{slot}\"].size_gb: a new empty disk needs a size; set size_gb (GiB), or import_from to create it from an image."),
                    )
                    .at(at(slot, "size_gb")),
                );
            }
            continue;
        };
        if let (Some(w), Some(h)) = (want.attr("size_gb").as_i64(), have.attr("size_gb").as_i64())
            && w < h
        {
            diags.push(
                Diagnostic::error(
                    "Disks cannot shrink",
                    format!("disk[\"{slot}\"].size_gb: {w} is smaller than the disk's {h} GiB, and Proxmox VE cannot shrink disks. Set size_gb to {h} or more; to start over with a smaller disk, remove the block with allow_disk_removal = true (its data is lost) and add it again."),
                )
                .at(at(slot, "size_gb")),
            );
        }
        if let (Some(w), Some(h)) = (want.attr("storage").as_str(), have.attr("storage").as_str())
            && w != h
        {
            diags.push(
                Diagnostic::error(
                    "Moving disks is not supported",
                    format!("disk[\"{slot}\"].storage: the disk lives on {h:?}; moving it to {w:?} is not supported yet. Set storage = {h:?}, or move it in Proxmox VE first."),
                )
                .at(at(slot, "storage")),
            );
        }
    }
    let allow = config.attr("allow_disk_removal").as_bool().unwrap_or(false);
    if !cfg.is_empty() && !allow {
        for slot in old.keys().filter(|k| !cfg.contains_key(*k)) {
            diags.push(
                Diagnostic::error(
                    "Removing a disk deletes its data",
                    format!("disk[\"{slot}\"] is no longer in the configuration: applying would delete that disk and its data. Put the block back, or set allow_disk_removal = true to delete it."),
                )
                .at(AttributePath::attr("allow_disk_removal")),
            );
        }
    }
}

/// EFI vars and TPM state cannot be converted in place; a CD-ROM needs a free drive slot; an
/// MTU needs a virtio NIC.
fn check_firmware_and_cdrom(
    config: &Value,
    prior: &Value,
    creating: bool,
    diags: &mut Diagnostics,
) {
    for (block, attrs) in [
        ("efi_disk", &["storage", "type", "pre_enrolled_keys"][..]),
        ("tpm_state", &["storage", "version"][..]),
    ] {
        let (want, have) = (config.attr(block), prior.attr(block));
        if creating || want.is_null() || have.is_null() {
            continue;
        }
        for a in attrs {
            let (w, h) = (want.attr(a), have.attr(a));
            if w.is_wholly_known() && !w.is_null() && !w.equals(h) {
                let h = match h {
                    Value::String(s) => format!("{s:?}"),
                    Value::Bool(b) => b.to_string(),
                    _ => "another value".into(),
                };
                diags.push(
                    Diagnostic::error(
                        format!("{block} cannot change"),
                        format!("{block}.{a}: the VM has {h}; Proxmox VE cannot convert it in place. Set it back, or remove the {block} block (its contents are lost), apply, and add it again."),
                    )
                    .at(AttributePath::attr(block).push_attr(*a)),
                );
            }
        }
    }
    if let Some(nets) = config.attr("network").as_map() {
        for (slot, n) in nets {
            let model = n.attr("model").as_str().unwrap_or("virtio");
            if !n.attr("mtu").is_null() && !n.attr("mtu").is_unknown() && model != "virtio" {
                diags.push(
                    Diagnostic::error(
                        "MTU needs a virtio NIC",
                        format!("network[\"{slot}\"].mtu: Proxmox VE sets the MTU of virtio NICs only, and this one is {model:?}. Remove mtu or use model = \"virtio\"."),
                    )
                    .at(AttributePath::attr("network").push_key(slot.as_str()).push_attr("mtu")),
                );
            }
        }
    }
    let Some(iface) = config.attr("cdrom").attr("interface").as_str() else {
        return;
    };
    let (family, n) = iface.split_at(
        iface
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(iface.len()),
    );
    let n: Option<u32> = n.parse().ok();
    let ok = match (family, n) {
        ("ide", Some(n)) => n <= 3,
        ("sata", Some(n)) => n <= 5,
        ("scsi", Some(n)) => n <= 30,
        _ => false,
    };
    let at = AttributePath::attr("cdrom").push_attr("interface");
    if !ok {
        diags.push(
            Diagnostic::error(
                "Invalid CD-ROM interface",
                format!("cdrom.interface: {iface:?} is not a drive slot; use ide0…ide3, sata0…sata5 or scsi0…scsi30 (default ide3)."),
            )
            .at(at),
        );
    } else if iface == "ide2" && !config.attr("initialization").is_null() {
        diags.push(
            Diagnostic::error(
                "CD-ROM slot taken",
                "cdrom.interface: ide2 holds the cloud-init drive of `initialization`; use ide3 (the default) or another free slot.",
            )
            .at(at),
        );
    } else if config
        .attr("disk")
        .as_map()
        .is_some_and(|m| m.contains_key(iface))
    {
        diags.push(
            Diagnostic::error(
                "CD-ROM slot taken",
                format!("cdrom.interface: {iface} is also a `disk` slot; pick a free one."),
            )
            .at(at),
        );
    }
}

/// `ip_config` slots are `ipconfigN`; addresses are `dhcp` or IPv4 CIDR; a gateway needs a
/// static address.
fn check_ip_config(config: &Value, diags: &mut Diagnostics) {
    let Some(ipcs) = config.attr("initialization").attr("ip_config").as_map() else {
        return;
    };
    let base = AttributePath::attr("initialization").push_attr("ip_config");
    for (slot, c) in ipcs {
        let n = slot.strip_prefix("ipconfig").unwrap_or_default();
        if n.is_empty()
            || !n.chars().all(|c| c.is_ascii_digit())
            || n.parse::<u32>().is_ok_and(|n| n > 31)
        {
            diags.push(
                Diagnostic::error(
                    "Invalid ip_config slot",
                    format!("initialization.ip_config[\"{slot}\"]: slots are ipconfig0 … ipconfig31 (ipconfigN configures netN). Rename the block."),
                )
                .at(base.push_key(slot.as_str())),
            );
            continue;
        }
        let addr = c.attr("ipv4_address");
        if let Some(a) = addr.as_str()
            && a != "dhcp"
        {
            let ok = a.split_once('/').is_some_and(|(ip, len)| {
                ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
            });
            if !ok {
                diags.push(
                    Diagnostic::error(
                        "Invalid IPv4 address",
                        format!("initialization.ip_config[\"{slot}\"].ipv4_address: {a:?} is neither \"dhcp\" nor an address with its prefix length, e.g. \"10.0.0.11/24\"."),
                    )
                    .at(base.push_key(slot.as_str()).push_attr("ipv4_address")),
                );
            }
        }
        if let Some(g) = c.attr("ipv4_gateway").as_str() {
            if g.parse::<std::net::Ipv4Addr>().is_err() {
                diags.push(
                    Diagnostic::error(
                        "Invalid IPv4 gateway",
                        format!("initialization.ip_config[\"{slot}\"].ipv4_gateway: {g:?} is not an IPv4 address, e.g. \"10.0.0.1\"."),
                    )
                    .at(base.push_key(slot.as_str()).push_attr("ipv4_gateway")),
                );
            } else if addr.as_str().is_none_or(|a| a == "dhcp") && !addr.is_unknown() {
                diags.push(
                    Diagnostic::error(
                        "A gateway needs a static address",
                        format!("initialization.ip_config[\"{slot}\"].ipv4_gateway is set but ipv4_address is not a static address: set ipv4_address = \"a.b.c.d/len\", or remove ipv4_gateway (DHCP provides the gateway)."),
                    )
                    .at(base.push_key(slot.as_str()).push_attr("ipv4_gateway")),
                );
            }
        }
    }
}

/// Defaults and prior values inside `disk`, `initialization` and `agent` (map-nested blocks
/// get no framework defaults; unset optional+computed values keep what PVE has).
fn plan_blocks(config: &Value, prior: &Value, planned: &mut Value) {
    // A block left out of the configuration is not managed: never plan it (Terraform may
    // propose the prior one, e.g. after an import).
    for b in [
        "cpu",
        "memory",
        "initialization",
        "agent",
        "efi_disk",
        "tpm_state",
        "cdrom",
    ] {
        if config.attr(b).is_null() {
            planned.set_attr(b, Value::Null);
        }
    }
    let empty = std::collections::BTreeMap::new();
    let prior_disks = prior.attr("disk").as_map().cloned().unwrap_or_default();
    let cfg_disks = config.attr("disk").as_map().unwrap_or(&empty);
    if let Some(Value::Map(disks)) = planned.as_object_mut().and_then(|m| m.get_mut("disk")) {
        for (slot, d) in disks.iter_mut() {
            let c = cfg_disks.get(slot).unwrap_or(&Value::Null);
            let p = prior_disks.get(slot);
            for a in ["size_gb", "discard", "ssd", "iothread", "cache"] {
                if !c.attr(a).is_null() {
                    continue;
                }
                // A new disk keeps the framework's unknown: PVE (or the template) decides.
                if let Some(p) = p {
                    d.set_attr(a, p.attr(a).clone());
                }
            }
        }
    }
    if let Some(init @ Value::Object(_)) = planned
        .as_object_mut()
        .and_then(|m| m.get_mut("initialization"))
        && config.attr("initialization").attr("datastore").is_null()
    {
        let ds = match prior.attr("initialization").attr("datastore") {
            Value::String(s) => Value::from(s.clone()),
            _ => Value::from(DEFAULT_CI_DATASTORE),
        };
        init.set_attr("datastore", ds);
    }
    if let Some(agent @ Value::Object(_)) = planned.as_object_mut().and_then(|m| m.get_mut("agent"))
        && config.attr("agent").attr("enabled").is_null()
    {
        agent.set_attr("enabled", Value::from(true));
    }
}

/// Parse `node/vm_id`.
fn parse_import_id(id: &str) -> Result<(String, u32), Diagnostic> {
    let bad = || {
        Diagnostic::error(
            "Invalid import id",
            format!(
                "{id:?} is not an import id for infraflux_proxmox_vm: expected \"node/vm_id\", e.g. \"pve1/101\"."
            ),
        )
    };
    let (node, vmid) = id.split_once('/').ok_or_else(bad)?;
    let vmid: u32 = vmid.trim().parse().map_err(|_| bad())?;
    if node.trim().is_empty() || !(100..=999_999_999).contains(&vmid) {
        return Err(bad());
    }
    Ok((node.trim().to_owned(), vmid))
}

#[async_trait]
impl Resource for ProxmoxVm {
    fn type_name(&self) -> &'static str {
        "infraflux_proxmox_vm"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    async fn modify_plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>, resp: &mut PlanResponse) {
        if resp.planned.is_null() {
            return; // destroy
        }
        let prior = req.prior;
        let creating = prior.is_null();
        let planned = &mut resp.planned;
        if creating && !check_boot_source(req.config, &mut resp.diags) {
            return;
        }
        check_disks(req.config, prior, creating, &mut resp.diags);
        check_ip_config(req.config, &mut resp.diags);
        check_firmware_and_cdrom(req.config, prior, creating, &mut resp.diags);
        if resp.diags.has_errors() {
            return;
        }
        let node = planned.attr("node").clone();
        // Defaults inside blocks the framework does not fill (map-nested) or that follow `node`
        // (the node the VM was cloned on: a later migration does not change it).
        let source_node = match prior.attr("clone").attr("source_node") {
            Value::String(s) => Value::from(s.clone()),
            _ => node.clone(),
        };
        if let Some(Value::Object(clone)) = planned.as_object_mut().and_then(|m| m.get_mut("clone"))
            && matches!(
                clone.get("source_node"),
                None | Some(Value::Null | Value::Unknown)
            )
        {
            clone.insert("source_node".into(), source_node);
        }
        if let Some(Value::Map(nets)) = planned.as_object_mut().and_then(|m| m.get_mut("network")) {
            for nic in nets.values_mut() {
                if nic.attr("model").is_null() {
                    nic.set_attr("model", Value::from("virtio"));
                }
            }
        }
        plan_blocks(req.config, prior, planned);
        // Values known before apply.
        if let Some(s) = planned.attr("started").as_bool() {
            planned.set_attr("status", Value::from(if s { "running" } else { "stopped" }));
        }
        if creating {
            planned.set_attr("current_node", node.clone());
            if let (Some(n), Some(v)) = (node.as_str(), vmid_of(planned)) {
                planned.set_attr("id", Value::from(format!("{n}/{v}")));
            }
            return;
        }
        for k in ["current_node", "ipv4_addresses", "id"] {
            planned.set_attr(k, prior.attr(k).clone());
        }
        // A new node: the VM migrates there, same VM id.
        if node.is_unknown() {
            planned.set_attr("current_node", Value::Unknown);
            planned.set_attr("id", Value::Unknown);
        } else if !node.equals(prior.attr("node")) {
            planned.set_attr("current_node", node.clone());
            if let (Some(n), Some(v)) = (node.as_str(), vmid_of(prior)) {
                planned.set_attr("id", Value::from(format!("{n}/{v}")));
            }
        }
        // A new static address (or none) changes what ipv4_addresses reports.
        if !planned
            .attr("initialization")
            .attr("ip_config")
            .equals(prior.attr("initialization").attr("ip_config"))
        {
            planned.set_attr("ipv4_addresses", Value::Unknown);
        }
        // What the user leaves unset is not touched, so it keeps its value.
        for k in [
            "name",
            "description",
            "tags",
            "pool",
            "on_boot",
            "bios",
            "machine",
            "scsi_hardware",
        ] {
            if req.config.attr(k).is_null() {
                planned.set_attr(k, prior.attr(k).clone());
            }
        }
        for (block, attrs) in [
            ("cpu", &["cores", "sockets", "type"][..]),
            ("memory", &["dedicated_mb", "floating_mb"][..]),
        ] {
            let (c, p) = (req.config.attr(block), prior.attr(block));
            if p.is_null() {
                continue;
            }
            if let Some(Value::Object(b)) = planned.as_object_mut().and_then(|m| m.get_mut(block)) {
                for a in attrs {
                    if c.attr(a).is_null() {
                        b.insert((*a).to_owned(), p.attr(a).clone());
                    }
                }
            }
        }
        if let (Some(Value::Map(nets)), Some(prior_nets)) = (
            planned.as_object_mut().and_then(|m| m.get_mut("network")),
            prior.attr("network").as_map(),
        ) {
            let cfg = req
                .config
                .attr("network")
                .as_map()
                .cloned()
                .unwrap_or_default();
            for (k, nic) in nets.iter_mut() {
                let cf = cfg
                    .get(k)
                    .map(|c| c.attr("firewall").is_null())
                    .unwrap_or(true);
                if let (true, Some(p)) = (cf, prior_nets.get(k)) {
                    nic.set_attr("firewall", p.attr("firewall").clone());
                }
            }
        }
        if planned.attr("network").equals(prior.attr("network")) {
            planned.set_attr("mac_addresses", prior.attr("mac_addresses").clone());
        }
        // Cloning again is the only way to change the source; an imported VM (no clone in
        // state) adopts the block, and removing the block forgets it, without a replacement.
        let (pc, sc) = (planned.attr("clone"), prior.attr("clone"));
        if !sc.is_null() && !pc.is_null() && !pc.equals(sc) {
            resp.requires_replace.push(AttributePath::attr("clone"));
        }
        if !planned.equals(prior) {
            planned.set_attr("config_digest", Value::Unknown);
        } else {
            planned.set_attr("config_digest", prior.attr("config_digest").clone());
        }
    }

    async fn create(&self, ctx: &Ctx, req: CreateRequest) -> StateResponse {
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return StateResponse::error(d),
        };
        let planned = req.planned;
        let deadline = Instant::now() + timeout(&planned, "create", CREATE_TIMEOUT);
        let Some(node) = planned.attr("node").as_str().map(str::to_owned) else {
            return StateResponse::error(Diagnostic::error(
                "node is unknown",
                "`node` must be known when the VM is created.",
            ));
        };
        let wanted = vmid_of(&planned);
        let slot = TaskSlot::default();
        let made = if planned.attr("clone").is_null() {
            Self::create_from_image(&client, &slot, &planned, &node, wanted, deadline).await
        } else {
            Self::create_by_clone(&client, &slot, &planned, &node, wanted, deadline).await
        };
        let vmid = match made {
            Ok(v) => v,
            Err(d) => {
                // A clone or create still running when we gave up makes a VM: save it
                // (tainted) with its task, so the next apply waits for the task before it
                // replaces the VM, and nothing is orphaned.
                let (Some(vmid), Some((upid, _))) = (slot.vmid(), slot.get()) else {
                    return StateResponse::error(d);
                };
                let mut state = planned.clone();
                state.set_attr("vm_id", Value::int(i64::from(vmid)));
                state.set_attr("id", Value::from(format!("{node}/{vmid}")));
                let mut diags: Diagnostics = d.into();
                diags.push(Diagnostic::warning(
                    format!("VM {vmid} may still be being created"),
                    format!("Task {upid} was still running when the apply gave up. VM {vmid} is saved in state (tainted) with that task: the next apply waits for it before replacing the VM."),
                ));
                return StateResponse {
                    state: null_unknowns(&state),
                    private: slot.private(Private::new()),
                    diags,
                };
            }
        };
        tracing::info!(vmid, node = %node, "VM created");
        // From here on the VM exists: every error returns its state.
        let mut known = planned.clone();
        known.set_attr("vm_id", Value::int(i64::from(vmid)));
        known.set_attr("id", Value::from(format!("{node}/{vmid}")));
        let started = planned.attr("started").as_bool().unwrap_or(true);
        let steps = async {
            // After a clone, everything; after a create from an image, what is left (growing
            // the imported disk).
            let prior = if known.attr("clone").is_null() {
                known.clone()
            } else {
                Value::Null
            };
            Self::apply_config(&client, &slot, &node, vmid, &known, &prior, deadline).await?;
            Self::converge_power(&client, &node, vmid, started, deadline).await?;
            let ipv4 = Self::wait_agent_ipv4(&client, &known, &node, vmid, started).await;
            self.applied_state(&client, &known, &node, vmid, ipv4).await
        };
        match cancellable(ctx, "configuring the new VM", steps).await {
            Ok(state) => StateResponse::ok(state),
            Err(d) => {
                // Save what exists: a fresh read where possible, else the plan with nulls.
                let mut partial = known.clone();
                partial.set_attr("status", Value::Unknown);
                let state = match self
                    .applied_state(&client, &partial, &node, vmid, Some(Vec::new()))
                    .await
                {
                    Ok(s) => s,
                    Err(_) => null_unknowns(&known),
                };
                let mut diags: Diagnostics = d.into();
                diags.push(Diagnostic::warning(
                    format!("VM {vmid} was created but not finished"),
                    format!("VM {vmid} exists on {node} and is saved in state (tainted): the next apply replaces it, or fix the problem and `terraform untaint` it."),
                ));
                StateResponse {
                    state,
                    private: slot.private(Private::new()),
                    diags,
                }
            }
        }
    }

    async fn read(&self, _ctx: &Ctx, req: ReadRequest) -> StateResponse {
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return StateResponse::error(d),
        };
        let Some(vmid) = vmid_of(&req.state) else {
            return StateResponse::ok(Value::Null);
        };
        let node = req
            .state
            .attr("node")
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match self.locate(&client, vmid).await {
            Ok(None) => {
                tracing::info!(vmid, "VM is gone; Terraform will plan to create it");
                StateResponse::ok(Value::Null)
            }
            Ok(Some(read)) => {
                let prior_ips: Vec<String> = req
                    .state
                    .attr("ipv4_addresses")
                    .as_elements()
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                let ipv4 = if read.resource.status != "running" {
                    Vec::new()
                } else if prior_ips.is_empty() {
                    Self::agent_ipv4(&client, &read, vmid).await
                } else {
                    prior_ips
                };
                StateResponse {
                    state: state_from_pve(&read, &node, vmid, Some(&req.state), ipv4),
                    private: req.private,
                    diags: Diagnostics::new(),
                }
            }
            Err(e) => StateResponse {
                state: req.state,
                private: req.private,
                diags: api_error(format!("Cannot read VM {vmid}"), &e).into(),
            },
        }
    }

    async fn update(&self, ctx: &Ctx, req: UpdateRequest) -> StateResponse {
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return StateResponse::error(d),
        };
        let (planned, prior) = (req.planned, req.prior);
        let Some(vmid) = vmid_of(&prior) else {
            return StateResponse::error(Diagnostic::error(
                "No VM id in state",
                "The state has no vm_id; remove the resource from state and import it (`node/vm_id`).",
            ));
        };
        let deadline = Instant::now() + timeout(&planned, "update", UPDATE_TIMEOUT);
        let node = planned.attr("node").as_str().unwrap_or_default().to_owned();
        let started = planned.attr("started").as_bool().unwrap_or(true);
        // Unknown when the cloud-init addresses change: then asked afresh.
        let prior_ipv4: Option<Vec<String>> =
            (!planned.attr("ipv4_addresses").is_unknown()).then(|| {
                prior
                    .attr("ipv4_addresses")
                    .as_elements()
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            });
        let reboot_allowed = planned
            .attr("reboot_after_update")
            .as_bool()
            .unwrap_or(true);
        // Turning reboot_after_update on applies what earlier applies left pending.
        let reboot_leftovers =
            reboot_allowed && prior.attr("reboot_after_update").as_bool() == Some(false);
        let slot = TaskSlot::default();
        let steps = async {
            if pending_task(&req.private).is_some() {
                resume_task(&client, &slot, &req.private, deadline).await?;
                // The task may have moved the VM: do not trust the shared list.
                client.invalidate_vm_resources().await;
            }
            let read = match self.locate(&client, vmid).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return Err(Diagnostic::error(
                        format!("VM {vmid} is gone"),
                        "The VM was deleted outside Terraform; run `terraform apply` again to create it.",
                    ));
                }
                Err(e) => return Err(api_error(format!("Cannot read VM {vmid}"), &e)),
            };
            let mut at = read.resource.node.clone();
            // A changed `node` moves the VM; one that is already there (HA) stays.
            if prior.attr("node").as_str() != Some(node.as_str()) && at != node {
                Self::migrate(&client, &slot, &at, &node, vmid, &read.config, deadline).await?;
                at = node.clone();
            }
            let changed =
                Self::apply_config(&client, &slot, &at, vmid, &planned, &prior, deadline).await?;
            if let Some(pool) = planned.attr("pool").as_str()
                && read.resource.pool.as_deref() != Some(pool)
            {
                client.set_vm_pool(pool, vmid).await.map_err(|e| {
                    api_error(format!("Cannot move VM {vmid} to pool {pool}"), &e)
                        .at(AttributePath::attr("pool"))
                })?;
            }
            Self::converge_power(&client, &at, vmid, started, deadline).await?;
            let mut diags = Diagnostics::new();
            if started {
                Self::apply_pending(
                    &client,
                    &slot,
                    &at,
                    vmid,
                    &changed,
                    reboot_allowed,
                    reboot_leftovers,
                    deadline,
                    &mut diags,
                )
                .await?;
            }
            let state = self
                .applied_state(&client, &planned, &node, vmid, prior_ipv4.clone())
                .await?;
            Ok((state, diags))
        };
        match cancellable(ctx, "updating the VM", steps).await {
            Ok((state, diags)) => StateResponse {
                state,
                private: Private::new(),
                diags,
            },
            Err(d) => {
                // Keep the prior state: what changed is found by the next refresh; a task still
                // running is waited for by the next apply.
                StateResponse {
                    state: prior,
                    private: slot.private(req.private),
                    diags: d.into(),
                }
            }
        }
    }

    async fn delete(&self, ctx: &Ctx, req: DeleteRequest) -> Diagnostics {
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return d.into(),
        };
        let Some(vmid) = vmid_of(&req.prior) else {
            return Diagnostics::new();
        };
        let deadline = Instant::now() + timeout(&req.prior, "delete", DELETE_TIMEOUT);
        let slot = TaskSlot::default();
        let steps = async {
            // A clone or migration an earlier apply left running holds the VM's lock.
            if pending_task(&req.private).is_some() {
                resume_task(&client, &slot, &req.private, deadline).await?;
                // The task may have moved the VM: do not trust the shared list.
                client.invalidate_vm_resources().await;
            }
            let read = match self.locate(&client, vmid).await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err(api_error(format!("Cannot read VM {vmid}"), &e)),
            };
            let node = read.resource.node.clone();
            let gone_ok = |r: Result<(), Error>| match r {
                Err(e) if e.is_not_found() => Ok(()),
                other => other,
            };
            let status = client.vm_status(&node, vmid).await;
            let running = match status {
                Ok(s) => s.status == "running",
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => {
                    return Err(api_error(
                        format!("Cannot read the status of VM {vmid}"),
                        &e,
                    ));
                }
            };
            if running {
                gone_ok(Self::power_off(&client, &node, vmid, deadline).await)
                    .map_err(|e| api_error(format!("Cannot stop VM {vmid}"), &e))?;
            }
            gone_ok(
                client
                    .run_task(
                        &format!("deletion of VM {vmid}"),
                        remaining(deadline),
                        || client.delete_vm(&node, vmid, DeleteOptions::default()),
                    )
                    .await
                    .map(|_| ()),
            )
            .map_err(|e| api_error(format!("Cannot delete VM {vmid}"), &e))?;
            client.invalidate_vm_resources().await;
            Ok(())
        };
        match cancellable(ctx, "deleting the VM", steps).await {
            Ok(()) => Diagnostics::new(),
            Err(d) => d.into(),
        }
    }

    async fn import(&self, _ctx: &Ctx, id: &str) -> StateResponse {
        let (node, vmid) = match parse_import_id(id) {
            Ok(x) => x,
            Err(d) => return StateResponse::error(d),
        };
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return StateResponse::error(d),
        };
        match self.locate(&client, vmid).await {
            Ok(Some(read)) if read.resource.node != node => {
                StateResponse::error(Diagnostic::error(
                    "Cannot import",
                    format!(
                        "VM {vmid} is on node {}, not {node}: import it as \"{}/{vmid}\" and set node = \"{}\".",
                        read.resource.node, read.resource.node, read.resource.node
                    ),
                ))
            }
            Ok(Some(read)) => {
                let ipv4 = Self::agent_ipv4(&client, &read, vmid).await;
                StateResponse::ok(state_from_pve(&read, &node, vmid, None, ipv4))
            }
            Ok(None) => StateResponse::error(Diagnostic::error(
                "Cannot import",
                format!(
                    "No VM {vmid} exists on the cluster (import id {id:?}, expected \"node/vm_id\")."
                ),
            )),
            Err(e) => StateResponse::error(api_error(format!("Cannot import VM {vmid}"), &e)),
        }
    }

    fn identity_schema(&self) -> Vec<IdentityAttribute> {
        vec![
            IdentityAttribute {
                name: "node".into(),
                ty: Type::String,
                required_for_import: true,
                description: "Node the VM was created on.".into(),
            },
            IdentityAttribute {
                name: "vm_id".into(),
                ty: Type::Number,
                required_for_import: true,
                description: "VM id.".into(),
            },
        ]
    }

    fn identity(&self, state: &Value) -> Option<Value> {
        let node = state.attr("node");
        let vmid = state.attr("vm_id");
        (node.as_str().is_some() && vmid.as_i64().is_some())
            .then(|| Value::object([("node", node.clone()), ("vm_id", vmid.clone())]))
    }

    async fn import_identity(&self, ctx: &Ctx, identity: &Value) -> StateResponse {
        let node = identity.attr("node").as_str().unwrap_or_default();
        let vmid = identity.attr("vm_id").as_i64().unwrap_or_default();
        self.import(ctx, &format!("{node}/{vmid}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_valid() {
        let errs = tfplugin::framework::schema::check_schema(&schema::schema().block, "");
        assert!(errs.is_empty(), "{errs:?}");
    }

    fn disks(entries: &[(&str, Option<i64>, Option<&str>)]) -> Value {
        Value::Map(
            entries
                .iter()
                .map(|(k, size, import)| {
                    (
                        (*k).to_owned(),
                        Value::object([
                            ("storage", Value::from("local-lvm")),
                            ("size_gb", size.map_or(Value::Null, Value::int)),
                            ("import_from", import.map_or(Value::Null, Value::from)),
                        ]),
                    )
                })
                .collect(),
        )
    }

    fn errors(d: &Diagnostics) -> String {
        d.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn plan_time_disk_rules() {
        let prior = Value::object([(
            "disk",
            disks(&[("scsi0", Some(10), None), ("scsi1", Some(2), None)]),
        )]);
        // Shrink, removal without allow_disk_removal, a new disk without size.
        let config = Value::object([
            (
                "disk",
                disks(&[("scsi0", Some(8), None), ("scsi2", None, None)]),
            ),
            ("allow_disk_removal", Value::from(false)),
        ]);
        let mut d = Diagnostics::new();
        check_disks(&config, &prior, false, &mut d);
        let e = errors(&d);
        assert!(e.contains("disk[\"scsi0\"].size_gb: 8 is smaller"), "{e}");
        assert!(e.contains("disk[\"scsi1\"] is no longer"), "{e}");
        assert!(
            e.contains("disk[\"scsi2\"].size_gb: a new empty disk"),
            "{e}"
        );
        let config = Value::object([
            ("disk", disks(&[("scsi0", Some(12), None)])),
            ("allow_disk_removal", Value::from(true)),
        ]);
        let mut d = Diagnostics::new();
        check_disks(&config, &prior, false, &mut d);
        assert!(!d.has_errors(), "{}", errors(&d));
    }

    #[test]
    fn boot_source_and_ip_config() {
        let img = Some("local:import/talos-nocloud-amd64.raw");
        let mut d = Diagnostics::new();
        let ok = check_boot_source(
            &Value::object([("disk", disks(&[("scsi0", None, img)]))]),
            &mut d,
        );
        assert!(ok && !d.has_errors());
        let ok = check_boot_source(&Value::object([("disk", disks(&[]))]), &mut d);
        assert!(!ok && errors(&d).contains("clone"));
        let init = |ip: &str, gw: Option<&str>| {
            Value::object([(
                "initialization",
                Value::object([(
                    "ip_config",
                    Value::Map(
                        [(
                            "ipconfig0".to_owned(),
                            Value::object([
                                ("ipv4_address", Value::from(ip)),
                                ("ipv4_gateway", gw.map_or(Value::Null, Value::from)),
                            ]),
                        )]
                        .into(),
                    ),
                )]),
            )])
        };
        let mut d = Diagnostics::new();
        check_ip_config(&init("10.0.0.11/24", Some("10.0.0.1")), &mut d);
        check_ip_config(&init("dhcp", None), &mut d);
        assert!(!d.has_errors(), "{}", errors(&d));
        check_ip_config(&init("10.0.0.11", None), &mut d);
        check_ip_config(&init("dhcp", Some("10.0.0.1")), &mut d);
        let e = errors(&d);
        assert!(e.contains("ipv4_address: \"10.0.0.11\" is neither"), "{e}");
        assert!(e.contains("a static address"), "{e}");
    }

    #[test]
    fn firmware_cdrom_and_mtu_rules() {
        let efi = |t: &str| {
            Value::object([(
                "efi_disk",
                Value::object([
                    ("storage", Value::from("local-lvm")),
                    ("type", Value::from(t)),
                    ("pre_enrolled_keys", Value::from(false)),
                ]),
            )])
        };
        let mut d = Diagnostics::new();
        check_firmware_and_cdrom(&efi("4m"), &efi("4m"), false, &mut d);
        check_firmware_and_cdrom(&efi("2m"), &Value::Null, true, &mut d);
        assert!(!d.has_errors(), "{}", errors(&d));
        check_firmware_and_cdrom(&efi("2m"), &efi("4m"), false, &mut d);
        assert!(errors(&d).contains("efi_disk.type"), "{}", errors(&d));
        let cd = |iface: &str| {
            Value::object([
                (
                    "cdrom",
                    Value::object([
                        ("file_id", Value::from("none")),
                        ("interface", Value::from(iface)),
                    ]),
                ),
                ("disk", disks(&[("scsi0", Some(8), None)])),
                (
                    "initialization",
                    Value::object([("datastore", Value::Null)]),
                ),
            ])
        };
        for (iface, want) in [
            ("ide3", None),
            ("sata5", None),
            ("ide2", Some("cloud-init")),
            ("scsi0", Some("also a `disk` slot")),
            ("ide4", Some("not a drive slot")),
            ("nvme0", Some("not a drive slot")),
        ] {
            let mut d = Diagnostics::new();
            check_firmware_and_cdrom(&cd(iface), &Value::Null, true, &mut d);
            match want {
                None => assert!(!d.has_errors(), "{iface}: {}", errors(&d)),
                Some(w) => assert!(errors(&d).contains(w), "{iface}: {}", errors(&d)),
            }
        }
        let nic = |model: &str| {
            Value::object([(
                "network",
                Value::Map(
                    [(
                        "net0".to_owned(),
                        Value::object([("model", Value::from(model)), ("mtu", Value::int(9000))]),
                    )]
                    .into(),
                ),
            )])
        };
        let mut d = Diagnostics::new();
        check_firmware_and_cdrom(&nic("virtio"), &Value::Null, true, &mut d);
        assert!(!d.has_errors(), "{}", errors(&d));
        check_firmware_and_cdrom(&nic("e1000"), &Value::Null, true, &mut d);
        assert!(
            errors(&d).contains("network[\"net0\"].mtu"),
            "{}",
            errors(&d)
        );
    }

    #[test]
    fn import_ids() {
        assert_eq!(parse_import_id("pve1/101").ok(), Some(("pve1".into(), 101)));
        for bad in ["101", "pve1/", "/101", "pve1/abc", "pve1/5"] {
            let e = parse_import_id(bad)
                .err()
                .map(|d| d.to_string())
                .unwrap_or_default();
            assert!(e.contains("node/vm_id"), "{bad}: {e}");
        }
    }
}
