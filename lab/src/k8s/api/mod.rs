//! The kube-apiserver HTTP surface: authentication (x509 against the Kubernetes CA), the
//! authorization a fresh cluster has (system:masters may do anything; everyone may read
//! version and health; authenticated users may read discovery), health, version, discovery
//! and core/v1 CRUD with the real Status error bodies.
//!
//! Health, version and discovery are in `discovery`; create, get, list, update and delete
//! in `crud`; merge, JSON and apply patches in `patch`; watches in `watch`; server-side
//! printing in `table`; the apiextensions server's checks in `crds`; Status bodies and other
//! responses in `status`.

mod crds;
mod crud;
mod discovery;
mod patch;
mod status;
mod table;
mod watch;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::{Method, Response, StatusCode};
use serde_json::json;

pub use patch::merge_patch;
pub use status::status;
pub use table::human_duration;

use super::ApiServer;
use super::store::{self, Kind};
use super::tls::Identity;
use crate::http::Req;
use crud::serve_resource;
use discovery::{CHECKS, health};
use status::{bad_request, details, json_resp, text, unauthorized};
use watch::serve_watch;

pub type Resp = Response<BoxBody<Bytes, Infallible>>;

/// An early answer (boxed: a response is large).
type Early = Box<Resp>;

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

/// `dryRun` (`All`, the one value the real server takes) was asked: every check runs and the
/// answer is the would-be result, but nothing is stored and no watch hears of it.
fn dry_run(qs: &[(String, String)]) -> bool {
    qs.iter().any(|(a, v)| a == "dryRun" && !v.is_empty())
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
    if let Some(r) = discovery::serve(&api, &user, &path) {
        return r;
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
