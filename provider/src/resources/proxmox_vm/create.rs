//! Create: clone a template (or create from a disk image or ISO) under the limiter, then
//! configure, grow disks and start. As soon as the VM exists its state goes back with any later
//! error, so Terraform saves it (tainted) and nothing is orphaned.

use std::time::{Duration, Instant};

use infraflux_proxmox::{Client, CloneSpec, Error};
use tfplugin::framework::resource::Private;
use tfplugin::framework::timeouts::timeout;
use tfplugin::{AttributePath, CreateRequest, Ctx, Diagnostic, Diagnostics, StateResponse, Value};

use super::convert::{config_changes, null_unknowns};
use super::errors::{api_error, clone_error, config_key_path};
use super::task::{TaskSlot, cancellable, remaining};
use super::{CREATE_TIMEOUT, ProxmoxVm, vmid_of};

impl ProxmoxVm {
    /// The whole create; see the module documentation.
    pub(super) async fn create_vm(&self, ctx: &Ctx, req: CreateRequest) -> StateResponse {
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
}
