//! Tasks that survive lost answers and lock timeouts: [`Client::run_task`] retries what PVE
//! refused to start, [`Client::run_task_traced`] settles a start whose answer was lost by
//! finding its task or its result instead of starting it twice, and the `*_and_wait` verbs
//! built on them.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::Upid;
use crate::client::Client;
use crate::client::Params;
use crate::error::Error;
use crate::retry::retry;
use crate::types::TaskStatus;
use crate::vm::{CloneSpec, DeleteOptions};

/// Where a [`Client::run_task`] attempt failed, which decides whether to start it again.
#[derive(Debug)]
enum Attempt {
    Start(Error),
    Wait(Error),
    /// The start's answer was lost and no trace of it was found: start it again.
    Lost(Error),
}

impl Attempt {
    fn into_inner(self) -> Error {
        match self {
            Attempt::Start(e) | Attempt::Wait(e) | Attempt::Lost(e) => e,
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
            Attempt::Lost(_) => true,
        }
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Start(e) | Attempt::Wait(e) | Attempt::Lost(e) => e.fmt(f),
        }
    }
}

/// How to find the task a start request made when its answer was lost, and how to tell
/// that what it was for has happened.
#[derive(Debug, Clone)]
pub struct TaskTrace {
    /// The node the task runs on (a clone's source node, a migration's source node).
    pub node: String,
    /// PVE's task type (`qmclone`, `qmstart`, …).
    pub kind: &'static str,
    /// The task's id field: the VM id it is about (a clone's source).
    pub id: String,
}

impl TaskTrace {
    /// The task `kind` about VM `vmid` on `node`.
    pub fn new(node: &str, kind: &'static str, vmid: u32) -> Self {
        Self {
            node: node.to_owned(),
            kind,
            id: vmid.to_string(),
        }
    }
}

/// A finished task's status when the result was found without its task.
fn done_without_task(trace: &TaskTrace) -> TaskStatus {
    TaskStatus {
        status: "stopped".into(),
        exitstatus: Some("OK".into()),
        kind: trace.kind.to_owned(),
        node: trace.node.clone(),
    }
}

impl Client {
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

