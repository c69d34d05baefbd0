//! `infraflux_proxmox_vm`: one QEMU VM on Proxmox VE, created by cloning a template.
//!
//! - [`schema`]: attributes; [`convert`]: PVE config ⇄ Terraform value.
//! - Create: clone (limiter, lock retries, VM id races in the client) → config → start. As soon
//!   as the VM exists its state goes back with any later error, so Terraform saves it (tainted).
//! - Read: one shared `/cluster/resources` answer + one config GET; the guest agent is asked
//!   only while `ipv4_addresses` is empty and the VM runs with an agent, and never waited for.
//! - Update: one config PUT with the digest read just before; power changes after it.
//! - Delete: shutdown (bounded) → stop → delete with purge; already gone is success.

mod convert;
mod schema;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tfplugin::framework::resource::{IdentityAttribute, PlanRequest, PlanResponse};
use tfplugin::framework::timeouts::timeout;
use tfplugin::{
    AttributePath, CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics, ReadRequest,
    Resource, Schema, StateResponse, Type, UpdateRequest, Value,
};

use crate::provider::Shared;
use crate::proxmox::types::ipv4_addresses;
use crate::proxmox::vm::VmRead;
use crate::proxmox::{Client, CloneSpec, DeleteOptions, Error};

use convert::{agent_enabled, config_changes, fill_unknowns, null_unknowns, state_from_pve};

const CREATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a destroy waits for the guest to shut down before stopping it hard.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

pub struct ProxmoxVm {
    shared: Arc<Shared>,
    client: OnceLock<Client>,
}

