//! One `GET /cluster/resources?type=vm` shared by every reader for a few seconds: a refresh of
//! N VMs then costs one list plus one config GET per VM instead of N lookups of where each VM is.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::error::Error;

/// One value fetched at most once per `ttl`, however many readers ask at the same time.
#[derive(Debug)]
pub struct TtlCache<T> {
    ttl: Duration,
    // An async mutex held across the fetch: concurrent readers queue behind the one fetching
    // and then all get its answer (single flight).
    slot: Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> TtlCache<T> {
    /// An empty cache whose values serve readers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
        }
    }

    /// The cached value if fresh, else the result of `fetch` (which is then cached).
    pub async fn get_or_fetch<F, Fut>(&self, fetch: F) -> Result<Arc<T>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, v)) = slot.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(v.clone());
        }
        let v = Arc::new(fetch().await?);
        *slot = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    /// Forget the value, after a change that it would no longer reflect (create, delete, migrate).
    pub async fn invalidate(&self) {
        *self.slot.lock().await = None;
    }
}
