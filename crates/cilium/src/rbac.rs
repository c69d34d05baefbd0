//! RBAC: the agent's and operator's ClusterRoles and Roles, their bindings, the ServiceAccounts.

use serde_json::{Value, json};

use crate::meta::{self, NAMESPACE, SECRETS_NAMESPACE};
use crate::resolve::Config;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

const WATCH: &[&str] = &["get", "list", "watch"];
const WRITE_SECRETS: &[&str] = &["create", "delete", "update", "patch"];

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta::labelled(name, None),
        "rules": rules,
    })
}

fn subject(service_account: &str) -> Value {
    json!([{"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}])
}

/// A ClusterRoleBinding of the ClusterRole `name` to the ServiceAccount `name`.
pub(crate) fn cluster_role_binding(name: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta::labelled(name, None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": subject(name),
    })
}

fn role(name: &str, namespace: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta::labelled(name, Some(namespace)),
        "rules": rules,
    })
}

fn role_binding(name: &str, namespace: &str, role: &str, service_account: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta::labelled(name, Some(namespace)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": subject(service_account),
    })
}

fn secrets_reader(name: &str, namespace: &str) -> Value {
    role(name, namespace, vec![rule(&[""], &["secrets"], WATCH)])
}

fn secrets_writer(name: &str) -> Value {
    role(
        name,
        SECRETS_NAMESPACE,
        vec![rule(&[""], &["secrets"], WRITE_SECRETS)],
    )
}

/// Every RBAC object and the agent's and operator's ServiceAccounts.
pub(crate) fn objects(c: &Config) -> Vec<Value> {
    let mut out = vec![
        agent_cluster_role(),
        cluster_role_binding("cilium"),
        operator_cluster_role(c),
        cluster_role_binding("cilium-operator"),
        meta::service_account("cilium"),
        meta::service_account("cilium-operator"),
        // The agent reads its configuration ConfigMaps.
        role(
            "cilium-config-agent",
            NAMESPACE,
            vec![rule(&[""], &["configmaps"], WATCH)],
        ),
        role_binding(
            "cilium-config-agent",
            NAMESPACE,
            "cilium-config-agent",
            "cilium",
        ),
        // Secrets referenced by policies (TLS interception) are synced into cilium-secrets.
        secrets_reader("cilium-tlsinterception-secrets", SECRETS_NAMESPACE),
        role_binding(
            "cilium-tlsinterception-secrets",
            SECRETS_NAMESPACE,
            "cilium-tlsinterception-secrets",
            "cilium",
        ),
        secrets_writer("cilium-operator-tlsinterception-secrets"),
        role_binding(
            "cilium-operator-tlsinterception-secrets",
            SECRETS_NAMESPACE,
            "cilium-operator-tlsinterception-secrets",
            "cilium-operator",
        ),
        // The operator manages ztunnel DaemonSets (and removes stale ones), whatever the encryption.
        role(
            "cilium-operator-ztunnel",
            NAMESPACE,
            vec![
                rule(
                    &["apps"],
                    &["daemonsets"],
                    &["create", "delete", "get", "list", "watch"],
                ),
                rule(&[""], &["serviceaccounts"], WATCH),
            ],
        ),
        role_binding(
            "cilium-operator-ztunnel",
            NAMESPACE,
            "cilium-operator-ztunnel",
            "cilium-operator",
        ),
    ];
    if c.ingress.is_some() {
        out.push(secrets_reader("cilium-ingress-secrets", SECRETS_NAMESPACE));
        // The chart names this binding plainly `cilium-secrets`.
        out.push(role_binding(
            "cilium-secrets",
            SECRETS_NAMESPACE,
            "cilium-ingress-secrets",
            "cilium",
        ));
        out.push(secrets_writer("cilium-operator-ingress-secrets"));
        out.push(role_binding(
            "cilium-operator-ingress-secrets",
            SECRETS_NAMESPACE,
            "cilium-operator-ingress-secrets",
            "cilium-operator",
        ));
    }
    if c.gateway_api {
        out.push(secrets_reader("cilium-gateway-secrets", SECRETS_NAMESPACE));
        out.push(role_binding(
            "cilium-gateway-secrets",
            SECRETS_NAMESPACE,
            "cilium-gateway-secrets",
            "cilium",
        ));
        out.push(secrets_writer("cilium-operator-gateway-secrets"));
        out.push(role_binding(
            "cilium-operator-gateway-secrets",
            SECRETS_NAMESPACE,
            "cilium-operator-gateway-secrets",
            "cilium-operator",
        ));
    }
    if c.bgp {
        // BGP peer passwords live in kube-system.
        out.push(secrets_reader(
            "cilium-bgp-control-plane-secrets",
            NAMESPACE,
        ));
        out.push(role_binding(
            "cilium-bgp-control-plane-secrets",
            NAMESPACE,
            "cilium-bgp-control-plane-secrets",
            "cilium",
        ));
    }
    out
}

