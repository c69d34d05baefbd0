//! Health, discovery (`/api`, `/apis`, group and resource lists) and `/openapi/v3`.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::status::{json_resp, status, text};
use super::{Resp, User, forbidden_path, q};
use crate::k8s::ApiServer;
use crate::k8s::openapi;
use crate::k8s::store::{self, Kind};

/// The health checks `?verbose` lists (the real server's names).
pub(super) const CHECKS: &[&str] = &[
    "ping",
    "log",
    "etcd",
    "etcd-readiness",
    "informer-sync",
    "poststarthook/start-apiserver-admission-initializer",
    "poststarthook/generic-apiserver-start-informers",
    "poststarthook/start-apiextensions-informers",
    "poststarthook/start-apiextensions-controllers",
    "poststarthook/crd-informer-synced",
    "poststarthook/bootstrap-controller",
    "poststarthook/rbac/bootstrap-roles",
    "poststarthook/scheduling/bootstrap-system-priority-classes",
    "poststarthook/start-kube-aggregator-informers",
    "poststarthook/apiservice-registration-controller",
    "poststarthook/apiservice-discovery-controller",
    "shutdown",
];

pub(super) fn health(path: &str, qs: &[(String, String)]) -> Resp {
    if q(qs, "verbose").is_none() {
        return text(StatusCode::OK, "ok");
    }
    let checks: Vec<&str> = CHECKS
        .iter()
        .copied()
        .filter(|c| match path {
            "/livez" => *c != "etcd-readiness" && *c != "informer-sync" && *c != "shutdown",
            "/healthz" => *c != "etcd-readiness" && *c != "informer-sync" && *c != "shutdown",
            _ => true,
        })
        .collect();
    let mut body = String::new();
    for c in checks {
        body.push_str(&format!("[+]{c} ok\n"));
    }
    body.push_str(&format!("{} check passed\n", &path[1..]));
    text(StatusCode::OK, &body)
}

pub(super) fn api_resources(kinds: &[&Kind], gv: &str) -> Value {
    let resources: Vec<Value> = kinds
        .iter()
        .map(|k| {
            let mut r = json!({
                "name": k.resource,
                "singularName": k.singular,
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": k.verbs,
            });
            if !k.short_names.is_empty() {
                r["shortNames"] = json!(k.short_names);
            }
            r
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

pub(super) fn api_group(group: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": gvs, "preferredVersion": preferred})
}

/// Every group besides core with its versions (preferred first): the built-in ones, then
/// the CRDs' groups by name (as the aggregator orders them: by priority, then name).
pub(super) fn all_groups(api: &ApiServer) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = store::GROUPS
        .iter()
        .map(|g| (g.to_string(), vec!["v1".to_string()]))
        .collect();
    for (g, vs) in api.store.custom_groups() {
        if let Some((_, have)) = out.iter_mut().find(|(name, _)| *name == g) {
            have.extend(vs.into_iter().filter(|v| v != "v1"));
        } else {
            out.push((g, vs));
        }
    }
    out
}

/// Every group version's OpenAPI v3 document, by its index key (`api/v1`, `apis/<g>/<v>`).
pub(super) fn openapi_docs(api: &ApiServer) -> Vec<(String, Value)> {
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (g, vs) in all_groups(api) {
        for v in vs {
            gvs.push((g.clone(), v));
        }
    }
    let crds = store::kind_in("apiextensions.k8s.io", "customresourcedefinitions").expect("crds");
    gvs.into_iter()
        .map(|(g, v)| {
            let kinds: Vec<(&Kind, Option<Value>)> = kinds_of(api, &g, &v)
                .into_iter()
                .map(|k| {
                    let custom = store::kind_in(k.group, k.resource).is_none();
                    let crd_version = custom.then(|| {
                        api.store
                            .get(crds, "", &k.qualified())
                            .ok()
                            .and_then(|c| {
                                c["spec"]["versions"].as_array().and_then(|vs| {
                                    vs.iter().find(|x| x["name"] == k.version).cloned()
                                })
                            })
                            .unwrap_or_else(|| json!({}))
                    });
                    (k, crd_version)
                })
                .collect();
            (
                openapi::gv_path(&g, &v),
                openapi::document(&g, &v, &kinds, &api.version),
            )
        })
        .collect()
}

/// The kinds a group version serves.
pub(super) fn kinds_of(api: &ApiServer, group: &str, version: &str) -> Vec<&'static Kind> {
    let mut ks: Vec<&'static Kind> = store::KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    let mut custom: Vec<&'static Kind> = api
        .store
        .custom_kinds()
        .into_iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    custom.sort_by_key(|k| k.resource);
    ks.extend(custom);
    ks
}

/// Discovery requests (authenticated users, system:discovery): `/api`, `/api/v1`, `/apis`,
/// `/apis/<group>`, `/apis/<group>/<version>` and `/openapi/v3[/<gv>]`; None for other paths.
pub(super) fn serve(api: &ApiServer, user: &User, path: &str) -> Option<Resp> {
    let trimmed = path.trim_end_matches('/');
    let groups = if trimmed.starts_with("/apis") {
        all_groups(api)
    } else {
        Vec::new()
    };
    let group_doc = trimmed.strip_prefix("/apis/").and_then(|g| {
        let (group, version) = g.split_once('/').unwrap_or((g, ""));
        groups
            .iter()
            .find(|(name, vs)| {
                name == group && (version.is_empty() || vs.iter().any(|v| v == version))
            })
            .map(|(name, vs)| (name.as_str(), version, vs))
    });
    let discovery = matches!(trimmed, "/api" | "/api/v1" | "/apis")
        || group_doc.is_some()
        || path.starts_with("/openapi/");
    if !discovery {
        return None;
    }
    Some(answer(api, user, path, trimmed, &groups, group_doc))
}

fn answer(
    api: &ApiServer,
    user: &User,
    path: &str,
    trimmed: &str,
    groups: &[(String, Vec<String>)],
    group_doc: Option<(&str, &str, &Vec<String>)>,
) -> Resp {
    if user.anonymous() && !user.masters() {
        return forbidden_path(user, path);
    }
    if trimmed == "/openapi/v3" {
        return json_resp(StatusCode::OK, &openapi::index(&openapi_docs(api)));
    }
    if let Some(gv) = trimmed.strip_prefix("/openapi/v3/") {
        return match openapi_docs(api).into_iter().find(|(p, _)| p == gv) {
            Some((_, doc)) => {
                let mut r = json_resp(StatusCode::OK, &doc);
                if let Ok(v) =
                    hyper::header::HeaderValue::from_str(&format!("\"{}\"", openapi::hash(&doc)))
                {
                    r.headers_mut().insert(hyper::header::ETAG, v);
                }
                r
            }
            None => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        };
    }
    match (trimmed, group_doc) {
        ("/api", _) => json_resp(
            StatusCode::OK,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": api.bound.to_string()}
                ],
            }),
        ),
        ("/api/v1", _) => json_resp(
            StatusCode::OK,
            &api_resources(&kinds_of(api, "", "v1"), "v1"),
        ),
        ("/apis", _) => json_resp(
            StatusCode::OK,
            &json!({
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": groups.iter().map(|(g, vs)| api_group(g, vs)).collect::<Vec<_>>(),
            }),
        ),
        (_, Some((g, "", vs))) => {
            let mut doc = api_group(g, vs);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            json_resp(StatusCode::OK, &doc)
        }
        (_, Some((g, v, _))) => json_resp(
            StatusCode::OK,
            &api_resources(&kinds_of(api, g, v), &format!("{g}/{v}")),
        ),
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        ),
    }
}
