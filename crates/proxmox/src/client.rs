//! Transport: one HTTPS client per provider process, requests in PVE's wire form, answers
//! decoded (errors via `Error::from_answer`), retries for transient failures.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::Credentials;
use crate::cache::TtlCache;
use crate::error::Error;
use crate::limiter::Limiter;
use crate::retry::Backoff;
use crate::settings::Settings;
use crate::tls;
use crate::types::VmResource;

/// Knobs with sensible defaults; tests shorten them.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: Backoff,
    /// How long one `/cluster/resources?type=vm` answer serves every reader.
    pub resources_ttl: Duration,
    /// The `User-Agent` of every request (the provider names itself).
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: Backoff::default(),
            resources_ttl: Duration::from_secs(5),
            user_agent: concat!("infraflux-proxmox/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Request parameters, in PVE's wire form (strings; booleans as `0`/`1`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add `k=v`.
    pub fn set(mut self, k: &str, v: impl ToString) -> Self {
        self.0.push((k.to_owned(), v.to_string()));
        self
    }
    /// Add `k=v` when there is a `v`.
    pub fn opt(self, k: &str, v: Option<impl ToString>) -> Self {
        match v {
            Some(v) => self.set(k, v),
            None => self,
        }
    }
    /// Add a boolean the way PVE takes it (`0`/`1`).
    pub fn flag(self, k: &str, b: bool) -> Self {
        self.set(k, crate::normalize::bool01(b))
    }
    /// The parameter names, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Repeats of a failed connection before it is reported as unreachable.
const MAX_TRANSPORT_RETRIES: u32 = 3;

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: String,
    /// `{endpoint}/api2/json`
    pub(crate) base: String,
    pub(crate) creds: Credentials,
    pub(crate) opts: ClientOptions,
    pub(crate) limiter: Limiter,
    pub(crate) vm_cache: TtlCache<Vec<VmResource>>,
    pub(crate) vm_id_range: (u32, u32),
    /// VM ids handed out by this process and not yet created (see `api::with_new_vmid`).
    pub(crate) reserved_ids: Mutex<HashSet<u32>>,
}

/// The Proxmox VE API client. Cheap to clone; clones share the connection pool, the ticket,
/// the limiter and the resources cache.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

// Hand-written: never print credentials.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint)
            .field("who", &self.inner.creds.who())
            .finish()
    }
}

impl Client {
    /// A client with the default [`ClientOptions`]. Connects lazily: nothing is sent yet.
    pub fn new(settings: &Settings) -> Result<Client, Error> {
        Self::with_options(settings, ClientOptions::default())
    }

