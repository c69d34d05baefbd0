//! PVE tasks across applies: the task an apply waits for is remembered, and when the apply
//! gives up (timeout, cancel) it goes to private state, so the next apply waits for that task
//! instead of starting it again. Also cancellation and deadlines.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use infraflux_proxmox::types::TaskStatus;
use infraflux_proxmox::{Client, Error, Upid};
use tfplugin::framework::resource::Private;
use tfplugin::{Ctx, Diagnostic};

use super::errors::api_error;

/// Run `fut`, giving up when Terraform cancels.
pub(super) async fn cancellable<T>(
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

pub(super) fn remaining(deadline: Instant) -> Duration {
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
pub(super) struct TaskSlot {
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
    pub(super) fn get(&self) -> Option<(Upid, String)> {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub(super) fn set_vmid(&self, vmid: u32) {
        *self.vmid.lock().unwrap_or_else(|e| e.into_inner()) = Some(vmid);
    }
    pub(super) fn vmid(&self) -> Option<u32> {
        *self.vmid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `private` plus the unfinished task, if any.
    pub(super) fn private(&self, mut private: Private) -> Private {
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
    pub(super) async fn run<F, Fut>(
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

    pub(super) async fn wait(
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
pub(super) fn pending_task(private: &Private) -> Option<(Upid, String)> {
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
pub(super) async fn resume_task(
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
