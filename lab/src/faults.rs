//! Fault injection: settings switchable at run time, decided by a seeded RNG so that the same
//! seed and the same request sequence give the same run.

use std::sync::Mutex;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The fault settings, as shown by `GET /faults` on the control endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Added latency for every Proxmox API request, in milliseconds.
    pub latency_ms: u64,
    /// Probability (0..=1) that a Proxmox API request answers 500 instead of being served.
    pub error_rate_5xx: f64,
    /// Probability (0..=1) that a Proxmox API connection is closed without an answer.
    pub drop_connection_rate: f64,
    /// How many upcoming config-lock acquisitions fail with "got timeout".
    pub lock_timeouts: u32,
    /// The next task whose type matches (e.g. `qmclone`, `qmstart`) fails.
    pub fail_next_task: Option<String>,
    /// Extra duration added to every task, in milliseconds.
    pub slow_tasks_ms: u64,
    /// How many upcoming Talos `Kubeconfig` streams break off midway (the connection drops
    /// after part of the archive was sent).
    #[serde(default)]
    pub drop_kubeconfig_stream: u32,
    /// Extra time every Talos install takes, in milliseconds (a slow disk or image pull).
    #[serde(default)]
    pub slow_talos_install_ms: u64,
    /// How many upcoming Talos `Bootstrap` calls answer FailedPrecondition "bootstrap is not
    /// available yet" (etcd not waiting for bootstrap yet).
    #[serde(default)]
    pub bootstrap_not_ready: u32,
}

/// A partial update of [`Faults`] (`POST /faults` body, `--faults` spec).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    pub latency_ms: Option<u64>,
    pub error_rate_5xx: Option<f64>,
    pub drop_connection_rate: Option<f64>,
    pub lock_timeouts: Option<u32>,
    /// `null` or `""` clears it.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub fail_next_task: Option<Option<String>>,
    pub slow_tasks_ms: Option<u64>,
    pub drop_kubeconfig_stream: Option<u32>,
    pub slow_talos_install_ms: Option<u64>,
    pub bootstrap_not_ready: Option<u32>,
}

fn de_opt_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(Some(v.filter(|s| !s.is_empty())))
}

/// Errors from fault specs.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("unknown fault '{0}'")]
    Unknown(String),
    #[error("invalid value for fault '{key}': '{value}'")]
    Invalid { key: String, value: String },
    #[error("fault '{0}' must be written key=value")]
    Syntax(String),
    #[error("rate '{key}' must be between 0 and 1, got {value}")]
    Rate { key: String, value: f64 },
}

impl FaultsPatch {
    /// Parse a command-line spec like `latency_ms=20,error_rate_5xx=0.1,fail_next_task=qmclone`.
    pub fn parse_spec(spec: &str) -> Result<Self, FaultError> {
        let mut p = FaultsPatch::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| FaultError::Syntax(item.to_string()))?;
            let bad = || FaultError::Invalid {
                key: k.to_string(),
                value: v.to_string(),
            };
            match k {
                "latency_ms" => p.latency_ms = Some(v.parse().map_err(|_| bad())?),
                "error_rate_5xx" => p.error_rate_5xx = Some(v.parse().map_err(|_| bad())?),
                "drop_connection_rate" => {
                    p.drop_connection_rate = Some(v.parse().map_err(|_| bad())?)
                }
                "lock_timeouts" => p.lock_timeouts = Some(v.parse().map_err(|_| bad())?),
                "fail_next_task" => {
                    p.fail_next_task = Some(Some(v.to_string()).filter(|s| !s.is_empty()))
                }
                "slow_tasks_ms" => p.slow_tasks_ms = Some(v.parse().map_err(|_| bad())?),
                "drop_kubeconfig_stream" => {
                    p.drop_kubeconfig_stream = Some(v.parse().map_err(|_| bad())?)
                }
                "slow_talos_install_ms" => {
                    p.slow_talos_install_ms = Some(v.parse().map_err(|_| bad())?)
                }
                "bootstrap_not_ready" => {
                    p.bootstrap_not_ready = Some(v.parse().map_err(|_| bad())?)
                }
                other => return Err(FaultError::Unknown(other.to_string())),
            }
        }
        p.check()?;
        Ok(p)
    }

    /// Reject out-of-range rates.
    pub fn check(&self) -> Result<(), FaultError> {
        for (key, v) in [
            ("error_rate_5xx", self.error_rate_5xx),
            ("drop_connection_rate", self.drop_connection_rate),
        ] {
            if let Some(value) = v
                && !(0.0..=1.0).contains(&value)
            {
                return Err(FaultError::Rate {
                    key: key.to_string(),
                    value,
                });
            }
        }
        Ok(())
    }
}

