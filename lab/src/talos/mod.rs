//! Simulated Talos nodes: one per started VM, on the VM's own loopback address, port 50000.
//!
//! - [`node`]: a node's stage machine and its "disk" (config, etcd data) that survives power
//!   cycles; [`server`]: its gRPC endpoint, restarted per boot; [`machine_api`] and
//!   [`cosi_api`]: the RPCs.
//! - [`config`] + [`schema`]: machine-config validation against Talos's JSON schema;
//!   [`pki`]: Talos PEM conventions and node certificates; [`tls`]: maintenance and mTLS setups;
//!   [`authz`]: roles and per-RPC rules.
//! - [`proto`]: code generated from `proto/talos`.
//!
//! This registry follows the PVE simulation's `VmEvent`s; [`cluster`] adds the cluster-wide
//! view (etcd membership, the OS CA key workers borrow) that no single node has.

pub mod apply;
pub mod authz;
pub mod cluster;
pub mod config;
pub mod cosi_api;
pub mod director;
pub mod kubeconfig;
pub mod machine_api;
pub mod node;
pub mod pki;
pub use talos_api as proto;
pub mod schema;
pub mod server;
pub mod tls;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::pve::{Pve, VmEvent};
use node::{Disk, Node};

/// Talos's API port.
pub const APID_PORT: u16 = 50000;

/// How long the simulated node takes for each step.
#[derive(Debug, Clone)]
pub struct TalosTiming {
    /// INSTALLING after a valid config, before the reboot.
    pub install_ms: u64,
    /// Down time of a reboot (also boot time of an installed node).
    pub reboot_ms: u64,
    /// From RUNNING until etcd waits for bootstrap (Bootstrap is FailedPrecondition before).
    pub ready_ms: u64,
}

impl Default for TalosTiming {
    fn default() -> Self {
        Self {
            install_ms: 200,
            reboot_ms: 100,
            ready_ms: 100,
        }
    }
}

/// How the simulated nodes behave.
#[derive(Debug, Clone)]
pub struct TalosOptions {
    /// Simulate the Talos ≤ 1.12 maintenance service instead of ≥ 1.13's unified API.
    pub legacy_maintenance: bool,
    /// The Talos version nodes report.
    pub version: String,
    /// The port nodes listen on (tests may move it off 50000).
    pub port: u16,
    pub timing: TalosTiming,
    /// How long after Bootstrap the cluster's Kubernetes API server starts listening (real
    /// clusters take tens of seconds; until then clients get connection refused).
    pub apiserver_delay_ms: u64,
    /// How long a pod of a Deployment, DaemonSet or StatefulSet takes from being placed on a
    /// node that can run it to being ready (image pull, start, readiness probe).
    pub pod_ready_ms: u64,
}

impl Default for TalosOptions {
    fn default() -> Self {
        Self {
            legacy_maintenance: false,
            version: "v1.13.9".into(),
            port: APID_PORT,
            timing: TalosTiming::default(),
            apiserver_delay_ms: 0,
            pod_ready_ms: 100,
        }
    }
}

struct Live {
    node: Arc<Node>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// All simulated nodes of the lab.
pub struct Talos {
    pub opts: TalosOptions,
    pve: Arc<Pve>,
    live: Mutex<HashMap<u32, Live>>,
    /// Disks of powered-off nodes.
    disks: Mutex<HashMap<u32, Disk>>,
    /// etcd membership per cluster key.
    etcd: Mutex<HashMap<String, cluster::EtcdCluster>>,
    /// Listeners claimed by the power-on guard for VMs about to start.
    claimed: Mutex<HashMap<u32, std::net::TcpListener>>,
}

impl Talos {
    pub fn new(opts: TalosOptions, pve: Arc<Pve>) -> Arc<Talos> {
        let talos = Arc::new(Talos {
            opts,
            pve: pve.clone(),
            live: Mutex::new(HashMap::new()),
            disks: Mutex::new(HashMap::new()),
            etcd: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&talos);
        pve.set_power_guard(Box::new(move |vm| match weak.upgrade() {
            Some(t) => t.claim_address(vm),
            None => Ok(()),
        }));
        talos
    }

    /// Bind the address a VM's node will listen on before the VM starts. A node never listens
    /// anywhere but its own address: if another process (another lab, another demo) holds a
    /// static address the start fails saying so, instead of clients reaching someone else's
    /// node; a VM without one gets the first free address of the lab's DHCP pool as its lease.
    fn claim_address(&self, vm: &mut crate::pve::state::Vm) -> Result<(), String> {
        use crate::pve::handlers::util::{dhcp_address, guest_ipv4, static_ipv4};
        let (ip, _) = guest_ipv4(vm);
        let Ok(ip) = ip.parse::<Ipv4Addr>() else {
            return Ok(());
        };
        if self.live().get(&vm.vmid).is_some_and(|l| l.node.ip == ip) {
            // A reboot: the node keeps the address it holds.
            return Ok(());
        }
        let bind = |ip: Ipv4Addr| {
            let addr = SocketAddr::from((ip, self.opts.port));
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| (addr, e))
        };
        let listener = if static_ipv4(vm).is_some() {
            bind(ip).map_err(|(addr, e)| {
                format!(
                    "lab: VM {} cannot have its address {addr}: {e} (another lab or demo holds it?); \
                     give the VM a free loopback address",
                    vm.vmid
                )
            })?
        } else {
            // A lease keeps its address while free; else the pool's next free one.
            let tries = vm
                .lease
                .into_iter()
                .chain((0..64).map(|a| dhcp_address(vm.vmid, a)));
            let mut last = None;
            let mut got = None;
            for ip in tries {
                match bind(ip) {
                    Ok(l) => {
                        vm.lease = Some(ip);
                        got = Some(l);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            got.ok_or_else(|| match last {
                Some((addr, e)) => format!(
                    "lab: no free DHCP address for VM {} (last tried {addr}: {e})",
                    vm.vmid
                ),
                None => format!("lab: no DHCP address for VM {}", vm.vmid),
            })?
        };
        self.claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(vm.vmid, listener);
        Ok(())
    }

    /// The lab's fault settings (shared with the PVE side).
    pub fn faults(&self) -> &crate::faults::FaultState {
        &self.pve.faults
    }

    fn live(&self) -> MutexGuard<'_, HashMap<u32, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn disks(&self) -> MutexGuard<'_, HashMap<u32, Disk>> {
        self.disks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follow VM events until `shutdown`; then stop every node.
    pub fn spawn(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let mut events = self.pve.events.subscribe();
        let talos = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(ev) => talos.on_event(ev).await,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!("talos missed {n} VM events");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = shutdown.changed() => break,
                }
            }
            talos.stop_all().await;
        })
    }