fn agent_cluster_role() -> Value {
    cluster_role(
        "cilium",
        vec![
            rule(&["networking.k8s.io"], &["networkpolicies"], WATCH),
            rule(&["discovery.k8s.io"], &["endpointslices"], WATCH),
            rule(&[""], &["namespaces", "services", "pods", "nodes"], WATCH),
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                &["list", "watch", "get"],
            ),
            rule(
                &["cilium.io"],
                &[
                    "ciliumloadbalancerippools",
                    "ciliumbgpnodeconfigs",
                    "ciliumbgpadvertisements",
                    "ciliumbgppeerconfigs",
                    "ciliumclusterwideenvoyconfigs",
                    "ciliumclusterwidenetworkpolicies",
                    "ciliumegressgatewaypolicies",
                    "ciliumendpoints",
                    "ciliumendpointslices",
                    "ciliumenvoyconfigs",
                    "ciliumidentities",
                    "ciliumlocalredirectpolicies",
                    "ciliumnetworkpolicies",
                    "ciliumnodes",
                    "ciliumnodeconfigs",
                    "ciliumcidrgroups",
                    "ciliuml2announcementpolicies",
                    "ciliumpodippools",
                    "ciliumdatapathplugins",
                ],
                &["list", "watch"],
            ),
            rule(
                &["cilium.io"],
                &["ciliumidentities", "ciliumendpoints", "ciliumnodes"],
                &["create"],
            ),
            rule(&["cilium.io"], &["ciliumidentities"], &["update"]),
            rule(&["cilium.io"], &["ciliumendpoints"], &["delete", "get"]),
            rule(
                &["cilium.io"],
                &["ciliumnodes", "ciliumnodes/status"],
                &["get", "update"],
            ),
            rule(
                &["cilium.io"],
                &[
                    "ciliumendpoints/status",
                    "ciliumendpoints",
                    "ciliuml2announcementpolicies/status",
                    "ciliumbgpnodeconfigs/status",
                ],
                &["patch"],
            ),
        ],
    )
}

