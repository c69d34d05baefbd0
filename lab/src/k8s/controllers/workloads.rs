//! Tiny controllers: the status of Deployments, DaemonSets and StatefulSets as their
//! controllers and the kubelets would report it. A pod runs on a node whose taints it tolerates
//! (DaemonSets get the controller's automatic tolerations) and can be ready when that node's
//! kubelet runs and the pod network is up — or the pod uses the host network (how a CNI's own
//! agent starts before the CNI is ready). A [`Gate`] turns "can be ready" into "ready" a moment
//! later (the rollout delay).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What the controllers need of a node.
pub struct NodeInfo {
    pub name: String,
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
            name: node["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
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

/// Whether a pod that can be ready on the named node (`true`) is ready yet: the caller
/// remembers since when it could be; `false` forgets it.
pub type Gate<'a> = dyn Fn(&str, bool) -> bool + 'a;

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
pub fn schedulable(spec: &Value, node: &NodeInfo, daemonset: bool) -> bool {
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

pub fn ready_on(spec: &Value, node: &NodeInfo) -> bool {
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
pub fn deployment(mut obj: Value, nodes: &[NodeInfo], now: &str, gate: &Gate<'_>) -> Value {
    let replicas = obj["spec"]["replicas"].as_u64().unwrap_or(1);
    let ready = ready_replicas(&obj, replicas, nodes, gate);
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

/// The pod template asks for at most one of its pods per node (a required pod anti-affinity
/// on `kubernetes.io/hostname` whose selector matches the template's own labels).
fn one_per_node(obj: &Value) -> bool {
    let labels = &obj["spec"]["template"]["metadata"]["labels"];
    obj.pointer("/spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
        .and_then(Value::as_array)
        .is_some_and(|terms| {
            terms.iter().any(|t| {
                t["topologyKey"] == "kubernetes.io/hostname"
                    && t["labelSelector"]["matchLabels"]
                        .as_object()
                        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
            })
        })
}

/// Ready pods of a replicated workload: those on nodes where they can run and have had time
/// to start (every replica may share a node unless the template forbids it).
fn ready_replicas(obj: &Value, replicas: u64, nodes: &[NodeInfo], gate: &Gate<'_>) -> u64 {
    let spec = &obj["spec"]["template"]["spec"];
    let per_node = if one_per_node(obj) { 1 } else { replicas };
    let mut ready = 0;
    for n in nodes {
        let could = replicas > 0 && schedulable(spec, n, false) && ready_on(spec, n);
        if gate(&n.name, could) {
            ready += per_node;
        }
    }
    ready.min(replicas)
}

/// A StatefulSet with the status its controller would post: with the default `OrderedReady`
/// pod management a pod is only created once the one before it is ready.
pub fn statefulset(mut obj: Value, nodes: &[NodeInfo], gate: &Gate<'_>) -> Value {
    let want = obj["spec"]["replicas"].as_u64().unwrap_or(1);
    let ready = ready_replicas(&obj, want, nodes, gate);
    let created = if obj["spec"]["podManagementPolicy"] == "Parallel" {
        want
    } else {
        want.min(ready + 1)
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let revision = format!("{name}-{}", template_hash(&obj["spec"]["template"]));
    let mut status = json!({
        "observedGeneration": obj["metadata"]["generation"].as_u64().unwrap_or(1),
        "replicas": created,
        "availableReplicas": ready,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    count(&mut status, "readyReplicas", ready);
    count(&mut status, "currentReplicas", created);
    count(&mut status, "updatedReplicas", created);
    obj["status"] = status;
    obj
}

/// A DaemonSet with the status its controller would post.
pub fn daemonset(mut obj: Value, nodes: &[NodeInfo], gate: &Gate<'_>) -> Value {
    let spec = obj["spec"]["template"]["spec"].clone();
    let mut desired = 0;
    let mut ready = 0;
    for n in nodes {
        let placed = schedulable(&spec, n, true);
        desired += u64::from(placed);
        ready += u64::from(gate(&n.name, placed && ready_on(&spec, n)));
    }
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
        let now = |_: &str, could: bool| could;
        let d = deployment(dep, &nodes, "t", &now);
        assert_eq!(d["status"]["conditions"][0]["status"], "False");
        assert!(d["status"].get("readyReplicas").is_none());
        assert_eq!(d["status"]["unavailableReplicas"], 2);
        // A host-network DaemonSet that tolerates everything runs on a NotReady node.
        let agent = json!({"metadata": {"generation": 3}, "spec": {"template": {"spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists"}]}}}});
        let a = daemonset(agent, &nodes, &now);
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
            daemonset(plain, &nodes, &now)["status"]["desiredNumberScheduled"],
            0
        );
        // Once the network is up everything is ready.
        let ok = [node("True", json!([]))];
        let d = deployment(
            json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {}}}}),
            &ok,
            "t",
            &now,
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