    /// A client with explicit timeouts, retries and cache lifetime.
    pub fn with_options(settings: &Settings, opts: ClientOptions) -> Result<Client, Error> {
        let endpoint = settings.endpoint.trim_end_matches('/').to_owned();
        if !endpoint.starts_with("https://") {
            return Err(Error::Config(format!(
                "endpoint {endpoint:?} must start with https://"
            )));
        }
        let tls = tls::client_config(&settings.tls)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .user_agent(opts.user_agent.as_str())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let creds = Credentials::new(&settings.auth)?;
        let (lo, hi) = settings.vm_id_range;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: format!("{endpoint}/api2/json"),
                endpoint,
                creds,
                limiter: Limiter::new(settings.max_parallel_tasks_per_node),
                vm_cache: TtlCache::new(opts.resources_ttl),
                vm_id_range: (lo.max(100), hi.max(lo.max(100))),
                reserved_ids: Mutex::new(HashSet::new()),
                opts,
            }),
        })
    }

    /// `https://host:port` as configured, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The user or token the client acts as (`root@pam!infraflux`).
    pub fn who(&self) -> &str {
        self.inner.creds.who()
    }

    /// The per-node/per-storage task slots every clone and create of this client shares.
    pub fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// `GET {path}` (relative to `/api2/json`), retried on transient failures.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, params: Params) -> Result<T, Error> {
        self.call(Method::GET, path, params).await
    }
    /// `POST {path}`; repeated only where nothing can have reached PVE.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, params: Params) -> Result<T, Error> {
        self.call(Method::POST, path, params).await
    }
    /// `PUT {path}`; repeated only where nothing can have reached PVE.
    pub async fn put<T: DeserializeOwned>(&self, path: &str, params: Params) -> Result<T, Error> {
        self.call(Method::PUT, path, params).await
    }
    /// `DELETE {path}`; repeated only where nothing can have reached PVE.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        params: Params,
    ) -> Result<T, Error> {
        self.call(Method::DELETE, path, params).await
    }

    /// One API call with retries for transient failures, `data` decoded as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: Params,
    ) -> Result<T, Error> {
        let action = format!("{method} {path}");
        let started = Instant::now();
        let policy = self.inner.opts.retry;
        let (mut attempt, mut unreachable) = (0u32, 0u32);
        let data = loop {
            match self.call_once(&method, path, &params, &action).await {
                Ok(v) => break v,
                Err((e, retry)) if retry => {
                    // A blip is worth a few tries; a host that is down should be reported
                    // quickly, not after the whole lock-retry budget.
                    if matches!(e, Error::Unreachable { .. }) {
                        unreachable += 1;
                        if unreachable > MAX_TRANSPORT_RETRIES {
                            return Err(e);
                        }
                    }
                    let Some(pause) = policy.next_pause(started, attempt) else {
                        return Err(e);
                    };
                    tracing::debug!(%action, attempt, error = %e, "retrying Proxmox VE request");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        };
        serde_json::from_value(data).map_err(|e| Error::Protocol {
            action,
            reason: e.to_string(),
        })
    }

    /// One attempt. The flag says whether it is safe and useful to try again.
    async fn call_once(
        &self,
        method: &Method,
        path: &str,
        params: &Params,
        action: &str,
    ) -> Result<Value, (Error, bool)> {
        let mut relogged = false;
        loop {
            let rb = self
                .inner
                .http
                .request(method.clone(), format!("{}{path}", self.inner.base));
            let rb = if matches!(*method, Method::GET | Method::DELETE) {
                rb.query(&params.0)
            } else {
                rb.form(&params.0)
            };
            let rb = self
                .authorize(rb, *method != Method::GET)
                .await
                .map_err(|e| {
                    let r = e.is_retryable();
                    (e, r)
                })?;
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    // Nothing reached PVE when connecting failed; otherwise only reads are safe to repeat.
                    let retry = e.is_connect() || *method == Method::GET;
                    return Err((
                        self.transport_error(&e),
                        retry && tls::tls_failure(&e).is_none(),
                    ));
                }
            };
            let status = resp.status();
            tracing::debug!(%action, status = status.as_u16(), "Proxmox VE request");
            if status == StatusCode::UNAUTHORIZED && !relogged && self.inner.creds.is_ticket() {
                // An expired or revoked ticket: log in again once.
                self.drop_session().await;
                relogged = true;
                continue;
            }
            return self.decode(resp, action).await;
        }
    }

    pub(crate) async fn decode(
        &self,
        resp: reqwest::Response,
        action: &str,
    ) -> Result<Value, (Error, bool)> {
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_owned))
            .unwrap_or_default();
        let body: Value = match resp.bytes().await {
            Ok(b) if b.is_empty() => Value::Null,
            Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(e) => {
                let retry = action.starts_with("GET ");
                return Err((self.transport_error(&e), retry));
            }
        };
        if status.is_success() {
            return match body {
                Value::Object(mut m) => Ok(m.remove("data").unwrap_or(Value::Null)),
                _ => Err((
                    Error::Protocol {
                        action: action.to_owned(),
                        reason: "the body is not a JSON object".into(),
                    },
                    false,
                )),
            };
        }
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(|m| m.trim_end().to_owned())
            .unwrap_or(reason);
        let e = Error::from_answer(
            status.as_u16(),
            action,
            message,
            &body,
            self.who(),
            &self.inner.endpoint,
        );
        let retry = e.is_retryable();
        Err((e, retry))
    }

    pub(crate) fn transport_error(&self, e: &reqwest::Error) -> Error {
        if let Some(f) = tls::tls_failure(e) {
            return Error::Tls {
                endpoint: self.inner.endpoint.clone(),
                reason: f.reason,
                pinned: f.pinned,
            };
        }
        let address = self
            .inner
            .endpoint
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (timeout, reason) = if e.is_connect() {
            (
                self.inner.opts.connect_timeout,
                format!("connection failed: {}", root_cause(e)),
            )
        } else if e.is_timeout() {
            (
                self.inner.opts.request_timeout,
                "no answer in time".to_owned(),
            )
        } else {
            (
                self.inner.opts.request_timeout,
                format!("the connection broke before an answer: {}", root_cause(e)),
            )
        };
        Error::Unreachable {
            address,
            timeout,
            reason,
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// Percent-encode one path segment (node names, storage ids and UPIDs are safe, but a
/// user-supplied value must never change the path).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("pve1"), "pve1");
        let upid = "UPID:pve1:1:2:3:qmstart:100:root@pam!t:";
        assert_eq!(seg(upid), upid);
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
    }
}
