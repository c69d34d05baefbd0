//! Tiny controllers: the status of Deployments and DaemonSets as their controllers and the
//! kubelets would report it. A pod runs on a node whose taints it tolerates (DaemonSets get the
//! controller's automatic tolerations) and is ready when that node's kubelet runs and the pod
//! network is up — or the pod uses the host network (how a CNI's own agent starts before the
//! CNI is ready).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What the controllers need of a node.
pub struct NodeInfo {
    pub labels: Value,
    pub taints: Vec<Value>,
    /// The kubelet posts status (Ready is not Unknown).
    pub kubelet_up: bool,
    /// Ready=True: the pod network works.
    pub network_ready: bool,
}

impl NodeInfo {
    /// From a rendered Node.
    pub fn of(node: &Value) -> NodeInfo {
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["status"].as_str())
            .unwrap_or("Unknown");
        NodeInfo {
            labels: node["metadata"]["labels"].clone(),
            taints: node["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            kubelet_up: ready != "Unknown",
            network_ready: ready == "True",
        }
    }
}

fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
    tolerations.iter().any(|t| {
        let op = t["operator"].as_str().unwrap_or("Equal");
        let key_ok = match t["key"].as_str().filter(|k| !k.is_empty()) {
            Some(k) => Some(k) == taint["key"].as_str(),
            None => op == "Exists",
        };
        let effect_ok = t["effect"]
            .as_str()
            .filter(|e| !e.is_empty())
            .is_none_or(|e| Some(e) == taint["effect"].as_str());
        let value_ok = op == "Exists" || t["value"] == taint["value"] || t["value"].is_null();
        key_ok && effect_ok && value_ok
    })
}

/// The tolerations the DaemonSet controller adds to its pods.
fn daemonset_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

/// The pod template's spec can run on `node` (node selector, taints).
fn schedulable(spec: &Value, node: &NodeInfo, daemonset: bool) -> bool {
    let selector_ok = spec["nodeSelector"].as_object().is_none_or(|sel| {
        sel.iter()
            .all(|(k, v)| node.labels.get(k).is_some_and(|l| l == v))
    });
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    if daemonset {
        tolerations.extend(daemonset_tolerations(host_network(spec)));
    }
    selector_ok
        && node
            .taints
            .iter()
            .filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")))
            .all(|t| tolerates(&tolerations, t))
}

fn host_network(spec: &Value) -> bool {
    spec["hostNetwork"].as_bool() == Some(true)
}

fn ready_on(spec: &Value, node: &NodeInfo) -> bool {
    node.kubelet_up && (node.network_ready || host_network(spec))
}

/// `pod-template-hash`: 10 characters from the template, in Kubernetes' safe alphabet.
fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    Sha256::digest(serde_json::to_vec(template).unwrap_or_default())
        .iter()
        .take(10)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn count(status: &mut Value, field: &str, n: u64) {
    if n > 0 {
        status[field] = json!(n);
    }
}

/// A Deployment with the status its controller would post.
pub fn deployment(mut obj: Value, nodes: &[NodeInfo], now: &str) -> Value {
    let spec = obj["spec"]["template"]["spec"].clone();
    let replicas = obj["spec"]["replicas"].as_u64().unwrap_or(1);
    let ready = if nodes
        .iter()
        .any(|n| schedulable(&spec, n, false) && ready_on(&spec, n))
    {
        replicas
    } else {
        0
    };
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rs = format!("{name}-{}", template_hash(&obj["spec"]["template"]));
    let available = ready >= replicas;
    let mut status = json!({
        "observedGeneration": obj["metadata"]["generation"].as_u64().unwrap_or(1),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "conditions": [
            {
                "type": "Available",
                "status": if available { "True" } else { "False" },
                "lastUpdateTime": now, "lastTransitionTime": now,
                "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": now, "lastTransitionTime": now,
                "reason": if available { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                "message": if available {
                    format!("ReplicaSet \"{rs}\" has successfully progressed.")
                } else {
                    format!("ReplicaSet \"{rs}\" is progressing.")
                },
            },
        ],
    });
    count(&mut status, "readyReplicas", ready);
    count(&mut status, "availableReplicas", ready);
    count(&mut status, "unavailableReplicas", replicas - ready);
    if replicas == 0 {
        status.as_object_mut().map(|s| s.remove("replicas"));
        status.as_object_mut().map(|s| s.remove("updatedReplicas"));
    }
    obj["status"] = status;
    obj
}

/// A DaemonSet with the status its controller would post.
pub fn daemonset(mut obj: Value, nodes: &[NodeInfo]) -> Value {
    let spec = obj["spec"]["template"]["spec"].clone();
    let eligible: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| schedulable(&spec, n, true))
        .collect();
    let desired = eligible.len() as u64;
    let ready = eligible.iter().filter(|n| ready_on(&spec, n)).count() as u64;
    let mut status = json!({
        "currentNumberScheduled": desired,
        "desiredNumberScheduled": desired,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "observedGeneration": obj["metadata"]["generation"].as_u64().unwrap_or(1),
    });
    count(&mut status, "updatedNumberScheduled", desired);
    count(&mut status, "numberAvailable", ready);
    count(&mut status, "numberUnavailable", desired - ready);
    obj["status"] = status;
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, taints: Value) -> NodeInfo {
        NodeInfo::of(&json!({
            "metadata": {"labels": {"kubernetes.io/os": "linux"}},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
    }

    #[test]
    fn cni_gates_pods_but_not_host_network_agents() {
        let not_ready = node(
            "False",
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
        );
        let nodes = [not_ready];
        let dep = json!({"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 2, "template": {"spec": {}}}});
        let d = deployment(dep, &nodes, "t");
        assert_eq!(d["status"]["conditions"][0]["status"], "False");
        assert!(d["status"].get("readyReplicas").is_none());
        assert_eq!(d["status"]["unavailableReplicas"], 2);
        // A host-network DaemonSet that tolerates everything runs on a NotReady node.
        let agent = json!({"metadata": {"generation": 3}, "spec": {"template": {"spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists"}]}}}});
        let a = daemonset(agent, &nodes);
        assert_eq!(
            (
                a["status"]["desiredNumberScheduled"].as_u64(),
                a["status"]["numberReady"].as_u64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(a["status"]["observedGeneration"], 3);
        // Without tolerating not-ready:NoSchedule it is not scheduled there.
        let plain = json!({"metadata": {}, "spec": {"template": {"spec": {}}}});
        assert_eq!(
            daemonset(plain, &nodes)["status"]["desiredNumberScheduled"],
            0
        );
        // Once the network is up everything is ready.
        let ok = [node("True", json!([]))];
        let d = deployment(
            json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {}}}}),
            &ok,
            "t",
        );
        assert_eq!(d["status"]["readyReplicas"], 1);
        assert!(
            d["status"]["conditions"][1]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("ReplicaSet \"web-")
                    && m.ends_with("\" has successfully progressed."))
        );
    }
}
