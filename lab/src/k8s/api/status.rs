//! Responses: `metav1.Status` failures with the real reasons and messages, JSON and text
//! bodies, `Warning` headers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::Resp;
use crate::k8s::store::{Kind, StoreError};

pub(super) fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Resp {
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

pub(super) fn json_resp(status: StatusCode, v: &Value) -> Resp {
    respond(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

pub(super) fn text(status: StatusCode, body: &str) -> Resp {
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

pub(super) fn unauthorized() -> Resp {
    status(401, "Unauthorized", "Unauthorized", None)
}

/// Status details of a (qualified) resource: `{"name", "group"?, "kind": plural}`.
pub(super) fn details(qualified: &str, name: &str) -> Value {
    match qualified.split_once('.') {
        Some((resource, group)) => json!({"name": name, "group": group, "kind": resource}),
        None => json!({"name": name, "kind": qualified}),
    }
}

pub(super) fn deleted_details(k: &Kind, name: &str, obj: &Value) -> Value {
    let mut d = details(&k.qualified(), name);
    d["uid"] = obj["metadata"]["uid"].clone();
    d
}

pub(super) fn not_found(resource: &str, name: &str) -> Resp {
    status(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(details(resource, name)),
    )
}

pub(super) fn store_err(e: StoreError) -> Resp {
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

pub(super) fn bad_request(msg: &str) -> Resp {
    status(400, "BadRequest", msg, None)
}

pub(super) fn invalid(kind: &str, name: &str, field: &str, value: &str, why: &str) -> Resp {
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

/// `Warning: 299 - "<text>"` headers (the text quoted as Go's %q does).
pub(super) fn with_warnings(mut r: Resp, warnings: &[String]) -> Resp {
    for w in warnings {
        let quoted = serde_json::to_string(w).unwrap_or_default();
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("299 - {quoted}")) {
            r.headers_mut().append(hyper::header::WARNING, v);
        }
    }
    r
}

/// The namespace lifecycle admission's refusal.
pub(super) fn terminating(k: &Kind, name: &str, ns: &str) -> Resp {
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