    /// [`Client::run_task`] that survives a lost answer: when the start request may have run
    /// ([`Error::may_have_run`]) it is not sent again blindly. The tasks `trace` describes
    /// that this client did not start (and that began since the request) are waited for;
    /// then `done` says whether what the task was for has happened. Only when it has not is
    /// the task started again. `observe` sees every task waited for.
    pub async fn run_task_traced<F, Fut, D, DFut>(
        &self,
        what: &str,
        timeout: Duration,
        trace: &TaskTrace,
        start: F,
        done: D,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<TaskStatus, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Upid, Error>>,
        D: Fn() -> DFut,
        DFut: Future<Output = Result<bool, Error>>,
    {
        retry(self.inner.opts.retry, what, || async {
            let sent = Instant::now();
            let upid = match start().await {
                Ok(u) => u,
                Err(e) if e.may_have_run() => {
                    tracing::info!(what, error = %e, "answer lost; looking for the task");
                    return match self
                        .recover(trace, sent.elapsed(), timeout, &done, observe)
                        .await
                    {
                        Ok(Some(st)) => Ok(st),
                        Ok(None) => Err(Attempt::Lost(e)),
                        Err(e) => Err(Attempt::Wait(e)),
                    };
                }
                Err(e) => return Err(Attempt::Start(e)),
            };
            observe(&upid);
            self.wait_task(&upid, timeout).await.map_err(Attempt::Wait)
        })
        .await
        .map_err(Attempt::into_inner)
    }

    /// After a lost answer: wait for the tasks it may have started, then ask `done`.
    /// `Some` = it happened (the task's status), `None` = start it again.
    pub(crate) async fn recover<D, DFut>(
        &self,
        trace: &TaskTrace,
        since: Duration,
        timeout: Duration,
        done: &D,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<Option<TaskStatus>, Error>
    where
        D: Fn() -> DFut,
        DFut: Future<Output = Result<bool, Error>>,
    {
        let found = self
            .foreign_tasks(&trace.node, trace.kind, Some(&trace.id), Some(since))
            .await?;
        let mut last = None;
        for upid in &found {
            observe(upid);
            match self.wait_task(upid, timeout).await {
                Ok(st) => last = Some(Ok(st)),
                Err(e @ Error::TaskFailed { .. }) => last = Some(Err(e)),
                Err(e) => return Err(e),
            }
        }
        if done().await? {
            return Ok(Some(match last {
                Some(Ok(st)) => st,
                _ => done_without_task(trace),
            }));
        }
        match last {
            // Exactly our task, and it failed for good: that is the answer.
            Some(Err(e)) if found.len() == 1 && !e.is_retryable() => Err(e),
            _ => Ok(None),
        }
    }

    /// Start the VM and wait; a lost answer is settled by its status.
    pub async fn start_and_wait(
        &self,
        node: &str,
        vmid: u32,
        timeout: Duration,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<TaskStatus, Error> {
        self.run_task_traced(
            &format!("start of VM {vmid}"),
            timeout,
            &TaskTrace::new(node, "qmstart", vmid),
            || self.start_vm(node, vmid),
            || async { Ok(self.vm_status(node, vmid).await?.status == "running") },
            observe,
        )
        .await
    }

    /// Stop the VM hard and wait; a lost answer is settled by its status.
    pub async fn stop_and_wait(
        &self,
        node: &str,
        vmid: u32,
        timeout: Duration,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<TaskStatus, Error> {
        self.run_task_traced(
            &format!("stop of VM {vmid}"),
            timeout,
            &TaskTrace::new(node, "qmstop", vmid),
            || self.stop_vm(node, vmid, true),
            || async { Ok(self.vm_status(node, vmid).await?.status != "running") },
            observe,
        )
        .await
    }

    /// Delete the VM and wait; a VM already gone is success, and a lost answer is settled
    /// by whether the VM still exists.
    pub async fn delete_and_wait(
        &self,
        node: &str,
        vmid: u32,
        opts: DeleteOptions,
        timeout: Duration,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<(), Error> {
        let gone = || async {
            self.invalidate_vm_resources().await;
            Ok(self.find_vm(vmid).await?.is_none())
        };
        let r = self
            .run_task_traced(
                &format!("deletion of VM {vmid}"),
                timeout,
                &TaskTrace::new(node, "qmdestroy", vmid),
                || self.delete_vm(node, vmid, opts),
                gone,
                observe,
            )
            .await;
        self.invalidate_vm_resources().await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Grow `disk` to `gib` GiB and wait (an absolute size: repeating it is harmless).
    pub async fn resize_and_wait(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        gib: u64,
        timeout: Duration,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<TaskStatus, Error> {
        let size = format!("{gib}G");
        self.run_task_traced(
            &format!("resize of disk {disk} of VM {vmid}"),
            timeout,
            &TaskTrace::new(node, "resize", vmid),
            || self.resize_disk(node, vmid, disk, &size),
            || async {
                let cfg = self.vm_config(node, vmid).await?;
                Ok(cfg
                    .disks()
                    .ok()
                    .and_then(|d| d.get(disk).and_then(|d| d.size_gib()))
                    .is_some_and(|have| have >= gib))
            },
            observe,
        )
        .await
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
            self.clone_traced(spec, newid, timeout, &|_| {}).await?;
            Ok(newid)
        })
        .await
    }

    /// Clone `spec` to `newid` and wait. A lost answer is settled by whether `newid` now
    /// exists (its clone task, which runs on the source node, is waited for first).
    pub async fn clone_traced(
        &self,
        spec: &CloneSpec,
        newid: u32,
        timeout: Duration,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<TaskStatus, Error> {
        self.run_task_traced(
            &format!("clone of VM {} to {newid}", spec.source_vmid),
            timeout,
            &TaskTrace::new(&spec.source_node, "qmclone", spec.source_vmid),
            || self.clone_vm(spec, newid),
            || self.exists_unlocked(newid),
            observe,
        )
        .await
    }

    /// Create VM `vmid` on `node` from `config` and wait. A lost answer is settled by
    /// whether the VM now exists.
    pub async fn create_traced(
        &self,
        node: &str,
        vmid: u32,
        config: &Params,
        timeout: Duration,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<TaskStatus, Error> {
        self.run_task_traced(
            &format!("creation of VM {vmid}"),
            timeout,
            &TaskTrace::new(node, "qmcreate", vmid),
            || self.create_vm(node, vmid, config.clone()),
            || self.exists_unlocked(vmid),
            observe,
        )
        .await
    }

    /// Migrate and wait; a lost answer is settled by where the VM is.
    #[allow(clippy::too_many_arguments)]
    pub async fn migrate_traced(
        &self,
        node: &str,
        vmid: u32,
        target: &str,
        online: bool,
        with_local_disks: bool,
        timeout: Duration,
        observe: &(dyn Fn(&Upid) + Send + Sync),
    ) -> Result<TaskStatus, Error> {
        self.run_task_traced(
            &format!("migration of VM {vmid} to node {target}"),
            timeout,
            &TaskTrace::new(node, "qmigrate", vmid),
            || self.migrate_vm(node, vmid, target, online, with_local_disks),
            || async {
                self.invalidate_vm_resources().await;
                Ok(self
                    .find_vm(vmid)
                    .await?
                    .is_some_and(|r| r.node == target && r.lock.is_none()))
            },
            observe,
        )
        .await
    }

    /// The VM exists and no task holds its config lock (a finished create or clone).
    pub async fn exists_unlocked(&self, vmid: u32) -> Result<bool, Error> {
        self.invalidate_vm_resources().await;
        Ok(self.find_vm(vmid).await?.is_some_and(|r| r.lock.is_none()))
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
        let broke = || Error::AnswerLost {
            action: "POST /x".into(),
            address: "127.0.0.1:8006".into(),
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
        // Only once nothing was found of it.
        assert!(Attempt::Lost(broke()).is_retryable());
        assert!(!Attempt::Wait(lock()).is_retryable());
        assert!(Attempt::Wait(task("can't lock file 'x' - got timeout")).is_retryable());
        assert!(!Attempt::Wait(task("clone failed")).is_retryable());
    }
}
