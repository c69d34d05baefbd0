//! Transport: one HTTPS client per provider process, requests in PVE's wire form, answers
//! decoded (errors via `Error::from_answer`), retries for transient failures.

use std::collections::{HashMap, HashSet};
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
    /// How long a [`Client::get_cached`] answer (nodes, storages, pools, bridges: what plan
    /// checks read) serves every reader; a plan's provider process lives about that long.
    pub reads_ttl: Duration,
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
            reads_ttl: Duration::from_secs(60),
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

/// Whether a request may be sent again when its connection broke after it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads, and writes whose repetition changes nothing (a resize to an absolute size).
    Safe,
    /// Writes that may have run: a lost answer is [`Error::AnswerLost`], for the caller to
    /// find the task or the result instead of sending it again.
    Unsafe,
}

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
    /// UPIDs of the tasks this process started: a task found in PVE's list that is not here
    /// was started by someone else (another process, or a request whose answer was lost).
    pub(crate) own_tasks: Mutex<HashSet<String>>,
    /// VM ids this process creates or adopted: never adopted a second time.
    pub(crate) claimed: Mutex<HashSet<u32>>,
    /// Answers of [`Client::get_cached`], per path and query.
    pub(crate) reads: Mutex<HashMap<String, Arc<TtlCache<Value>>>>,
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
                own_tasks: Mutex::new(HashSet::new()),
                claimed: Mutex::new(HashSet::new()),
                reads: Mutex::new(HashMap::new()),
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

    /// `GET {path}` answered from a cache shared by every caller for
    /// [`ClientOptions::reads_ttl`] (one request however many ask at once). For data that
    /// rarely changes and is read many times in one plan: nodes, storages, pools, bridges.
    pub async fn get_cached<T: DeserializeOwned>(
        &self,
        path: &str,
        params: Params,
    ) -> Result<T, Error> {
        let key = format!("{path}?{:?}", params.0);
        let cache = {
            let mut m = self.inner.reads.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(key)
                .or_insert_with(|| Arc::new(TtlCache::new(self.inner.opts.reads_ttl)))
                .clone()
        };
        let v = cache
            .get_or_fetch(|| self.get::<Value>(path, params))
            .await?;
        serde_json::from_value((*v).clone()).map_err(|e| Error::Protocol {
            action: format!("GET {path}"),
            reason: e.to_string(),
        })
    }

    /// One API call with retries for transient failures, `data` decoded as `T`. Reads are
    /// repeated when their connection breaks; writes only when nothing was sent.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: Params,
    ) -> Result<T, Error> {
        let repeat = if method == Method::GET {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        self.call_with(method, path, params, repeat).await
    }

    /// [`Client::call`] saying whether the request is safe to send again after its answer was
    /// lost.
    pub async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: Params,
        repeat: Repeat,
    ) -> Result<T, Error> {
        let action = format!("{method} {path}");
        let started = Instant::now();
        let policy = self.inner.opts.retry;
        let (mut attempt, mut unreachable) = (0u32, 0u32);
        let mut checked_node = false;
        let data = loop {
            match self
                .call_once(&method, path, &params, &action, repeat)
                .await
            {
                Ok(v) => break v,
                Err((e, retry)) if retry => {
                    // A blip is worth a few tries; a host that is down should be reported
                    // quickly, not after the whole lock-retry budget.
                    if let Error::Unreachable { .. } = e {
                        unreachable += 1;
                        if unreachable > MAX_TRANSPORT_RETRIES {
                            return Err(with_attempts(e, attempt + 1));
                        }
                    }
                    // pveproxy could not forward the call to its node: an offline node stays
                    // offline, so say so now instead of retrying for minutes.
                    if e.is_node_unreachable() && !checked_node {
                        checked_node = true;
                        if let Some(offline) = self.offline_node_of(path, &action, &e).await {
                            return Err(offline);
                        }
                    }
                    let Some(pause) = policy.next_pause(started, attempt) else {
                        return Err(with_attempts(e, attempt + 1));
                    };
                    tracing::debug!(%action, attempt, error = %e, "retrying Proxmox VE request");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err((e, _)) => return Err(with_attempts(e, attempt + 1)),
            }
        };
        serde_json::from_value(data).map_err(|e| Error::Protocol {
            action,
            reason: e.to_string(),
        })
    }

    /// When `path` is about a node (`/nodes/{node}/…`) that `/nodes` reports offline: the
    /// error that says so.
    async fn offline_node_of(&self, path: &str, action: &str, e: &Error) -> Option<Error> {
        let node = path.strip_prefix("/nodes/")?.split('/').next()?;
        if node.is_empty() || path == "/nodes" {
            return None;
        }
        let nodes: Vec<crate::types::NodeInfo> =
            Box::pin(self.get("/nodes", Params::new())).await.ok()?;
        let info = nodes.iter().find(|n| seg(&n.node) == node)?;
        (info.status == "offline").then(|| Error::NodeOffline {
            node: info.node.clone(),
            action: action.to_owned(),
            message: match e {
                Error::Api { message, .. } => message.clone(),
                other => other.to_string(),
            },
        })
    }

    /// One attempt. The flag says whether it is safe and useful to try again.
    async fn call_once(
        &self,
        method: &Method,
        path: &str,
        params: &Params,
        action: &str,
        repeat: Repeat,
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
                    // Nothing reached PVE when connecting failed; otherwise only what is safe
                    // to repeat is repeated.
                    let err = self.transport_error(&e, action, repeat);
                    let retry = matches!(err, Error::Unreachable { .. });
                    return Err((err, retry));
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
            return self.decode(resp, action, repeat).await;
        }
    }

    pub(crate) async fn decode(
        &self,
        resp: reqwest::Response,
        action: &str,
        repeat: Repeat,
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
                let err = self.transport_error(&e, action, repeat);
                let retry = matches!(err, Error::Unreachable { .. });
                return Err((err, retry));
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

    /// A failed connection as an error: [`Error::Unreachable`] when nothing was sent or the
    /// request may be repeated, else [`Error::AnswerLost`].
    pub(crate) fn transport_error(
        &self,
        e: &reqwest::Error,
        action: &str,
        repeat: Repeat,
    ) -> Error {
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
        let reason = if e.is_connect() {
            format!("connecting failed: {}", root_cause(e))
        } else if e.is_timeout() {
            format!(
                "no answer within {}s",
                self.inner.opts.request_timeout.as_secs()
            )
        } else {
            format!("the connection broke before an answer: {}", root_cause(e))
        };
        if e.is_connect() || repeat == Repeat::Safe {
            Error::Unreachable {
                address,
                reason,
                attempts: 1,
            }
        } else {
            Error::AnswerLost {
                action: action.to_owned(),
                address,
                reason,
            }
        }
    }
}

/// `e` with how often the call was tried, where the error says it.
fn with_attempts(e: Error, n: u32) -> Error {
    match e {
        Error::Unreachable {
            address, reason, ..
        } => Error::Unreachable {
            address,
            reason,
            attempts: n,
        },
        other => other,
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
