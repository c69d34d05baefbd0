//! Caps concurrent heavy tasks (clone, create, migrate) per node and per storage inside one
//! provider process. PVE itself queues nothing: too many parallel clones of one template end
//! in lock timeouts and saturated storage, so we queue here instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Counting semaphores keyed by node and by storage, created on first use.
#[derive(Debug)]
pub struct Limiter {
    per_key: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Held while the task runs; dropping it frees the slots.
#[derive(Debug)]
pub struct Permit {
    _node: Option<OwnedSemaphorePermit>,
    _storage: Option<OwnedSemaphorePermit>,
}

impl Limiter {
    /// At most `per_key` (at least 1) holders per node and per storage.
    pub fn new(per_key: usize) -> Self {
        Self {
            per_key: per_key.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn semaphore(&self, key: String) -> Arc<Semaphore> {
        // A poisoned map is still a valid map: keep going rather than fail every later call.
        let mut g = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        g.entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_key)))
            .clone()
    }

    /// Wait for a slot on `node` and, if given, on `storage`. Always node first, then storage,
    /// so two waiters can never hold one each and wait for the other.
    pub async fn acquire(&self, node: &str, storage: Option<&str>) -> Permit {
        // acquire fails only on a closed semaphore, and these are never closed.
        let node_permit = self
            .semaphore(format!("node/{node}"))
            .acquire_owned()
            .await
            .ok();
        let storage_permit = match storage {
            Some(s) => self
                .semaphore(format!("storage/{s}"))
                .acquire_owned()
                .await
                .ok(),
            None => None,
        };
        Permit {
            _node: node_permit,
            _storage: storage_permit,
        }
    }

    /// How many tasks may run per node (and per storage).
    pub fn per_key(&self) -> usize {
        self.per_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn caps_per_node_and_per_storage() {
        let l = Arc::new(Limiter::new(2));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for i in 0..8 {
            let (l, now, peak) = (l.clone(), now.clone(), peak.clone());
            // Different nodes, one storage: the storage cap is what binds.
            hs.push(tokio::spawn(async move {
                let _p = l.acquire(&format!("pve{}", i % 4), Some("ceph")).await;
                let c = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(c, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for h in hs {
            h.await.expect("task");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
