//! The engine: ordered server-side apply with an inventory and prune, drift, delete, import.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use serde_json::{Map, Value};

use crate::client::retry;
use crate::discovery::{Catalog, Resource};
use crate::drift::{Drift, DriftKind, changed_fields};
use crate::order::{apply_order, rank};
use crate::wait::{crd_established, poll_pause};
use crate::{Client, Error, Inventory, InventoryEntry, ObjectRef, object_hash};

/// How long an apply waits for the CRDs it applied to become Established.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// An apply that stopped part-way: the error and what exists now.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApplyError {
    /// previous ∪ applied-so-far, minus what was pruned: the objects that exist now.
    pub inventory: Inventory,
    /// Why the apply stopped.
    #[source]
    pub error: Error,
}

/// Applies object sets to one cluster under one field manager and inventory label.
pub struct Engine {
    pub(crate) client: Client,
    field_manager: String,
    label: (String, String),
    pub(crate) catalog: Catalog,
}

/// Where an object lives: its resource and effective namespace.
pub(crate) struct Located {
    pub resource: Resource,
    pub namespace: Option<String>,
}

impl Located {
    pub fn path(&self, name: &str) -> String {
        self.resource.item(self.namespace.as_deref(), name)
    }
}

impl Engine {
    /// An engine applying as `field_manager`, labelling every object `inventory_label`.
    pub fn new(client: Client, field_manager: &str, inventory_label: (&str, &str)) -> Engine {
        Engine {
            client,
            field_manager: field_manager.to_string(),
            label: (inventory_label.0.to_string(), inventory_label.1.to_string()),
            catalog: Catalog::default(),
        }
    }

    /// The client the engine uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The resource and effective namespace of `object` (namespaced without one: `default`);
    /// None when the API server serves no such kind (after one re-discovery).
    pub(crate) async fn locate(&self, object: &ObjectRef) -> Result<Option<Located>, Error> {
        let Some(resource) = self.catalog.resolve_fresh(&self.client, object).await? else {
            return Ok(None);
        };
        let namespace = if resource.namespaced {
            Some(object.namespace.clone().unwrap_or_else(|| "default".into()))
        } else {
            None
        };
        Ok(Some(Located {
            resource,
            namespace,
        }))
    }

