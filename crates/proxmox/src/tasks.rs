//! Waiting for worker tasks. Status is polled on the node named in the UPID (a clone to
//! another node still runs on the source node), with a growing interval.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Upid;
use crate::client::{Client, Params, seg};
use crate::error::Error;
use crate::types::{TaskInfo, TaskStatus};

/// How many task-log lines a failure carries.
pub const LOG_TAIL: usize = 10;

const POLL_FIRST: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_secs(2);

impl Client {
    /// The status of a task, asked of the node that runs it.
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus, Error> {
        self.get(
            &format!(
                "/nodes/{}/tasks/{}/status",
                seg(&upid.node),
                seg(upid.as_str())
            ),
            Params::new(),
        )
        .await
    }

    /// Tasks on `node` of type `kind` about `id` (a VM id), started by this client's user,
    /// newest first; `running_only` asks for those still running.
    pub async fn node_tasks(
        &self,
        node: &str,
        kind: &str,
        id: Option<&str>,
        running_only: bool,
    ) -> Result<Vec<TaskInfo>, Error> {
        let p = Params::new()
            .set("typefilter", kind)
            .set("userfilter", self.who())
            .set("source", if running_only { "active" } else { "all" })
            .set("limit", 200)
            .opt("vmid", id);
        let all: Vec<TaskInfo> = self.get(&format!("/nodes/{}/tasks", seg(node)), p).await?;
        // `userfilter` is a substring match in PVE: keep exactly our user.
        Ok(all.into_iter().filter(|t| t.user == self.who()).collect())
    }

    /// The node's clock (`GET /nodes/{node}/time`), in Unix seconds: task start times are
    /// compared with it, never with ours.
    pub async fn node_time(&self, node: &str) -> Result<u64, Error> {
        let v: Value = self
            .get(&format!("/nodes/{}/time", seg(node)), Params::new())
            .await?;
        v.get("time")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::Protocol {
                action: format!("GET /nodes/{node}/time"),
                reason: format!("no time in {v}"),
            })
    }

    /// Remember a task this client started (see [`Client::foreign_tasks`]).
    pub(crate) fn own_task(&self, upid: &Upid) {
        self.inner
            .own_tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(upid.as_str().to_owned());
    }

    fn is_own_task(&self, upid: &str) -> bool {
        self.inner
            .own_tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(upid)
    }

    /// Tasks of `kind` about `id` on `node`, by this client's user but not started through
    /// this client, that started at most `since` ago (by the node's clock), or that still
    /// run when `since` is `None`: the task of a request whose answer was lost, or of an
    /// earlier run that died.
    pub async fn foreign_tasks(
        &self,
        node: &str,
        kind: &str,
        id: Option<&str>,
        since: Option<Duration>,
    ) -> Result<Vec<Upid>, Error> {
        let tasks = self.node_tasks(node, kind, id, since.is_none()).await?;
        let after = match since {
            // Whole seconds on PVE's side: a little slack for rounding, none for clocks.
            Some(d) => Some(self.node_time(node).await?.saturating_sub(d.as_secs() + 2)),
            None => None,
        };
        Ok(tasks
            .into_iter()
            .filter(|t| after.is_none_or(|a| t.starttime >= a))
            .filter(|t| !self.is_own_task(&t.upid))
            .filter_map(|t| t.upid.parse().ok())
            .collect())
    }

    /// The last `n` lines of a task's log.
    pub async fn task_log_tail(&self, upid: &Upid, n: usize) -> Result<Vec<String>, Error> {
        let path = format!(
            "/nodes/{}/tasks/{}/log",
            seg(&upid.node),
            seg(upid.as_str())
        );
        // Logs are short for VM tasks; read them whole (PVE caps one page at 50 lines by default).
        let lines: Vec<Value> = self
            .get(&path, Params::new().set("start", 0).set("limit", 5000))
            .await?;
        let text: Vec<String> = lines
            .iter()
            .filter_map(|l| l.get("t").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        Ok(text[text.len().saturating_sub(n)..].to_vec())
    }

    /// Wait until the task stops. `OK` and `WARNINGS: n` succeed; any other exit status is a
    /// [`Error::TaskFailed`] with the last lines of the log.
    pub async fn wait_task(&self, upid: &Upid, timeout: Duration) -> Result<TaskStatus, Error> {
        let started = Instant::now();
        let mut pause = POLL_FIRST;
        loop {
            let st = match self.task_status(upid).await {
                Ok(st) => st,
                // The task runs whatever happens to our connection: a failed poll (after
                // `call`'s own retries) is no answer, so ask again until the deadline.
                Err(e) if e.is_retryable() && started.elapsed() + pause <= timeout => {
                    tracing::debug!(%upid, error = %e, "task status unavailable; polling again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 3 / 2).min(POLL_MAX);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !st.is_running() {
                if st.succeeded() {
                    return Ok(st);
                }
                let exit_status = st
                    .exitstatus
                    .clone()
                    .unwrap_or_else(|| "unknown exit status".into());
                // The log is a courtesy: a failure to read it must not hide the task's error.
                let log_tail = self.task_log_tail(upid, LOG_TAIL).await.unwrap_or_default();
                return Err(Error::TaskFailed {
                    upid: upid.to_string(),
                    node: upid.node.clone(),
                    kind: upid.kind.clone(),
                    exit_status,
                    log_tail,
                });
            }
            if started.elapsed() + pause > timeout {
                return Err(Error::Timeout {
                    what: format!(
                        "task {} of {} on node {} ({upid})",
                        upid.kind, upid.id, upid.node
                    ),
                    after: timeout,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 3 / 2).min(POLL_MAX);
        }
    }
}
