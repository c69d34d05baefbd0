//! Comparing and syncing one Application's objects: the desired objects (tracked with the
//! `argocd.argoproj.io/tracking-id` annotation, Argo CD 3's default tracking method), their
//! live counterparts, and a sync that applies them wave by wave as gitops-engine orders
//! tasks: sync wave, then kind (Helm's install order, unknown kinds last), then name; a wave
//! starts only once every resource of the waves before it is healthy.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::client::Client;
use super::health::{self, Health};
use crate::k8s::ApiServer;
use crate::k8s::store::{self, Kind};

/// The annotation Argo CD 3 tracks resources with by default.
pub const TRACKING: &str = "argocd.argoproj.io/tracking-id";
/// The sync-wave annotation.
pub const WAVE: &str = "argocd.argoproj.io/sync-wave";

/// Kind order within a wave (Helm's install order, as gitops-engine uses it).
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// One object the Application manages (desired, live, or both).
#[derive(Debug, Clone)]
pub struct Res {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The served kind (None: the API server does not know it).
    pub served: Option<&'static Kind>,
    pub wave: i64,
    /// What the source says (None: only live, a candidate for pruning).
    pub desired: Option<Value>,
    /// As the API server serves it now.
    pub live: Option<Value>,
}

impl Res {
    /// `group/Kind/name`, as sync messages name resources.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.group, self.kind, self.name)
    }

    pub fn synced(&self) -> bool {
        match (&self.desired, &self.live) {
            (Some(d), Some(l)) => contains(l, d),
            _ => false,
        }
    }

    pub fn health(&self) -> Option<Health> {
        match &self.live {
            Some(l) => health::of(&self.group, &self.kind, l),
            None if self.desired.is_some() => Some(Health {
                status: "Missing",
                message: String::new(),
            }),
            None => None,
        }
    }

    /// The resource's API path (collection path when `item` is false).
    pub fn path(&self, item: bool) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        let plural = self
            .served
            .map(|k| k.resource.to_string())
            .unwrap_or_else(|| format!("{}s", self.kind.to_ascii_lowercase()));
        let ns = if self.namespace.is_empty() {
            String::new()
        } else {
            format!("/namespaces/{}", self.namespace)
        };
        if item {
            format!("{base}{ns}/{plural}/{}", self.name)
        } else {
            format!("{base}{ns}/{plural}")
        }
    }
}

/// Every field the source sets has that value live (lists element by element); what the
/// server or other managers add does not matter.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d.iter().all(|(k, dv)| {
            k == "status" && l.contains_key("metadata")
                || dv.is_null()
                || l.get(k).is_some_and(|lv| contains(lv, dv))
        }),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => live == desired,
    }
}

/// The tracking id of an object for the Application `app`.
pub fn tracking_id(app: &str, group: &str, kind: &str, ns: &str, name: &str) -> String {
    format!("{app}:{group}/{kind}:{ns}/{name}")
}

fn served(api: &ApiServer, group: &str, version: &str, kind: &str) -> Option<&'static Kind> {
    if let Some(k) = store::KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
    {
        return Some(k);
    }
    api.store
        .custom_kinds()
        .into_iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
}

fn group_version(api_version: &str) -> (String, String) {
    match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    }
}

