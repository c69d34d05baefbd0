//! The simulated Proxmox VE API.
//!
//! - [`schema`], [`validate`], [`formats`]: the official API schema and parameter checks.
//! - [`auth`]: tokens, tickets, CSRF, privileges.
//! - [`state`], [`tasks`], [`seed`]: the cluster model.
//! - [`server`]: the request pipeline; [`handlers`]: one module per API area.

pub mod auth;
pub mod error;
pub mod flock;
pub mod formats;
pub mod handlers;
pub mod schema;
pub mod seed;
pub mod server;
pub mod state;
pub mod tasks;
pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::faults::FaultState;
use auth::AuthStore;
use schema::Schema;
use state::Cluster;
use tasks::{Task, format_upid};

/// Timing knobs of the simulation.
#[derive(Debug, Clone)]
pub struct PveTiming {
    /// Base duration of a worker task.
    pub task_ms: u64,
    /// How long a config-lock acquisition waits before "got timeout" (PVE's clone uses 1 s).
    pub lock_wait_ms: u64,
    /// Clone a stopped source under an exclusive config lock (PVE before shared clone locks)
    /// instead of a shared one, so concurrent clones of one template contend.
    pub exclusive_clone_lock: bool,
    /// Delay before answering 401 (real pveproxy waits 3 s).
    pub unauthorized_delay_ms: u64,
    /// How long after start the guest agent stays unresponsive ("QEMU guest agent is not
    /// running").
    pub agent_delay_ms: u64,
}

impl Default for PveTiming {
    fn default() -> Self {
        Self {
            task_ms: 30,
            lock_wait_ms: 1000,
            exclusive_clone_lock: false,
            unauthorized_delay_ms: 0,
            agent_delay_ms: 0,
        }
    }
}

/// VM lifecycle events, for the Talos simulation to follow later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEvent {
    Started { vmid: u32, node: String },
    Stopped { vmid: u32, node: String },
    Destroyed { vmid: u32 },
}

/// Request counters, as `GET /state` shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub total: u64,
    /// `"GET /nodes/pve1/qemu/100/config"` → count
    pub by_path: BTreeMap<String, u64>,
    /// `"GET /nodes/{node}/qemu/{vmid}/config"` → count
    pub by_route: BTreeMap<String, u64>,
}

/// Who/what a task is: node, type (`qmclone`), id (`9000`) and the requesting auth id.
#[derive(Debug, Clone, Copy)]
pub struct TaskMeta<'a> {
    pub node: &'a str,
    pub kind: &'a str,
    pub id: &'a str,
    pub authid: &'a str,
}

/// The shared PVE simulation.
pub struct Pve {
    pub schema: Arc<Schema>,
    pub auth: AuthStore,
    pub faults: Arc<FaultState>,
    pub timing: PveTiming,
    pub events: broadcast::Sender<VmEvent>,
    state: Mutex<Cluster>,
    counters: Mutex<Counters>,
    file_locks: Mutex<HashMap<u32, Arc<flock::Flock>>>,
    power_guard: std::sync::OnceLock<PowerGuard>,
}

/// Asked before a VM powers on, with the cluster state locked: what runs inside the VM (a Talos
/// node) claims what it needs on this machine (its address, recording a DHCP lease in the VM),
/// or says why it cannot.
pub type PowerGuard = Box<dyn Fn(&mut state::Vm) -> Result<(), String> + Send + Sync>;

impl Pve {
    pub fn new(
        schema: Arc<Schema>,
        auth: AuthStore,
        faults: Arc<FaultState>,
        timing: PveTiming,
        cluster: Cluster,
    ) -> Self {
        Self {
            schema,
            auth,
            faults,
            timing,
            events: broadcast::channel(256).0,
            state: Mutex::new(cluster),
            counters: Mutex::new(Counters::default()),
            file_locks: Mutex::new(HashMap::new()),
            power_guard: std::sync::OnceLock::new(),
        }
    }

    /// Install the power-on guard (once; the Talos simulation does).
    pub fn set_power_guard(&self, guard: PowerGuard) {
        let _ = self.power_guard.set(guard);
    }

    /// Whether `vm` may power on: a VM whose machine cannot get its address must not start, so
    /// a client never talks to whatever else holds that address.
    pub fn power_on_check(&self, vm: &mut state::Vm) -> Result<(), String> {
        match self.power_guard.get() {
            Some(guard) => guard(vm),
            None => Ok(()),
        }
    }

