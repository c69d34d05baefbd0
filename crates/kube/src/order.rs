//! Apply order: what must exist before what.

use crate::ObjectRef;

/// Cluster-scoped RBAC and configuration kinds applied right after CRDs.
const CLUSTER_CONFIG: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "StorageClass",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
];

/// Namespaced configuration that workloads reference.
const NAMESPACED_CONFIG: &[&str] = &[
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "Role",
    "RoleBinding",
    "ResourceQuota",
    "LimitRange",
    "PersistentVolumeClaim",
];

const WORKLOADS: &[&str] = &[
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
];

/// The phase of a kind: Namespaces, CRDs, cluster config, namespaced config, Services,
/// workloads, then anything else (custom objects, policies, webhooks, …).
pub(crate) fn rank(object: &ObjectRef) -> u8 {
    let k = object.kind.as_str();
    let core = object.group.is_empty();
    if core && k == "Namespace" {
        0
    } else if object.group == "apiextensions.k8s.io" && k == "CustomResourceDefinition" {
        1
    } else if CLUSTER_CONFIG.contains(&k) && builtin(object) {
        2
    } else if NAMESPACED_CONFIG.contains(&k) && builtin(object) {
        3
    } else if core && k == "Service" {
        4
    } else if WORKLOADS.contains(&k) && builtin(object) {
        5
    } else {
        6
    }
}

/// Built-in groups (a custom kind may reuse a built-in kind's name).
fn builtin(object: &ObjectRef) -> bool {
    matches!(
        object.group.as_str(),
        "" | "apps"
            | "batch"
            | "rbac.authorization.k8s.io"
            | "scheduling.k8s.io"
            | "storage.k8s.io"
            | "networking.k8s.io"
            | "node.k8s.io"
    )
}

/// Indices of `refs` in apply order (stable within a phase).
pub(crate) fn apply_order(refs: &[ObjectRef]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..refs.len()).collect();
    idx.sort_by_key(|&i| rank(&refs[i]));
    idx
}

/// Indices of `refs` in delete order: the reverse of apply order.
pub(crate) fn delete_order(refs: &[ObjectRef]) -> Vec<usize> {
    let mut idx = apply_order(refs);
    idx.reverse();
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(group: &str, kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: None,
            name: name.into(),
        }
    }

    #[test]
    fn phases_in_order_and_stable_within() {
        let refs = vec![
            r("example.com", "Widget", "w"),
            r("apps", "DaemonSet", "ds"),
            r("", "Service", "svc"),
            r("", "ConfigMap", "cm1"),
            r("rbac.authorization.k8s.io", "ClusterRole", "cr"),
            r("apiextensions.k8s.io", "CustomResourceDefinition", "crd"),
            r("", "Namespace", "ns"),
            r("", "ConfigMap", "cm0"),
            r("apps", "Deployment", "d"),
            r("", "ServiceAccount", "sa"),
            r("example.com", "Deployment", "custom-deployment"),
        ];
        let names: Vec<&str> = apply_order(&refs)
            .into_iter()
            .map(|i| refs[i].name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "ns",
                "crd",
                "cr",
                "cm1",
                "cm0",
                "sa",
                "svc",
                "ds",
                "d",
                "w",
                "custom-deployment"
            ]
        );
        let back: Vec<&str> = delete_order(&refs)
            .into_iter()
            .map(|i| refs[i].name.as_str())
            .collect();
        assert_eq!(back.first(), Some(&"custom-deployment"));
        assert_eq!(back.last(), Some(&"ns"));
    }
}