fn operator_cluster_role(c: &Config) -> Value {
    let l7 = c.ingress.is_some() || c.gateway_api;
    let mut service_verbs = WATCH.to_vec();
    if l7 {
        // Ingress and Gateway API controllers create their LoadBalancer Services.
        service_verbs.extend(["create", "update", "delete", "patch"]);
    }
    let mut rules = vec![
        rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
        json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cilium-config"], "verbs": ["patch"]}),
        rule(&[""], &["nodes"], &["list", "watch"]),
        rule(&[""], &["nodes", "nodes/status"], &["patch"]),
        rule(&["discovery.k8s.io"], &["endpointslices"], WATCH),
        rule(&[""], &["services/status"], &["update", "patch"]),
        rule(&[""], &["namespaces", "secrets", "serviceaccounts"], WATCH),
        rule(&[""], &["services"], &service_verbs),
    ];
    if l7 {
        rules.push(rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &[
                "get", "list", "watch", "create", "update", "delete", "patch",
            ],
        ));
    }
    rules.extend([
        rule(
            &["cilium.io"],
            &["ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"],
            &["create", "update", "deletecollection", "patch", "get", "list", "watch"],
        ),
        rule(&["cilium.io"], &["ciliumnetworkpolicies/status", "ciliumclusterwidenetworkpolicies/status"], &["patch", "update"]),
        rule(&["cilium.io"], &["ciliumendpoints", "ciliumidentities"], &["delete", "list", "watch"]),
        rule(&["cilium.io"], &["ciliumidentities"], &["update"]),
        rule(&["cilium.io"], &["ciliumnodes"], &["create", "update", "get", "list", "watch", "delete"]),
        rule(&["cilium.io"], &["ciliumnodes/status"], &["update"]),
        rule(
            &["cilium.io"],
            &[
                "ciliumendpointslices", "ciliumenvoyconfigs", "ciliumbgpclusterconfigs", "ciliumbgpnodeconfigoverrides",
                "ciliumbgppeerconfigs", "ciliumbgpadvertisements", "ciliumbgpnodeconfigs", "ciliumcidrgroups",
            ],
            &["create", "update", "get", "list", "watch", "delete", "patch"],
        ),
        rule(&["cilium.io"], &["ciliumbgpclusterconfigs/status", "ciliumbgppeerconfigs/status"], &["update"]),
        rule(&["apiextensions.k8s.io"], &["customresourcedefinitions"], &["create", "get", "list", "watch"]),
        json!({
            "apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["update"],
            "resourceNames": [
                "ciliumloadbalancerippools.cilium.io", "ciliumbgpclusterconfigs.cilium.io", "ciliumbgppeerconfigs.cilium.io",
                "ciliumbgpadvertisements.cilium.io", "ciliumbgpnodeconfigs.cilium.io", "ciliumbgpnodeconfigoverrides.cilium.io",
                "ciliumclusterwideenvoyconfigs.cilium.io", "ciliumclusterwidenetworkpolicies.cilium.io",
                "ciliumegressgatewaypolicies.cilium.io", "ciliumendpoints.cilium.io", "ciliumendpointslices.cilium.io",
                "ciliumenvoyconfigs.cilium.io", "ciliumidentities.cilium.io", "ciliumlocalredirectpolicies.cilium.io",
                "ciliumnetworkpolicies.cilium.io", "ciliumnodes.cilium.io", "ciliumnodeconfigs.cilium.io",
                "ciliumcidrgroups.cilium.io", "ciliuml2announcementpolicies.cilium.io", "ciliumpodippools.cilium.io",
                "ciliumgatewayclassconfigs.cilium.io", "ciliumdatapathplugins.cilium.io",
            ],
        }),
        json!({
            "apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions/status"], "verbs": ["update"],
            "resourceNames": [
                "ciliumbgpclusterconfigs.cilium.io", "ciliumbgppeerconfigs.cilium.io", "ciliumbgpadvertisements.cilium.io",
                "ciliumbgpnodeconfigs.cilium.io", "ciliumbgpnodeconfigoverrides.cilium.io",
            ],
        }),
        rule(&["cilium.io"], &["ciliumloadbalancerippools", "ciliumpodippools", "ciliumbgppeerconfigs", "ciliumdatapathplugins"], WATCH),
        rule(&["cilium.io"], &["ciliumpodippools"], &["create"]),
        rule(&["cilium.io"], &["ciliumloadbalancerippools/status"], &["patch"]),
        // Leader election between operator replicas.
        rule(&["coordination.k8s.io"], &["leases"], &["create", "get", "update"]),
    ]);
    if c.ingress.is_some() {
        rules.push(rule(
            &["networking.k8s.io"],
            &["ingresses", "ingressclasses"],
            WATCH,
        ));
        rules.push(rule(
            &["networking.k8s.io"],
            &["ingresses/status", "ingresses/finalizers"],
            &["update"],
        ));
    }
    if c.gateway_api {
        rules.extend([
            rule(
                &["gateway.networking.k8s.io"],
                &[
                    "gatewayclasses",
                    "gateways",
                    "tcproutes",
                    "udproutes",
                    "tlsroutes",
                    "httproutes",
                    "grpcroutes",
                    "referencegrants",
                    "referencepolicies",
                    "backendtlspolicies",
                    "listenersets",
                ],
                WATCH,
            ),
            rule(
                &["gateway.networking.k8s.io"],
                &["gatewayclasses"],
                &["patch"],
            ),
            rule(
                &["gateway.networking.k8s.io"],
                &[
                    "gatewayclasses/status",
                    "gateways/status",
                    "httproutes/status",
                    "grpcroutes/status",
                    "tlsroutes/status",
                    "backendtlspolicies/status",
                    "tcproutes/status",
                    "udproutes/status",
                    "listenersets/status",
                ],
                &["update", "patch"],
            ),
            rule(&["cilium.io"], &["ciliumgatewayclassconfigs"], WATCH),
            rule(
                &["cilium.io"],
                &["ciliumgatewayclassconfigs/status"],
                &["update", "patch"],
            ),
            rule(&[""], &["configmaps"], WATCH),
            rule(&["multicluster.x-k8s.io"], &["serviceimports"], WATCH),
        ]);
    }
    rules.push(rule(
        &["cilium.io"],
        &["ciliumendpointslices"],
        &["deletecollection"],
    ));
    cluster_role("cilium-operator", rules)
}
