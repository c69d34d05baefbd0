//! A cluster's object store (its "etcd" as the API server sees it): objects by resource,
//! namespace and name, one resourceVersion counter, uid/creationTimestamp/generation
//! bookkeeping, optimistic concurrency, and label/field selectors for lists.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

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

/// RFC 3339 in UTC, second precision, as Kubernetes writes timestamps.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let dt =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn uuid_v4() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Key of an object: (resource, namespace or "", name).
pub type Key = (String, String, String);

/// Store errors, mapped to Status bodies by the API layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound { resource: String, name: String },
    AlreadyExists { resource: String, name: String },
    Conflict { resource: String, name: String },
}

/// A change, as watches see it.
#[derive(Debug, Clone)]
pub struct Event {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub resource: String,
    pub namespace: String,
    pub rv: u64,
    pub object: Value,
}

/// How many past events a watch can resume from.
const HISTORY: usize = 1000;

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// Node name → (VMID, boot count) the kubelet registered from.
    registered: HashMap<u32, u64>,
    history: std::collections::VecDeque<Event>,
}

impl Inner {
    fn emit(&mut self, tx: &tokio::sync::broadcast::Sender<Event>, ev: Event) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        let _ = tx.send(ev);
    }
}

/// The store of one cluster; survives API server restarts.
pub struct Store {
    inner: Mutex<Inner>,
    events: tokio::sync::broadcast::Sender<Event>,
    /// The test seam `POST /k8s/cni` declared the pod network ready on every node (without
    /// it, a node's network is up with Talos's flannel or once a Cilium agent pod there is
    /// ready).
    pub cni_ready: Mutex<bool>,
    /// The cilium-operator's marks on Nodes (they live on the Node objects and outlast the
    /// operator): node → the agent-not-ready taint key it set.
    pub cilium_taints: Mutex<BTreeMap<String, String>>,
    /// node → when the operator posted NetworkUnavailable=False (CiliumIsUp).
    pub cilium_up: Mutex<BTreeMap<String, String>>,
    /// node → (last seen Ready status, since when): the Ready condition's transition time.
    pub ready_since: Mutex<HashMap<String, (String, String)>>,
    /// Pods that could be ready, by (workload uid, node): since when (they turn ready a
    /// moment later, `TalosOptions::pod_ready_ms`).
    pub pods: Mutex<HashMap<(String, String), std::time::Instant>>,
    /// Kinds built from CustomResourceDefinitions (leaked once per distinct definition, so
    /// they can be `&'static` like the built-in ones).
    custom: Mutex<HashMap<String, &'static Kind>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Store {
        let s = Store {
            inner: Mutex::new(Inner::default()),
            events: tokio::sync::broadcast::channel(1024).0,
            cni_ready: Mutex::new(false),
            cilium_taints: Mutex::new(BTreeMap::new()),
            cilium_up: Mutex::new(BTreeMap::new()),
            pods: Mutex::new(HashMap::new()),
            ready_since: Mutex::new(HashMap::new()),
            custom: Mutex::new(HashMap::new()),
        };
        for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
            let _ = s.create(
                kind("namespaces").expect("namespaces"),
                "",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            );
        }
        s
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resourceVersion (of the whole store, as a list reports it).
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, k: &Kind, ns: &str, name: &str) -> Result<Value, StoreError> {
        self.lock()
            .objects
            .get(&(k.qualified(), ns.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                resource: k.qualified(),
                name: name.into(),
            })
    }

    /// Objects of a resource, in a namespace (or all when `ns` is None), by name.
    pub fn list(&self, k: &Kind, ns: Option<&str>) -> (Vec<Value>, u64) {
        let g = self.lock();
        let items = g
            .objects
            .iter()
            .filter(|((r, n, _), _)| *r == k.qualified() && ns.is_none_or(|want| want == n))
            .map(|(_, v)| v.clone())
            .collect();
        (items, g.rv)
    }

    /// Create: server-set metadata (uid, resourceVersion, creationTimestamp, generation).
    pub fn create(&self, k: &Kind, ns: &str, mut obj: Value) -> Result<Value, StoreError> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut g = self.lock();
        let key = (k.qualified(), ns.to_string(), name.clone());
        if g.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                resource: k.qualified(),
                name,
            });
        }
        g.rv += 1;
        let rv = g.rv;
        let meta = meta_of(&mut obj);
        meta.insert("uid".into(), json!(uuid_v4()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert(
            "creationTimestamp".into(),
            json!(rfc3339(SystemTime::now())),
        );
        if k.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        for f in ["deletionTimestamp", "selfLink"] {
            meta.remove(f);
        }
        if k.has_spec {
            meta.insert("generation".into(), json!(1));
        }
        if k.group == "apps" {
            apps_defaults(k.resource, &mut obj);
        }
        if k.resource == "namespaces" {
            namespace_defaults(&mut obj, &name);
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
            obj["status"] = json!({"phase": "Active"});
        }
        obj["apiVersion"] = json!(k.api_version());
        obj["kind"] = json!(k.kind);
        g.objects.insert(key, obj.clone());
        g.emit(
            &self.events,
            Event {
                kind: "ADDED",
                resource: k.qualified(),
                namespace: ns.into(),
                rv,
                object: obj.clone(),
            },
        );
        Ok(obj)
    }

    /// Replace (PUT or the result of a patch): a given resourceVersion must match.
    pub fn update(&self, k: &Kind, ns: &str, name: &str, obj: Value) -> Result<Value, StoreError> {
        self.update_inner(k, ns, name, obj, false)
    }

    /// An update of the status subresource (what controllers post): a CRD's status is only
    /// written this way, its main resource keeps the stored status.
    pub fn update_status(
        &self,
        k: &Kind,
        ns: &str,
        name: &str,
        obj: Value,
    ) -> Result<Value, StoreError> {
        self.update_inner(k, ns, name, obj, true)
    }

    fn update_inner(
        &self,
        k: &Kind,
        ns: &str,
        name: &str,
        mut obj: Value,
        status: bool,
    ) -> Result<Value, StoreError> {
        if k.group == "apps" {
            apps_defaults(k.resource, &mut obj);
        }
        let mut g = self.lock();
        let key = (k.qualified(), ns.to_string(), name.to_string());
        let Some(old) = g.objects.get(&key).cloned() else {
            return Err(StoreError::NotFound {
                resource: k.qualified(),
                name: name.into(),
            });
        };
        let old_rv = old.pointer("/metadata/resourceVersion").cloned();
        if let Some(want) = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            && Some(&json!(want)) != old_rv.as_ref()
        {
            return Err(StoreError::Conflict {
                resource: k.qualified(),
                name: name.into(),
            });
        }
        // Server-owned metadata survives.
        let old_meta = old["metadata"].clone();
        let meta = meta_of(&mut obj);
        for f in [
            "uid",
            "creationTimestamp",
            "namespace",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old_meta.get(f) {
                Some(v) => {
                    meta.insert(f.into(), v.clone());
                }
                None => {
                    meta.remove(f);
                }
            }
        }
        // A namespace's finalizers and status are the server's.
        if k.resource == "namespaces" {
            namespace_defaults(&mut obj, name);
            obj["spec"]["finalizers"] = old["spec"]["finalizers"].clone();
            obj["status"] = old["status"].clone();
        }
        if k.qualified() == CRDS && !status {
            match old.get("status") {
                Some(st) => obj["status"] = st.clone(),
                None => {
                    if let Some(o) = obj.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        if k.has_spec && obj.get("spec") != old.get("spec") {
            let gen_ = old_meta["generation"].as_i64().unwrap_or(1) + 1;
            meta_of(&mut obj).insert("generation".into(), json!(gen_));
        }
        obj["apiVersion"] = json!(k.api_version());
        obj["kind"] = json!(k.kind);
        // No-op updates keep the resourceVersion (as the real server does).
        let mut cmp = obj.clone();
        meta_of(&mut cmp).insert(
            "resourceVersion".into(),
            old_rv.clone().unwrap_or(Value::Null),
        );
        if cmp == old {
            return Ok(old);
        }
        // The last finalizer of an object being deleted is gone: it goes.
        if k.resource != "namespaces"
            && obj.pointer("/metadata/deletionTimestamp").is_some()
            && !has_finalizers(&obj)
        {
            g.objects.remove(&key);
            self.emit_deleted(&mut g, key, obj.clone());
            return Ok(obj);
        }
        Ok(self.modified_locked(&mut g, &key, obj))
    }

    /// A change the store does not hold (a Node's status): a new resourceVersion and a
    /// MODIFIED event.
    pub fn touch(&self, k: &Kind, ns: &str, name: &str) {
        let mut g = self.lock();
        let key = (k.qualified(), ns.to_string(), name.to_string());
        if let Some(obj) = g.objects.get(&key).cloned() {
            self.modified_locked(&mut g, &key, obj);
        }
    }

    /// Subscribe to changes, with the history newer than `after` (None if `after` is older
    /// than what is kept) and the current resourceVersion.
    pub fn watch(
        &self,
        after: u64,
    ) -> (
        tokio::sync::broadcast::Receiver<Event>,
        Option<Vec<Event>>,
        u64,
    ) {
        let g = self.lock();
        let rx = self.events.subscribe();
        let oldest = g.history.front().map_or(g.rv + 1, |e| e.rv);
        let replay = (after.saturating_add(1) >= oldest || after >= g.rv)
            .then(|| g.history.iter().filter(|e| e.rv > after).cloned().collect());
        (rx, replay, g.rv)
    }

    /// Delete. An object with `metadata.finalizers` (and a namespace, which always has the
    /// `kubernetes` finalizer) is only marked: `deletionTimestamp` is set and it stays until its
    /// finalizers are cleared. A namespace's objects are deleted with it (each by the same
    /// rule); a CustomResourceDefinition takes its custom objects along.
    pub fn delete(&self, k: &Kind, ns: &str, name: &str) -> Result<Value, StoreError> {
        self.delete_with(k, ns, name, Propagation::Background)
    }

    /// Delete with a propagation policy: `Orphan` and `Foreground` add the garbage collector's
    /// `orphan` / `foregroundDeletion` finalizer (to objects not yet being deleted; namespaces
    /// keep their own lifecycle), so the object is only marked and the collector finishes it.
    pub fn delete_with(
        &self,
        k: &Kind,
        ns: &str,
        name: &str,
        policy: Propagation,
    ) -> Result<Value, StoreError> {
        let mut g = self.lock();
        let key = (k.qualified(), ns.to_string(), name.to_string());
        let Some(obj) = g.objects.get_mut(&key) else {
            return Err(StoreError::NotFound {
                resource: k.qualified(),
                name: name.into(),
            });
        };
        if let Some(f) = policy.finalizer()
            && k.resource != "namespaces"
            && obj.pointer("/metadata/deletionTimestamp").is_none()
        {
            add_finalizer(obj, f);
        }
        let held = k.resource == "namespaces" || k.qualified() == CRDS;
        let obj = self.delete_locked(&mut g, &key, held);
        if k.resource == "namespaces" {
            let inside: Vec<Key> = g
                .objects
                .keys()
                .filter(|(_, n, _)| n == name)
                .cloned()
                .collect();
            for key in inside {
                self.delete_locked(&mut g, &key, false);
            }
        }
        Ok(obj)
    }

    fn emit_deleted(&self, g: &mut Inner, key: Key, mut o: Value) {
        g.rv += 1;
        let rv = g.rv;
        meta_of(&mut o).insert("resourceVersion".into(), json!(rv.to_string()));
        g.emit(
            &self.events,
            Event {
                kind: "DELETED",
                resource: key.0,
                namespace: key.1,
                rv,
                object: o,
            },
        );
    }

    /// Remove one object, or mark it when finalizers hold it (a namespace and a CRD always
    /// are: the `kubernetes` and the `customresourcecleanup` finalizers); returns it as it ends
    /// up.
    fn delete_locked(&self, g: &mut Inner, key: &Key, held: bool) -> Value {
        let Some(mut o) = g.objects.get(key).cloned() else {
            return Value::Null;
        };
        let namespace = held && key.0 == "namespaces";
        if !held && !has_finalizers(&o) {
            g.objects.remove(key);
            self.emit_deleted(g, key.clone(), o.clone());
            return o;
        }
        if o.pointer("/metadata/deletionTimestamp").is_some() {
            return o;
        }
        let meta = meta_of(&mut o);
        meta.insert(
            "deletionTimestamp".into(),
            json!(rfc3339(SystemTime::now())),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if namespace {
            o["spec"]["finalizers"] = json!(["kubernetes"]);
            o["status"]["phase"] = json!("Terminating");
        } else if key.0 == CRDS {
            let fins = meta_of(&mut o)
                .entry("finalizers")
                .or_insert_with(|| json!([]));
            if let Some(f) = fins.as_array_mut()
                && !f.contains(&json!(CRD_CLEANUP))
            {
                f.push(json!(CRD_CLEANUP));
            }
            set_condition(
                &mut o,
                "Terminating",
                "True",
                "InstanceDeletionPending",
                "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
            );
        }
        self.modified_locked(g, key, o)
    }

    /// Store a changed object: a new resourceVersion and a MODIFIED event; an object being
    /// deleted whose last finalizer went is removed instead (DELETED).
    fn put_locked(&self, g: &mut Inner, key: &Key, o: Value) {
        if o.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&o) {
            g.objects.remove(key);
            self.emit_deleted(g, key.clone(), o);
            return;
        }
        self.modified_locked(g, key, o);
    }

    /// Keep `o` under a new resourceVersion and tell watches (MODIFIED); returns it as stored.
    fn modified_locked(&self, g: &mut Inner, key: &Key, mut o: Value) -> Value {
        g.rv += 1;
        let rv = g.rv;
        meta_of(&mut o).insert("resourceVersion".into(), json!(rv.to_string()));
        g.objects.insert(key.clone(), o.clone());
        g.emit(
            &self.events,
            Event {
                kind: "MODIFIED",
                resource: key.0.clone(),
                namespace: key.1.clone(),
                rv,
                object: o.clone(),
            },
        );
        o
    }

    /// One pass of the garbage collector. `kinds` resolves an owner reference's
    /// (apiVersion, kind) to its store resource and scope; references it cannot resolve keep
    /// their dependent (the real collector cannot look such an owner up either).
    /// - an owner being deleted with the `orphan` finalizer: its dependents lose their
    ///   references to it, then the finalizer goes (and with it the owner);
    /// - an owner being deleted with `foregroundDeletion`: its dependents are deleted
    ///   (foreground when their reference has `blockOwnerDeletion`, else background); once no
    ///   dependent with `blockOwnerDeletion` is left, the finalizer goes;
    /// - a dependent all of whose owners are gone is deleted (background); one with some owners
    ///   gone loses the dangling references.
    ///
    /// Returns whether anything changed.
    pub fn collect_garbage(&self, kinds: &HashMap<(String, String), (String, bool)>) -> bool {
        enum Action {
            Delete(Key, Propagation),
            DropRefs(Key, Vec<String>),
            DropFinalizer(Key, &'static str),
        }
        let mut g = self.lock();
        let uid_of = |o: &Value| {
            o["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let refs_of = |o: &Value| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let deleting = |o: &Value| o.pointer("/metadata/deletionTimestamp").is_some();
        let has_fin = |o: &Value, f: &str| {
            o["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|x| x == f))
        };
        // uid → dependents (key, their reference).
        let mut dependents: HashMap<String, Vec<(Key, Value)>> = HashMap::new();
        for (key, o) in &g.objects {
            for r in refs_of(o) {
                if let Some(u) = r["uid"].as_str() {
                    dependents
                        .entry(u.to_string())
                        .or_default()
                        .push((key.clone(), r.clone()));
                }
            }
        }
        let mut actions = Vec::new();
        for (key, o) in &g.objects {
            let deps = dependents.get(&uid_of(o)).cloned().unwrap_or_default();
            if deleting(o) && has_fin(o, FINALIZER_ORPHAN) {
                for (d, _) in &deps {
                    actions.push(Action::DropRefs(d.clone(), vec![uid_of(o)]));
                }
                if deps.is_empty() {
                    actions.push(Action::DropFinalizer(key.clone(), FINALIZER_ORPHAN));
                }
                continue;
            }
            if deleting(o) && has_fin(o, FINALIZER_FOREGROUND) {
                let mut blocking = false;
                for (d, r) in &deps {
                    let block = r["blockOwnerDeletion"] == true;
                    blocking |= block;
                    if g.objects.get(d).is_some_and(|x| !deleting(x)) {
                        let p = if block {
                            Propagation::Foreground
                        } else {
                            Propagation::Background
                        };
                        actions.push(Action::Delete(d.clone(), p));
                    }
                }
                if !blocking {
                    actions.push(Action::DropFinalizer(key.clone(), FINALIZER_FOREGROUND));
                }
                continue;
            }
            let refs = refs_of(o);
            if refs.is_empty() || deleting(o) {
                continue;
            }
            let mut absent = Vec::new();
            let mut unresolved = false;
            for r in &refs {
                let gvk = (
                    r["apiVersion"].as_str().unwrap_or_default().to_string(),
                    r["kind"].as_str().unwrap_or_default().to_string(),
                );
                let Some((resource, namespaced)) = kinds.get(&gvk) else {
                    unresolved = true;
                    continue;
                };
                let owner_key = (
                    resource.clone(),
                    if *namespaced {
                        key.1.clone()
                    } else {
                        String::new()
                    },
                    r["name"].as_str().unwrap_or_default().to_string(),
                );
                let present = g
                    .objects
                    .get(&owner_key)
                    .is_some_and(|ow| ow["metadata"]["uid"] == r["uid"]);
                if !present {
                    absent.push(r["uid"].as_str().unwrap_or_default().to_string());
                }
            }
            if unresolved || absent.is_empty() {
                continue;
            }
            if absent.len() == refs.len() {
                actions.push(Action::Delete(key.clone(), Propagation::Background));
            } else {
                actions.push(Action::DropRefs(key.clone(), absent));
            }
        }
        let changed = !actions.is_empty();
        for a in actions {
            match a {
                Action::Delete(key, p) => {
                    // Namespaces and CRDs have their own controllers.
                    if key.0 == "namespaces" || key.0 == CRDS {
                        continue;
                    }
                    if let Some(f) = p.finalizer()
                        && let Some(o) = g.objects.get_mut(&key)
                    {
                        add_finalizer(o, f);
                    }
                    self.delete_locked(&mut g, &key, false);
                }
                Action::DropRefs(key, uids) => {
                    let Some(mut o) = g.objects.get(&key).cloned() else {
                        continue;
                    };
                    let left: Vec<Value> = refs_of(&o)
                        .into_iter()
                        .filter(|r| !uids.iter().any(|u| r["uid"] == json!(u)))
                        .collect();
                    let meta = meta_of(&mut o);
                    if left.is_empty() {
                        meta.remove("ownerReferences");
                    } else {
                        meta.insert("ownerReferences".into(), json!(left));
                    }
                    self.put_locked(&mut g, &key, o);
                }
                Action::DropFinalizer(key, f) => {
                    let Some(mut o) = g.objects.get(&key).cloned() else {
                        continue;
                    };
                    if let Some(fs) = meta_of(&mut o)
                        .get_mut("finalizers")
                        .and_then(Value::as_array_mut)
                    {
                        fs.retain(|x| x != f);
                        if fs.is_empty() {
                            meta_of(&mut o).remove("finalizers");
                        }
                    }
                    self.put_locked(&mut g, &key, o);
                }
            }
        }
        changed
    }

    /// (apiVersion, kind) → (store resource, namespaced) of every served kind: what the
    /// garbage collector resolves owner references with.
    pub fn owner_kinds(&self) -> HashMap<(String, String), (String, bool)> {
        KINDS
            .iter()
            .chain(self.custom_kinds())
            .map(|k| {
                (
                    (k.api_version(), k.kind.to_string()),
                    (k.qualified(), k.namespaced),
                )
            })
            .collect()
    }

    /// The namespace controller's last step: a Terminating namespace with nothing left in it
    /// goes away. True once it is gone (or was never there).
    pub fn finish_namespace(&self, name: &str) -> bool {
        let mut g = self.lock();
        let key = ("namespaces".to_string(), String::new(), name.to_string());
        let Some(o) = g.objects.get(&key) else {
            return true;
        };
        if o.pointer("/metadata/deletionTimestamp").is_none() {
            return true;
        }
        if g.objects.keys().any(|(_, n, _)| n == name) {
            return false;
        }
        if let Some(o) = g.objects.remove(&key) {
            self.emit_deleted(&mut g, key, o);
        }
        true
    }

    /// The CRD finalizer: delete the custom objects of a CRD being deleted (objects with
    /// finalizers are marked and awaited); once none is left, its cleanup finalizer goes and
    /// with it the CRD. True once done (or nothing to do).
    pub fn finalize_crd(&self, name: &str) -> bool {
        let mut g = self.lock();
        let key = (CRDS.to_string(), String::new(), name.to_string());
        let Some(mut crd) = g.objects.get(&key).cloned() else {
            return true;
        };
        if crd.pointer("/metadata/deletionTimestamp").is_none() {
            return true;
        }
        let owned: Vec<Key> = g
            .objects
            .keys()
            .filter(|(r, _, _)| r == name)
            .cloned()
            .collect();
        for k in &owned {
            self.delete_locked(&mut g, k, false);
        }
        let left = g.objects.keys().any(|(r, _, _)| r == name);
        let (status, reason, message) = if left {
            (
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            )
        } else {
            (
                "False",
                "InstanceDeletionCompleted",
                "removed all instances",
            )
        };
        let before = crd.clone();
        set_condition(&mut crd, "Terminating", status, reason, message);
        if !left
            && let Some(f) = meta_of(&mut crd)
                .get_mut("finalizers")
                .and_then(Value::as_array_mut)
        {
            f.retain(|x| x != CRD_CLEANUP);
        }
        if !left && !has_finalizers(&crd) {
            g.objects.remove(&key);
            self.emit_deleted(&mut g, key, crd);
            return true;
        }
        if crd["status"] != before["status"] || crd["metadata"] != before["metadata"] {
            self.modified_locked(&mut g, &key, crd);
        }
        !left
    }

    /// A namespace that is being deleted.
    pub fn terminating(&self, ns: &str) -> bool {
        self.lock()
            .objects
            .get(&("namespaces".to_string(), String::new(), ns.to_string()))
            .is_some_and(|o| o.pointer("/metadata/deletionTimestamp").is_some())
    }

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

    /// Kubelet registration: create the Node once per boot of a Talos node (a deleted Node
    /// comes back when the node boots again).
    pub fn register_node(&self, vmid: u32, boots: u64, node: Value) {
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        {
            let g = self.lock();
            if g.registered.get(&vmid) == Some(&boots) {
                return;
            }
        }
        let nodes = kind("nodes").expect("nodes");
        if self.get(nodes, "", &name).is_err() && self.create(nodes, "", node).is_ok() {
            // A new Node object carries none of the marks its predecessor had.
            for m in [&self.cilium_taints, &self.cilium_up] {
                m.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);
            }
            self.ready_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
        }
        self.lock().registered.insert(vmid, boots);
    }
}

/// The defaults the API server sets on apps/v1 workloads (what `kubectl rollout status`
/// reads back, e.g. a StatefulSet's `updateStrategy`). Only fields left unset are filled.
pub fn apps_defaults(resource: &str, obj: &mut Value) {
    if !matches!(resource, "deployments" | "statefulsets" | "daemonsets") {
        return;
    }
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = obj["spec"].as_object_mut().expect("object");
    let mut set = |k: &str, v: Value| {
        spec.entry(k.to_string()).or_insert(v);
    };
    set("revisionHistoryLimit", json!(10));
    match resource {
        "deployments" => {
            set("replicas", json!(1));
            set("progressDeadlineSeconds", json!(600));
            set(
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
        }
        "statefulsets" => {
            set("replicas", json!(1));
            set("podManagementPolicy", json!("OrderedReady"));
            set(
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            set(
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        _ => set(
            "updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        ),
    }
}

/// The label every namespace carries with its own name.
fn namespace_defaults(obj: &mut Value, name: &str) {
    let meta = meta_of(obj);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["kubernetes.io/metadata.name"] = json!(name);
}

const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Set (or replace) a status condition; the transition time moves only when the status does.
fn set_condition(o: &mut Value, t: &str, status: &str, reason: &str, message: &str) {
    if !o["status"]["conditions"].is_array() {
        o["status"]["conditions"] = json!([]);
    }
    let conds = o["status"]["conditions"].as_array_mut().expect("array");
    let now = rfc3339(SystemTime::now());
    let mut c = json!({"type": t, "status": status, "lastTransitionTime": now, "reason": reason, "message": message});
    if let Some(old) = conds.iter_mut().find(|c| c["type"] == t) {
        if old["status"] == status {
            c["lastTransitionTime"] = old["lastTransitionTime"].clone();
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

/// The garbage collector's finalizers.
pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    /// The finalizer the API server adds for it.
    pub fn finalizer(self) -> Option<&'static str> {
        match self {
            Propagation::Orphan => Some(FINALIZER_ORPHAN),
            Propagation::Foreground => Some(FINALIZER_FOREGROUND),
            Propagation::Background => None,
        }
    }
}

fn add_finalizer(o: &mut Value, f: &str) {
    let fins = meta_of(o).entry("finalizers").or_insert_with(|| json!([]));
    if !fins.is_array() {
        *fins = json!([]);
    }
    let list = fins.as_array_mut().expect("array");
    if !list.iter().any(|x| x == f) {
        list.push(json!(f));
    }
}

fn has_finalizers(o: &Value) -> bool {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

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

fn meta_of(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("object")
}

/// A parsed label selector (equality-based and set-based, as `kubectl -l` sends them).
#[derive(Debug, Clone, PartialEq)]
pub enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Parse `a=b,c!=d,e in (f,g),!h,i`. Errors carry the real server's wording where known.
pub fn parse_label_selector(s: &str) -> Result<Vec<Req>, String> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    for p in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("unable to parse requirement: {p}"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        if let Some(k) = p.strip_prefix('!') {
            out.push(Req::NotExists(k.trim().into()));
        } else if let Some((k, v)) = p.split_once("!=") {
            out.push(Req::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once("==") {
            out.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once('=') {
            out.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once(" notin ") {
            out.push(Req::NotIn(k.trim().into(), set(v)?));
        } else if let Some((k, v)) = p.split_once(" in ") {
            out.push(Req::In(k.trim().into(), set(v)?));
        } else if p.contains(char::is_whitespace) {
            return Err(format!("unable to parse requirement: {p}"));
        } else {
            out.push(Req::Exists(p.into()));
        }
    }
    Ok(out)
}

pub fn labels_match(obj: &Value, reqs: &[Req]) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => get(k) == Some(v.as_str()),
        Req::Ne(k, v) => get(k) != Some(v.as_str()),
        Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        Req::Exists(k) => get(k).is_some(),
        Req::NotExists(k) => get(k).is_none(),
    })
}

/// Field selectors every resource supports: `metadata.name` and `metadata.namespace`
/// (`=`, `==`, `!=`). Others are a 400 with the real server's message.
pub fn parse_field_selector(s: &str) -> Result<Vec<(String, bool, String)>, String> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, neg, v) = if let Some((k, v)) = p.split_once("!=") {
            (k, true, v)
        } else if let Some((k, v)) = p.split_once("==") {
            (k, false, v)
        } else if let Some((k, v)) = p.split_once('=') {
            (k, false, v)
        } else {
            return Err(format!("invalid selector: '{s}'; can't understand '{p}'"));
        };
        let k = k.trim();
        if k != "metadata.name" && k != "metadata.namespace" {
            return Err(format!("field label not supported: {k}"));
        }
        out.push((k.to_string(), neg, v.trim().to_string()));
    }
    Ok(out)
}

pub fn fields_match(obj: &Value, reqs: &[(String, bool, String)]) -> bool {
    reqs.iter().all(|(k, neg, v)| {
        let ptr = if k == "metadata.name" {
            "/metadata/name"
        } else {
            "/metadata/namespace"
        };
        let actual = obj.pointer(ptr).and_then(Value::as_str).unwrap_or_default();
        (actual == v) != *neg
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let node = json!({"metadata": {"name": "cp1", "labels": {"a": "1", "role": "cp"}}});
        let ok = |s: &str| labels_match(&node, &parse_label_selector(s).expect("parses"));
        assert!(ok("a=1"));
        assert!(ok("a==1,role"));
        assert!(!ok("a!=1"));
        assert!(ok("role in (cp, worker)"));
        assert!(!ok("role notin (cp)"));
        assert!(ok("!missing"));
        assert!(!ok("missing"));
        let f = parse_field_selector("metadata.name=cp1").expect("field");
        assert!(fields_match(&node, &f));
        assert!(parse_field_selector("spec.unschedulable=true").is_err());
    }

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

    #[test]
    fn crud_and_conflicts() {
        let s = Store::new();
        let cm = kind("configmaps").expect("cm");
        let made = s
            .create(
                cm,
                "default",
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
            )
            .expect("create");
        assert_eq!(made["kind"], "ConfigMap");
        assert_eq!(made["metadata"]["namespace"], "default");
        let rv = made["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string();
        assert!(matches!(
            s.create(cm, "default", json!({"metadata": {"name": "a"}})),
            Err(StoreError::AlreadyExists { .. })
        ));
        let mut next = made.clone();
        next["data"]["k"] = json!("w");
        let updated = s.update(cm, "default", "a", next.clone()).expect("update");
        assert_ne!(updated["metadata"]["resourceVersion"], json!(rv));
        assert_eq!(updated["metadata"]["uid"], made["metadata"]["uid"]);
        // Stale resourceVersion: conflict.
        assert!(matches!(
            s.update(cm, "default", "a", next),
            Err(StoreError::Conflict { .. })
        ));
        s.delete(cm, "default", "a").expect("delete");
        assert!(matches!(
            s.get(cm, "default", "a"),
            Err(StoreError::NotFound { .. })
        ));
    }
}
