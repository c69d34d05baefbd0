//! The kube-apiserver HTTP surface: authentication (x509 against the Kubernetes CA), the
//! authorization a fresh cluster has (system:masters may do anything; everyone may read
//! version and health; authenticated users may read discovery), health, version, discovery
//! and core/v1 CRUD with the real Status error bodies.

use std::sync::Arc;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::ApiServer;
use super::openapi;
use super::ssa;
use super::store::{self, Kind, StoreError};
use super::tls::Identity;
use crate::http::Req;
use tokio_stream::StreamExt;

pub type Resp = Response<BoxBody<Bytes, Infallible>>;

/// An early answer (boxed: a response is large).
type Early = Box<Resp>;

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_str(content_type)
            .unwrap_or(hyper::header::HeaderValue::from_static("application/json")),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    r
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    respond(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn text(status: StatusCode, body: &str) -> Resp {
    respond(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// A `metav1.Status` failure.
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Resp {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v["code"] = json!(code);
    json_resp(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &v,
    )
}

fn unauthorized() -> Resp {
    status(401, "Unauthorized", "Unauthorized", None)
}

/// Status details of a (qualified) resource: `{"name", "group"?, "kind": plural}`.
fn details(qualified: &str, name: &str) -> Value {
    match qualified.split_once('.') {
        Some((resource, group)) => json!({"name": name, "group": group, "kind": resource}),
        None => json!({"name": name, "kind": qualified}),
    }
}

fn deleted_details(k: &Kind, name: &str, obj: &Value) -> Value {
    let mut d = details(&k.qualified(), name);
    d["uid"] = obj["metadata"]["uid"].clone();
    d
}

fn not_found(resource: &str, name: &str) -> Resp {
    status(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(details(resource, name)),
    )
}

fn store_err(e: StoreError) -> Resp {
    match e {
        StoreError::NotFound { resource, name } => not_found(&resource, &name),
        StoreError::AlreadyExists { resource, name } => status(
            409,
            "AlreadyExists",
            &format!("{resource} \"{name}\" already exists"),
            Some(details(&resource, &name)),
        ),
        StoreError::Conflict { resource, name } => status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
            Some(details(&resource, &name)),
        ),
    }
}

fn bad_request(msg: &str) -> Resp {
    status(400, "BadRequest", msg, None)
}

fn invalid(kind: &str, name: &str, field: &str, value: &str, why: &str) -> Resp {
    let detail = if value.is_empty() && why.starts_with("Required") {
        why.to_string()
    } else {
        format!("Invalid value: \"{value}\": {why}")
    };
    let reason = if why.starts_with("Required") {
        "FieldValueRequired"
    } else {
        "FieldValueInvalid"
    };
    status(
        422,
        "Invalid",
        &format!("{kind} \"{name}\" is invalid: {field}: {detail}"),
        Some(json!({
            "name": name,
            "kind": kind,
            "causes": [{"reason": reason, "message": detail, "field": field}],
        })),
    )
}

/// Who the request is from, after authentication.
struct User {
    name: String,
    groups: Vec<String>,
}

impl User {
    fn masters(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
    fn anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }
}

/// The RBAC answer for a resource request by anyone but system:masters.
fn forbidden(u: &User, verb: &str, k: &Kind, name: Option<&str>, ns: Option<&str>) -> Resp {
    let qualified = k.qualified();
    let subject = match name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified.clone(),
    };
    let scope = match ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut d = details(&qualified, name.unwrap_or_default());
    if name.is_none()
        && let Some(o) = d.as_object_mut()
    {
        o.remove("name");
    }
    status(
        403,
        "Forbidden",
        &format!(
            "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
            u.name, k.resource, k.group
        ),
        Some(d),
    )
}

fn forbidden_path(u: &User, path: &str) -> Resp {
    status(
        403,
        "Forbidden",
        &format!("forbidden: User \"{}\" cannot get path \"{path}\"", u.name),
        Some(json!({})),
    )
}

fn query(req: &Req) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn q<'a>(qs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    qs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

/// The health checks `?verbose` lists (the real server's names).
const CHECKS: &[&str] = &[
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

fn health(path: &str, qs: &[(String, String)]) -> Resp {
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

fn api_resources(kinds: &[&Kind], gv: &str) -> Value {
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

fn api_group(group: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": gvs, "preferredVersion": preferred})
}

/// Every group besides core with its versions (preferred first): the built-in ones, then
/// the CRDs' groups by name (as the aggregator orders them: by priority, then name).
fn all_groups(api: &ApiServer) -> Vec<(String, Vec<String>)> {
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
fn openapi_docs(api: &ApiServer) -> Vec<(String, Value)> {
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
fn kinds_of(api: &ApiServer, group: &str, version: &str) -> Vec<&'static Kind> {
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

/// A name is valid for the resource (namespaces and services: DNS-1123 label; others:
/// DNS-1123 subdomain). Returns the real validation message on failure.
fn name_error(resource: &str, name: &str) -> Option<String> {
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

/// Path pieces of a core/v1 resource request.
#[derive(Debug)]
struct Target<'a> {
    kind: &'static Kind,
    ns: Option<&'a str>,
    name: Option<&'a str>,
}

fn parse_target<'a>(
    api: &ApiServer,
    group: &str,
    version: &str,
    rest: &'a str,
) -> Result<Target<'a>, ()> {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let k = |r: &str| api.store.find(group, version, r).ok_or(());
    match parts.as_slice() {
        [r] => Ok(Target {
            kind: k(r)?,
            ns: None,
            name: None,
        }),
        ["namespaces", ns, r] => {
            let kind = k(r)?;
            if !kind.namespaced {
                return Err(());
            }
            Ok(Target {
                kind,
                ns: Some(ns),
                name: None,
            })
        }
        ["namespaces", ns, r, name] => {
            let kind = k(r)?;
            if !kind.namespaced {
                return Err(());
            }
            Ok(Target {
                kind,
                ns: Some(ns),
                name: Some(name),
            })
        }
        [r, name] => {
            let kind = k(r)?;
            if kind.namespaced {
                return Err(());
            }
            Ok(Target {
                kind,
                ns: None,
                name: Some(name),
            })
        }
        _ => Err(()),
    }
}

/// Serve one request of an authenticated connection.
pub async fn handle(api: Arc<ApiServer>, identity: Identity, req: Req) -> Resp {
    let path = req.uri().path().to_string();
    let qs = query(&req);
    let user = match identity {
        Identity::Invalid => return unauthorized(),
        Identity::Anonymous => User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        },
        Identity::User { name, mut groups } => {
            groups.push("system:authenticated".into());
            User { name, groups }
        }
    };
    let method = req.method().clone();
    // Non-resource URLs everyone may GET (system:public-info-viewer).
    match path.as_str() {
        "/version" | "/version/" => {
            if method != Method::GET {
                return forbidden_path(&user, &path);
            }
            return json_resp(StatusCode::OK, &api.version_info());
        }
        "/healthz" | "/livez" | "/readyz" => return health(&path, &qs),
        _ => {}
    }
    if let Some(check) = ["/healthz/", "/livez/", "/readyz/"]
        .iter()
        .find_map(|p| path.strip_prefix(p))
    {
        return if CHECKS.contains(&check) {
            text(StatusCode::OK, "ok")
        } else {
            text(StatusCode::NOT_FOUND, "404 page not found\n")
        };
    }
    // Discovery (authenticated users, system:discovery): /api, /api/v1, /apis,
    // /apis/<group>, /apis/<group>/v1.
    let trimmed = path.trim_end_matches('/');
    let groups = if trimmed.starts_with("/apis") {
        all_groups(&api)
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
    if discovery {
        if user.anonymous() && !user.masters() {
            return forbidden_path(&user, &path);
        }
        if trimmed == "/openapi/v3" {
            return json_resp(StatusCode::OK, &openapi::index(&openapi_docs(&api)));
        }
        if let Some(gv) = trimmed.strip_prefix("/openapi/v3/") {
            return match openapi_docs(&api).into_iter().find(|(p, _)| p == gv) {
                Some((_, doc)) => {
                    let mut r = json_resp(StatusCode::OK, &doc);
                    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
                        "\"{}\"",
                        openapi::hash(&doc)
                    )) {
                        r.headers_mut().insert(hyper::header::ETAG, v);
                    }
                    r
                }
                None => text(StatusCode::NOT_FOUND, "404 page not found\n"),
            };
        }
        return match (trimmed, group_doc) {
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
                &api_resources(&kinds_of(&api, "", "v1"), "v1"),
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
                &api_resources(&kinds_of(&api, g, v), &format!("{g}/{v}")),
            ),
            _ => status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            ),
        };
    }
    let routed = if let Some(rest) = path.strip_prefix("/api/v1/") {
        Some(("", "v1", rest))
    } else {
        path.strip_prefix("/apis/").and_then(|r| {
            let mut it = r.splitn(3, '/');
            let (g, v, rest) = (it.next()?, it.next()?, it.next()?);
            Some((g, v, rest))
        })
    };
    let Some((group, version, rest)) = routed else {
        if !user.masters() {
            return forbidden_path(&user, &path);
        }
        if path.starts_with("/apis/") {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            );
        }
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    };
    let known = group.is_empty()
        || (version == "v1" && store::GROUPS.contains(&group))
        || api
            .store
            .custom_groups()
            .iter()
            .any(|(g, vs)| g == group && vs.iter().any(|v| v == version));
    if !known && !user.masters() {
        return forbidden_path(&user, &path);
    }
    let Ok(target) = parse_target(&api, group, version, rest) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        );
    };
    // Go's strconv.ParseBool, as the real server reads it (the Python client sends "True").
    let watch =
        q(&qs, "watch").is_some_and(|w| matches!(w, "1" | "t" | "T" | "true" | "TRUE" | "True"));
    let verb = match (&method, target.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if watch => "watch",
        (&Method::GET, None) => "list",
        (&Method::POST, None) => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => {
            return status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                Some(json!({})),
            );
        }
    };
    if !user.masters() {
        return forbidden(&user, verb, target.kind, target.name, target.ns);
    }
    api.sync_nodes();
    let (headers, body) = {
        let headers = req.headers().clone();
        match crate::http::read_body(req.into_body()).await {
            Ok(b) => (headers, b),
            Err(e) => return bad_request(&e),
        }
    };
    if verb == "watch" {
        return serve_watch(api, &target, &qs);
    }
    serve_resource(&api, verb, &target, &qs, &headers, &body)
}

