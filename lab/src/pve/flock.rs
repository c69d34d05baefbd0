//! A simulated `flock(2)`: shared and exclusive holders, waiting with a timeout. Unlike a fair
//! read-write lock, a waiting exclusive request does not hold back new shared holders.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    shared: usize,
    exclusive: bool,
}

/// One lock file.
#[derive(Debug, Default)]
pub struct Flock {
    state: Mutex<State>,
    released: Notify,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct FlockGuard {
    lock: Arc<Flock>,
    shared: bool,
}

impl Flock {
    fn try_take(&self, shared: bool) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.exclusive || (!shared && s.shared > 0) {
            return false;
        }
        if shared {
            s.shared += 1;
        } else {
            s.exclusive = true;
        }
        true
    }

    /// Take the lock, waiting at most `wait`; `None` on timeout.
    pub async fn acquire(self: &Arc<Self>, shared: bool, wait: Duration) -> Option<FlockGuard> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.try_take(shared) {
                return Some(FlockGuard {
                    lock: self.clone(),
                    shared,
                });
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for FlockGuard {
    fn drop(&mut self) {
        {
            let mut s = self.lock.state.lock().unwrap_or_else(|e| e.into_inner());
            if self.shared {
                s.shared = s.shared.saturating_sub(1);
            } else {
                s.exclusive = false;
            }
        }
        self.lock.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_exclusive_and_timeouts() {
        let l = Arc::new(Flock::default());
        let ms = Duration::from_millis;
        let a = l.acquire(true, ms(10)).await.unwrap();
        let b = l.acquire(true, ms(10)).await.unwrap();
        assert!(l.acquire(false, ms(20)).await.is_none());
        drop(a);
        drop(b);
        let x = l.acquire(false, ms(10)).await.unwrap();
        assert!(l.acquire(true, ms(20)).await.is_none());
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire(true, ms(500)).await.is_some() });
        tokio::time::sleep(ms(20)).await;
        drop(x);
        assert!(waiter.await.unwrap());
    }
}
