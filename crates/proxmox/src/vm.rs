//! QEMU VM verbs. Each async PVE call returns its [`Upid`]; the `*_and_wait` helpers add the
//! limiter, lock retries and task waiting for callers that need no resumable task id.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Upid;
use crate::client::{Client, Params, seg};
use crate::error::Error;
use crate::retry::retry;
use crate::types::{
    AgentInterface, PendingItem, TaskStatus, VmConfig, VmResource, VmStatus, ipv4_addresses,
};

/// Where a [`Client::run_task`] attempt failed, which decides whether to start it again.
#[derive(Debug)]
enum Attempt {
    Start(Error),
    Wait(Error),
}

impl Attempt {
    fn into_inner(self) -> Error {
        match self {
            Attempt::Start(e) | Attempt::Wait(e) => e,
        }
    }
}

impl crate::retry::Retryable for Attempt {
    fn is_retryable(&self) -> bool {
        match self {
            // `call` already repeated what is safe at the transport level.
            Attempt::Start(Error::Unreachable { .. }) => false,
            Attempt::Start(e) => e.is_retryable(),
            Attempt::Wait(e @ Error::TaskFailed { .. }) => e.is_retryable(),
            Attempt::Wait(_) => false,
        }
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Start(e) | Attempt::Wait(e) => e.fmt(f),
        }
    }
}

/// What to clone, and where to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloneSpec {
    pub source_node: String,
    pub source_vmid: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Another node (needs shared storage, or `storage` with a full clone).
    pub target_node: Option<String>,
    /// `None` = PVE's default: linked for templates, full otherwise.
    pub full: Option<bool>,
    /// Target storage (full clones only).
    pub storage: Option<String>,
    pub pool: Option<String>,
}

/// What one read of a VM returns: where it is and its config.
#[derive(Debug, Clone, PartialEq)]
pub struct VmRead {
    pub resource: VmResource,
    pub config: VmConfig,
}

/// How to delete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteOptions {
    /// Remove the VM from backup jobs, replication and HA too.
    pub purge: bool,
    /// Also delete disks of this VM id that the config does not reference.
    pub destroy_unreferenced_disks: bool,
}

impl Default for DeleteOptions {
    fn default() -> Self {
        Self {
            purge: true,
            destroy_unreferenced_disks: true,
        }
    }
}

fn vm_path(node: &str, vmid: u32) -> String {
    format!("/nodes/{}/qemu/{vmid}", seg(node))
}

fn upid_of(action: &str, s: String) -> Result<Upid, Error> {
    s.parse()
        .map_err(|e: crate::upid::UpidError| Error::Protocol {
            action: action.to_owned(),
            reason: e.to_string(),
        })
}

impl Client {
    async fn task_call(
        &self,
        method: reqwest::Method,
        path: String,
        params: Params,
    ) -> Result<Upid, Error> {
        let action = format!("{method} {path}");
        let s: String = self.call(method, &path, params).await?;
        upid_of(&action, s)
    }

    /// `POST /nodes/{node}/qemu`: a new VM from `config` (wire-form keys and values).
    pub async fn create_vm(&self, node: &str, vmid: u32, config: Params) -> Result<Upid, Error> {
        let mut p = Params::new().set("vmid", vmid);
        p.0.extend(config.0);
        let upid = self
            .task_call(
                reqwest::Method::POST,
                format!("/nodes/{}/qemu", seg(node)),
                p,
            )
            .await?;
        self.invalidate_vm_resources().await;
        Ok(upid)
    }

    /// Start cloning `spec.source_vmid` to `newid`; the task runs on the source node.
    pub async fn clone_vm(&self, spec: &CloneSpec, newid: u32) -> Result<Upid, Error> {
        let p = Params::new()
            .set("newid", newid)
            .opt("name", spec.name.as_deref())
            .opt("description", spec.description.as_deref())
            .opt("target", spec.target_node.as_deref())
            .opt("full", spec.full.map(crate::normalize::bool01))
            .opt("storage", spec.storage.as_deref())
            .opt("pool", spec.pool.as_deref());
        let upid = self
            .task_call(
                reqwest::Method::POST,
                format!("{}/clone", vm_path(&spec.source_node, spec.source_vmid)),
                p,
            )
            .await?;
        self.invalidate_vm_resources().await;
        Ok(upid)
    }

    /// The config with pending changes applied (what the VM will be after its next start).
    pub async fn vm_config(&self, node: &str, vmid: u32) -> Result<VmConfig, Error> {
        self.get(&format!("{}/config", vm_path(node, vmid)), Params::new())
            .await
    }

    /// The config the running VM actually has.
    pub async fn vm_config_current(&self, node: &str, vmid: u32) -> Result<VmConfig, Error> {
        self.get(
            &format!("{}/config", vm_path(node, vmid)),
            Params::new().flag("current", true),
        )
        .await
    }

    fn config_params(set: Params, delete: &[&str], digest: Option<&str>) -> Params {
        let mut p = set;
        if !delete.is_empty() {
            p = p.set("delete", delete.join(","));
        }
        p.opt("digest", digest)
    }

