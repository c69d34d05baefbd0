//! The kinds the API server serves: the built-in ones (discovery names, scope, verbs) and the
//! ones Established CustomResourceDefinitions add.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Store;

/// A resource the store serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// API group ("" for core).
    pub group: &'static str,
    pub version: &'static str,
    /// Plural resource name (`configmaps`).
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Objects with a spec bump `metadata.generation` when it changes.
    pub has_spec: bool,
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// What `/api/v1` serves (in discovery order: alphabetical, as the real list is).
pub const KINDS: &[Kind] = &[
    Kind {
        group: "",
        version: "v1",
        resource: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "",
        version: "v1",
        resource: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        has_spec: false,
    },
    Kind {
        group: "",
        version: "v1",
        resource: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "",
        version: "v1",
        resource: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "",
        version: "v1",
        resource: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "",
        version: "v1",
        resource: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "apps",
        version: "v1",
        resource: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        verbs: ALL_VERBS,
        has_spec: true,
    },
    Kind {
        group: "apps",
        version: "v1",
        resource: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        verbs: ALL_VERBS,
        has_spec: true,
    },
    Kind {
        group: "apps",
        version: "v1",
        resource: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        verbs: ALL_VERBS,
        has_spec: true,
    },
    Kind {
        group: "networking.k8s.io",
        version: "v1",
        resource: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        verbs: ALL_VERBS,
        has_spec: true,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: &[],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        verbs: ALL_VERBS,
        has_spec: false,
    },
    Kind {
        group: "apiextensions.k8s.io",
        version: "v1",
        resource: "customresourcedefinitions",
        singular: "customresourcedefinition",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        verbs: ALL_VERBS,
        has_spec: true,
    },
];

/// The verbs discovery lists for a custom resource (in the apiextensions server's order).
pub const CUSTOM_VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

/// A core/v1 kind by resource name.
pub fn kind(resource: &str) -> Option<&'static Kind> {
    kind_in("", resource)
}

/// A kind by group and resource name.
pub fn kind_in(group: &str, resource: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.resource == resource)
}

impl Kind {
    /// `resource` or `resource.group`: how the store keys it and errors name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// API groups besides core, in discovery order.
pub const GROUPS: &[&str] = &[
    "apps",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
];

/// Kubernetes version priority: GA before beta before alpha, higher numbers first, others
/// last by name.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let rank = |v: &str| -> (u8, i64, i64, String) {
        let Some(rest) = v.strip_prefix('v') else {
            return (3, 0, 0, v.to_string());
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(major) = digits.parse::<i64>() else {
            return (3, 0, 0, v.to_string());
        };
        let tail = &rest[digits.len()..];
        let (stage, minor) = if tail.is_empty() {
            (0, 0)
        } else if let Some(n) = tail.strip_prefix("beta") {
            (1, n.parse().unwrap_or(-1))
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n.parse().unwrap_or(-1))
        } else {
            return (3, 0, 0, v.to_string());
        };
        if minor < 0 {
            return (3, 0, 0, v.to_string());
        }
        (stage, -major, -minor, String::new())
    };
    rank(a).cmp(&rank(b))
}

impl Store {
    /// The kinds the Established CustomResourceDefinitions serve (one per served version).
    pub fn custom_kinds(&self) -> Vec<&'static Kind> {
        let crds = kind_in("apiextensions.k8s.io", "customresourcedefinitions").expect("crds");
        let (items, _) = self.list(crds, None);
        let mut cache = self.custom.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for c in items {
            let established = c["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|x| x["type"] == "Established" && x["status"] == "True")
            });
            if !established {
                continue;
            }
            let names = &c["status"]["acceptedNames"];
            let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let group = str_of(&c["spec"]["group"]);
            let plural = str_of(&names["plural"]);
            let kind = str_of(&names["kind"]);
            let singular = names["singular"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map_or_else(|| kind.to_lowercase(), str::to_string);
            let short: Vec<String> = names["shortNames"]
                .as_array()
                .map(|a| a.iter().map(str_of).collect())
                .unwrap_or_default();
            let namespaced = c["spec"]["scope"] != "Cluster";
            for v in c["spec"]["versions"].as_array().into_iter().flatten() {
                if v["served"] == false {
                    continue;
                }
                let version = str_of(&v["name"]);
                let sig =
                    json!([group, version, plural, singular, kind, namespaced, short]).to_string();
                let k = *cache.entry(sig).or_insert_with(|| {
                    let leak = |s: &str| -> &'static str { Box::leak(s.into()) };
                    let short: Vec<&'static str> = short.iter().map(|s| leak(s)).collect();
                    Box::leak(Box::new(Kind {
                        group: leak(&group),
                        version: leak(&version),
                        resource: leak(&plural),
                        singular: leak(&singular),
                        kind: leak(&kind),
                        namespaced,
                        short_names: Box::leak(short.into_boxed_slice()),
                        verbs: CUSTOM_VERBS,
                        has_spec: true,
                    }))
                });
                out.push(k);
            }
        }
        out
    }

    /// A served kind by group, version and resource: built-in or from a CRD.
    pub fn find(&self, group: &str, version: &str, resource: &str) -> Option<&'static Kind> {
        if let Some(k) = kind_in(group, resource)
            && k.version == version
        {
            return Some(k);
        }
        self.custom_kinds()
            .into_iter()
            .find(|k| k.group == group && k.version == version && k.resource == resource)
    }

    /// The groups CRDs serve, by name, each with its versions (preferred first).
    pub fn custom_groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for k in self.custom_kinds() {
            let vs = groups.entry(k.group.to_string()).or_default();
            if !vs.iter().any(|v| v == k.version) {
                vs.push(k.version.to_string());
            }
        }
        groups
            .into_iter()
            .map(|(g, mut vs)| {
                vs.sort_by(|a, b| version_order(a, b));
                (g, vs)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_version_priority() {
        let mut vs = vec![
            "v1alpha1",
            "foo",
            "v2beta1",
            "v1",
            "v10",
            "v11alpha2",
            "v2",
            "v1beta2",
            "v1beta1",
        ];
        vs.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            vs,
            [
                "v10",
                "v2",
                "v1",
                "v2beta1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "foo"
            ]
        );
    }
}
