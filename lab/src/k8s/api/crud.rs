//! Create, read, list, update, delete and deletecollection of stored objects.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::crds::{crd_initial_status, crd_terminating, crd_validate, structural};
use super::status::{
    bad_request, deleted_details, invalid, json_resp, not_found, status, store_err, terminating,
    with_warnings,
};
use super::table::{table, wants_table};
use super::{Early, Resp, Target, dry_run, q};
use crate::k8s::ApiServer;
use crate::k8s::controllers::{crds, namespaces};
use crate::k8s::proto::{self, ProtoError};
use crate::k8s::ssa;
use crate::k8s::store;

/// A name is valid for the resource (namespaces and services: DNS-1123 label; others:
/// DNS-1123 subdomain). Returns the real validation message on failure.
pub(super) fn name_error(resource: &str, name: &str) -> Option<String> {
    let label_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    };
    if resource == "namespaces" || resource == "services" {
        if label_ok(name) {
            return None;
        }
        return Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into());
    }
    if name.len() <= 253 && name.split('.').all(label_ok) {
        return None;
    }
    Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
}

pub(super) fn decode_body(
    k: &store::Kind,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Result<Value, Early> {
    let ct = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let ct = ct.split(';').next().unwrap_or_default().trim();
    let v: Result<Value, String> = match ct {
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| e.to_string()),
        "application/yaml" => serde_yaml::from_slice(body).map_err(|e| e.to_string()),
        "application/vnd.kubernetes.protobuf" => match proto::decode(k, body) {
            Ok(v) => Ok(v),
            Err(e @ ProtoError::Unsupported) => {
                return Err(Box::new(status(
                    415,
                    "UnsupportedMediaType",
                    &e.to_string(),
                    None,
                )));
            }
            Err(ProtoError::Invalid(e)) => Err(e),
        },
        _ => {
            let accepted = if proto::supported(k) {
                "application/json, application/yaml, application/vnd.kubernetes.protobuf"
            } else {
                "application/json, application/yaml"
            };
            return Err(Box::new(status(
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: {accepted}"
                ),
                None,
            )));
        }
    };
    match v {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(Box::new(bad_request("Object 'Kind' is missing in '{}'"))),
        Err(e) => Err(Box::new(bad_request(&format!(
            "the object provided is unrecognized: {e}"
        )))),
    }
}

pub(super) fn strip_list_item(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
    }
    v
}