impl ProxmoxVm {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            client: OnceLock::new(),
        }
    }

    /// The provider process's one client (shared limiter and resources cache).
    fn client(&self) -> Result<Client, Diagnostic> {
        if let Some(c) = self.client.get() {
            return Ok(c.clone());
        }
        let settings = match self.shared.proxmox.get() {
            Some(Some(s)) => s,
            _ => {
                return Err(Diagnostic::error(
                    "Proxmox VE is not configured",
                    "infraflux_proxmox_vm needs a `proxmox { endpoint = …, api_token = … }` block in the `provider \"infraflux\"` block (or the PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN environment variables).",
                ));
            }
        };
        let c = Client::new(settings).map_err(|e| {
            Diagnostic::error("Invalid Proxmox VE settings", e.to_string())
                .at(AttributePath::attr("proxmox"))
        })?;
        Ok(self.client.get_or_init(|| c).clone())
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

impl ProxmoxVm {
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

    /// Apply config changes with the digest of the config read just before.
    async fn apply_config(
        client: &Client,
        node: &str,
        vmid: u32,
        planned: &Value,
        prior: &Value,
    ) -> Result<(), Diagnostic> {
        let current = client
            .vm_config(node, vmid)
            .await
            .map_err(|e| api_error(format!("Cannot read the config of VM {vmid}"), &e))?;
        let (set, delete) = config_changes(planned, prior, &current);
        if set.0.is_empty() && delete.is_empty() {
            return Ok(());
        }
        tracing::debug!(vmid, keys = ?set.keys(), ?delete, "updating VM config");
        let delete: Vec<&str> = delete.iter().map(String::as_str).collect();
        client
            .update_config_sync(node, vmid, set, &delete, current.digest.as_deref())
            .await
            .map_err(|e| {
                let d = api_error(format!("Cannot update the config of VM {vmid}"), &e);
                match &e {
                    Error::Validation { errors, .. } => match config_key_path(errors.keys()) {
                        Some(p) => d.at(p),
                        None => d,
                    },
                    _ => d,
                }
            })
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
        _ => return None,
    };
    Some(p)
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
        if creating && req.config.attr("clone").is_null() {
            resp.diags.push(
                Diagnostic::error(
                    "A clone block is needed",
                    "infraflux_proxmox_vm creates VMs by cloning a template for now: add `clone { source_vm_id = <template id> }`. (Import an existing VM with `terraform import … node/vm_id`.)",
                )
                .at(AttributePath::attr("clone")),
            );
            return;
        }
        let node = planned.attr("node").clone();
        // Defaults inside blocks the framework does not fill (map-nested) or that follow `node`.
        if let Some(Value::Object(clone)) = planned.as_object_mut().and_then(|m| m.get_mut("clone"))
            && matches!(
                clone.get("source_node"),
                None | Some(Value::Null | Value::Unknown)
            )
        {
            clone.insert("source_node".into(), node.clone());
        }
        if let Some(Value::Map(nets)) = planned.as_object_mut().and_then(|m| m.get_mut("network")) {
            for nic in nets.values_mut() {
                if nic.attr("model").is_null() {
                    nic.set_attr("model", Value::from("virtio"));
                }
            }
        }
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
        // What the user leaves unset is not touched, so it keeps its value.
        for k in ["name", "description", "tags", "on_boot"] {
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
        let clone = planned.attr("clone");
        let Some(source_vmid) = clone
            .attr("source_vm_id")
            .as_i64()
            .and_then(|n| u32::try_from(n).ok())
        else {
            return StateResponse::error(
                Diagnostic::error("A clone block is needed", "Set clone.source_vm_id.")
                    .at(AttributePath::attr("clone")),
            );
        };
        let source_node = clone
            .attr("source_node")
            .as_str()
            .unwrap_or(&node)
            .to_owned();
        let spec = CloneSpec {
            target_node: (source_node != node).then(|| node.clone()),
            source_node,
            source_vmid,
            name: planned.attr("name").as_str().map(str::to_owned),
            description: None,
            full: clone.attr("full").as_bool(),
            storage: clone.attr("storage").as_str().map(str::to_owned),
            pool: None,
        };
        let wanted = vmid_of(&planned);
        // Not cancellable: a clone abandoned half-way would be a VM nobody knows of. It is
        // bounded by the create timeout instead.
        let cloned = async {
            let r = match wanted {
                Some(vmid) => {
                    let _permit = client
                        .limiter()
                        .acquire(&spec.source_node, spec.storage.as_deref())
                        .await;
                    client
                        .run_task(
                            &format!("clone of VM {source_vmid} to {vmid}"),
                            remaining(deadline),
                            || client.clone_vm(&spec, vmid),
                        )
                        .await
                        .map(|_| vmid)
                }
                None => client.clone_and_wait(&spec, remaining(deadline)).await,
            };
            r.map_err(|e| clone_error(&e, &spec))
        }
        .await;
        let vmid = match cloned {
            Ok(v) => v,
            Err(d) => return StateResponse::error(d),
        };
        tracing::info!(vmid, node = %node, "VM cloned");
        // From here on the VM exists: every error returns its state.
        let mut known = planned.clone();
        known.set_attr("vm_id", Value::int(i64::from(vmid)));
        known.set_attr("id", Value::from(format!("{node}/{vmid}")));
        let started = planned.attr("started").as_bool().unwrap_or(true);
        let steps = async {
            Self::apply_config(&client, &node, vmid, &known, &Value::Null).await?;
            Self::converge_power(&client, &node, vmid, started, deadline).await?;
            self.applied_state(&client, &known, &node, vmid, None).await
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
                    private: Default::default(),
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
        let prior_ipv4: Vec<String> = prior
            .attr("ipv4_addresses")
            .as_elements()
            .unwrap_or(&[])
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let steps = async {
            let at = match self.locate(&client, vmid).await {
                Ok(Some(r)) => r.resource.node,
                Ok(None) => {
                    return Err(Diagnostic::error(
                        format!("VM {vmid} is gone"),
                        "The VM was deleted outside Terraform; run `terraform apply` again to create it.",
                    ));
                }
                Err(e) => return Err(api_error(format!("Cannot read VM {vmid}"), &e)),
            };
            Self::apply_config(&client, &at, vmid, &planned, &prior).await?;
            Self::converge_power(&client, &at, vmid, started, deadline).await?;
            self.applied_state(&client, &planned, &node, vmid, Some(prior_ipv4.clone()))
                .await
        };
        match cancellable(ctx, "updating the VM", steps).await {
            Ok(state) => StateResponse::ok(state),
            Err(d) => {
                // Keep the prior state: what changed is found by the next refresh.
                StateResponse {
                    state: prior,
                    private: req.private,
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
        let steps = async {
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
