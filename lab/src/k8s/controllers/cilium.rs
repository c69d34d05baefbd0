//! What the lab recognises of a Cilium install (no CNI is simulated, only its effects on
//! Nodes): the agent DaemonSet, whose pod on a node brings that node's pod network up (the
//! agent writes the CNI configuration once it is ready, and the kubelet then reports
//! NetworkReady), and the cilium-operator, which marks Nodes by its agent's readiness:
//! - with `set-cilium-node-taints`, a node where an agent pod is scheduled but not ready gets
//!   the `agent-not-ready-taint-key` taint (empty value, effect NoSchedule);
//! - with `remove-cilium-node-taints`, that taint goes once the node's agent is ready;
//! - with `set-cilium-is-up-condition`, a node whose agent is ready gets the condition
//!   NetworkUnavailable=False, reason CiliumIsUp (kept afterwards).
//!
//! The options come from the `cilium-config` ConfigMap in the operator's namespace; absent
//! keys take the operator's own defaults (remove: true, set: false, condition: true).

use serde_json::Value;

/// The agent-not-ready taint key when the configuration names none.
pub const DEFAULT_TAINT_KEY: &str = "node.cilium.io/agent-not-ready";

fn template_label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["spec"]["template"]["metadata"]["labels"][key].as_str()
}

/// A DaemonSet running the Cilium agent (the operator's default pod selector `k8s-app=cilium`).
pub fn is_agent(ds: &Value) -> bool {
    template_label(ds, "k8s-app") == Some("cilium")
}

/// A Deployment running the cilium-operator (its pods carry `io.cilium/app=operator`).
pub fn is_operator(dep: &Value) -> bool {
    template_label(dep, "io.cilium/app") == Some("operator")
}

/// The operator's node-marking options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub remove_taint: bool,
    pub set_taint: bool,
    pub set_up_condition: bool,
    pub taint_key: String,
}

impl Options {
    /// From the `cilium-config` ConfigMap (if any).
    pub fn from_config(cm: Option<&Value>) -> Options {
        let get = |k: &str| cm.and_then(|c| c["data"][k].as_str());
        let flag = |k: &str, default: bool| get(k).map_or(default, |v| v.trim() == "true");
        Options {
            remove_taint: flag("remove-cilium-node-taints", true),
            set_taint: flag("set-cilium-node-taints", false),
            set_up_condition: flag("set-cilium-is-up-condition", true),
            taint_key: get("agent-not-ready-taint-key")
                .filter(|k| !k.is_empty())
                .unwrap_or(DEFAULT_TAINT_KEY)
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_and_recognition() {
        let none = Options::from_config(None);
        assert_eq!(
            (none.remove_taint, none.set_taint, none.set_up_condition),
            (true, false, true)
        );
        assert_eq!(none.taint_key, DEFAULT_TAINT_KEY);
        let cm = json!({"data": {"set-cilium-node-taints": "true", "set-cilium-is-up-condition": "false", "agent-not-ready-taint-key": "x/y"}});
        let o = Options::from_config(Some(&cm));
        assert_eq!(
            (
                o.remove_taint,
                o.set_taint,
                o.set_up_condition,
                o.taint_key.as_str()
            ),
            (true, true, false, "x/y")
        );
        let ds = json!({"spec": {"template": {"metadata": {"labels": {"k8s-app": "cilium"}}}}});
        assert!(is_agent(&ds) && !is_operator(&ds));
    }
}