pub(super) fn serve_resource(
    api: &ApiServer,
    verb: &str,
    t: &Target<'_>,
    qs: &[(String, String)],
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Resp {
    let store = &api.store;
    let k = t.kind;
    let ns = t.ns.unwrap_or("");
    let namespaces = store::kind("namespaces").expect("namespaces");
    let render = |v: Value| -> Value { api.view(k, v) };
    match verb {
        "get" => match store.get(k, ns, t.name.unwrap_or_default()) {
            Ok(v) if wants_table(headers) => {
                let v = render(v);
                let rv = v["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                json_resp(StatusCode::OK, &table(k, &[v], rv))
            }
            Ok(v) => json_resp(StatusCode::OK, &render(v)),
            Err(e) => store_err(e),
        },
        "list" => {
            let labels = match q(qs, "labelSelector").map(store::parse_label_selector) {
                Some(Err(e)) => return bad_request(&e),
                Some(Ok(r)) => r,
                None => Vec::new(),
            };
            let fields = match q(qs, "fieldSelector").map(store::parse_field_selector) {
                Some(Err(e)) => return bad_request(&e),
                Some(Ok(r)) => r,
                None => Vec::new(),
            };
            let (items, rv) = store.list(k, t.ns);
            let items: Vec<Value> = items
                .into_iter()
                .filter(|o| store::labels_match(o, &labels) && store::fields_match(o, &fields))
                .map(render)
                .collect();
            if wants_table(headers) {
                return json_resp(StatusCode::OK, &table(k, &items, rv));
            }
            let items: Vec<Value> = items.into_iter().map(strip_list_item).collect();
            json_resp(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", k.kind),
                    "apiVersion": k.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()},
                    "items": items,
                }),
            )
        }
        "create" => {
            let mut obj = match decode_body(k, headers, body) {
                Ok(v) => v,
                Err(r) => return *r,
            };
            if k.namespaced {
                if let Some(bns) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
                    && !bns.is_empty()
                    && bns != ns
                {
                    return bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    );
                }
                if store.get(namespaces, "", ns).is_err() {
                    return not_found("namespaces", ns);
                }
            }
            let mut name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if name.is_empty()
                && let Some(g) = obj
                    .pointer("/metadata/generateName")
                    .and_then(Value::as_str)
            {
                let suffix: String = (0..5)
                    .map(|_| {
                        let c = b"bcdfghjklmnpqrstvwxz2456789"[rand::random_range(0..27)];
                        c as char
                    })
                    .collect();
                name = format!("{g}{suffix}");
                obj["metadata"]["name"] = json!(name);
            }
            if name.is_empty() {
                return invalid(
                    k.kind,
                    "",
                    "metadata.name",
                    "",
                    "Required value: name or generateName is required",
                );
            }
            if let Some(why) = name_error(k.resource, &name) {
                return invalid(k.kind, &name, "metadata.name", &name, &why);
            }
            if k.namespaced && store.terminating(ns) {
                return terminating(k, &name, ns);
            }
            if let Some(r) = crd_terminating(store, k) {
                return r;
            }
            let crd = k.resource == "customresourcedefinitions";
            if crd {
                if let Err(r) = crd_validate(&obj, &name) {
                    return *r;
                }
                obj["status"] = crd_initial_status(&mut obj);
            }
            // Defaulting, as the real server does it.
            if k.resource == "secrets"
                && obj
                    .get("type")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                obj["type"] = json!("Opaque");
            }
            let warnings = match structural(store, k, qs, &mut obj) {
                Ok(w) => w,
                Err(r) => return *r,
            };
            ssa::track_update(None, &mut obj, &updater(qs, headers), &now());
            if dry_run(qs) {
                return match store.create_dry(k, ns, obj) {
                    Ok(v) => with_warnings(json_resp(StatusCode::CREATED, &render(v)), &warnings),
                    Err(e) => store_err(e),
                };
            }
            match store.create(k, ns, obj) {
                Ok(v) => {
                    if crd {
                        tokio::spawn(crds::establish(api.store.clone(), name));
                    }
                    with_warnings(json_resp(StatusCode::CREATED, &render(v)), &warnings)
                }
                Err(e) => store_err(e),
            }
        }
        "update" => {
            let name = t.name.unwrap_or_default();
            let obj = match decode_body(k, headers, body) {
                Ok(v) => v,
                Err(r) => return *r,
            };
            let bname = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if bname != name {
                return bad_request(&format!(
                    "the name of the object ({bname}) does not match the name on the URL ({name})"
                ));
            }
            let mut obj = obj;
            let warnings = match structural(store, k, qs, &mut obj) {
                Ok(w) => w,
                Err(r) => return *r,
            };
            if let Ok(old) = store.get(k, ns, name) {
                ssa::track_update(Some(&old), &mut obj, &updater(qs, headers), &now());
            }
            let written = if dry_run(qs) {
                store.update_dry(k, ns, name, obj)
            } else {
                store.update(k, ns, name, obj)
            };
            match written {
                Ok(v) => with_warnings(json_resp(StatusCode::OK, &render(v)), &warnings),
                Err(e) => store_err(e),
            }
        }
        "patch" => super::patch::patch(api, t, qs, headers, body),
        "delete" => {
            let name = t.name.unwrap_or_default();
            let (policy, legacy_cascade, dry) = match delete_options(qs, body) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            if dry {
                return match store.delete_dry(k, ns, name, policy) {
                    Ok((v, false)) => json_resp(
                        if legacy_cascade {
                            StatusCode::ACCEPTED
                        } else {
                            StatusCode::OK
                        },
                        &render(v),
                    ),
                    Ok((v, true)) => json_resp(StatusCode::OK, &deleted_status(k, name, &v)),
                    Err(e) => store_err(e),
                };
            }
            match store.delete_with(k, ns, name, policy) {
                Ok(v) if k.resource == "namespaces" => {
                    tokio::spawn(namespaces::finish(api.store.clone(), name.to_string()));
                    json_resp(StatusCode::OK, &v)
                }
                Ok(v) if k.resource == "customresourcedefinitions" => {
                    tokio::spawn(crds::finalize(api.store.clone(), name.to_string()));
                    json_resp(StatusCode::OK, &v)
                }
                // Finalizers hold it: the marked object is the answer (202 only for the
                // legacy `orphanDependents: false`, as the real handler does).
                Ok(v) if store.get(k, ns, name).is_ok() => {
                    let code = if legacy_cascade {
                        StatusCode::ACCEPTED
                    } else {
                        StatusCode::OK
                    };
                    json_resp(code, &render(v))
                }
                Ok(v) => json_resp(StatusCode::OK, &deleted_status(k, name, &v)),
                Err(e) => store_err(e),
            }
        }
        "deletecollection" => {
            let (policy, _, dry) = match delete_options(qs, body) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            let (items, _) = store.list(k, t.ns);
            for o in &items {
                if let Some(n) = o.pointer("/metadata/name").and_then(Value::as_str)
                    && !dry
                {
                    let _ = store.delete_with(k, ns, n, policy);
                }
            }
            let (_, rv) = store.list(k, t.ns);
            json_resp(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", k.kind),
                    "apiVersion": k.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()},
                    "items": items.into_iter().map(strip_list_item).collect::<Vec<_>>(),
                }),
            )
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        ),
    }
}

