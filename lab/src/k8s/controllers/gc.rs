//! The garbage collector (kube-controller-manager's): owner references, orphan and foreground
//! deletion.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::k8s::store::{
    CRDS, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, KINDS, Key, Propagation, Store, add_finalizer,
    meta_of,
};

impl Store {
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
}
