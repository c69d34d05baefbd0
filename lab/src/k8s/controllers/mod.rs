//! The controllers and kubelets of a simulated cluster: they keep the objects' status as the
//! real ones would post it.
//!
//! - [`nodes`]: Node objects as Talos kubelets register them;
//! - [`workloads`]: Deployment, DaemonSet and StatefulSet status;
//! - [`cilium`]: the Cilium agent's and operator's effects on Nodes;
//! - [`gc`]: the garbage collector;
//! - [`namespaces`]: the namespace controller;
//! - [`crds`]: the apiextensions naming, establishing and finalizing controllers;
//! - [`argocd`]: Argo CD's application controller, once its StatefulSet is ready.

pub mod argocd;
pub mod cilium;
pub mod crds;
pub mod gc;
pub mod namespaces;
pub mod nodes;
pub mod workloads;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::ApiServer;
use super::store;
use crate::talos::cluster::ClusterNode;

impl ApiServer {
    fn cluster(&self) -> Vec<ClusterNode> {
        self.talos.cluster(&self.key)
    }

    /// Kubelets register: a Node per running Talos node of the cluster, once per boot.
    pub fn sync_nodes(&self) {
        for n in self.cluster() {
            if n.running() {
                let reg = nodes::with_status(
                    nodes::registration(&n),
                    &nodes::Kubelet {
                        node: Some(&n),
                        cni_ready: self.cni_ready(),
                        cilium_taint: None,
                        cilium_up: None,
                    },
                );
                self.store.register_node(n.node.vmid, n.boots, reg);
            }
        }
        self.cilium_operator();
        // The kubelet, the node lifecycle controller and the workload controllers post status
        // changes: they move the object's resourceVersion and reach watches as MODIFIED.
        let mut seen = self.node_status.lock().unwrap_or_else(|e| e.into_inner());
        for (group, resource) in [
            ("", "nodes"),
            ("apps", "deployments"),
            ("apps", "daemonsets"),
            ("apps", "statefulsets"),
        ] {
            let k = store::kind_in(group, resource).expect("served kind");
            let (items, _) = self.store.list(k, None);
            for obj in items {
                let name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let ns = obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let v = self.view(k, obj);
                let key = json!([v["status"], v["spec"]["taints"]]);
                let id = format!("{}/{ns}/{name}", k.qualified());
                match seen.insert(id, key.clone()) {
                    Some(prev) if prev != key => self.store.touch(k, &ns, &name),
                    _ => {}
                }
            }
        }
    }

    /// Whether a pod of the workload `uid` that can be ready on `node` (`could`) is ready yet:
    /// `pod_ready_ms` after it first could be.
    fn gate(&self, uid: &str, node: &str, could: bool) -> bool {
        let mut pods = self.store.pods.lock().unwrap_or_else(|e| e.into_inner());
        let key = (uid.to_string(), node.to_string());
        if !could {
            pods.remove(&key);
            return false;
        }
        let since = *pods.entry(key).or_insert_with(std::time::Instant::now);
        since.elapsed() >= Duration::from_millis(self.talos.opts.pod_ready_ms)
    }

    /// The garbage collector (kube-controller-manager's): a few passes, so that chains
    /// (references dropped, then the finalizer) settle within one tick.
    pub fn collect_garbage(&self) {
        let kinds = self.store.owner_kinds();
        for _ in 0..8 {
            if !self.store.collect_garbage(&kinds) {
                break;
            }
        }
    }

