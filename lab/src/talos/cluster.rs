//! The cluster-wide view no single node has: which nodes share a cluster, whether it is
//! bootstrapped, its etcd members, and what each node's services look like.

use std::sync::Arc;

use rcgen::KeyPair;
use sha2::{Digest, Sha256};

use super::Talos;
use super::config::MachineConfig;
use super::node::{Node, Stage};
use super::proto::machine as m;

impl Talos {
    /// Nodes of one cluster (by `cluster.id`) with their config.
    fn cluster(&self, key: &str) -> Vec<(Arc<Node>, Stage, bool, MachineConfig)> {
        self.nodes()
            .into_iter()
            .filter_map(|n| {
                let st = n.state();
                let c = st.disk.config.clone()?;
                let (stage, boot) = (st.stage, st.disk.bootstrapped);
                drop(st);
                (c.cluster_key == key).then_some((n, stage, boot, c))
            })
            .collect()
    }

    /// An OS CA key from a control plane of the cluster (what trustd gives a worker).
    pub fn cluster_ca_key(&self, key: &str) -> Option<KeyPair> {
        self.cluster(key)
            .into_iter()
            .find_map(|(_, _, _, c)| c.os_ca_key())
    }

    /// Some node of the cluster ran Bootstrap (or joined after it).
    pub fn cluster_bootstrapped(&self, key: &str) -> bool {
        self.cluster(key).iter().any(|(_, _, b, _)| *b)
    }

    /// etcd members: the cluster's running control planes, once it is bootstrapped.
    pub fn etcd_members(&self, key: &str) -> Vec<m::EtcdMember> {
        self.cluster(key)
            .into_iter()
            .filter(|(_, stage, _, c)| *stage == Stage::Running && c.is_control_plane())
            .map(|(n, _, _, c)| {
                let digest = Sha256::digest(format!("{key}/{}", n.vmid));
                let mut id = [0u8; 8];
                id.copy_from_slice(&digest[..8]);
                m::EtcdMember {
                    id: u64::from_be_bytes(id),
                    hostname: hostname(&n, &c),
                    peer_urls: vec![format!("https://{}:2380", n.ip)],
                    client_urls: vec![format!("https://{}:2379", n.ip)],
                    is_learner: false,
                }
            })
            .collect()
    }

    /// What `ServiceList` shows for a node in its current stage.
    pub fn services(&self, node: &Node) -> Vec<m::ServiceInfo> {
        // Copy what is needed and drop the lock: the cluster view locks other nodes.
        let (running, cp, own_boot, key) = {
            let st = node.state();
            let c = st.disk.config.as_ref();
            (
                st.stage == Stage::Running,
                c.is_some_and(|c| c.is_control_plane()),
                st.disk.bootstrapped,
                c.map(|c| c.cluster_key.clone()),
            )
        };
        let etcd_up = own_boot || key.is_some_and(|k| self.cluster_bootstrapped(&k));
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

fn hostname(n: &Node, c: &MachineConfig) -> String {
    c.hostname
        .clone()
        .unwrap_or_else(|| format!("talos-{}", n.ip.to_string().replace('.', "-")))
}