/// The Application's resources: the desired objects (namespaced ones without a namespace
/// go to `dest_ns`), each with its live object, plus live objects tracked for `app` that the
/// source no longer has.
pub fn resources(api: &ApiServer, app: &str, dest_ns: &str, desired: &[Value]) -> Vec<Res> {
    let mut out: Vec<Res> = Vec::new();
    for d in desired {
        let (group, version) = group_version(d["apiVersion"].as_str().unwrap_or_default());
        let kind = d["kind"].as_str().unwrap_or_default().to_string();
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let k = served(api, &group, &version, &kind);
        let namespaced = k.is_none_or(|k| k.namespaced);
        let namespace = match d["metadata"]["namespace"].as_str() {
            Some(ns) if namespaced && !ns.is_empty() => ns.to_string(),
            _ if namespaced => dest_ns.to_string(),
            _ => String::new(),
        };
        let mut obj = d.clone();
        if namespaced {
            obj["metadata"]["namespace"] = json!(namespace);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        obj["metadata"]["annotations"][TRACKING] =
            json!(tracking_id(app, &group, &kind, &namespace, &name));
        let wave = d["metadata"]["annotations"][WAVE]
            .as_str()
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(0);
        let live = k.and_then(|k| live(api, k, &namespace, &name));
        out.push(Res {
            group,
            version,
            kind,
            namespace,
            name,
            served: k,
            wave,
            desired: Some(obj),
            live,
        });
    }
    for (k, obj) in tracked(api, app) {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if out
            .iter()
            .any(|r| r.group == k.group && r.kind == k.kind && r.namespace == ns && r.name == name)
        {
            continue;
        }
        let wave = obj["metadata"]["annotations"][WAVE]
            .as_str()
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(0);
        out.push(Res {
            group: k.group.to_string(),
            version: k.version.to_string(),
            kind: k.kind.to_string(),
            namespace: ns,
            name,
            served: Some(k),
            wave,
            desired: None,
            live: Some(obj),
        });
    }
    out
}

fn live(api: &ApiServer, k: &'static Kind, ns: &str, name: &str) -> Option<Value> {
    let obj = api.store.get(k, ns, name).ok()?;
    Some(api.view(k, obj))
}

/// Live objects whose tracking id names `app` (and matches the object itself, as Argo CD
/// checks, so a copied annotation does not count).
pub fn tracked(api: &ApiServer, app: &str) -> Vec<(&'static Kind, Value)> {
    let mut kinds: Vec<&'static Kind> = store::KINDS.iter().collect();
    kinds.extend(api.store.custom_kinds());
    let mut out = Vec::new();
    for k in kinds {
        let (items, _) = api.store.list(k, None);
        for o in items {
            let Some(id) = o["metadata"]["annotations"][TRACKING].as_str() else {
                continue;
            };
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            if id == tracking_id(app, k.group, k.kind, ns, name) {
                out.push((k, api.view(k, o)));
            }
        }
    }
    out
}

/// gitops-engine's task order: wave, kind, name.
pub fn order(a: &Res, b: &Res) -> Ordering {
    a.wave
        .cmp(&b.wave)
        .then(kind_rank(&a.kind).cmp(&kind_rank(&b.kind)))
        .then(a.name.cmp(&b.name))
}

/// One task's result, as `operationState.syncResult.resources[]` records it.
pub fn result(r: &Res, status: &str, message: &str) -> Value {
    json!({
        "group": r.group, "version": r.version, "kind": r.kind,
        "namespace": r.namespace, "name": r.name,
        "status": status, "message": message,
        "hookPhase": if status == "Synced" || status == "Pruned" { "Succeeded" } else { "Failed" },
        "syncPhase": "Sync",
    })
}

/// How far a sync got in this pass.
#[derive(Debug)]
pub enum Progress {
    /// Waiting for a wave to become healthy.
    Running(String, Vec<Value>),
    Succeeded(Vec<Value>),
    Failed(String, Vec<Value>),
}

/// One pass of a sync: apply the waves in order (applying again what an earlier pass
/// applied changes nothing), stop at the first wave whose resources are not all healthy
/// while later waves remain, then prune (`prune`) what the source no longer has.
pub async fn run(client: &mut Client, api: &ApiServer, mut res: Vec<Res>, prune: bool) -> Progress {
    res.sort_by(order);
    let mut results = Vec::new();
    // gitops-engine validates every task before applying any: a kind the cluster does not
    // serve fails the operation, unless a CRD of the same sync defines it.
    let defined = |r: &Res| {
        res.iter().any(|c| {
            c.kind == "CustomResourceDefinition"
                && c.desired.as_ref().is_some_and(|d| {
                    d["spec"]["group"] == r.group.as_str()
                        && d["spec"]["names"]["kind"] == r.kind.as_str()
                })
        })
    };
    let invalid: Vec<&Res> = res
        .iter()
        .filter(|r| r.desired.is_some() && r.served.is_none() && !defined(r))
        .collect();
    if !invalid.is_empty() {
        for r in invalid {
            results.push(result(r, "SyncFailed", &unknown_kind(r)));
        }
        return Progress::Failed(
            "one or more synchronization tasks are not valid".into(),
            results,
        );
    }
    let (apply, extra): (Vec<Res>, Vec<Res>) = res.into_iter().partition(|r| r.desired.is_some());
    let waves: Vec<i64> = {
        let mut w: Vec<i64> = apply.iter().map(|r| r.wave).collect();
        w.dedup();
        w
    };
    for (i, wave) in waves.iter().enumerate() {
        let tasks: Vec<&Res> = apply.iter().filter(|r| r.wave == *wave).collect();
        for r in &tasks {
            let (status, msg) = apply_one(client, api, r).await;
            results.push(result(r, status, &msg));
            if status != "Synced" {
                return Progress::Failed(
                    format!("one or more objects failed to apply, reason: {msg}"),
                    results,
                );
            }
        }
        if i + 1 < waves.len() {
            // Read back: the wave's resources as they are now.
            for r in &tasks {
                let now = r.served.and_then(|k| live(api, k, &r.namespace, &r.name));
                let h = now.as_ref().and_then(|l| health::of(&r.group, &r.kind, l));
                if h.is_some_and(|h| h.status != "Healthy") {
                    return Progress::Running(
                        format!("waiting for healthy state of {}", r.key()),
                        results,
                    );
                }
            }
        }
    }
    for r in extra {
        if !prune {
            results.push(json!({
                "group": r.group, "version": r.version, "kind": r.kind,
                "namespace": r.namespace, "name": r.name, "status": "PruneSkipped",
                "message": "ignored (requires pruning)", "hookPhase": "Succeeded", "syncPhase": "Sync",
            }));
            continue;
        }
        let msg = match client.delete(&r.path(true), "Foreground").await {
            Ok(a) if a.ok() || a.code == 404 => "pruned".to_string(),
            Ok(a) => a.message(),
            Err(e) => e.to_string(),
        };
        let status = if msg == "pruned" {
            "Pruned"
        } else {
            "SyncFailed"
        };
        results.push(result(&r, status, &msg));
        if status != "Pruned" {
            return Progress::Failed(
                format!("one or more objects failed to apply, reason: {msg}"),
                results,
            );
        }
    }
    Progress::Succeeded(results)
}

/// gitops-engine's message for a task whose kind the cluster does not serve.
fn unknown_kind(r: &Res) -> String {
    format!(
        "The Kubernetes API could not find {}/{} for requested resource {}/{}. Make sure the \"{}\" CRD is installed on the destination cluster.",
        r.group, r.kind, r.namespace, r.name, r.kind
    )
}

/// Apply one resource: (`Synced` or `SyncFailed`, message).
async fn apply_one(client: &mut Client, api: &ApiServer, r: &Res) -> (&'static str, String) {
    let Some(obj) = &r.desired else {
        return ("SyncFailed", "nothing to apply".into());
    };
    // The kind may have been established since the comparison (a CRD of an earlier wave).
    let served = r
        .served
        .or_else(|| served(api, &r.group, &r.version, &r.kind));
    let Some(k) = served else {
        return ("SyncFailed", unknown_kind(r));
    };
    let r = Res {
        served: Some(k),
        ..r.clone()
    };
    match client.apply(&r.path(true), obj).await {
        Ok(a) if a.ok() => (
            "Synced",
            format!(
                "{}{}/{} serverside-applied",
                r.kind.to_ascii_lowercase(),
                if r.group.is_empty() {
                    String::new()
                } else {
                    format!(".{}", r.group)
                },
                r.name
            ),
        ),
        Ok(a) => ("SyncFailed", a.message()),
        Err(e) => ("SyncFailed", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kind: &str, name: &str, wave: i64) -> Res {
        Res {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: String::new(),
            name: name.into(),
            served: None,
            wave,
            desired: Some(json!({})),
            live: None,
        }
    }

    #[test]
    fn task_order_and_comparison() {
        let mut v = [
            res("Deployment", "a", 0),
            res("Widget", "a", 0),
            res("ConfigMap", "z", 0),
            res("ConfigMap", "b", -1),
            res("Namespace", "n", 1),
        ];
        v.sort_by(order);
        let got: Vec<String> = v.iter().map(|r| format!("{}/{}", r.kind, r.name)).collect();
        assert_eq!(
            got,
            [
                "ConfigMap/b",
                "ConfigMap/z",
                "Deployment/a",
                "Widget/a",
                "Namespace/n"
            ]
        );
        let live = json!({"metadata": {"name": "a", "uid": "u"}, "data": {"k": "v", "x": "y"}, "status": {}});
        assert!(contains(
            &live,
            &json!({"metadata": {"name": "a"}, "data": {"k": "v"}})
        ));
        assert!(!contains(&live, &json!({"data": {"k": "w"}})));
        assert!(contains(&json!({"n": 1.0}), &json!({"n": 1})));
    }
}