/// `?watch=1`: JSON lines `{"type": …, "object": …}` over a chunked response. Without a
/// resourceVersion (or "0") the current objects come first as ADDED; with one, the changes
/// after it (410 Expired inside the stream when it is too old). Ends after `timeoutSeconds`.
fn serve_watch(api: Arc<ApiServer>, t: &Target<'_>, qs: &[(String, String)]) -> Resp {
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
    let from = match q(qs, "resourceVersion").filter(|v| !v.is_empty() && *v != "0") {
        Some(v) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return status(
                    400,
                    "BadRequest",
                    &format!("resourceVersion: Invalid value: \"{v}\": must be a number"),
                    None,
                );
            }
        },
        None => None,
    };
    let timeout = q(qs, "timeoutSeconds")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1800);
    let kind = t.kind;
    let ns = t.ns.map(str::to_string);
    let (mut rx, replay, now) = api.store.watch(from.unwrap_or(u64::MAX));
    let matches =
        move |o: &Value| store::labels_match(o, &labels) && store::fields_match(o, &fields);
    let render = {
        let api = api.clone();
        move |o: Value| api.view(kind, o)
    };
    let line = |typ: &str, o: Value| {
        let mut b = serde_json::to_vec(&json!({"type": typ, "object": o})).unwrap_or_default();
        b.push(b'\n');
        Bytes::from(b)
    };
    let mut first: Vec<Bytes> = Vec::new();
    let mut last = now;
    match from {
        None => {
            let (items, _) = api.store.list(kind, ns.as_deref());
            first.extend(
                items
                    .into_iter()
                    .filter(|o| matches(o))
                    .map(|o| line("ADDED", render(o))),
            );
        }
        Some(n) => match replay {
            Some(events) => {
                last = n;
                for e in events {
                    last = e.rv;
                    if e.resource == kind.qualified()
                        && ns.as_deref().is_none_or(|want| want == e.namespace)
                        && matches(&e.object)
                    {
                        first.push(line(e.kind, render(e.object)));
                    }
                }
                last = last.max(n);
            }
            _ => {
                let oldest = now.saturating_sub(1000);
                first.push(line(
                    "ERROR",
                    json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure",
                        "message": format!("too old resource version: {n} ({oldest})"),
                        "reason": "Expired", "code": 410,
                    }),
                ));
                let body = StreamBody::new(tokio_stream::iter(
                    first
                        .into_iter()
                        .map(|b| Ok::<_, Infallible>(Frame::data(b))),
                ));
                return streamed(BodyExt::boxed(body));
            }
        },
    }
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            let ev = tokio::select! {
                _ = &mut deadline => return,
                ev = rx.recv() => ev,
            };
            let e = match ev {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                Err(_) => return,
            };
            if e.rv <= last
                || e.resource != kind.qualified()
                || ns.as_deref().is_some_and(|want| want != e.namespace)
                || !matches(&e.object)
            {
                continue;
            }
            last = e.rv;
            if tx.send(line(e.kind, render(e.object))).await.is_err() {
                return;
            }
        }
    });
    let body = StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(out)
            .map(|b| Ok::<_, Infallible>(Frame::data(b))),
    );
    streamed(BodyExt::boxed(body))
}

