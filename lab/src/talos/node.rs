//! One simulated Talos node: its stage machine and what survives a power cycle (its "disk").

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::TalosTiming;
use super::authz::Mode;
use super::config::MachineConfig;
use super::proto::talos::resource::definitions::enums::RuntimeMachineStage;

/// Talos machine stages the simulation goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Booting,
    Maintenance,
    Installing,
    Rebooting,
    Running,
    Resetting,
    Upgrading,
}

impl Stage {
    pub fn proto(self) -> RuntimeMachineStage {
        match self {
            Stage::Booting => RuntimeMachineStage::MachineStageBooting,
            Stage::Maintenance => RuntimeMachineStage::MachineStageMaintenance,
            Stage::Installing => RuntimeMachineStage::MachineStageInstalling,
            Stage::Rebooting => RuntimeMachineStage::MachineStageRebooting,
            Stage::Running => RuntimeMachineStage::MachineStageRunning,
            Stage::Resetting => RuntimeMachineStage::MachineStageResetting,
            Stage::Upgrading => RuntimeMachineStage::MachineStageUpgrading,
        }
    }

    /// As COSI YAML and `talosctl get machinestatus` print it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Booting => "booting",
            Stage::Maintenance => "maintenance",
            Stage::Installing => "installing",
            Stage::Rebooting => "rebooting",
            Stage::Running => "running",
            Stage::Resetting => "resetting",
            Stage::Upgrading => "upgrading",
        }
    }
}

/// What an installed node keeps across reboots and VM power cycles.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    pub config: Option<MachineConfig>,
    /// etcd's data directory is not empty.
    pub bootstrapped: bool,
    /// The installed Talos version (`None`: the lab default).
    pub version: Option<String>,
    /// A staged upgrade (`Upgrade` with `stage`), installed at the next reboot.
    pub staged_version: Option<Option<String>>,
    /// A config applied in STAGED mode, active from the next reboot.
    pub staged_config: Option<MachineConfig>,
}

/// The mutable part of a node.
#[derive(Debug)]
pub struct NodeState {
    pub stage: Stage,
    /// Which API is up (None while rebooting).
    pub serving: Option<Mode>,
    pub running_since: Option<Instant>,
    pub disk: Disk,
    /// Bumped on every transition; timers scheduled under an older epoch do nothing.
    pub epoch: u64,
    /// COSI resource version of MachineStatus.
    pub status_version: u64,
    /// How many times the node reached RUNNING since power-on (kubelet registers per boot).
    pub boots: u64,
    /// etcd left the cluster during this boot (`EtcdLeaveCluster`): it stays out until reboot.
    pub etcd_left: bool,
}

/// A node bound to its address.
pub struct Node {
    pub vmid: u32,
    pub ip: Ipv4Addr,
    /// Where the API listens (the node IP on port 50000, unless the bind fell back).
    pub endpoint: SocketAddr,
    pub timing: TalosTiming,
    state: Mutex<NodeState>,
    /// Tells the server loop to restart with the current `serving` mode.
    serving_tx: watch::Sender<u64>,
}

impl Node {
    pub fn new(
        vmid: u32,
        ip: Ipv4Addr,
        endpoint: SocketAddr,
        timing: TalosTiming,
        disk: Disk,
    ) -> Arc<Node> {
        let (serving_tx, _) = watch::channel(0);
        Arc::new(Node {
            vmid,
            ip,
            endpoint,
            timing,
            state: Mutex::new(NodeState {
                stage: Stage::Booting,
                serving: None,
                running_since: None,
                disk,
                epoch: 0,
                status_version: 1,
                boots: 0,
                etcd_left: false,
            }),
            serving_tx,
        })
    }

    pub fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes of the serving mode.
    pub fn serving_changes(&self) -> watch::Receiver<u64> {
        self.serving_tx.subscribe()
    }

    fn set(&self, st: &mut NodeState, stage: Stage, serving: Option<Mode>) {
        let restart = st.serving != serving || serving.is_none();
        st.stage = stage;
        st.status_version += 1;
        st.running_since = (stage == Stage::Running).then(Instant::now);
        if stage == Stage::Running {
            st.boots += 1;
        }
        if matches!(
            stage,
            Stage::Booting | Stage::Rebooting | Stage::Maintenance
        ) {
            st.etcd_left = false;
        }
        if restart {
            st.serving = serving;
            self.serving_tx.send_modify(|g| *g += 1);
        }
    }

