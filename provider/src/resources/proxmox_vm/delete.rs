//! Delete: wait for a task a previous apply left running (it holds the VM's lock), shut down
//! (bounded), stop, delete with purge. A VM that is already gone is success.

use std::time::Instant;

use infraflux_proxmox::{DeleteOptions, Error};
use tfplugin::framework::timeouts::timeout;
use tfplugin::{Ctx, DeleteRequest, Diagnostics};

use super::errors::api_error;
use super::task::{TaskSlot, cancellable, pending_task, remaining, resume_task};
use super::{DELETE_TIMEOUT, ProxmoxVm, vmid_of};

impl ProxmoxVm {
    /// The whole delete; see the module documentation.
    pub(super) async fn delete_vm(&self, ctx: &Ctx, req: DeleteRequest) -> Diagnostics {
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
}
