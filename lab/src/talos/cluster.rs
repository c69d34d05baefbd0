//! The cluster-wide view no single node has: which nodes share a cluster, its etcd membership
//! (explicit state: bootstrap creates it, running control planes join, leave/remove take members
//! out, a wiped or destroyed node leaves a stale member behind), and each node's services.

use std::net::Ipv4Addr;
use std::sync::Arc;

use rcgen::KeyPair;
use sha2::{Digest, Sha256};

use super::Talos;
use super::config::MachineConfig;
use super::node::{Node, Stage};
use super::proto::machine as m;

/// One etcd member.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: u64,
    pub vmid: u32,
    pub hostname: String,
    pub ip: Ipv4Addr,
}

impl Member {
    pub fn proto(&self) -> m::EtcdMember {
        m::EtcdMember {
            id: self.id,
            hostname: self.hostname.clone(),
            peer_urls: vec![format!("https://{}:2380", self.ip)],
            client_urls: vec![format!("https://{}:2379", self.ip)],
            is_learner: false,
        }
    }
}

/// etcd of one cluster.
#[derive(Debug, Clone, Default)]
pub struct EtcdCluster {
    pub members: Vec<Member>,
    /// Bumped by every bootstrap: a new etcd, so a new (empty) Kubernetes store.
    pub generation: u64,
    /// When the cluster was bootstrapped.
    pub since: Option<std::time::Instant>,
}

/// Why an etcd operation failed (mapped to Talos's gRPC answers by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// The cluster has no etcd yet or this node runs none.
    NotRunning,
    /// Fewer than a majority of members are up (`etcdserver: no leader`).
    NoQuorum,
    /// `etcdserver: member not found`.
    MemberNotFound,
}

/// A node of a cluster with what the cluster view needs.
#[derive(Clone)]
pub struct ClusterNode {
    pub node: Arc<Node>,
    pub stage: Stage,
    /// etcd data directory is not empty.
    pub has_etcd_data: bool,
    pub config: MachineConfig,
    pub hostname: String,
    pub version: String,
    pub boots: u64,
    pub etcd_left: bool,
}

impl ClusterNode {
    pub fn running(&self) -> bool {
        self.stage == Stage::Running
    }
}

/// Talos's hostname for a node: `machine.network.hostname`, else `talos-<ip with dashes>`.
pub fn hostname(ip: Ipv4Addr, c: &MachineConfig) -> String {
    c.hostname
        .clone()
        .unwrap_or_else(|| format!("talos-{}", ip.to_string().replace('.', "-")))
}