    /// Power on: an installed node boots to running, a blank one to maintenance.
    pub fn power_on(self: &Arc<Self>) {
        let mut st = self.state();
        if st.disk.config.is_some() {
            st.epoch += 1;
            self.set(&mut st, Stage::Booting, None);
            self.after(st.epoch, self.timing.reboot_ms, |n, st| {
                n.set(st, Stage::Running, Some(Mode::Running));
            });
        } else {
            self.set(&mut st, Stage::Maintenance, Some(Mode::Maintenance));
        }
    }

    /// A valid config was applied in maintenance: install, then reboot into it.
    pub fn install(self: &Arc<Self>, config: MachineConfig, extra_ms: u64) {
        let mut st = self.state();
        st.epoch += 1;
        st.disk.version = config.install_version();
        st.disk.config = Some(config);
        self.set(&mut st, Stage::Installing, Some(Mode::Maintenance));
        let node = self.clone();
        self.after(st.epoch, self.timing.install_ms + extra_ms, move |_, st| {
            node.reboot_locked(st);
        });
    }

    /// Reboot an installed node (Reboot RPC, apply with reboot).
    pub fn reboot(self: &Arc<Self>) {
        let mut st = self.state();
        self.reboot_locked(&mut st);
    }

    /// Reboot shortly, so the RPC that asked for it gets its answer first.
    pub fn reboot_soon(self: &Arc<Self>) {
        let epoch = self.state().epoch;
        self.after(epoch, 10, |n, st| n.reboot_locked(st));
    }

    fn reboot_locked(self: &Arc<Self>, st: &mut NodeState) {
        st.epoch += 1;
        if let Some(v) = st.disk.staged_version.take() {
            st.disk.version = v;
        }
        if let Some(c) = st.disk.staged_config.take() {
            st.disk.config = Some(c);
        }
        self.set(st, Stage::Rebooting, None);
        let target = if st.disk.config.is_some() {
            (Stage::Running, Mode::Running)
        } else {
            (Stage::Maintenance, Mode::Maintenance)
        };
        self.after(st.epoch, self.timing.reboot_ms, move |n, st| {
            n.set(st, target.0, Some(target.1));
        });
    }

    /// Reset: wipe the disk and come back in maintenance.
    pub fn reset(self: &Arc<Self>) {
        let mut st = self.state();
        st.epoch += 1;
        self.set(&mut st, Stage::Resetting, Some(Mode::Running));
        let node = self.clone();
        self.after(st.epoch, self.timing.reboot_ms, move |_, st| {
            st.disk = Disk::default();
            node.reboot_locked(st);
        });
    }

    /// Upgrade: install the new version (UPGRADING for the install time), then reboot into it.
    /// With `stage`, the version is only staged and installed at the next reboot.
    pub fn upgrade(self: &Arc<Self>, version: Option<String>, stage: bool) {
        let mut st = self.state();
        if stage {
            st.disk.staged_version = Some(version);
            return;
        }
        st.epoch += 1;
        self.set(&mut st, Stage::Upgrading, Some(Mode::Running));
        let node = self.clone();
        self.after(st.epoch, self.timing.install_ms, move |_, st| {
            st.disk.version = version;
            st.disk.staged_version = None;
            node.reboot_locked(st);
        });
    }

    /// Fault: the node comes back from a reboot in maintenance mode (as if reinstalled).
    pub fn into_maintenance(self: &Arc<Self>) {
        let mut st = self.state();
        st.disk = Disk::default();
        self.reboot_locked(&mut st);
    }

    /// Running for long enough that etcd waits for bootstrap.
    pub fn ready(&self, st: &NodeState) -> bool {
        st.stage == Stage::Running
            && st
                .running_since
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(self.timing.ready_ms))
    }

    /// Run `f` after `ms` unless another transition happened meanwhile.
    fn after<F>(self: &Arc<Self>, epoch: u64, ms: u64, f: F)
    where
        F: FnOnce(&Arc<Node>, &mut NodeState) + Send + 'static,
    {
        let node = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let mut st = node.state();
            if st.epoch == epoch {
                f(&node, &mut st);
            }
        });
    }
}