    /// `POST …/config` (a `qmconfig` task; needed for changes that allocate disks). `digest`
    /// makes PVE refuse when the config changed since it was read. `None` = nothing to wait for.
    pub async fn update_config(
        &self,
        node: &str,
        vmid: u32,
        set: Params,
        delete: &[&str],
        digest: Option<&str>,
    ) -> Result<Option<Upid>, Error> {
        let path = format!("{}/config", vm_path(node, vmid));
        let action = format!("POST {path}");
        let v: Value = self
            .post(&path, Self::config_params(set, delete, digest))
            .await?;
        match v {
            Value::String(s) => Ok(Some(upid_of(&action, s)?)),
            _ => Ok(None),
        }
    }

    /// `PUT …/config`: applied before the answer (no task).
    pub async fn update_config_sync(
        &self,
        node: &str,
        vmid: u32,
        set: Params,
        delete: &[&str],
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let _: Value = self
            .put(
                &format!("{}/config", vm_path(node, vmid)),
                Self::config_params(set, delete, digest),
            )
            .await?;
        Ok(())
    }

    /// Changes that wait for a restart: only these justify a reboot.
    pub async fn vm_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingItem>, Error> {
        self.get(&format!("{}/pending", vm_path(node, vmid)), Params::new())
            .await
    }

    /// `size` is absolute (`40G`) or relative (`+8G`); PVE refuses to shrink.
    pub async fn resize_disk(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<Upid, Error> {
        let p = Params::new().set("disk", disk).set("size", size);
        self.task_call(
            reqwest::Method::PUT,
            format!("{}/resize", vm_path(node, vmid)),
            p,
        )
        .await
    }

    /// The VM's current status (`running`, `stopped`, …).
    pub async fn vm_status(&self, node: &str, vmid: u32) -> Result<VmStatus, Error> {
        self.get(
            &format!("{}/status/current", vm_path(node, vmid)),
            Params::new(),
        )
        .await
    }

    /// Start the VM (a task).
    pub async fn start_vm(&self, node: &str, vmid: u32) -> Result<Upid, Error> {
        self.task_call(
            reqwest::Method::POST,
            format!("{}/status/start", vm_path(node, vmid)),
            Params::new(),
        )
        .await
    }

    /// Hard stop. `overrule_shutdown` aborts a running shutdown task first.
    pub async fn stop_vm(
        &self,
        node: &str,
        vmid: u32,
        overrule_shutdown: bool,
    ) -> Result<Upid, Error> {
        let p = if overrule_shutdown {
            Params::new().flag("overrule-shutdown", true)
        } else {
            Params::new()
        };
        self.task_call(
            reqwest::Method::POST,
            format!("{}/status/stop", vm_path(node, vmid)),
            p,
        )
        .await
    }

    /// ACPI shutdown; PVE waits `timeout` seconds inside the task.
    pub async fn shutdown_vm(
        &self,
        node: &str,
        vmid: u32,
        timeout_s: Option<u32>,
        force_stop: bool,
    ) -> Result<Upid, Error> {
        let p = Params::new()
            .opt("timeout", timeout_s)
            .flag("forceStop", force_stop);
        self.task_call(
            reqwest::Method::POST,
            format!("{}/status/shutdown", vm_path(node, vmid)),
            p,
        )
        .await
    }

    /// Reboot the guest (ACPI), waiting up to `timeout_s` seconds inside the task.
    pub async fn reboot_vm(
        &self,
        node: &str,
        vmid: u32,
        timeout_s: Option<u32>,
    ) -> Result<Upid, Error> {
        self.task_call(
            reqwest::Method::POST,
            format!("{}/status/reboot", vm_path(node, vmid)),
            Params::new().opt("timeout", timeout_s),
        )
        .await
    }

    /// Delete the VM (a task); the shared resources list is dropped so readers see it gone.
    pub async fn delete_vm(
        &self,
        node: &str,
        vmid: u32,
        opts: DeleteOptions,
    ) -> Result<Upid, Error> {
        let p = Params::new().flag("purge", opts.purge).flag(
            "destroy-unreferenced-disks",
            opts.destroy_unreferenced_disks,
        );
        let upid = self
            .task_call(reqwest::Method::DELETE, vm_path(node, vmid), p)
            .await?;
        self.invalidate_vm_resources().await;
        Ok(upid)
    }

    /// Move the VM to `target` (a task on the source node): online and with local disks when asked.
    pub async fn migrate_vm(
        &self,
        node: &str,
        vmid: u32,
        target: &str,
        online: bool,
        with_local_disks: bool,
    ) -> Result<Upid, Error> {
        let mut p = Params::new().set("target", target);
        // Only what differs from PVE's defaults. `online` is ignored for a stopped VM (PVE
        // warns and migrates offline, copying local disks itself); a running VM with disks on
        // local storage needs `with-local-disks`.
        if online {
            p = p.flag("online", true);
        }
        if with_local_disks {
            p = p.flag("with-local-disks", true);
        }
        let upid = self
            .task_call(
                reqwest::Method::POST,
                format!("{}/migrate", vm_path(node, vmid)),
                p,
            )
            .await?;
        self.invalidate_vm_resources().await;
        Ok(upid)
    }

    /// The guest agent's view of the NICs. Fails while the agent is not up.
    pub async fn agent_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<AgentInterface>, Error> {
        let v: Value = self
            .get(
                &format!("{}/agent/network-get-interfaces", vm_path(node, vmid)),
                Params::new(),
            )
            .await?;
        let result = v.get("result").cloned().unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(result).map_err(|e| Error::Protocol {
            action: "GET …/agent/network-get-interfaces".into(),
            reason: e.to_string(),
        })
    }

    /// Poll the guest agent until it reports an IPv4 address.
    pub async fn wait_for_ipv4(
        &self,
        node: &str,
        vmid: u32,
        timeout: Duration,
    ) -> Result<Vec<String>, Error> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            let last = match self.agent_interfaces(node, vmid).await {
                Ok(ifaces) => {
                    let ips = ipv4_addresses(&ifaces);
                    if !ips.is_empty() {
                        return Ok(ips);
                    }
                    "no IPv4 address yet".to_owned()
                }
                // "QEMU guest agent is not running" while the guest boots.
                Err(Error::Api { message, .. }) if message.contains("agent is not running") => {
                    message
                }
                Err(e) => return Err(e),
            };
            if started.elapsed() + pause > timeout {
                return Err(Error::Timeout {
                    what: format!("an IPv4 address from the guest agent of VM {vmid} ({last})"),
                    after: timeout,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 3 / 2).min(Duration::from_secs(5));
        }
    }

    /// Start a task and wait for it; start and wait again when it failed on a lock.
    ///
    /// A task is started again only when PVE refused to start it (lock, 5xx) or when it ran
    /// and failed on a lock. A start whose connection broke, or a task that may still be
    /// running (its wait failed), is never started twice: a second clone would leave the
    /// first one's VM behind.
    pub async fn run_task<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        start: F,
    ) -> Result<TaskStatus, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Upid, Error>>,
    {
        retry(self.inner.opts.retry, what, || async {
            let upid = start().await.map_err(Attempt::Start)?;
            self.wait_task(&upid, timeout).await.map_err(Attempt::Wait)
        })
        .await
        .map_err(Attempt::into_inner)
    }