    /// Applies `objects` in dependency order (Namespaces, CRDs — waited Established and
    /// re-discovered —, cluster RBAC/config, namespaced config, Services, workloads, the rest),
    /// each labelled with the inventory label and server-side applied (force, one request per
    /// object); then prunes, in reverse order, what `previous` has and `objects` no longer
    /// does, unless `keep` says so (kept objects stay in the inventory).
    pub async fn apply(
        &self,
        objects: &[Value],
        previous: &Inventory,
        keep: &(dyn Fn(&ObjectRef) -> bool + Send + Sync),
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Inventory, ApplyError> {
        let fail = |applied: &[InventoryEntry], rest: &[InventoryEntry], error: Error| {
            let mut entries = applied.to_vec();
            entries.extend(
                rest.iter()
                    .filter(|e| !applied.iter().any(|a| a.object == e.object))
                    .cloned(),
            );
            ApplyError {
                inventory: Inventory { entries },
                error,
            }
        };
        let mut refs = Vec::with_capacity(objects.len());
        for obj in objects {
            match ObjectRef::from_object(obj) {
                Ok(r) if refs.contains(&r) => {
                    let error = Error::Invalid {
                        object: r.to_string(),
                        message: "appears more than once in the object set".into(),
                    };
                    return Err(fail(&[], &previous.entries, error));
                }
                Ok(r) => refs.push(r),
                Err(error) => return Err(fail(&[], &previous.entries, error)),
            }
        }
        tracing::info!(objects = objects.len(), server = %self.client.server, "applying");
        let mut applied: Vec<InventoryEntry> = Vec::with_capacity(objects.len());
        let mut pending_crds: Vec<ObjectRef> = Vec::new();
        for i in apply_order(&refs) {
            if rank(&refs[i]) > 1 && !pending_crds.is_empty() {
                let crds = std::mem::take(&mut pending_crds);
                if let Err(e) = self.establish(&crds, progress).await {
                    return Err(fail(&applied, &previous.entries, e));
                }
            }
            match self.apply_one(&objects[i], &refs[i]).await {
                Ok(entry) => {
                    tracing::debug!(object = %entry.object, "applied");
                    progress(&format!("applied {}", entry.object));
                    if rank(&entry.object) == 1 {
                        pending_crds.push(entry.object.clone());
                    }
                    applied.push(entry);
                }
                Err(e) => return Err(fail(&applied, &previous.entries, e)),
            }
        }
        if !pending_crds.is_empty()
            && let Err(e) = self.establish(&pending_crds, progress).await
        {
            return Err(fail(&applied, &previous.entries, e));
        }

        // Prune: what was ours and is no longer desired.
        let stale: Vec<InventoryEntry> = previous
            .entries
            .iter()
            .filter(|e| !applied.iter().any(|a| a.object == e.object))
            .cloned()
            .collect();
        let stale_refs: Vec<ObjectRef> = stale.iter().map(|e| e.object.clone()).collect();
        let mut remaining = stale.clone();
        if !stale.is_empty() {
            tracing::info!(
                candidates = stale.len(),
                "pruning objects no longer desired"
            );
        }
        for i in crate::order::delete_order(&stale_refs) {
            let r = &stale_refs[i];
            if keep(r) {
                tracing::debug!(object = %r, "kept (not pruned)");
                continue;
            }
            match self.delete_one(r).await {
                Ok(_) => {
                    tracing::debug!(object = %r, "pruned");
                    progress(&format!("pruned {r}"));
                    remaining.retain(|e| &e.object != r);
                }
                Err(e) => return Err(fail(&applied, &remaining, e)),
            }
        }
        applied.extend(remaining);
        Ok(Inventory { entries: applied })
    }

    /// Server-side applies one object (labelled); its inventory entry.
    async fn apply_one(&self, obj: &Value, r: &ObjectRef) -> Result<InventoryEntry, Error> {
        let Some(at) = self.locate(r).await? else {
            return Err(Error::Invalid {
                object: r.to_string(),
                message: format!(
                    "the API server serves no kind {} in {} (is its CustomResourceDefinition applied and Established?)",
                    r.kind,
                    r.api_version()
                ),
            });
        };
        let mut body = obj.clone();
        let meta = body
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Error::Invalid {
                object: r.to_string(),
                message: "metadata is not an object".into(),
            })?;
        match &at.namespace {
            Some(ns) => {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            None => {
                meta.remove("namespace");
            }
        }
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        let labels = labels.as_object_mut().ok_or_else(|| Error::Invalid {
            object: r.to_string(),
            message: "metadata.labels is not a map".into(),
        })?;
        labels.insert(self.label.0.clone(), Value::String(self.label.1.clone()));
        let object = ObjectRef {
            namespace: at.namespace.clone(),
            ..r.clone()
        };
        // Of the manifest as given: callers compare it with `object_hash` of their own.
        let hash = object_hash(obj);
        let label = object.to_string();
        let params = PatchParams::apply(&self.field_manager).force();
        retry(&label, || async {
            let req = kube::core::Request::new(at.resource.collection(at.namespace.as_deref()))
                .patch(&object.name, &params, &Patch::Apply(&body))
                .map_err(|e| Error::Transport(format!("{label}: {e}")))?;
            self.client.call::<Value>(req, "patch", &label).await
        })
        .await?;
        Ok(InventoryEntry { object, hash })
    }

    /// Waits until the CRDs are Established, then re-runs discovery.
    async fn establish(
        &self,
        crds: &[ObjectRef],
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), Error> {
        tracing::info!(
            crds = crds.len(),
            "waiting for CustomResourceDefinitions to be Established"
        );
        let deadline = Instant::now() + CRD_ESTABLISH_TIMEOUT;
        for crd in crds {
            let path = format!(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}",
                crd.name
            );
            let mut attempt = 0;
            loop {
                let last = match self.client.get_json(&path, &crd.to_string()).await? {
                    Some(live) => match crd_established(&live) {
                        Ok(()) => break,
                        Err(seen) => seen,
                    },
                    None => "not found".into(),
                };
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        waited_for: crd.to_string(),
                        last_seen: last,
                    });
                }
                tokio::time::sleep(poll_pause(attempt)).await;
                attempt += 1;
            }
            progress(&format!("{crd} established"));
        }
        self.catalog.refresh().await;
        Ok(())
    }

    /// Deletes one object (Background propagation); false when it was already gone.
    pub(crate) async fn delete_one(&self, r: &ObjectRef) -> Result<bool, Error> {
        let Some(at) = self.locate(r).await? else {
            // Its kind is gone (e.g. the CRD was deleted): so is the object.
            return Ok(false);
        };
        let label = r.to_string();
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        retry(&label, || async {
            let req = kube::core::Request::new(at.resource.collection(at.namespace.as_deref()))
                .delete(&r.name, &dp)
                .map_err(|e| Error::Transport(format!("{label}: {e}")))?;
            match self.client.call::<Value>(req, "delete", &label).await {
                Ok(_) => Ok(true),
                Err(Error::Api { status: 404, .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Reads one object as JSON; None when it (or its kind) does not exist.
    pub async fn get(&self, object: &ObjectRef) -> Result<Option<Value>, Error> {
        let Some(at) = self.locate(object).await? else {
            return Ok(None);
        };
        self.client
            .get_json(&at.path(&object.name), &object.to_string())
            .await
    }

    /// Compares each desired object with the live one: Missing when absent, Changed with the
    /// paths of desired leaf fields whose live value differs (desired ⊆ live). Objects without
    /// drift are not listed.
    pub async fn drift(&self, desired: &[Value]) -> Result<Vec<Drift>, Error> {
        let mut out = Vec::new();
        for obj in desired {
            let r = ObjectRef::from_object(obj)?;
            let Some(at) = self.locate(&r).await? else {
                out.push(Drift {
                    object: r,
                    kind: DriftKind::Missing,
                });
                continue;
            };
            let object = ObjectRef {
                namespace: at.namespace.clone(),
                ..r
            };
            let live = self
                .client
                .get_json(&at.path(&object.name), &object.to_string())
                .await?;
            let kind = match live {
                None => DriftKind::Missing,
                Some(live) => {
                    let want = comparable(obj, at.namespace.as_deref());
                    let fields = changed_fields(&want, &live);
                    if fields.is_empty() {
                        continue;
                    }
                    DriftKind::Changed { fields }
                }
            };
            tracing::debug!(object = %object, "drifted");
            out.push(Drift { object, kind });
        }
        Ok(out)
    }

    /// Deletes everything in the inventory in reverse apply order (Background propagation) and
    /// waits until all of it is gone; objects already gone are fine.
    pub async fn delete(
        &self,
        inventory: &Inventory,
        timeout: Duration,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let refs: Vec<ObjectRef> = inventory.entries.iter().map(|e| e.object.clone()).collect();
        tracing::info!(objects = refs.len(), "deleting");
        let mut waiting = Vec::new();
        for i in crate::order::delete_order(&refs) {
            let r = &refs[i];
            if self.delete_one(r).await? {
                tracing::debug!(object = %r, "delete requested");
                progress(&format!("deleting {r}"));
                waiting.push(r.clone());
            }
        }
        for r in &waiting {
            let mut attempt = 0;
            loop {
                let last = match self.get(r).await? {
                    None => break,
                    Some(live) => still_there(&live),
                };
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        waited_for: format!("{r} to be deleted"),
                        last_seen: last,
                    });
                }
                tokio::time::sleep(poll_pause(attempt)).await;
                attempt += 1;
            }
            progress(&format!("deleted {r}"));
        }
        Ok(())
    }

    /// Rebuilds an inventory from the objects carrying the inventory label, over every listable
    /// kind the API server serves (preferred versions). Hashes are empty: unknown until applied.
    pub async fn import(&self) -> Result<Inventory, Error> {
        let selector = format!("{}={}", self.label.0, self.label.1);
        let lp = ListParams::default().labels(&selector);
        let mut refs = Vec::new();
        for res in self.catalog.listable(&self.client).await? {
            let what = format!(
                "{} ({})",
                res.plural,
                if res.group.is_empty() {
                    "core"
                } else {
                    &res.group
                }
            );
            let list = retry(&what, || async {
                let req = kube::core::Request::new(res.collection(None))
                    .list(&lp)
                    .map_err(|e| Error::Transport(format!("{what}: {e}")))?;
                self.client.call::<Value>(req, "list", &what).await
            })
            .await;
            let list = match list {
                Ok(l) => l,
                // Kinds that cannot be listed here are not ours.
                Err(Error::Api {
                    status: 404 | 405, ..
                }) => continue,
                Err(e) => return Err(e),
            };
            for item in list["items"].as_array().into_iter().flatten() {
                let meta = &item["metadata"];
                refs.push(ObjectRef {
                    group: res.group.clone(),
                    version: res.version.clone(),
                    kind: res.kind.clone(),
                    namespace: meta["namespace"]
                        .as_str()
                        .filter(|_| res.namespaced)
                        .map(String::from),
                    name: meta["name"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        refs.sort_by(|a, b| (rank(a), a).cmp(&(rank(b), b)));
        tracing::info!(objects = refs.len(), "imported");
        Ok(Inventory {
            entries: refs
                .into_iter()
                .map(|object| InventoryEntry {
                    object,
                    hash: String::new(),
                })
                .collect(),
        })
    }
}

/// What `desired` should look like live: its effective namespace, a Secret's `stringData`
/// folded into `data` (the server stores it there).
fn comparable(desired: &Value, namespace: Option<&str>) -> Value {
    let mut want = desired.clone();
    if let Some(meta) = want.get_mut("metadata").and_then(Value::as_object_mut) {
        match namespace {
            Some(ns) => {
                meta.insert("namespace".into(), Value::String(ns.into()));
            }
            None => {
                meta.remove("namespace");
            }
        }
    }
    if want["kind"] == "Secret"
        && want["apiVersion"] == "v1"
        && let Some(Value::Object(sd)) = want.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        let mut data = want["data"].as_object().cloned().unwrap_or_default();
        for (k, v) in sd {
            if let Some(s) = v.as_str() {
                data.insert(k, Value::String(B64.encode(s)));
            }
        }
        want["data"] = Value::Object(data);
    }
    want
}

/// Why a deleted object is still there, for timeout messages.
fn still_there(live: &Value) -> String {
    let finalizers: Vec<&str> = live["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match (
        live["metadata"]["deletionTimestamp"].is_string(),
        finalizers.is_empty(),
    ) {
        (true, false) => format!(
            "still present, terminating, finalizers: {}",
            finalizers.join(", ")
        ),
        (true, true) => "still present, terminating".into(),
        (false, _) => "still present, not marked for deletion".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_string_data_compares_as_data() {
        let want = comparable(
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "data": {"a": "eA=="}, "stringData": {"b": "y"}}),
            Some("default"),
        );
        assert_eq!(want["data"], json!({"a": "eA==", "b": "eQ=="}));
        assert!(want.get("stringData").is_none());
        assert_eq!(want["metadata"]["namespace"], "default");
    }

    #[test]
    fn still_there_says_why() {
        assert_eq!(
            still_there(
                &json!({"metadata": {"deletionTimestamp": "t", "finalizers": ["kubernetes"]}})
            ),
            "still present, terminating, finalizers: kubernetes"
        );
    }
}