    /// The cluster state. Never held across an await.
    pub fn state(&self) -> MutexGuard<'_, Cluster> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counters(&self) -> Counters {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn reset_counters(&self) {
        *self.counters.lock().unwrap_or_else(|e| e.into_inner()) = Counters::default();
    }

    fn count(&self, key_path: Option<String>, key_route: Option<String>) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = key_path {
            c.total += 1;
            *c.by_path.entry(p).or_default() += 1;
        }
        if let Some(r) = key_route {
            *c.by_route.entry(r).or_default() += 1;
        }
    }

    /// Take the per-VM config file lock (`/var/lock/qemu-server/lock-N.conf`), shared or
    /// exclusive, waiting at most `lock_wait_ms`; the error is PVE's message.
    pub async fn lock_file(&self, vmid: u32, shared: bool) -> Result<flock::FlockGuard, String> {
        let err =
            || format!("can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout");
        let wait = Duration::from_millis(self.timing.lock_wait_ms);
        if self.faults.take_lock_timeout() {
            tokio::time::sleep(wait).await;
            return Err(err());
        }
        let l = {
            let mut g = self.file_locks.lock().unwrap_or_else(|e| e.into_inner());
            g.entry(vmid).or_default().clone()
        };
        l.acquire(shared, wait).await.ok_or_else(err)
    }

    /// How long a task of this kind runs.
    pub fn task_duration(&self) -> Duration {
        Duration::from_millis(self.timing.task_ms + self.faults.slow_tasks_ms())
    }

    /// Start a worker task and return its UPID. `work` gets the lab and returns extra log lines
    /// or the error that ends the task (its last line; lines before it go to the log).
    pub fn spawn_task<F, Fut>(self: &Arc<Self>, meta: TaskMeta<'_>, work: F) -> String
    where
        F: FnOnce(Arc<Pve>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<String>, String>> + Send + 'static,
    {
        let TaskMeta {
            node,
            kind,
            id,
            authid,
        } = meta;
        let now = auth::unix_now();
        let upid = {
            let mut st = self.state();
            let pid = st.alloc_pid();
            let pstart = (now.saturating_sub(st.boot_time)) * 100 + u64::from(pid % 97);
            let upid = format_upid(node, pid, pstart, now, kind, id, authid);
            st.tasks.push(Task {
                upid: upid.clone(),
                node: node.to_string(),
                pid,
                pstart,
                starttime: now,
                kind: kind.to_string(),
                id: id.to_string(),
                authid: authid.to_string(),
                exitstatus: None,
                endtime: None,
                log: Vec::new(),
            });
            if st.tasks.len() > 2000 {
                st.tasks.remove(0);
            }
            upid
        };
        let pve = self.clone();
        let kind = kind.to_string();
        let task_upid = upid.clone();
        tokio::spawn(async move {
            let injected = pve.faults.take_task_failure(&kind);
            let result = if injected {
                tokio::time::sleep(pve.task_duration() / 2).await;
                Err(format!("lab fault: injected failure of task '{kind}'"))
            } else {
                // Run the work in its own task so that a bug in it fails the task instead of
                // leaving it "running" forever.
                match tokio::spawn(work(pve.clone())).await {
                    Ok(r) => r,
                    Err(e) => Err(format!("internal lab error: {e}")),
                }
            };
            let mut st = pve.state();
            if let Some(t) = st.task_mut(&task_upid) {
                t.endtime = Some(auth::unix_now());
                match result {
                    Ok(lines) => {
                        t.log.extend(lines);
                        t.log.push("TASK OK".into());
                        t.exitstatus = Some("OK".into());
                    }
                    Err(e) => {
                        // Lines before the last are log lines; the last is the exit status.
                        let mut lines: Vec<&str> = e.trim_end().lines().collect();
                        let e = lines.pop().unwrap_or_default().to_string();
                        t.log.extend(lines.into_iter().map(str::to_string));
                        t.log.push(format!("TASK ERROR: {e}"));
                        t.exitstatus = Some(e);
                    }
                }
            }
        });
        upid
    }

    pub fn emit(&self, ev: VmEvent) {
        let _ = self.events.send(ev);
    }
}