    /// Clone under the per-node/per-storage limiter, with a VM id from `vm_id_range`, retrying
    /// lock timeouts and id races. Returns the new VM id.
    pub async fn clone_and_wait(&self, spec: &CloneSpec, timeout: Duration) -> Result<u32, Error> {
        // The qmclone task runs on the source node (its UPID names it), so that node's slots.
        let _permit = self
            .limiter()
            .acquire(&spec.source_node, spec.storage.as_deref())
            .await;
        self.with_new_vmid(|newid| async move {
            self.run_task(
                &format!("clone of VM {} to {newid}", spec.source_vmid),
                timeout,
                || self.clone_vm(spec, newid),
            )
            .await?;
            Ok(newid)
        })
        .await
    }

    /// Read a VM the cheap way: its node from the shared resources list, then one config GET
    /// (so N reads cost N + 1 requests). `None` = the VM is gone. A VM that moved since the
    /// list was fetched (HA, someone else's migration) is looked up again in a fresh list.
    pub async fn read_vm(&self, vmid: u32) -> Result<Option<VmRead>, Error> {
        for fresh in [false, true] {
            if fresh {
                self.invalidate_vm_resources().await;
            }
            let Some(resource) = self.find_vm(vmid).await? else {
                if fresh {
                    return Ok(None);
                }
                // Created since the list was fetched (by another process)? Look once more.
                continue;
            };
            match self.vm_config(&resource.node, vmid).await {
                Ok(config) => return Ok(Some(VmRead { resource, config })),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod attempt_tests {
    use super::*;
    use crate::retry::Retryable;

    #[test]
    fn a_task_that_may_have_run_is_not_started_again() {
        let lock = || Error::Lock {
            action: "POST /x".into(),
            message: "can't lock file 'x' - got timeout".into(),
        };
        let broke = || Error::Unreachable {
            address: "127.0.0.1:8006".into(),
            timeout: Duration::from_secs(1),
            reason: "the connection broke before an answer".into(),
        };
        let task = |exit: &str| Error::TaskFailed {
            upid: String::new(),
            node: "pve1".into(),
            kind: "qmclone".into(),
            exit_status: exit.into(),
            log_tail: vec![],
        };
        assert!(Attempt::Start(lock()).is_retryable());
        assert!(!Attempt::Start(broke()).is_retryable());
        assert!(!Attempt::Wait(broke()).is_retryable());
        assert!(!Attempt::Wait(lock()).is_retryable());
        assert!(Attempt::Wait(task("can't lock file 'x' - got timeout")).is_retryable());
        assert!(!Attempt::Wait(task("clone failed")).is_retryable());
    }
}
