//! Power: start or stop to match `started`; a stop is a bounded shutdown, then a hard stop.

use std::time::{Duration, Instant};

use infraflux_proxmox::{Client, Error};
use tfplugin::{AttributePath, Diagnostic};

use super::errors::api_error;
use super::task::remaining;
use super::{ProxmoxVm, SHUTDOWN_GRACE};

impl ProxmoxVm {
    /// Start or stop to match `started`.
    pub(super) async fn converge_power(
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
    pub(super) async fn power_off(
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
