//! `infraflux_proxmox_vm`: one QEMU VM on Proxmox VE, cloned from a template or created from
//! a disk image (`disk { import_from }`) or an ISO.
//!
//! - [`schema`]: attributes; [`convert`]: PVE config ⇄ Terraform value.
//! - [`plan`]: exactly one boot source; disks never shrink, move or vanish silently (plan-time
//!   errors naming the attribute).
//! - [`create`]: clone (limiter, lock retries, VM id races in the client) → config, or one
//!   create call with the whole config → grow disks → start. As soon as the VM exists its state
//!   goes back with any later error, so Terraform saves it (tainted).
//! - Read (here): one shared `/cluster/resources` answer + one config GET; the guest agent is
//!   asked only while `ipv4_addresses` is empty and the VM runs with an agent, and never
//!   waited for.
//! - [`converge`]: update — one config PUT with the digest read just before, migration, disks,
//!   pending changes; [`power`]: start/stop after it.
//! - [`delete`]: shutdown (bounded) → stop → delete with purge; already gone is success.
//! - [`task`]: tasks an apply left running are kept in private state and waited for next time;
//!   [`errors`]: PVE errors on the attribute to blame.

mod converge;
mod convert;
mod create;
mod delete;
mod errors;
mod plan;
mod power;
mod schema;
mod task;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use infraflux_proxmox::types::ipv4_addresses;
use infraflux_proxmox::vm::VmRead;
use infraflux_proxmox::{Client, Error};
use tfplugin::framework::resource::{IdentityAttribute, PlanRequest, PlanResponse};
use tfplugin::{
    CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics, ReadRequest, Resource, Schema,
    StateResponse, Type, UpdateRequest, Value,
};

use crate::provider::Shared;
use convert::{agent_enabled, state_from_pve};
use errors::api_error;

const CREATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a destroy waits for the guest to shut down before stopping it hard.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// The resource; its client comes from the provider's [`Shared`] state.
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
}

fn vmid_of(v: &Value) -> Option<u32> {
    v.attr("vm_id").as_i64().and_then(|n| u32::try_from(n).ok())
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
        plan::modify_plan(req, resp);
    }

    async fn create(&self, ctx: &Ctx, req: CreateRequest) -> StateResponse {
        self.create_vm(ctx, req).await
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
        self.update_vm(ctx, req).await
    }

    async fn delete(&self, ctx: &Ctx, req: DeleteRequest) -> Diagnostics {
        self.delete_vm(ctx, req).await
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
mod tests;