/// The Status a delete that removed the object answers.
fn deleted_status(k: &store::Kind, name: &str, v: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": deleted_details(k, name, v),
    })
}

/// `DeleteOptions` from the body (JSON, may be empty) and the query: the propagation policy
/// (default Background, every kind served here defaults to it) and whether the legacy
/// `orphanDependents: false` was given, and whether it is a dry run (`dryRun` in the query or
/// the body, where `kubectl delete --dry-run=server` puts it). Invalid options → 422 as the
/// real validation words it.
pub(super) fn delete_options(
    qs: &[(String, String)],
    body: &[u8],
) -> Result<(store::Propagation, bool, bool), Early> {
    let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body).or_else(|_| serde_yaml::from_slice(body)) {
            Ok(v) => v,
            Err(e) => {
                return Err(Box::new(bad_request(&format!(
                    "the object provided is unrecognized: {e}"
                ))));
            }
        }
    };
    let policy = opts["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| q(qs, "propagationPolicy").map(str::to_string));
    let orphan = opts["orphanDependents"].as_bool().or_else(|| {
        q(qs, "orphanDependents").map(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"))
    });
    let invalid = |field_msg: String| {
        Box::new(status(
            422,
            "Invalid",
            &format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: {field_msg}"),
            Some(json!({"group": "meta.k8s.io", "kind": "DeleteOptions",
                "causes": [{"reason": if field_msg.starts_with("Unsupported") { "FieldValueNotSupported" } else { "FieldValueInvalid" },
                    "message": field_msg, "field": "propagationPolicy"}]})),
        ))
    };
    if let (Some(p), Some(_)) = (&policy, orphan) {
        return Err(invalid(format!(
            "Invalid value: \"{p}\": orphanDependents and deletionPropagation cannot be both set"
        )));
    }
    let p = match (policy.as_deref(), orphan) {
        (Some("Orphan"), _) | (None, Some(true)) => store::Propagation::Orphan,
        (Some("Foreground"), _) => store::Propagation::Foreground,
        (Some("Background"), _) | (None, _) => store::Propagation::Background,
        (Some(other), _) => {
            return Err(invalid(format!(
                "Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            )));
        }
    };
    let dry = dry_run(qs)
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|s| !s.is_empty())));
    Ok((p, orphan == Some(false), dry))
}

/// Who a non-apply write is recorded for: `fieldManager`, else the User-Agent's first part
/// (as the real server derives it), else "unknown".
pub(super) fn updater(qs: &[(String, String)], headers: &hyper::HeaderMap) -> String {
    if let Some(m) = q(qs, "fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    headers
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|p| !p.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

pub(super) fn now() -> String {
    store::rfc3339(std::time::SystemTime::now())
}

pub(super) fn body_rv(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .ok()?;
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}
