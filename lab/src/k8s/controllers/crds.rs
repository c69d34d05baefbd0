//! The apiextensions controllers: naming and establishing (a CRD's names accepted, then
//! Established) and the CRD finalizer (custom objects deleted with their CRD).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::k8s::store::{
    self, CRD_CLEANUP, CRDS, Key, Store, has_finalizers, meta_of, set_condition,
};

/// The CRD finalizer controller: a moment after the DELETE, the custom objects go, then the
/// CRD (objects held by their own finalizers hold it).
/// Once it is gone, the names it held are free: the naming controller takes another look at
/// the group's CRDs that were refused.
pub async fn finalize(store: Arc<store::Store>, name: String) {
    let crds = store::kind_in("apiextensions.k8s.io", "customresourcedefinitions").expect("crds");
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if store.finalize_crd(&name) {
            break;
        }
    }
    if store.get(crds, "", &name).is_ok() {
        return;
    }
    let group = name.split_once('.').map(|(_, g)| g).unwrap_or_default();
    let (all, _) = store.list(crds, None);
    for c in all {
        let refused = c["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|x| x["type"] == "NamesAccepted" && x["status"] == "False")
        });
        if c["spec"]["group"] == group
            && refused
            && c.pointer("/metadata/deletionTimestamp").is_none()
        {
            let n = c["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            tokio::spawn(establish(store.clone(), n));
        }
    }
}

/// The naming and establishing controllers: a moment after creation the names are accepted
/// (unless another CRD of the group holds them) and the CRD is Established.
pub async fn establish(store: Arc<store::Store>, name: String) {
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let crds = store::kind_in("apiextensions.k8s.io", "customresourcedefinitions").expect("crds");
    let Ok(mut crd) = store.get(crds, "", &name) else {
        return;
    };
    let names = crd["spec"]["names"].clone();
    let group = crd["spec"]["group"].clone();
    let (others, _) = store.list(crds, None);
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let singular = |n: &Value| {
        n["singular"]
            .as_str()
            .filter(|x| !x.is_empty())
            .map_or_else(|| s(&n["kind"]).to_lowercase(), str::to_string)
    };
    let mut conflict = None;
    for o in others
        .iter()
        .filter(|o| o["metadata"]["name"] != json!(name) && o["spec"]["group"] == group)
    {
        let theirs = &o["status"]["acceptedNames"];
        if s(&theirs["plural"]).is_empty() {
            continue;
        }
        let their_short: Vec<String> = theirs["shortNames"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let their_resources = [s(&theirs["plural"]), singular(theirs)];
        if their_resources.contains(&s(&names["plural"])) {
            conflict = Some((
                "PluralConflict",
                format!("\"{}\" is already in use", s(&names["plural"])),
            ));
        } else if their_resources.contains(&singular(&names)) {
            conflict = Some((
                "SingularConflict",
                format!("\"{}\" is already in use", singular(&names)),
            ));
        } else if let Some(sn) = names["shortNames"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .find(|x| their_short.contains(x))
        {
            conflict = Some(("ShortNamesConflict", format!("\"{sn}\" is already in use")));
        } else if s(&theirs["kind"]) == s(&names["kind"]) {
            conflict = Some((
                "KindConflict",
                format!("\"{}\" is already in use", s(&names["kind"])),
            ));
        }
        if conflict.is_some() {
            break;
        }
    }
    let now = store::rfc3339(std::time::SystemTime::now());
    let cond = |t: &str, st: &str, reason: &str, msg: &str| json!({"type": t, "status": st, "lastTransitionTime": now, "reason": reason, "message": msg});
    match conflict {
        None => {
            let mut accepted = names.clone();
            accepted["singular"] = json!(singular(&names));
            if accepted.get("listKind").is_none() {
                accepted["listKind"] = json!(format!("{}List", s(&names["kind"])));
            }
            crd["status"]["acceptedNames"] = accepted;
            crd["status"]["conditions"] = json!([
                cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
                cond(
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted"
                ),
            ]);
        }
        Some((reason, msg)) => {
            crd["status"]["conditions"] = json!([
                cond("NamesAccepted", "False", reason, &msg),
                cond(
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted"
                ),
            ]);
        }
    }
    if let Some(m) = crd["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let _ = store.update_status(crds, "", &name, crd);
}

impl Store {
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
}