impl Faults {
    fn apply(&mut self, p: &FaultsPatch) {
        if let Some(v) = p.latency_ms {
            self.latency_ms = v;
        }
        if let Some(v) = p.error_rate_5xx {
            self.error_rate_5xx = v;
        }
        if let Some(v) = p.drop_connection_rate {
            self.drop_connection_rate = v;
        }
        if let Some(v) = p.lock_timeouts {
            self.lock_timeouts = v;
        }
        if let Some(v) = &p.fail_next_task {
            self.fail_next_task = v.clone();
        }
        if let Some(v) = p.slow_tasks_ms {
            self.slow_tasks_ms = v;
        }
        if let Some(v) = p.drop_kubeconfig_stream {
            self.drop_kubeconfig_stream = v;
        }
        if let Some(v) = p.slow_talos_install_ms {
            self.slow_talos_install_ms = v;
        }
        if let Some(v) = p.bootstrap_not_ready {
            self.bootstrap_not_ready = v;
        }
    }
}

/// What the fault layer decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    None,
    Error5xx,
    Drop,
}

struct Inner {
    faults: Faults,
    rng: ChaCha8Rng,
}

/// Shared fault state: the settings and the seeded RNG that draws from them.
pub struct FaultState {
    inner: Mutex<Inner>,
}

impl FaultState {
    pub fn new(seed: u64, initial: Faults) -> Self {
        Self {
            inner: Mutex::new(Inner {
                faults: initial,
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn patch(&self, p: &FaultsPatch) -> Faults {
        let mut g = self.lock();
        g.faults.apply(p);
        g.faults.clone()
    }

    pub fn latency_ms(&self) -> u64 {
        self.lock().faults.latency_ms
    }

    pub fn slow_tasks_ms(&self) -> u64 {
        self.lock().faults.slow_tasks_ms
    }

    /// Decide the fate of one API request. The RNG is drawn only for non-zero rates, so a
    /// run without faults does not disturb the sequence.
    pub fn roll_request(&self) -> RequestFault {
        let mut g = self.lock();
        let drop_rate = g.faults.drop_connection_rate;
        let err_rate = g.faults.error_rate_5xx;
        if drop_rate > 0.0 && g.rng.random_bool(drop_rate) {
            return RequestFault::Drop;
        }
        if err_rate > 0.0 && g.rng.random_bool(err_rate) {
            return RequestFault::Error5xx;
        }
        RequestFault::None
    }

    /// Consume one injected lock timeout, if any is armed.
    pub fn take_lock_timeout(&self) -> bool {
        let mut g = self.lock();
        if g.faults.lock_timeouts > 0 {
            g.faults.lock_timeouts -= 1;
            true
        } else {
            false
        }
    }

    /// Extra milliseconds a Talos install takes now.
    pub fn slow_talos_install_ms(&self) -> u64 {
        self.lock().faults.slow_talos_install_ms
    }

    /// Consume one armed "bootstrap not ready", if any.
    pub fn take_bootstrap_not_ready(&self) -> bool {
        let mut g = self.lock();
        if g.faults.bootstrap_not_ready > 0 {
            g.faults.bootstrap_not_ready -= 1;
            true
        } else {
            false
        }
    }

    /// Consume one armed Kubeconfig stream drop, if any.
    pub fn take_kubeconfig_drop(&self) -> bool {
        let mut g = self.lock();
        if g.faults.drop_kubeconfig_stream > 0 {
            g.faults.drop_kubeconfig_stream -= 1;
            true
        } else {
            false
        }
    }

    /// Consume the armed task failure when `task_type` matches it.
    pub fn take_task_failure(&self, task_type: &str) -> bool {
        let mut g = self.lock();
        if g.faults.fail_next_task.as_deref() == Some(task_type) {
            g.faults.fail_next_task = None;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_rejects() {
        let p = FaultsPatch::parse_spec("latency_ms=5, fail_next_task=qmclone").unwrap();
        assert_eq!(p.latency_ms, Some(5));
        assert_eq!(p.fail_next_task, Some(Some("qmclone".into())));
        assert!(matches!(
            FaultsPatch::parse_spec("nope=1"),
            Err(FaultError::Unknown(_))
        ));
        assert!(matches!(
            FaultsPatch::parse_spec("error_rate_5xx=2"),
            Err(FaultError::Rate { .. })
        ));
    }

    #[test]
    fn same_seed_same_decisions() {
        let f = Faults {
            error_rate_5xx: 0.5,
            ..Faults::default()
        };
        let a = FaultState::new(7, f.clone());
        let b = FaultState::new(7, f);
        let sa: Vec<_> = (0..50).map(|_| a.roll_request()).collect();
        let sb: Vec<_> = (0..50).map(|_| b.roll_request()).collect();
        assert_eq!(sa, sb);
        assert!(sa.contains(&RequestFault::Error5xx));
        assert!(sa.contains(&RequestFault::None));
    }

    #[test]
    fn task_failure_is_consumed_once() {
        let s = FaultState::new(1, Faults::default());
        s.patch(&FaultsPatch {
            fail_next_task: Some(Some("qmstart".into())),
            ..Default::default()
        });
        assert!(!s.take_task_failure("qmclone"));
        assert!(s.take_task_failure("qmstart"));
        assert!(!s.take_task_failure("qmstart"));
    }
}