    /// An object as served: stored fields plus the status its controllers post.
    pub fn view(&self, k: &store::Kind, obj: Value) -> Value {
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let gate = |node: &str, could: bool| self.gate(&uid, node, could);
        match (k.group, k.resource) {
            ("", "nodes") => self.node_view(obj),
            ("apps", "deployments") => {
                let since = obj["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                workloads::deployment(obj, &self.node_infos(), &since, &gate)
            }
            ("apps", "daemonsets") => workloads::daemonset(obj, &self.node_infos(), &gate),
            ("apps", "statefulsets") => workloads::statefulset(obj, &self.node_infos(), &gate),
            // A custom object reads in the version asked for.
            _ if store::kind_in(k.group, k.resource).is_none() => {
                let mut obj = obj;
                obj["apiVersion"] = json!(k.api_version());
                obj
            }
            _ => obj,
        }
    }

    fn node_infos(&self) -> Vec<workloads::NodeInfo> {
        let nodes = store::kind("nodes").expect("nodes");
        let (items, _) = self.store.list(nodes, None);
        items
            .into_iter()
            .map(|n| workloads::NodeInfo::of(&self.node_view(n)))
            .collect()
    }

    fn cni_ready(&self) -> bool {
        *self
            .store
            .cni_ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A stored Node with its live status: its pod network is up when the control seam says
    /// so or a Cilium agent pod on it is ready.
    pub fn node_view(&self, obj: Value) -> Value {
        self.node_and_agent(obj).0
    }

    /// A Node's view and its Cilium agent: (view, agent scheduled there, agent ready).
    fn node_and_agent(&self, obj: Value) -> (Value, bool, bool) {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let cluster = self.cluster();
        let node = cluster.iter().find(|n| n.hostname == name);
        let lock = |m: &Mutex<std::collections::BTreeMap<String, String>>| {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned()
        };
        let mut kubelet = nodes::Kubelet {
            node,
            cni_ready: false,
            cilium_taint: lock(&self.store.cilium_taints),
            cilium_up: lock(&self.store.cilium_up),
        };
        let base = nodes::with_status(obj.clone(), &kubelet);
        let (scheduled, ready) = self.cilium_agent(&workloads::NodeInfo::of(&base));
        kubelet.cni_ready = self.cni_ready() || ready;
        let mut view = nodes::with_status(obj, &kubelet);
        self.ready_transition(&name, &mut view);
        (view, scheduled, ready)
    }

    /// The Ready condition's lastTransitionTime (and heartbeat): when its status last changed,
    /// as first seen by the lab (the Node's creation for the first status).
    fn ready_transition(&self, name: &str, view: &mut Value) {
        let created = view["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(cond) = view["status"]["conditions"]
            .as_array_mut()
            .and_then(|cs| cs.iter_mut().find(|c| c["type"] == "Ready"))
        else {
            return;
        };
        let status = cond["status"].as_str().unwrap_or_default().to_string();
        let mut seen = self
            .store
            .ready_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let since = match seen.get(name) {
            Some((st, at)) if *st == status && *at >= created => at.clone(),
            Some(_) => store::rfc3339(std::time::SystemTime::now()).max(created),
            None => created,
        };
        seen.insert(name.to_string(), (status, since.clone()));
        cond["lastTransitionTime"] = json!(since);
        cond["lastHeartbeatTime"] = json!(since);
    }

    /// The Cilium agent on a node: (a pod of it is scheduled there, that pod is ready).
    fn cilium_agent(&self, node: &workloads::NodeInfo) -> (bool, bool) {
        let ds = store::kind_in("apps", "daemonsets").expect("daemonsets");
        let (items, _) = self.store.list(ds, None);
        let mut out = (false, false);
        for d in items.iter().filter(|d| cilium::is_agent(d)) {
            let spec = &d["spec"]["template"]["spec"];
            let placed = workloads::schedulable(spec, node, true);
            // Its own timer (the node here is seen without its pod network, unlike the
            // DaemonSet's status view), so the two views cannot reset each other's.
            let uid = format!(
                "{}#agent",
                d["metadata"]["uid"].as_str().unwrap_or_default()
            );
            let ready = self.gate(&uid, &node.name, placed && workloads::ready_on(spec, node));
            out = (out.0 || placed, out.1 || ready);
        }
        out
    }

    /// The cilium-operator's node marking, while one of its pods is ready (see [`cilium`]).
    fn cilium_operator(&self) {
        let deps = store::kind_in("apps", "deployments").expect("deployments");
        let (items, _) = self.store.list(deps, None);
        let Some(op) = items.into_iter().find(cilium::is_operator) else {
            return;
        };
        let ns = op["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if self.view(deps, op)["status"]["readyReplicas"]
            .as_u64()
            .unwrap_or(0)
            == 0
        {
            return;
        }
        let cms = store::kind("configmaps").expect("configmaps");
        let cfg = self.store.get(cms, &ns, "cilium-config").ok();
        let opts = cilium::Options::from_config(cfg.as_ref());
        let nodes_kind = store::kind("nodes").expect("nodes");
        let (items, _) = self.store.list(nodes_kind, None);
        for n in items {
            let name = n["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (_, scheduled, ready) = self.node_and_agent(n);
            let mut taints = self
                .store
                .cilium_taints
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if ready {
                if opts.remove_taint {
                    taints.remove(&name);
                }
                drop(taints);
                if opts.set_up_condition {
                    self.store
                        .cilium_up
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(name)
                        .or_insert_with(|| store::rfc3339(std::time::SystemTime::now()));
                }
            } else if scheduled && opts.set_taint {
                taints.entry(name).or_insert(opts.taint_key.clone());
            }
        }
    }
}
