//! What the resources that apply Kubernetes objects through `infraflux-kube` share: connecting
//! from a kubeconfig, engine errors as diagnostics, inventory keys and maps, the apply step
//! (fast failure when nothing answers, outages waited out), drift as inventory values.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use infraflux_kube::{
    Client, DriftKind, Engine, Error as KubeError, Inventory, InventoryEntry, Kubeconfig, ObjectRef,
};
use serde_json::Value as Json;
use tfplugin::{AttributePath, Ctx, Diagnostic, StateResponse, Value};

/// The field manager of every object we apply.
pub const FIELD_MANAGER: &str = "infraflux";
/// Per-request timeout of the Kubernetes client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an API server may stay unreachable during an apply before the apply gives up.
const OUTAGE_BUDGET: Duration = Duration::from_secs(30);

/// A diagnostic for an engine error; connection problems point at `kubeconfig`.
pub fn kube_diag(summary: &str, e: &KubeError) -> Diagnostic {
    let d = Diagnostic::error(summary, format!("{e}."));
    match e {
        KubeError::Kubeconfig(_) | KubeError::Unreachable { .. } | KubeError::Forbidden { .. } => {
            d.at(AttributePath::attr("kubeconfig"))
        }
        _ => d,
    }
}

/// The engine for the cluster the kubeconfig names, labelling objects `inventory_label`.
pub fn connect(
    kubeconfig: Option<&str>,
    inventory_label: (&str, &str),
) -> Result<Engine, Diagnostic> {
    let yaml = kubeconfig.ok_or_else(|| {
        Diagnostic::error(
            "No kubeconfig",
            "kubeconfig is not known at apply time; give the cluster's admin kubeconfig.",
        )
        .at(AttributePath::attr("kubeconfig"))
    })?;
    let kc = Kubeconfig::parse(yaml).map_err(|e| kube_diag("Invalid kubeconfig", &e))?;
    let client = Client::new(&kc, REQUEST_TIMEOUT)
        .map_err(|e| kube_diag("Cannot use the kubeconfig", &e))?;
    Ok(Engine::new(client, FIELD_MANAGER, inventory_label))
}

/// The inventory key of a built object: `<apiVersion> <Kind> [<namespace>/]<name>`.
pub fn key(object: &Json) -> String {
    let s = |v: &Json| v.as_str().unwrap_or_default().to_string();
    let meta = &object["metadata"];
    let name = match meta["namespace"].as_str() {
        Some(ns) => format!("{ns}/{}", s(&meta["name"])),
        None => s(&meta["name"]),
    };
    format!("{} {} {name}", s(&object["apiVersion"]), s(&object["kind"]))
}

/// The inventory key of an engine object reference (as [`key`] makes them).
pub fn key_of(r: &ObjectRef) -> String {
    let api_version = if r.group.is_empty() {
        r.version.clone()
    } else {
        format!("{}/{}", r.group, r.version)
    };
    match &r.namespace {
        Some(ns) => format!("{api_version} {} {ns}/{}", r.kind, r.name),
        None => format!("{api_version} {} {}", r.kind, r.name),
    }
}

