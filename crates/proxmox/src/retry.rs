//! Jittered exponential backoff. Jitter matters here: twenty clones of one template that hit
//! the same lock timeout must not all come back at the same instant.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::Error;

/// How often and how long to retry: pauses from `first` doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Give up after this long (the last error is returned).
    pub budget: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
            budget: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// The pause before the next attempt, or `None` when it would overrun the budget.
    pub fn next_pause(&self, started: Instant, attempt: u32) -> Option<Duration> {
        let pause = self.delay(attempt);
        (started.elapsed() + pause <= self.budget).then_some(pause)
    }

    /// The pause before attempt `n + 1`: "full jitter" in [first/2, min(max, first·2ⁿ)].
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .first
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let lo = (self.first / 2).min(cap);
        let span = cap.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(if span == 0 {
            0
        } else {
            rand::rng().random_range(0..=span)
        })
    }
}

/// An error that says whether trying again may help.
pub trait Retryable: std::fmt::Display {
    /// Whether the same call may succeed if tried again.
    fn is_retryable(&self) -> bool;
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }
}

/// Run `op` until it succeeds, fails with an error that is not [`Retryable::is_retryable`],
/// or the budget is spent.
pub async fn retry<T, E, F, Fut>(policy: Backoff, what: &str, mut op: F) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() => {
                let Some(pause) = policy.next_pause(started, attempt) else {
                    return Err(e);
                };
                tracing::debug!(what, attempt, error = %e, pause_ms = pause.as_millis() as u64, "retrying");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
            budget: Duration::from_secs(10),
        };
        for n in 0..40 {
            let d = b.delay(n);
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_secs(1),
                "{n}: {d:?}"
            );
        }
        let spread: std::collections::BTreeSet<_> = (0..20).map(|_| b.delay(5)).collect();
        assert!(spread.len() > 1, "jittered");
    }
}
