//! QEMU VM verbs. Each async PVE call returns its [`Upid`]; the `*_and_wait` helpers add the
//! limiter, lock retries and task waiting for callers that need no resumable task id.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Upid;
use crate::client::{Client, Params, seg};
use crate::error::Error;
use crate::traced::TaskTrace;
use crate::types::{AgentInterface, PendingItem, VmConfig, VmResource, VmStatus, ipv4_addresses};

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

/// Whether `config` already has the values `set` and lacks the keys in `delete` (comparing
/// NICs and drives by meaning: PVE may write their options in another order). A new disk
/// (`storage:size`) counts as there when its slot holds a volume.
fn config_applied(config: &VmConfig, set: &Params, delete: &[&str]) -> bool {
    use crate::normalize::{DiskConfig, NetConfig};
    let same = |k: &str, want: &str| {
        let Some(have) = config.get_str(k) else {
            return false;
        };
        if have == want {
            return true;
        }
        if k.starts_with("net") {
            return have.parse::<NetConfig>().ok() == want.parse::<NetConfig>().ok();
        }
        if crate::types::is_disk_key(k) {
            let (Ok(h), Ok(w)) = (have.parse::<DiskConfig>(), want.parse::<DiskConfig>()) else {
                return false;
            };
            // `local-lvm:4` asked for a new volume; PVE wrote `local-lvm:vm-100-disk-1,size=4G`.
            return h == w || w.volume.split_once(':').map(|(s, _)| s) == h.storage();
        }
        if k == "tags" {
            return crate::normalize::parse_tags(&have) == crate::normalize::parse_tags(want);
        }
        false
    };
    set.0.iter().all(|(k, v)| same(k, v)) && delete.iter().all(|k| config.get_str(k).is_none())
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
        let upid = upid_of(&action, s)?;
        self.own_task(&upid);
        Ok(upid)
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

    /// `PUT …/config`: applied before the answer (no task). When the answer is lost, the
    /// config is read back: a change already there is success, one not there yet (same
    /// digest) is sent once more.
    pub async fn update_config_sync(
        &self,
        node: &str,
        vmid: u32,
        set: Params,
        delete: &[&str],
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let path = format!("{}/config", vm_path(node, vmid));
        let mut repeated = false;
        loop {
            let params = Self::config_params(set.clone(), delete, digest);
            match self.put::<Value>(&path, params).await {
                Ok(_) => return Ok(()),
                Err(e) if e.may_have_run() => {
                    let now = self.vm_config(node, vmid).await?;
                    if config_applied(&now, &set, delete) {
                        return Ok(());
                    }
                    let untouched = digest.is_some() && now.digest.as_deref() == digest;
                    if repeated || !untouched {
                        return Err(e);
                    }
                    repeated = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST …/config` and wait for its task, if it made one. A lost answer is settled as
    /// for [`Client::run_task_traced`]: the `qmconfig` task is waited for, then the config
    /// read back.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_config_and_wait(
        &self,
        node: &str,
        vmid: u32,
        set: Params,
        delete: &[&str],
        digest: Option<&str>,
        timeout: Duration,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<(), Error> {
        let upid = match self
            .update_config(node, vmid, set.clone(), delete, digest)
            .await
        {
            Ok(Some(upid)) => upid,
            Ok(None) => return Ok(()),
            Err(e) if e.may_have_run() => {
                let trace = TaskTrace::new(node, "qmconfig", vmid);
                let done = || async {
                    Ok(config_applied(
                        &self.vm_config(node, vmid).await?,
                        &set,
                        delete,
                    ))
                };
                return match self
                    .recover(&trace, Duration::from_secs(60), timeout, &done, observe)
                    .await?
                {
                    Some(_) => Ok(()),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        observe(&upid);
        self.wait_task(&upid, timeout).await.map(|_| ())
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
        let path = format!("{}/resize", vm_path(node, vmid));
        let action = format!("PUT {path}");
        // Growing to an absolute size twice grows once: safe to send again.
        let repeat = if size.starts_with('+') {
            crate::client::Repeat::Unsafe
        } else {
            crate::client::Repeat::Safe
        };
        let s: String = self
            .call_with(reqwest::Method::PUT, &path, p, repeat)
            .await?;
        let upid = upid_of(&action, s)?;
        self.own_task(&upid);
        Ok(upid)
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
