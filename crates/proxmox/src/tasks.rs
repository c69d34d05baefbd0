//! Waiting for worker tasks. Status is polled on the node named in the UPID (a clone to
//! another node still runs on the source node), with a growing interval.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Upid;
use crate::client::{Client, Params, seg};
use crate::error::Error;
use crate::types::TaskStatus;

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
