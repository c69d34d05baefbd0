//! Update: wait for a task a previous apply left running, migrate when `node` changed, one
//! config change with the digest read just before, grow disks, drop removed ones, power, then
//! reboot for what PVE keeps pending (or warn). The state after create and update is the plan
//! with its unknowns filled from a fresh read.

use std::time::Instant;

use infraflux_proxmox::types::VmConfig;
use infraflux_proxmox::{Client, Error};
use tfplugin::framework::resource::Private;
use tfplugin::framework::timeouts::timeout;
use tfplugin::{AttributePath, Ctx, Diagnostic, Diagnostics, StateResponse, UpdateRequest, Value};

use super::convert::{config_changes, data_disks, fill_unknowns, state_from_pve};
use super::errors::{api_error, config_key_path};
use super::task::{TaskSlot, cancellable, pending_task, remaining, resume_task};
use super::{ProxmoxVm, UPDATE_TIMEOUT, vmid_of};

impl ProxmoxVm {
    /// The whole update; see the module documentation.
    pub(super) async fn update_vm(&self, ctx: &Ctx, req: UpdateRequest) -> StateResponse {
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

    /// The state after create/update: the plan, unknowns filled from a fresh read.
    pub(super) async fn applied_state(
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
    pub(super) async fn apply_config(
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
}