/// A member ID stable per node: derived from the cluster and the VMID.
fn member_id(key: &str, vmid: u32) -> u64 {
    let digest = Sha256::digest(format!("{key}/{vmid}"));
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

impl Talos {
    /// Live nodes of one cluster (by `cluster.id`) with their config.
    pub fn cluster(&self, key: &str) -> Vec<ClusterNode> {
        self.nodes()
            .into_iter()
            .filter_map(|n| {
                let st = n.state();
                let c = st.disk.config.clone()?;
                if c.cluster_key != key {
                    return None;
                }
                let version = st
                    .disk
                    .version
                    .clone()
                    .unwrap_or_else(|| self.opts.version.clone());
                let cn = ClusterNode {
                    node: n.clone(),
                    stage: st.stage,
                    has_etcd_data: st.disk.bootstrapped,
                    hostname: hostname(n.ip, &c),
                    config: c,
                    version,
                    boots: st.boots,
                    etcd_left: st.etcd_left,
                };
                drop(st);
                Some(cn)
            })
            .collect()
    }

    /// Every cluster key some live node has a config for.
    pub fn cluster_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .nodes()
            .into_iter()
            .filter_map(|n| {
                n.state()
                    .disk
                    .config
                    .as_ref()
                    .map(|c| c.cluster_key.clone())
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// An OS CA key from a control plane of the cluster (what trustd gives a worker).
    pub fn cluster_ca_key(&self, key: &str) -> Option<KeyPair> {
        self.cluster(key)
            .into_iter()
            .find_map(|n| n.config.os_ca_key())
    }

    fn etcd_state(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, EtcdCluster>> {
        self.etcd.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cluster's etcd exists: it has a member whose node still holds etcd data (live or
    /// powered off). Members of wiped or destroyed nodes alone do not make a cluster.
    pub fn cluster_bootstrapped(&self, key: &str) -> bool {
        let Some(members) = self.etcd_state().get(key).map(|e| e.members.clone()) else {
            return false;
        };
        members.iter().any(|m| self.has_etcd_data(m.vmid))
    }

    fn has_etcd_data(&self, vmid: u32) -> bool {
        if let Some(n) = self.nodes().into_iter().find(|n| n.vmid == vmid) {
            return n.state().disk.bootstrapped;
        }
        self.disks().get(&vmid).is_some_and(|d| d.bootstrapped)
    }

    /// How long ago the cluster's etcd was bootstrapped.
    pub fn bootstrapped_for(&self, key: &str) -> Option<std::time::Duration> {
        self.etcd_state()
            .get(key)
            .and_then(|e| e.since)
            .map(|t| t.elapsed())
    }

    /// Which bootstrap of the cluster's etcd is current (0: never bootstrapped).
    pub fn etcd_generation(&self, key: &str) -> u64 {
        self.etcd_state().get(key).map_or(0, |e| e.generation)
    }

    /// The explicit member list (empty before bootstrap).
    pub fn etcd_member_list(&self, key: &str) -> Vec<Member> {
        self.etcd_state()
            .get(key)
            .map(|e| e.members.clone())
            .unwrap_or_default()
    }

    /// A member is healthy when its node runs with its etcd data and has not left.
    fn healthy(&self, nodes: &[ClusterNode], m: &Member) -> bool {
        nodes
            .iter()
            .any(|n| n.node.vmid == m.vmid && n.running() && n.has_etcd_data && !n.etcd_left)
    }

    /// Members and whether a majority of them is up.
    pub fn etcd_quorum(&self, key: &str) -> (Vec<Member>, bool) {
        let members = self.etcd_member_list(key);
        let nodes = self.cluster(key);
        let up = members.iter().filter(|m| self.healthy(&nodes, m)).count();
        let quorum = !members.is_empty() && up * 2 > members.len();
        (members, quorum)
    }

    /// IDs of members that are not healthy right now.
    pub fn etcd_unhealthy(&self, key: &str) -> Vec<u64> {
        let nodes = self.cluster(key);
        self.etcd_member_list(key)
            .into_iter()
            .filter(|m| !self.healthy(&nodes, m))
            .map(|m| m.id)
            .collect()
    }

    /// Bootstrap: `node` becomes the only member of a new etcd cluster.
    pub fn etcd_bootstrap(&self, node: &Node, cfg: &MachineConfig) {
        let member = Member {
            id: member_id(&cfg.cluster_key, node.vmid),
            vmid: node.vmid,
            hostname: hostname(node.ip, cfg),
            ip: node.ip,
        };
        let mut st = self.etcd_state();
        let generation = st.get(&cfg.cluster_key).map_or(0, |e| e.generation) + 1;
        st.insert(
            cfg.cluster_key.clone(),
            EtcdCluster {
                members: vec![member],
                generation,
                since: Some(std::time::Instant::now()),
            },
        );
        drop(st);
        node.state().disk.bootstrapped = true;
    }

    /// What etcd does on its own: a running control plane of a bootstrapped cluster that is not
    /// a member (and did not just leave) joins, if the cluster has quorum.
    pub fn sync(&self) {
        for key in self.cluster_keys() {
            if !self.cluster_bootstrapped(&key) {
                continue;
            }
            let nodes = self.cluster(&key);
            for n in &nodes {
                if !n.running() || !n.config.is_control_plane() || n.etcd_left {
                    continue;
                }
                let (members, quorum) = self.etcd_quorum(&key);
                // Already a member (a wiped node's old member stays stale until removed: it
                // cannot rejoin under that identity).
                if members.iter().any(|m| m.vmid == n.node.vmid) || !quorum {
                    continue;
                }
                let member = Member {
                    id: member_id(&key, n.node.vmid),
                    vmid: n.node.vmid,
                    hostname: n.hostname.clone(),
                    ip: n.node.ip,
                };
                self.etcd_state()
                    .entry(key.clone())
                    .or_default()
                    .members
                    .push(member);
                n.node.state().disk.bootstrapped = true;
            }
        }
    }

    /// etcd must run on `node` (a running control plane of a bootstrapped cluster that is a
    /// member) for the member APIs; returns the cluster key.
    pub fn etcd_local(&self, node: &Node) -> Result<String, EtcdError> {
        self.sync();
        let (key, running, data, left) = {
            let st = node.state();
            let Some(c) = st.disk.config.as_ref() else {
                return Err(EtcdError::NotRunning);
            };
            (
                c.cluster_key.clone(),
                st.stage == Stage::Running,
                st.disk.bootstrapped,
                st.etcd_left,
            )
        };
        if !running || !data || left || !self.cluster_bootstrapped(&key) {
            return Err(EtcdError::NotRunning);
        }
        Ok(key)
    }

    /// `EtcdMemberList`: needs a leader.
    pub fn etcd_members(&self, key: &str) -> Result<Vec<m::EtcdMember>, EtcdError> {
        let (members, quorum) = self.etcd_quorum(key);
        if !quorum {
            return Err(EtcdError::NoQuorum);
        }
        Ok(members.iter().map(Member::proto).collect())
    }

    /// Remove a member by ID (needs quorum).
    pub fn etcd_remove(&self, key: &str, id: u64) -> Result<Member, EtcdError> {
        let (members, quorum) = self.etcd_quorum(key);
        if !quorum {
            return Err(EtcdError::NoQuorum);
        }
        let Some(pos) = members.iter().position(|m| m.id == id) else {
            return Err(EtcdError::MemberNotFound);
        };
        let mut st = self.etcd_state();
        let e = st.entry(key.to_string()).or_default();
        let removed = e.members.remove(pos);
        Ok(removed)
    }

    /// `EtcdLeaveCluster` (also the first step of a graceful reset): remove this node's member,
    /// stop its etcd and wipe its data directory.
    pub fn etcd_leave(&self, node: &Node, key: &str) -> Result<(), EtcdError> {
        let id = self
            .etcd_member_list(key)
            .into_iter()
            .find(|m| m.vmid == node.vmid)
            .map(|m| m.id)
            .ok_or(EtcdError::MemberNotFound)?;
        self.etcd_remove(key, id)?;
        let mut st = node.state();
        st.etcd_left = true;
        st.disk.bootstrapped = false;
        Ok(())
    }

    /// The member ID of a node, if it is a member.
    pub fn member_id_of(&self, key: &str, vmid: u32) -> Option<u64> {
        self.etcd_member_list(key)
            .into_iter()
            .find(|m| m.vmid == vmid)
            .map(|m| m.id)
    }

    /// The `GET /talos/etcd` document.
    pub fn etcd_snapshot(&self) -> serde_json::Value {
        let mut clusters = Vec::new();
        let keys: Vec<String> = self.etcd_state().keys().cloned().collect();
        for key in keys {
            let nodes = self.cluster(&key);
            let (members, quorum) = self.etcd_quorum(&key);
            let list: Vec<serde_json::Value> = members
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "id": format!("{:016x}", m.id),
                        "hostname": m.hostname,
                        "vmid": m.vmid,
                        "address": m.ip.to_string(),
                        "healthy": self.healthy(&nodes, m),
                    })
                })
                .collect();
            clusters.push(serde_json::json!({
                "cluster_key": key,
                "bootstrapped": self.cluster_bootstrapped(&key),
                "quorum": quorum,
                "members": list,
            }));
        }
        serde_json::json!({ "clusters": clusters })
    }

    /// What `ServiceList` shows for a node in its current stage.
    pub fn services(&self, node: &Node) -> Vec<m::ServiceInfo> {
        // Copy what is needed and drop the lock: the cluster view locks other nodes.
        let (running, cp) = {
            let st = node.state();
            let c = st.disk.config.as_ref();
            (
                st.stage == Stage::Running,
                c.is_some_and(|c| c.is_control_plane()),
            )
        };
        let etcd_up = cp && running && self.etcd_local(node).is_ok();
        let svc = |id: &str, state: &str, healthy: bool| m::ServiceInfo {
            id: id.into(),
            state: state.into(),
            events: None,
            health: Some(m::ServiceHealth {
                unknown: false,
                healthy,
                last_message: String::new(),
                last_change: None,
            }),
        };
        let mut out = vec![
            svc("machined", "Running", true),
            svc("udevd", "Running", true),
        ];
        if running {
            out.push(svc("apid", "Running", true));
            out.push(svc("containerd", "Running", true));
            out.push(svc("cri", "Running", true));
            if cp {
                if etcd_up {
                    out.push(svc("etcd", "Running", true));
                } else {
                    out.push(svc("etcd", "Preparing", false));
                }
                out.push(svc("trustd", "Running", true));
            }
            out.push(svc("kubelet", "Running", true));
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
