//! The install manifest as objects: multi-document YAML parsed into [`serde_json::Value`]s, moved
//! into the target namespace, and the objects Argo CD makes itself that pruning must spare.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::Error;

/// The namespace the upstream manifest is written for (its ClusterRoleBindings name it).
pub const UPSTREAM_NAMESPACE: &str = "argocd";

/// Which object: enough to find it in the cluster or in an inventory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// Its namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    /// The reference of `object`, when it has `apiVersion`, `kind` and `metadata.name`.
    pub fn of(object: &Value) -> Option<ObjectRef> {
        Some(ObjectRef {
            api_version: object["apiVersion"].as_str()?.to_owned(),
            kind: object["kind"].as_str()?.to_owned(),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
            name: object["metadata"]["name"].as_str()?.to_owned(),
        })
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} in {ns}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Parses multi-document YAML into Kubernetes objects; empty documents are dropped. Every other
/// document must be a mapping with `apiVersion`, `kind` and `metadata.name`.
pub fn parse(yaml: &str) -> Result<Vec<Value>, Error> {
    let mut objects = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let document = i + 1;
        let value = Value::deserialize(doc).map_err(|e| Error::Manifest {
            document,
            message: format!("not valid YAML: {e}"),
        })?;
        if value.is_null() {
            continue;
        }
        if !value.is_object() {
            return Err(Error::Manifest {
                document,
                message: "is not a mapping (a Kubernetes object)".into(),
            });
        }
        for (field, ok) in [
            ("apiVersion", value["apiVersion"].is_string()),
            ("kind", value["kind"].is_string()),
            ("metadata.name", value["metadata"]["name"].is_string()),
        ] {
            if !ok {
                return Err(Error::Manifest {
                    document,
                    message: format!("has no {field}"),
                });
            }
        }
        objects.push(value);
    }
    Ok(objects)
}

/// [`parse`] for bytes as downloaded; they must be UTF-8.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<Value>, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Manifest {
        document: 1,
        message: format!("is not UTF-8 text ({e}); is this an install manifest?"),
    })?;
    parse(text)
}

/// Whether objects of `kind` are cluster-scoped. Covers the built-in cluster-scoped kinds an
/// install manifest can hold; everything else is treated as namespaced.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "CustomResourceDefinition"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "PriorityClass"
            | "StorageClass"
            | "PersistentVolume"
            | "IngressClass"
            | "RuntimeClass"
            | "CSIDriver"
            | "APIService"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
    )
}

/// Puts every object into `namespace`: namespaced objects get `metadata.namespace` (the upstream
/// manifest leaves it out), and the ServiceAccount subjects of ClusterRoleBindings and
/// RoleBindings that name [`UPSTREAM_NAMESPACE`] name `namespace` instead — else the controllers
/// in `namespace` would run without their cluster permissions.
pub fn set_namespace(objects: &mut [Value], namespace: &str) {
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        if !is_cluster_scoped(&kind)
            && let Some(meta) = object["metadata"].as_object_mut()
        {
            meta.insert("namespace".into(), Value::String(namespace.into()));
        }
        if (kind == "ClusterRoleBinding" || kind == "RoleBinding")
            && let Some(subjects) = object["subjects"].as_array_mut()
        {
            for s in subjects {
                if s["namespace"] == UPSTREAM_NAMESPACE {
                    s["namespace"] = Value::String(namespace.into());
                }
            }
        }
    }
}

/// The objects in `namespace` that Argo CD creates in the cluster and that are in no manifest:
/// an inventory-based prune must never delete them. The `argocd-redis` Secret holds the Redis
/// password an init container generated; deleting it locks every component out of Redis.
pub fn never_prune(namespace: &str) -> Vec<ObjectRef> {
    vec![ObjectRef {
        api_version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some(namespace.into()),
        name: "argocd-redis".into(),
    }]
}

/// The Deployments and StatefulSets of `objects`: what must be ready before Argo CD works
/// (the application controller's StatefulSet is the one that reconciles Applications).
pub fn workloads(objects: &[Value]) -> Vec<ObjectRef> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
        .filter_map(ObjectRef::of)
        .collect()
}

/// The Namespace object for `namespace`, labelled as Argo CD's.
pub fn namespace_object(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {"app.kubernetes.io/part-of": "argocd"},
        },
    })
}

/// The first object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The first object of `kind` named `name`, to change.
pub fn find_mut<'a>(objects: &'a mut [Value], kind: &str, name: &str) -> Option<&'a mut Value> {
    objects
        .iter_mut()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "\
---
# only a comment
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: argocd-server
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: argocd-server
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: argocd-server}
subjects:
- {kind: ServiceAccount, name: argocd-server, namespace: argocd}
- {kind: ServiceAccount, name: other, namespace: elsewhere}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: argocd-server
subjects:
- {kind: ServiceAccount, name: argocd-server}
- {kind: ServiceAccount, name: x, namespace: argocd}
";

    #[test]
    fn empty_documents_are_dropped() {
        let objects = parse(SMALL).unwrap();
        let kinds: Vec<_> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["ServiceAccount", "ClusterRoleBinding", "RoleBinding"]
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn documents_that_are_not_objects_are_refused_by_number() {
        let e = parse("apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n- 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("install manifest, document 2: "), "{e}");
        let e = parse("apiVersion: v1\nmetadata: {name: a}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("document 1: has no kind"), "{e}");
        let e = parse("a: [\n").unwrap_err().to_string();
        assert!(e.contains("not valid YAML"), "{e}");
        let e = parse_bytes(&[0xff, 0xfe]).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn the_namespace_reaches_namespaced_objects_and_argocd_subjects_only() {
        let mut objects = parse(SMALL).unwrap();
        set_namespace(&mut objects, "gitops");
        assert_eq!(objects[0]["metadata"]["namespace"], "gitops");
        let crb = &objects[1];
        assert!(crb["metadata"].get("namespace").is_none(), "cluster-scoped");
        assert_eq!(crb["subjects"][0]["namespace"], "gitops");
        assert_eq!(crb["subjects"][1]["namespace"], "elsewhere");
        let rb = &objects[2];
        assert_eq!(rb["metadata"]["namespace"], "gitops");
        assert!(rb["subjects"][0].get("namespace").is_none());
        assert_eq!(rb["subjects"][1]["namespace"], "gitops");
    }

    #[test]
    fn the_redis_secret_is_never_pruned() {
        let refs = never_prune("gitops");
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].to_string(), "Secret/argocd-redis in gitops");
        assert_eq!(refs[0].api_version, "v1");
    }

    #[test]
    fn object_refs_and_lookup() {
        let objects = parse(SMALL).unwrap();
        let r = ObjectRef::of(find(&objects, "ClusterRoleBinding", "argocd-server").unwrap());
        assert_eq!(r.unwrap().to_string(), "ClusterRoleBinding/argocd-server");
        assert!(find(&objects, "Secret", "argocd-server").is_none());
        assert_eq!(namespace_object("x")["metadata"]["name"], "x");
        assert!(workloads(&objects).is_empty());
        let mut with_sts = objects.clone();
        with_sts.push(
            serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                                         "metadata": {"name": "c", "namespace": "n"}}),
        );
        let w = workloads(&with_sts);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].to_string(), "StatefulSet/c in n");
    }
}