fn streamed(body: BoxBody<Bytes, Infallible>) -> Resp {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn decode_body(resource: &str, headers: &hyper::HeaderMap, body: &[u8]) -> Result<Value, Early> {
    let ct = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let ct = ct.split(';').next().unwrap_or_default().trim();
    let v: Result<Value, String> = match ct {
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| e.to_string()),
        "application/yaml" => serde_yaml::from_slice(body).map_err(|e| e.to_string()),
        "application/vnd.kubernetes.protobuf" if resource != "services" && resource != "nodes" => {
            super::proto::decode(resource, body)
        }
        _ => {
            return Err(Box::new(status(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
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

fn strip_list_item(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
    }
    v
}

fn serve_resource(
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
            let mut obj = match decode_body(k.resource, headers, body) {
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
            if q(qs, "dryRun").is_some() {
                return with_warnings(json_resp(StatusCode::CREATED, &obj), &warnings);
            }
            ssa::track_update(None, &mut obj, &updater(qs, headers), &now());
            match store.create(k, ns, obj) {
                Ok(v) => {
                    if crd {
                        tokio::spawn(establish(api.store.clone(), name));
                    }
                    with_warnings(json_resp(StatusCode::CREATED, &render(v)), &warnings)
                }
                Err(e) => store_err(e),
            }
        }
        "update" => {
            let name = t.name.unwrap_or_default();
            let obj = match decode_body(k.resource, headers, body) {
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
            match store.update(k, ns, name, obj) {
                Ok(v) => with_warnings(json_resp(StatusCode::OK, &render(v)), &warnings),
                Err(e) => store_err(e),
            }
        }
        "patch" => patch(api, t, qs, headers, body),
        "delete" => {
            let name = t.name.unwrap_or_default();
            let (policy, legacy_cascade) = match delete_options(qs, body) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            match store.delete_with(k, ns, name, policy) {
                Ok(v) if k.resource == "namespaces" => {
                    tokio::spawn(finish_namespace(api.store.clone(), name.to_string()));
                    json_resp(StatusCode::OK, &v)
                }
                Ok(v) if k.resource == "customresourcedefinitions" => {
                    tokio::spawn(finalize_crd(api.store.clone(), name.to_string()));
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
                Ok(v) => json_resp(
                    StatusCode::OK,
                    &json!({
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": deleted_details(k, name, &v),
                    }),
                ),
                Err(e) => store_err(e),
            }
        }
        "deletecollection" => {
            let (policy, _) = match delete_options(qs, body) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            let (items, _) = store.list(k, t.ns);
            for o in &items {
                if let Some(n) = o.pointer("/metadata/name").and_then(Value::as_str) {
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

/// `DeleteOptions` from the body (JSON, may be empty) and the query: the propagation policy
/// (default Background, every kind served here defaults to it) and whether the legacy
/// `orphanDependents: false` was given. Invalid options → 422 as the real validation words it.
fn delete_options(
    qs: &[(String, String)],
    body: &[u8],
) -> Result<(store::Propagation, bool), Early> {
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
    Ok((p, orphan == Some(false)))
}

/// A custom kind's structural schema: its CRD version's `openAPIV3Schema`.
fn custom_schema(store: &store::Store, k: &Kind) -> Option<Value> {
    if store::kind_in(k.group, k.resource).is_some() {
        return None;
    }
    let crds = store::kind_in("apiextensions.k8s.io", "customresourcedefinitions")?;
    let crd = store.get(crds, "", &k.qualified()).ok()?;
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == k.version)?
        .pointer("/schema/openAPIV3Schema")
        .cloned()
}

/// Prune and default a custom object by its CRD's schema. `fieldValidation` decides what
/// unknown (pruned) fields mean: `Strict` → 400 BadRequest (the decoder's strict error),
/// `Ignore` → nothing, `Warn` (the default) → `Warning` headers. Returns the warnings.
fn structural(
    store: &store::Store,
    k: &Kind,
    qs: &[(String, String)],
    obj: &mut Value,
) -> Result<Vec<String>, Early> {
    let Some(schema) = custom_schema(store, k) else {
        return Ok(Vec::new());
    };
    let pruned = super::structural::prune_and_default(obj, &schema);
    let unknown: Vec<String> = pruned
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    if unknown.is_empty() {
        return Ok(unknown);
    }
    match q(qs, "fieldValidation") {
        Some("Strict") => Err(Box::new(bad_request(&format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", "),
            kind = k.kind,
            v = k.version
        )))),
        Some("Ignore") => Ok(Vec::new()),
        _ => Ok(unknown),
    }
}

/// `Warning: 299 - "<text>"` headers (the text quoted as Go's %q does).
fn with_warnings(mut r: Resp, warnings: &[String]) -> Resp {
    for w in warnings {
        let quoted = serde_json::to_string(w).unwrap_or_default();
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("299 - {quoted}")) {
            r.headers_mut().append(hyper::header::WARNING, v);
        }
    }
    r
}

/// The namespace lifecycle admission's refusal.
fn terminating(k: &Kind, name: &str, ns: &str) -> Resp {
    let why =
        format!("unable to create new content in namespace {ns} because it is being terminated");
    let mut d = details(&k.qualified(), name);
    d["causes"] =
        json!([{"reason": "NamespaceTerminating", "message": why, "field": "metadata.namespace"}]);
    status(
        403,
        "Forbidden",
        &format!("{} \"{name}\" is forbidden: {why}", k.qualified()),
        Some(d),
    )
}

/// The namespace controller: once nothing is left in a Terminating namespace (objects with
/// finalizers hold it), the namespace goes.
async fn finish_namespace(store: Arc<store::Store>, name: String) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if store.finish_namespace(&name) {
            return;
        }
    }
}

/// The CRD finalizer controller: a moment after the DELETE, the custom objects go, then the
/// CRD (objects held by their own finalizers hold it).
/// Once it is gone, the names it held are free: the naming controller takes another look at
/// the group's CRDs that were refused.
async fn finalize_crd(store: Arc<store::Store>, name: String) {
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

/// A custom object's CRD is being deleted: creation is refused (405, as the apiextensions
/// server answers).
fn crd_terminating(store: &store::Store, k: &Kind) -> Option<Resp> {
    if store::kind_in(k.group, k.resource).is_some() {
        return None;
    }
    let crds = store::kind_in("apiextensions.k8s.io", "customresourcedefinitions")?;
    let crd = store.get(crds, "", &k.qualified()).ok()?;
    crd.pointer("/metadata/deletionTimestamp")?;
    Some(status(
        405,
        "MethodNotAllowed",
        "create not allowed while custom resource definition is terminating",
        Some(json!({"group": k.group, "kind": k.resource})),
    ))
}

/// What CRD validation checks here: the name is `<plural>.<group>` (the real message), and
/// the fields the rest of the server reads are there.
fn crd_validate(obj: &Value, name: &str) -> Result<(), Early> {
    let kind = "CustomResourceDefinition.apiextensions.k8s.io";
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (plural, group) = (s("/spec/names/plural"), s("/spec/group"));
    for (field, v) in [
        ("spec.group", group),
        ("spec.names.plural", plural),
        ("spec.names.kind", s("/spec/names/kind")),
    ] {
        if v.is_empty() {
            return Err(Box::new(invalid(kind, name, field, "", "Required value")));
        }
    }
    if name != format!("{plural}.{group}") {
        return Err(Box::new(invalid(
            kind,
            name,
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        )));
    }
    let scope = s("/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        let why = if scope.is_empty() {
            "Required value".to_string()
        } else {
            "Unsupported value: \"".to_string()
                + scope
                + "\": supported values: \"Cluster\", \"Namespaced\""
        };
        if scope.is_empty() {
            return Err(Box::new(invalid(kind, name, "spec.scope", "", &why)));
        }
        return Err(Box::new(status(
            422,
            "Invalid",
            &format!("{kind} \"{name}\" is invalid: spec.scope: {why}"),
            Some(
                json!({"name": name, "group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition",
                "causes": [{"reason": "FieldValueNotSupported", "message": why, "field": "spec.scope"}]}),
            ),
        )));
    }
    let versions = obj.pointer("/spec/versions").and_then(Value::as_array);
    let storage = versions.map_or(0, |vs| vs.iter().filter(|v| v["storage"] == true).count());
    if storage != 1 {
        // The real server prints the Go value of the list here; its contents are elided.
        let why = "Invalid value: []apiextensions.CustomResourceDefinitionVersion{…}: must have exactly one version marked as storage version";
        return Err(Box::new(status(
            422,
            "Invalid",
            &format!("{kind} \"{name}\" is invalid: spec.versions: {why}"),
            Some(
                json!({"name": name, "group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition",
                "causes": [{"reason": "FieldValueInvalid", "message": why, "field": "spec.versions"}]}),
            ),
        )));
    }
    Ok(())
}

/// A CRD's status as created: nothing accepted yet, the storage version stored. The names'
/// defaults (singular: the kind in lower case; listKind: `<kind>List`) are set first.
fn crd_initial_status(obj: &mut Value) -> Value {
    let kind = obj["spec"]["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let names = &mut obj["spec"]["names"];
    if names["singular"].as_str().is_none_or(str::is_empty) {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names["listKind"].as_str().is_none_or(str::is_empty) {
        names["listKind"] = json!(format!("{kind}List"));
    }
    let stored: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    json!({"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": stored})
}

/// The naming and establishing controllers: a moment after creation the names are accepted
/// (unless another CRD of the group holds them) and the CRD is Established.
async fn establish(store: Arc<store::Store>, name: String) {
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
    let now = now();
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

fn patch(
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
                        super::structural::prune_and_default(&mut obj, s);
                    }
                    return match store.create(k, ns, obj) {
                        Ok(v) => {
                            if crd {
                                tokio::spawn(establish(api.store.clone(), name.to_string()));
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
                        super::structural::prune_and_default(&mut obj, s);
                    }
                    return match store.update(k, ns, name, obj) {
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
    match store.update(k, ns, name, result) {
        Ok(v) => with_warnings(json_resp(StatusCode::OK, &api.view(k, v)), &warnings),
        Err(e) => store_err(e),
    }
}

/// Who a non-apply write is recorded for: `fieldManager`, else the User-Agent's first part
/// (as the real server derives it), else "unknown".
fn updater(qs: &[(String, String)], headers: &hyper::HeaderMap) -> String {
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

fn now() -> String {
    store::rfc3339(std::time::SystemTime::now())
}

fn body_rv(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .ok()?;
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The client asked for server-side printing (`kubectl get`): Accept names
/// `as=Table;v=v1;g=meta.k8s.io`.
fn wants_table(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| {
            let params: Vec<&str> = first.split(';').map(str::trim).collect();
            params.contains(&"as=Table")
                && params.contains(&"g=meta.k8s.io")
                && params.contains(&"v=v1")
        })
}

/// `duration.HumanDuration` of Kubernetes (what AGE columns print).
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if d < 730 {
        format!("{d}d")
    } else if d < 2920 {
        match d % 365 {
            0 => format!("{}y", d / 365),
            dd => format!("{}y{dd}d", d / 365),
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> String {
    let Some(ts) = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
    else {
        return "<unknown>".into();
    };
    let Some(t) = parse_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let now = time::OffsetDateTime::now_utc();
    human_duration((now - t).whole_seconds().max(0) as u64)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what the store writes).
fn parse_rfc3339(ts: &str) -> Option<time::OffsetDateTime> {
    let n = |r: std::ops::Range<usize>| ts.get(r).and_then(|s| s.parse::<u32>().ok());
    let month = time::Month::try_from(n(5..7)? as u8).ok()?;
    let date = time::Date::from_calendar_date(n(0..4)? as i32, month, n(8..10)? as u8).ok()?;
    let t = time::Time::from_hms(n(11..13)? as u8, n(14..16)? as u8, n(17..19)? as u8).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

fn col(name: &str, ty: &str, priority: u8) -> Value {
    let mut c =
        json!({"name": name, "type": ty, "format": "", "description": "", "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
        c["description"] = json!(
            "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
        );
    }
    c
}

/// A label selector as `kubectl` prints it (`a=b,c in (d,e)`; `<none>` when empty).
fn selector_text(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.sort();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// A row's cells from an object.
type Cells = dyn Fn(&Value) -> Vec<Value>;

/// A `meta.k8s.io/v1` Table of objects (the real printers' columns for the kinds served).
fn table(k: &Kind, items: &[Value], rv: u64) -> Value {
    let name = |o: &Value| json!(o["metadata"]["name"]);
    let count = |v: &Value| v.as_object().map_or(0, |m| m.len());
    let (columns, cells): (Vec<Value>, Box<Cells>) = match k.resource {
        "nodes" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
                col("Internal-IP", "string", 1),
                col("External-IP", "string", 1),
                col("OS-Image", "string", 1),
                col("Kernel-Version", "string", 1),
                col("Container-Runtime", "string", 1),
            ],
            Box::new(move |o| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                    .and_then(|c| c["status"].as_str())
                    .map_or("Unknown", |s| match s {
                        "True" => "Ready",
                        "False" => "NotReady",
                        _ => "Unknown",
                    });
                let mut roles: Vec<&str> = o["metadata"]["labels"]
                    .as_object()
                    .map(|l| {
                        l.keys()
                            .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                            .collect()
                    })
                    .unwrap_or_default();
                roles.sort();
                let roles = if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                };
                let addr = |t: &str| {
                    o["status"]["addresses"]
                        .as_array()
                        .and_then(|a| a.iter().find(|a| a["type"] == t))
                        .and_then(|a| a["address"].as_str())
                        .unwrap_or("<none>")
                        .to_string()
                };
                let info = &o["status"]["nodeInfo"];
                vec![
                    name(o),
                    json!(ready),
                    json!(roles),
                    json!(age(o)),
                    info["kubeletVersion"].clone(),
                    json!(addr("InternalIP")),
                    json!(addr("ExternalIP")),
                    info["osImage"].clone(),
                    info["kernelVersion"].clone(),
                    info["containerRuntimeVersion"].clone(),
                ]
            }),
        ),
        "namespaces" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                let phase = o["status"]["phase"].as_str().unwrap_or("Active");
                vec![name(o), json!(phase), json!(age(o))]
            }),
        ),
        "configmaps" => (
            vec![
                col("Name", "string", 0),
                col("Data", "integer", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(count(&o["data"]) + count(&o["binaryData"])),
                    json!(age(o)),
                ]
            }),
        ),
        "secrets" => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Data", "integer", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(o["type"].as_str().unwrap_or("Opaque")),
                    json!(count(&o["data"])),
                    json!(age(o)),
                ]
            }),
        ),
        "deployments" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Up-to-date", "string", 0),
                col("Available", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                let st = &o["status"];
                let n = |f: &str| st[f].as_u64().unwrap_or(0);
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        n("readyReplicas"),
                        o["spec"]["replicas"].as_u64().unwrap_or(1)
                    )),
                    json!(n("updatedReplicas")),
                    json!(n("availableReplicas")),
                    json!(age(o)),
                ]
            }),
        ),
        "daemonsets" => (
            vec![
                col("Name", "string", 0),
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                col("Node Selector", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                let st = &o["status"];
                let n = |f: &str| json!(st[f].as_u64().unwrap_or(0));
                let sel = o["spec"]["template"]["spec"]["nodeSelector"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into());
                vec![
                    name(o),
                    n("desiredNumberScheduled"),
                    n("currentNumberScheduled"),
                    n("numberReady"),
                    n("updatedNumberScheduled"),
                    n("numberAvailable"),
                    json!(sel),
                    json!(age(o)),
                ]
            }),
        ),
        "statefulsets" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        o["status"]["readyReplicas"].as_u64().unwrap_or(0),
                        o["spec"]["replicas"].as_u64().unwrap_or(1)
                    )),
                    json!(age(o)),
                ]
            }),
        ),
        "networkpolicies" => (
            vec![
                col("Name", "string", 0),
                col("Pod-Selector", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(selector_text(&o["spec"]["podSelector"])),
                    json!(age(o)),
                ]
            }),
        ),
        "serviceaccounts" => (
            vec![
                col("Name", "string", 0),
                col("Secrets", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                let n = o["secrets"].as_array().map_or(0, Vec::len);
                vec![name(o), json!(n.to_string()), json!(age(o))]
            }),
        ),
        _ => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            Box::new(move |o| vec![name(o), json!(age(o))]),
        ),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({
                "cells": cells(o),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
        assert!(parse_rfc3339("2024-02-29T23:59:58Z").is_some());
        assert!(parse_rfc3339("garbage").is_none());
    }

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }
}
