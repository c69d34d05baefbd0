//! A cluster's object store (its "etcd" as the API server sees it): objects by resource,
//! namespace and name, one resourceVersion counter, uid/creationTimestamp/generation
//! bookkeeping, optimistic concurrency, and label/field selectors for lists.

mod defaults;
mod kinds;
mod select;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

pub use defaults::apps_defaults;
use defaults::namespace_defaults;
pub use kinds::*;
pub use select::*;

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
pub(in crate::k8s) struct Inner {
    pub(in crate::k8s) rv: u64,
    pub(in crate::k8s) objects: BTreeMap<Key, Value>,
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

    pub(in crate::k8s) fn lock(&self) -> MutexGuard<'_, Inner> {
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
        prepare_create(k, ns, &name, &mut obj);
        g.rv += 1;
        let rv = g.rv;
        meta_of(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
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

    /// A create with `dryRun`: the object as it would be stored (uid, creationTimestamp,
    /// defaults) but without a resourceVersion, and nothing stored or told to watches.
    pub fn create_dry(&self, k: &Kind, ns: &str, mut obj: Value) -> Result<Value, StoreError> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = (k.qualified(), ns.to_string(), name.clone());
        if self.lock().objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                resource: k.qualified(),
                name,
            });
        }
        prepare_create(k, ns, &name, &mut obj);
        Ok(obj)
    }

    /// Replace (PUT or the result of a patch): a given resourceVersion must match.
    pub fn update(&self, k: &Kind, ns: &str, name: &str, obj: Value) -> Result<Value, StoreError> {
        self.update_inner(k, ns, name, obj, false, false)
    }

    /// An update with `dryRun`: every check and the object as it would be stored (at its
    /// current resourceVersion: nothing is written, no event is sent).
    pub fn update_dry(
        &self,
        k: &Kind,
        ns: &str,
        name: &str,
        obj: Value,
    ) -> Result<Value, StoreError> {
        self.update_inner(k, ns, name, obj, false, true)
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
        self.update_inner(k, ns, name, obj, true, false)
    }

    fn update_inner(
        &self,
        k: &Kind,
        ns: &str,
        name: &str,
        mut obj: Value,
        status: bool,
        dry: bool,
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
        if dry {
            meta_of(&mut obj).insert("resourceVersion".into(), old_rv.unwrap_or(Value::Null));
            return Ok(obj);
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

    /// A delete with `dryRun`: the object as the delete would leave it (marked when
    /// finalizers hold it) and whether it would be gone; nothing changes.
    pub fn delete_dry(
        &self,
        k: &Kind,
        ns: &str,
        name: &str,
        policy: Propagation,
    ) -> Result<(Value, bool), StoreError> {
        let key = (k.qualified(), ns.to_string(), name.to_string());
        let Some(mut o) = self.lock().objects.get(&key).cloned() else {
            return Err(StoreError::NotFound {
                resource: k.qualified(),
                name: name.into(),
            });
        };
        if let Some(f) = policy.finalizer()
            && k.resource != "namespaces"
            && o.pointer("/metadata/deletionTimestamp").is_none()
        {
            add_finalizer(&mut o, f);
        }
        let held = k.resource == "namespaces" || k.qualified() == CRDS;
        if !held && !has_finalizers(&o) {
            return Ok((o, true));
        }
        if o.pointer("/metadata/deletionTimestamp").is_none() {
            mark_deleting(&key, &mut o);
        }
        Ok((o, false))
    }

    pub(in crate::k8s) fn emit_deleted(&self, g: &mut Inner, key: Key, mut o: Value) {
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
    pub(in crate::k8s) fn delete_locked(&self, g: &mut Inner, key: &Key, held: bool) -> Value {
        let Some(mut o) = g.objects.get(key).cloned() else {
            return Value::Null;
        };
        if !held && !has_finalizers(&o) {
            g.objects.remove(key);
            self.emit_deleted(g, key.clone(), o.clone());
            return o;
        }
        if o.pointer("/metadata/deletionTimestamp").is_some() {
            return o;
        }
        mark_deleting(key, &mut o);
        self.modified_locked(g, key, o)
    }

    /// Store a changed object: a new resourceVersion and a MODIFIED event; an object being
    /// deleted whose last finalizer went is removed instead (DELETED).
    pub(in crate::k8s) fn put_locked(&self, g: &mut Inner, key: &Key, o: Value) {
        if o.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&o) {
            g.objects.remove(key);
            self.emit_deleted(g, key.clone(), o);
            return;
        }
        self.modified_locked(g, key, o);
    }

    /// Keep `o` under a new resourceVersion and tell watches (MODIFIED); returns it as stored.
    pub(in crate::k8s) fn modified_locked(&self, g: &mut Inner, key: &Key, mut o: Value) -> Value {
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

/// Server-set fields of a new object: uid, creationTimestamp, namespace, generation and the
/// kind's defaults.
fn prepare_create(k: &Kind, ns: &str, name: &str, obj: &mut Value) {
    let meta = meta_of(obj);
    meta.insert("uid".into(), json!(uuid_v4()));
    meta.insert(
        "creationTimestamp".into(),
        json!(rfc3339(SystemTime::now())),
    );
    meta.remove("resourceVersion");
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
        apps_defaults(k.resource, obj);
    }
    if k.resource == "namespaces" {
        namespace_defaults(obj, name);
        obj["spec"]["finalizers"] = json!(["kubernetes"]);
        obj["status"] = json!({"phase": "Active"});
    }
    obj["apiVersion"] = json!(k.api_version());
    obj["kind"] = json!(k.kind);
}

/// Mark an object held by finalizers as being deleted (a namespace Terminating, a CRD with its
/// cleanup finalizer and condition).
fn mark_deleting(key: &Key, o: &mut Value) {
    let meta = meta_of(o);
    meta.insert(
        "deletionTimestamp".into(),
        json!(rfc3339(SystemTime::now())),
    );
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    if key.0 == "namespaces" {
        o["spec"]["finalizers"] = json!(["kubernetes"]);
        o["status"]["phase"] = json!("Terminating");
    } else if key.0 == CRDS {
        let fins = meta_of(o).entry("finalizers").or_insert_with(|| json!([]));
        if let Some(f) = fins.as_array_mut()
            && !f.contains(&json!(CRD_CLEANUP))
        {
            f.push(json!(CRD_CLEANUP));
        }
        set_condition(
            o,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
    }
}

pub(in crate::k8s) const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";
pub(in crate::k8s) const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Set (or replace) a status condition; the transition time moves only when the status does.
pub(in crate::k8s) fn set_condition(
    o: &mut Value,
    t: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
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

pub(in crate::k8s) fn add_finalizer(o: &mut Value, f: &str) {
    let fins = meta_of(o).entry("finalizers").or_insert_with(|| json!([]));
    if !fins.is_array() {
        *fins = json!([]);
    }
    let list = fins.as_array_mut().expect("array");
    if !list.iter().any(|x| x == f) {
        list.push(json!(f));
    }
}

pub(in crate::k8s) fn has_finalizers(o: &Value) -> bool {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

pub(in crate::k8s) fn meta_of(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("object")
}

#[cfg(test)]
mod tests {
    use super::*;

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
