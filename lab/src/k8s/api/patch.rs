//! PATCH: JSON merge patch (also for strategic merge), JSON patch and server-side apply.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::crds::{crd_initial_status, crd_terminating, crd_validate, custom_schema, structural};
use super::crud::{body_rv, now, updater};
use super::status::{
    bad_request, json_resp, not_found, status, store_err, terminating, with_warnings,
};
use super::{Early, Resp, Target, dry_run, q};
use crate::k8s::ApiServer;
use crate::k8s::controllers::crds;
use crate::k8s::ssa;
use crate::k8s::store::{self, StoreError};

/// JSON merge patch (RFC 7386).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

pub(super) fn patch(
    api: &ApiServer,
    t: &Target<'_>,
    qs: &[(String, String)],
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Resp {
    let store = &api.store;
    let k = t.kind;
    let ns = t.ns.unwrap_or("");
    let name = t.name.unwrap_or_default();
    let dry = dry_run(qs);
    let update = |obj: Value| {
        if dry {
            store.update_dry(k, ns, name, obj)
        } else {
            store.update(k, ns, name, obj)
        }
    };
    let ct = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let parse = |b: &[u8]| -> Result<Value, Early> {
        serde_json::from_slice(b)
            .or_else(|_| serde_yaml::from_slice(b))
            .map_err(|e: serde_yaml::Error| Box::new(bad_request(&e.to_string())))
    };
    let current = store.get(k, ns, name);
    let result = match ct.as_str() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let p = match parse(body) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            let mut cur = match current {
                Ok(c) => c,
                Err(e) => return store_err(e),
            };
            merge_patch(&mut cur, &p);
            cur
        }
        "application/json-patch+json" => {
            let ops: json_patch::Patch = match serde_json::from_slice(body) {
                Ok(p) => p,
                Err(e) => return bad_request(&e.to_string()),
            };
            let mut cur = match current {
                Ok(c) => c,
                Err(e) => return store_err(e),
            };
            if let Err(e) = json_patch::patch(&mut cur, &ops) {
                return status(
                    422,
                    "Invalid",
                    &e.to_string(),
                    Some(json!({"name": name, "kind": k.kind})),
                );
            }
            cur
        }
        "application/apply-patch+yaml" => {
            if q(qs, "fieldManager").is_none_or(str::is_empty) {
                return status(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    Some(
                        json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]}),
                    ),
                );
            }
            let p = match parse(body) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            let manager = q(qs, "fieldManager").unwrap_or_default();
            let force = q(qs, "force")
                .is_some_and(|f| matches!(f, "1" | "t" | "T" | "true" | "TRUE" | "True"));
            let live = match current {
                Ok(cur) => Some(cur),
                Err(StoreError::NotFound { .. }) => {
                    if k.namespaced
                        && store
                            .get(store::kind("namespaces").expect("ns"), "", ns)
                            .is_err()
                    {
                        return not_found("namespaces", ns);
                    }
                    if k.namespaced && store.terminating(ns) {
                        return terminating(k, name, ns);
                    }
                    if let Some(r) = crd_terminating(store, k) {
                        return r;
                    }
                    None
                }
                Err(e) => return store_err(e),
            };
            let mut applied = p;
            applied["metadata"]["name"] = json!(name);
            let warnings = match structural(store, k, qs, &mut applied) {
                Ok(w) => w,
                Err(r) => return *r,
            };
            let schema = custom_schema(store, k);
            match ssa::apply(live.as_ref(), &applied, manager, force, &now()) {
                Err(conflicts) => {
                    let causes: Vec<Value> = conflicts
                        .iter()
                        .map(|(who, path)| {
                            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {who}"), "field": path})
                        })
                        .collect();
                    return status(
                        409,
                        "Conflict",
                        &ssa::conflict_message(&conflicts),
                        Some(json!({"causes": causes})),
                    );
                }
                Ok(mut obj) if live.is_none() => {
                    let crd = k.resource == "customresourcedefinitions";
                    if crd {
                        if let Err(r) = crd_validate(&obj, name) {
                            return *r;
                        }
                        obj["status"] = crd_initial_status(&mut obj);
                    }
                    if let Some(s) = &schema {
                        crate::k8s::structural::prune_and_default(&mut obj, s);
                    }
                    let created = if dry {
                        store.create_dry(k, ns, obj)
                    } else {
                        store.create(k, ns, obj)
                    };
                    return match created {
                        Ok(v) => {
                            if crd && !dry {
                                tokio::spawn(crds::establish(api.store.clone(), name.to_string()));
                            }
                            with_warnings(
                                json_resp(StatusCode::CREATED, &api.view(k, v)),
                                &warnings,
                            )
                        }
                        Err(e) => store_err(e),
                    };
                }
                Ok(obj) => {
                    // Apply has no resourceVersion precondition unless the applied object
                    // names one.
                    let mut obj = obj;
                    match applied.pointer("/metadata/resourceVersion") {
                        Some(rv) => obj["metadata"]["resourceVersion"] = rv.clone(),
                        None => {
                            if let Some(m) = obj["metadata"].as_object_mut() {
                                m.remove("resourceVersion");
                            }
                        }
                    }
                    if let Some(s) = &schema {
                        crate::k8s::structural::prune_and_default(&mut obj, s);
                    }
                    return match update(obj) {
                        Ok(v) => {
                            with_warnings(json_resp(StatusCode::OK, &api.view(k, v)), &warnings)
                        }
                        Err(e) => store_err(e),
                    };
                }
            }
        }
        _ => {
            return status(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
                None,
            );
        }
    };
    let mut result = result;
    let warnings = match structural(store, k, qs, &mut result) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    if let Ok(old) = store.get(k, ns, name) {
        ssa::track_update(Some(&old), &mut result, &updater(qs, headers), &now());
    }
    // A patch carries no precondition unless it names a resourceVersion itself.
    if body_rv(body).is_none()
        && let Some(m) = result["metadata"].as_object_mut()
    {
        m.remove("resourceVersion");
    }
    match update(result) {
        Ok(v) => with_warnings(json_resp(StatusCode::OK, &api.view(k, v)), &warnings),
        Err(e) => store_err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }
}