/// The object a key names.
pub fn object_ref(key: &str) -> Option<ObjectRef> {
    let mut parts = key.splitn(3, ' ');
    let (api_version, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let (namespace, name) = match name.split_once('/') {
        Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
        None => (None, name.to_string()),
    };
    Some(ObjectRef {
        group,
        version,
        kind: kind.to_string(),
        namespace,
        name,
    })
}

/// As a Terraform map; `unknown` keys get an unknown hash (it depends on values that do not
/// exist before the first apply).
pub fn inventory_value(inv: &BTreeMap<String, String>, unknown: &[String]) -> Value {
    Value::Map(
        inv.iter()
            .map(|(k, h)| {
                let v = if unknown.contains(k) {
                    Value::Unknown
                } else {
                    Value::from(h.as_str())
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// A state's `inventory` map as key → hash.
pub fn inventory_map(inventory: &Value) -> BTreeMap<String, String> {
    inventory
        .as_map()
        .map(|m| {
            m.iter()
                .map(|(k, h)| (k.clone(), h.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The engine's inventory for inventory keys (for pruning and delete).
pub fn engine_inventory(inventory: &BTreeMap<String, String>) -> Inventory {
    let entries = inventory
        .iter()
        .filter_map(|(k, h)| {
            Some(InventoryEntry {
                object: object_ref(k)?,
                hash: h.clone(),
            })
        })
        .collect();
    Inventory { entries }
}

/// What an apply left in the cluster, as inventory entries (key → hash of the built object,
/// or the engine's hash for objects no longer built).
pub fn existing(
    engine_inv: &Inventory,
    built: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    engine_inv
        .entries
        .iter()
        .map(|e| {
            let k = key_of(&e.object);
            let h = built.get(&k).cloned().unwrap_or_else(|| e.hash.clone());
            (k, h)
        })
        .collect()
}

/// The inventory after a refresh: missing objects leave it (the plan re-adds them), changed
/// ones show which owned fields differ.
pub async fn refresh(
    engine: &Engine,
    desired: &[Json],
    inventory: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, KubeError> {
    let tracked: Vec<Json> = desired
        .iter()
        .filter(|o| inventory.contains_key(&key(o)))
        .cloned()
        .collect();
    let mut out = inventory.clone();
    for d in engine.drift(&tracked).await? {
        let k = key_of(&d.object);
        match d.kind {
            DriftKind::Missing => {
                out.remove(&k);
            }
            DriftKind::Changed { fields } => {
                let mut shown: Vec<&str> = fields.iter().map(String::as_str).take(5).collect();
                if fields.len() > 5 {
                    shown.push("…");
                }
                out.insert(k, format!("drifted: {}", shown.join(", ")));
            }
        }
    }
    Ok(out)
}

/// How an apply ended: the inventory of what exists and, on failure, why.
pub struct Applied {
    pub inventory: BTreeMap<String, String>,
    pub error: Option<Diagnostic>,
}

/// Applies `objects` over `previous` (pruning what left, sparing what `keep` names) within
/// `timeout`; `what` names the install in messages ("Cilium"). `Ok` is the inventory once
/// every object is applied; `Err` keeps what may exist (on cancellation or timeout the union
/// of before and after: deleting an absent object is harmless, forgetting a present one is
/// not). Nothing answering at all fails at once; an API server that goes away mid-apply
/// (control planes restart, e.g. during upgrades) is waited out for a while, and what was
/// applied is not redone.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    ctx: &Ctx,
    engine: &Engine,
    objects: &[Json],
    built: &BTreeMap<String, String>,
    previous: &Inventory,
    keep: &(dyn Fn(&ObjectRef) -> bool + Send + Sync),
    timeout: Duration,
    what: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<BTreeMap<String, String>, Applied> {
    let started = Instant::now();
    let mut maybe = existing(previous, built);
    maybe.extend(built.iter().map(|(k, h)| (k.clone(), h.clone())));
    if let Err(e) = engine.client().readyz().await {
        return Err(Applied {
            inventory: existing(previous, built),
            error: Some(kube_diag("Cannot reach the Kubernetes API", &e)),
        });
    }
    let mut prev = previous.clone();
    let mut outage: Option<Instant> = None;
    loop {
        let attempt = tokio::time::timeout(
            timeout.saturating_sub(started.elapsed()),
            engine.apply(objects, &prev, keep, progress),
        );
        let applied = tokio::select! {
            () = ctx.cancel.cancelled() => {
                return Err(Applied { inventory: maybe, error: Some(Diagnostic::error(
                    format!("{what} install interrupted"),
                    "Terraform asked the provider to stop while objects were being applied; \
                     the next apply finishes the job.")) });
            }
            r = attempt => r,
        };
        match applied {
            Err(_) => {
                return Err(Applied {
                    inventory: maybe,
                    error: Some(Diagnostic::error(
                        format!("Timed out applying the {what} objects"),
                        format!(
                            "The objects were not all applied within {}s; the next apply \
                             continues. Raise timeouts if the API server is slow.",
                            timeout.as_secs()
                        ),
                    )),
                });
            }
            Ok(Ok(inv)) => return Ok(existing(&inv, built)),
            Ok(Err(e))
                if e.error.is_transient()
                    && outage.get_or_insert_with(Instant::now).elapsed() < OUTAGE_BUDGET
                    && started.elapsed() < timeout =>
            {
                progress(&format!("{}; retrying", e.error));
                prev = e.inventory;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(Err(e)) => {
                return Err(Applied {
                    inventory: existing(&e.inventory, built),
                    error: Some(kube_diag(
                        &format!("Cannot apply the {what} objects"),
                        &e.error,
                    )),
                });
            }
        }
    }
}

/// Puts a refreshed inventory into the state, or keeps the state with the failure as a
/// warning: a cluster that cannot be read must not block a plan, or a destroy of the cluster
/// itself.
pub fn set_refreshed(
    resp: &mut StateResponse,
    refreshed: Result<BTreeMap<String, String>, Diagnostic>,
) {
    match refreshed {
        Ok(inv) => resp.state.set_attr("inventory", inventory_value(&inv, &[])),
        Err(d) => resp.diags.push(Diagnostic::warning(
            format!("{} (state kept as it was)", d.summary),
            d.detail,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_name_the_object_and_parse_back() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                        "metadata": {"name": "cilium", "namespace": "kube-system"}});
        assert_eq!(key(&ds), "apps/v1 DaemonSet kube-system/cilium");
        let r = object_ref(&key(&ds)).expect("parses");
        assert_eq!((r.group.as_str(), r.version.as_str()), ("apps", "v1"));
        assert_eq!(r.namespace.as_deref(), Some("kube-system"));
        assert_eq!(key_of(&r), key(&ds));
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}});
        let r = object_ref(&key(&ns)).expect("parses");
        assert_eq!(
            (r.group.as_str(), r.kind.as_str(), r.namespace),
            ("", "Namespace", None)
        );
    }
}
