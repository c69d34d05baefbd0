//! The PVE request pipeline: faults → auth → schema lookup → validation → permissions →
//! handler → `{"data": …}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::Pve;
use super::auth::{self, Principal};
use super::error::ApiError;
use super::handlers::{self, Call, Reply};
use super::validate::{self, Params};
use crate::faults::RequestFault;
use crate::http::{self, DropConnection, Req, Resp};

const PREFIX: &str = "/api2/json";

/// Serve one HTTPS request.
pub async fn handle(pve: Arc<Pve>, req: Req) -> Result<Resp, DropConnection> {
    let started = Instant::now();
    let method = req.method().clone();
    // pveproxy percent-decodes the path before routing (`uri_unescape` in pve-http-server), so
    // `/tasks/UPID%3Apve1%3A…/status` reaches the task.
    let path = percent_encoding::percent_decode_str(req.uri().path())
        .decode_utf8_lossy()
        .into_owned();
    let rel = path.strip_prefix(PREFIX).unwrap_or(&path).to_string();
    pve.count(Some(format!("{method} {rel}")), None);

    let latency = pve.faults.latency_ms();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match pve.faults.roll_request() {
        RequestFault::Drop => return Err(DropConnection),
        RequestFault::Error5xx => {
            return Ok(ApiError::Injected("lab fault: injected server error".into()).to_response());
        }
        RequestFault::None => {}
    }
    let result = process(&pve, req, &method, &path, &rel).await;
    let resp = match result {
        Ok(reply) => {
            let mut body = json!({ "data": reply.data });
            if let Some(t) = reply.total {
                body["total"] = json!(t);
            }
            http::json(StatusCode::OK, None, &body)
        }
        Err(e) => {
            if e.status() == StatusCode::UNAUTHORIZED {
                let delay = Duration::from_millis(pve.timing.unauthorized_delay_ms);
                if let Some(rest) = delay.checked_sub(started.elapsed()) {
                    tokio::time::sleep(rest).await;
                }
            }
            e.to_response()
        }
    };
    Ok(resp)
}

async fn process(
    pve: &Arc<Pve>,
    req: Req,
    method: &Method,
    path: &str,
    rel: &str,
) -> Result<Reply, ApiError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = header("authorization");
    let cookie = header("cookie");
    let csrf = header("csrfpreventiontoken");
    let content_type = header("content-type").unwrap_or_default();
    let query = req.uri().query().map(str::to_string);
    let body = http::read_body(req.into_body())
        .await
        .map_err(ApiError::internal)?;

    if !path.starts_with(&format!("{PREFIX}/")) && path != PREFIX {
        return Err(ApiError::NotImplemented {
            method: method.to_string(),
            path: path.to_string(),
        });
    }
    let params_in = parse_params(query.as_deref(), &body, &content_type)?;

    let is_login = *method == Method::POST && rel == "/access/ticket";
    let who = if is_login {
        Principal {
            authid: String::new(),
            privileges: Default::default(),
        }
    } else {
        let write = matches!(*method, Method::POST | Method::PUT | Method::DELETE);
        pve.auth.authenticate(
            authorization.as_deref(),
            cookie.as_deref(),
            csrf.as_deref(),
            write,
        )?
    };

    let found =
        pve.schema
            .lookup(method.as_str(), rel)
            .ok_or_else(|| ApiError::NotImplemented {
                method: method.to_string(),
                path: rel.to_string(),
            })?;
    pve.count(None, Some(format!("{method} {}", found.def.path)));

    let mut params: Params = Params::new();
    let mut dup = validate::ParamErrors::new();
    for (k, v) in &found.uri_params {
        params.insert(k.clone(), v.clone());
    }
    for (k, v) in params_in {
        if found.uri_params.iter().any(|(u, _)| *u == k) {
            dup.insert(k, "duplicate parameter (not allowed)".into());
        } else {
            params.insert(k, v);
        }
    }
    if !dup.is_empty() {
        return Err(ApiError::Params(dup));
    }
    validate::validate(&found.def, &mut params).map_err(ApiError::Params)?;
    if !is_login {
        auth::check_permissions(&found.def.permissions, &who, &params)?;
        if let Some(node) = params.get("node")
            && !pve.state().has_node(node)
        {
            return Err(ApiError::internal(format!(
                "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            )));
        }
    }
    let call = Call {
        method: method.to_string(),
        route: found.def.path.clone(),
        params,
        who,
    };
    handlers::dispatch(pve, call).await
}

/// Merge query-string and body parameters (form-encoded or JSON).
fn parse_params(query: Option<&str>, body: &[u8], content_type: &str) -> Result<Params, ApiError> {
    let mut out = Params::new();
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    if body.is_empty() {
        return Ok(out);
    }
    if content_type.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::internal(format!("unable to parse JSON body: {e}")))?;
        let Value::Object(map) = v else {
            return Err(ApiError::internal("JSON body is not an object"));
        };
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s,
                Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(k, s);
        }
    } else {
        for (k, v) in form_urlencoded::parse(body) {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    Ok(out)
}