    async fn on_event(self: &Arc<Self>, ev: VmEvent) {
        match ev {
            VmEvent::Started { vmid, .. } => self.power_on(vmid).await,
            VmEvent::Stopped { vmid, .. } => self.power_off(vmid, false).await,
            VmEvent::Destroyed { vmid } => self.power_off(vmid, true).await,
        }
    }

    /// The node's address: the VM's loopback address (cloud-init or lab DHCP).
    fn address_of(&self, vmid: u32) -> Option<Ipv4Addr> {
        let st = self.pve.state();
        let vm = st.vms.get(&vmid)?;
        crate::pve::handlers::util::guest_ipv4(vm).0.parse().ok()
    }

    async fn power_on(self: &Arc<Self>, vmid: u32) {
        self.power_off(vmid, false).await;
        let Some(ip) = self.address_of(vmid) else {
            return;
        };
        let claimed = self
            .claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&vmid);
        let listener = match claimed {
            Some(l) => TcpListener::from_std(l),
            // A reboot: the address was released by power_off just now.
            None => TcpListener::bind(SocketAddr::from((ip, self.opts.port))).await,
        };
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                // Never elsewhere: a node on another address would be someone else's.
                tracing::error!(vmid, %ip, "talos node cannot listen on {ip}:{}: {e}", self.opts.port);
                return;
            }
        };
        let Ok(endpoint) = listener.local_addr() else {
            return;
        };
        let disk = self.disks().remove(&vmid).unwrap_or_default();
        let node = Node::new(vmid, ip, endpoint, self.opts.timing.clone(), disk);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(server::run(self.clone(), node.clone(), listener, stop_rx));
        node.power_on();
        self.live().insert(vmid, Live { node, stop, task });
    }

    async fn power_off(&self, vmid: u32, destroy: bool) {
        let live = self.live().remove(&vmid);
        if let Some(l) = live {
            stop_node(l.stop, l.task).await;
            if !destroy {
                let disk = l.node.state().disk.clone();
                self.disks().insert(vmid, disk);
            }
        }
        if destroy {
            self.disks().remove(&vmid);
        }
    }

    async fn stop_all(&self) {
        let all: Vec<Live> = self.live().drain().map(|(_, l)| l).collect();
        for l in all {
            stop_node(l.stop, l.task).await;
        }
    }

    /// The Talos version a node reports: the installed one, else the lab default (maintenance
    /// mode runs the boot media's version).
    pub fn version_of(&self, st: &node::NodeState) -> String {
        match (&st.disk.config, &st.disk.version) {
            (Some(_), Some(v)) => v.clone(),
            _ => self.opts.version.clone(),
        }
    }

    /// Running nodes.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        let mut v: Vec<_> = self.live().values().map(|l| l.node.clone()).collect();
        v.sort_by_key(|n| n.vmid);
        v
    }

    /// A running node by VMID or address.
    pub fn find(&self, key: &str) -> Option<Arc<Node>> {
        self.nodes()
            .into_iter()
            .find(|n| n.vmid.to_string() == key || n.ip.to_string() == key)
    }

    /// The `GET /talos/nodes` document.
    pub fn snapshot(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes()
            .into_iter()
            .map(|n| {
                let st = n.state();
                let cfg = st.disk.config.clone();
                let mut doc = json!({
                    "vmid": n.vmid,
                    "address": n.ip.to_string(),
                    "endpoint": n.endpoint.to_string(),
                    "stage": st.stage.name(),
                    "ready": n.ready(&st),
                    "talos_version": self.version_of(&st),
                    "machine_type": cfg.as_ref().map(|c| c.machine_type.clone()),
                    "config_hash": cfg.as_ref().map(|c| c.hash.clone()),
                    "bootstrapped": st.disk.bootstrapped,
                    "boots": st.boots,
                    "hostname": cfg.as_ref().map(|c| cluster::hostname(n.ip, c)),
                });
                drop(st);
                doc["etcd_member_id"] = json!(cfg.as_ref().and_then(|c| {
                    self.member_id_of(&c.cluster_key, n.vmid)
                        .map(|id| format!("{id:016x}"))
                }));
                doc
            })
            .collect();
        json!({ "nodes": nodes, "legacy_maintenance": self.opts.legacy_maintenance })
    }
}

/// Stop a node's server; a client that keeps a call open cannot hold a power-off up.
async fn stop_node(stop: watch::Sender<bool>, task: JoinHandle<()>) {
    let _ = stop.send(true);
    let abort = task.abort_handle();
    let mut task = task;
    if tokio::time::timeout(std::time::Duration::from_secs(2), &mut task)
        .await
        .is_err()
    {
        abort.abort();
        // Gone for good (with its listener) before the address is bound again.
        let _ = task.await;
    }
}
