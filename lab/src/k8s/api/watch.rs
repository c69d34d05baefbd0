//! Watches: JSON lines of `{"type", "object"}` over a chunked response.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio_stream::StreamExt;

use super::status::{bad_request, status};
use super::{Resp, Target, q};
use crate::k8s::ApiServer;
use crate::k8s::store;

/// `?watch=1`: JSON lines `{"type": …, "object": …}` over a chunked response. Without a
/// resourceVersion (or "0") the current objects come first as ADDED; with one, the changes
/// after it (410 Expired inside the stream when it is too old). Ends after `timeoutSeconds`.
pub(super) fn serve_watch(api: Arc<ApiServer>, t: &Target<'_>, qs: &[(String, String)]) -> Resp {
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

pub(super) fn streamed(body: BoxBody<Bytes, Infallible>) -> Resp {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
