//! The cluster's operations, each a step of DESIGN.md's flow: converge one machine (apply in
//! maintenance or to a running node), bootstrap, phased health, kubeconfig, remove, upgrade,
//! reset. Errors say which machine and which phase.

use std::future::Future;
use std::time::{Duration, Instant};

use infraflux_talos::client::{
    ApplyMode, Bootstrap, ClientOptions, EtcdMember, ResetOptions, Stage, TalosClient, TalosError,
};
use infraflux_talos::digest::config_hash;
use infraflux_talos::render::Cni;
use infraflux_talos::secrets::ClientConfiguration;
use tfplugin::{Ctx, Diagnostic};

use super::spec::{Cluster, Machine};
use crate::k8s::{K8sClient, Kubeconfig};

/// How often waits poll.
const POLL: Duration = Duration::from_millis(250);

/// How long no control plane may run etcd before a health check gives up: a rolling change
/// restarts one control plane at a time, so all of them without etcd for this long means the
/// cluster's data is gone, not that it is coming back.
const ETCD_LOST_AFTER: Duration = Duration::from_secs(120);

/// A step's failure: what to tell the user, and where.
pub fn fail(m: Option<&Machine>, phase: &str, e: impl std::fmt::Display) -> Diagnostic {
    match m {
        Some(m) => Diagnostic::error(
            format!(
                "Talos machine {} ({}): {phase} failed",
                m.hostname, m.address
            ),
            format!("{e}"),
        )
        .at(m.path()),
        None => Diagnostic::error(format!("Talos cluster: {phase} failed"), format!("{e}")),
    }
}

/// Where the calls of one apply stand: the deadline and Terraform's cancellation.
pub struct Run<'a> {
    pub ctx: &'a Ctx,
    pub deadline: Instant,
    pub creds: &'a ClientConfiguration,
}

/// What one machine looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub stage: String,
    pub talos_version: Option<String>,
    pub config_hash: Option<String>,
}

impl Run<'_> {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn opts(&self) -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: self
                .remaining()
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
        }
    }

    pub fn authenticated(&self, m: &Machine) -> Result<TalosClient, Diagnostic> {
        TalosClient::authenticated(&m.address, self.creds, self.opts())
            .map_err(|e| fail(Some(m), "connect", e).at(m.path().push_attr("address")))
    }

    fn maintenance(&self, m: &Machine) -> Result<TalosClient, Diagnostic> {
        TalosClient::maintenance(&m.address, self.opts())
            .map_err(|e| fail(Some(m), "connect", e).at(m.path().push_attr("address")))
    }

    /// Retries `op` while it fails with something worth retrying, until the deadline.
    async fn retry<T, F, Fut>(
        &self,
        m: Option<&Machine>,
        phase: &str,
        mut op: F,
    ) -> Result<T, Diagnostic>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Retry>>,
    {
        let mut delay = POLL;
        let mut said = Said::default();
        loop {
            match op().await {
                Ok(v) => {
                    if said.any {
                        tracing::info!(
                            phase,
                            machine = m.map(|m| m.hostname.as_str()),
                            "done waiting"
                        );
                    }
                    return Ok(v);
                }
                Err(Retry::Fatal(d)) => return Err(d),
                Err(Retry::Again(why)) => {
                    said.log(m, phase, &why);
                    if Instant::now() + delay >= self.deadline {
                        return Err(fail(
                            m,
                            phase,
                            format!("gave up when the timeout ran out; last: {why}"),
                        ));
                    }
                    if !self.ctx.sleep(delay).await {
                        return Err(fail(
                            m,
                            phase,
                            "cancelled: Terraform stopped the provider; the next apply continues from here",
                        ));
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Applies `config` to a machine: in maintenance mode (install, reboot) or, when it runs
    /// with this cluster's secrets and a different config, with `mode`. Returns Talos's mode
    /// details, or `None` when the machine already runs exactly this config.
    pub async fn apply(
        &self,
        m: &Machine,
        config: &str,
        mode: ApplyMode,
    ) -> Result<Option<String>, Diagnostic> {
        let want = config_hash(config);
        let auth = self.authenticated(m)?;
        let maint = self.maintenance(m)?;
        self.retry(Some(m), "apply configuration", || async {
            match auth.machine_config().await {
                Ok(Some(active)) if config_hash(&active) == want => return Ok(None),
                Ok(_) => {
                    return auth
                        .apply_configuration(config.as_bytes(), mode, false)
                        .await
                        .map(Some)
                        .map_err(|e| classify(m, "apply configuration", e));
                }
                Err(TalosError::Tls { .. }) => {}
                Err(e) => return Err(classify(m, "read the active configuration", e)),
            }
            // Not ours (yet): a machine in maintenance mode takes the config.
            match maint.apply_configuration(config.as_bytes(), ApplyMode::Auto, false).await {
                Ok(details) => Ok(Some(details)),
                Err(TalosError::Tls { detail, .. }) => Err(Retry::Again(format!(
                    "neither in maintenance mode nor running with this cluster's secrets ({detail}); a machine rebooting looks like this for a moment, one that belongs to another cluster stays so: reset it, or adopt that cluster with machine_secrets_wo"
                ))),
                Err(e) => Err(classify(m, "apply configuration in maintenance mode", e)),
            }
        })
        .await
    }

    /// What applying `config` would do to a running machine, as a plan diagnostic: a warning
    /// that says whether it reboots, or an error when Talos refuses the config or the mode.
    pub async fn dry_run(
        &self,
        m: &Machine,
        config: &str,
        mode: ApplyMode,
    ) -> Result<Diagnostic, Diagnostic> {
        let c = self.authenticated(m)?;
        let what = format!("Talos machine {} ({})", m.hostname, m.address);
        match c.apply_dry_run(config.as_bytes(), mode).await {
            Ok((applied, summary)) => {
                let how = match applied {
                    ApplyMode::NoReboot => "without a reboot",
                    ApplyMode::Reboot => "with a reboot",
                    ApplyMode::Staged => "at its next reboot",
                    _ => "(mode decided when applied)",
                };
                Ok(Diagnostic::warning(
                    format!("{what}: the config change applies {how}"),
                    format!("Talos's dry run: {summary}"),
                ))
            }
            Err(e @ (TalosError::Unreachable { .. } | TalosError::Tls { .. })) => {
                Ok(Diagnostic::warning(
                    format!("{what}: cannot preview the config change"),
                    format!("{e}. The apply will try again."),
                ))
            }
            Err(e) => Err(fail(Some(m), "dry run of the config change", e)),
        }
    }

    /// Waits until the machine runs (mTLS answers, stage running, ready).
    pub async fn wait_running(&self, m: &Machine) -> Result<(), Diagnostic> {
        let c = self.authenticated(m)?;
        c.wait_for_stage(
            Stage::Running,
            true,
            self.remaining().max(Duration::from_secs(1)),
            self.ctx.cancel.cancelled(),
        )
        .await
        .map(|_| ())
        .map_err(|e| fail(Some(m), "wait for the machine to run", e))
    }

    /// What the machine looks like, without changing anything. Never fails: an unreachable
    /// machine is reported as such.
    pub async fn observe(&self, m: &Machine) -> Observed {
        let gone = |stage: &str| Observed {
            stage: stage.to_string(),
            talos_version: None,
            config_hash: None,
        };
        // Its own bounds: an observation after a step ran out of time still gets an answer.
        let opts = ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        };
        let Ok(auth) = TalosClient::authenticated(&m.address, self.creds, opts.clone()) else {
            return gone("unknown");
        };
        match auth.machine_status().await {
            Ok(st) => Observed {
                stage: st.stage.name().to_string(),
                talos_version: auth.version().await.ok().map(|v| v.tag),
                config_hash: auth
                    .machine_config()
                    .await
                    .ok()
                    .flatten()
                    .and_then(|c| config_hash(&c)),
            },
            Err(TalosError::Tls { .. }) => {
                // A machine back in maintenance mode (reinstalled, reset) answers without mTLS.
                let Ok(maint) = TalosClient::maintenance(&m.address, opts) else {
                    return gone("unknown");
                };
                match maint.machine_status().await {
                    Ok(st) => Observed {
                        stage: st.stage.name().to_string(),
                        talos_version: maint.version().await.ok().map(|v| v.tag),
                        config_hash: None,
                    },
                    Err(_) => gone("foreign"),
                }
            }
            Err(_) => gone("unreachable"),
        }
    }

    /// Bootstraps etcd on `m` (AlreadyExists = done; FailedPrecondition = not yet).
    pub async fn bootstrap(&self, m: &Machine) -> Result<(), Diagnostic> {
        let c = self.authenticated(m)?;
        self.retry(Some(m), "bootstrap etcd", || async {
            match c.bootstrap().await {
                Ok(Bootstrap::Bootstrapped | Bootstrap::AlreadyBootstrapped) => Ok(()),
                Err(e) => Err(classify(m, "bootstrap etcd", e)),
            }
        })
        .await
    }

    /// etcd members as `first` sees them.
    pub async fn etcd_members(&self, first: &Machine) -> Result<Vec<EtcdMember>, TalosError> {
        self.authenticated(first)
            .map_err(|d| TalosError::Config(d.detail))?
            .etcd_member_list()
            .await
    }

    /// Waits until etcd has every control plane of the configuration (the gate between two
    /// control planes of a rolling change, and the first health phase). Any control plane that
    /// runs etcd answers; when none does for [`ETCD_LOST_AFTER`], the cluster's etcd is gone
    /// (the machines were reinstalled) and waiting longer cannot help.
    pub async fn wait_etcd(&self, cluster: &Cluster) -> Result<(), Diagnostic> {
        let control_planes: Vec<&Machine> = cluster.control_planes().collect();
        if control_planes.is_empty() {
            return Ok(());
        }
        // Since when no control plane runs etcd (the closure is Send: a Mutex, not a Cell).
        let nowhere_since = std::sync::Mutex::new(None::<Instant>);
        let nowhere = |reset: bool| {
            let mut g = nowhere_since.lock().unwrap_or_else(|e| e.into_inner());
            if reset {
                *g = None;
                return Instant::now();
            }
            *g.get_or_insert_with(Instant::now)
        };
        self.retry(None, "health check (etcd members)", || async {
            let mut answers = Vec::new();
            let mut members = None;
            for m in &control_planes {
                match self.etcd_members(m).await {
                    Ok(list) => {
                        members = Some(list);
                        break;
                    }
                    Err(e) => answers.push((m, e)),
                }
            }
            let Some(members) = members else {
                let not_running = answers
                    .iter()
                    .all(|(_, e)| matches!(e, TalosError::NotReady { .. }));
                let since = nowhere(false);
                let seen = answers
                    .iter()
                    .map(|(m, e)| format!("{}: {e}", m.hostname))
                    .collect::<Vec<_>>()
                    .join("; ");
                if not_running && since.elapsed() >= ETCD_LOST_AFTER {
                    return Err(Retry::Fatal(fail(
                        None,
                        "health check (etcd members)",
                        format!(
                            "etcd has 0 of {} members: etcd runs on none of the control planes ({seen}). \
                             The cluster was never bootstrapped on these machines: their state was lost \
                             (reinstalled, or a lab that restarted). Replace the cluster \
                             (terraform apply -replace=<this resource>) to bootstrap it anew, or see \
                             docs/guides/adopting-an-existing-cluster.md if the data lives elsewhere.",
                            control_planes.len()
                        ),
                    )));
                }
                return Err(Retry::Again(format!(
                    "etcd has 0 of {} members: {seen}",
                    control_planes.len()
                )));
            };
            nowhere(true);
            let missing: Vec<&str> = control_planes
                .iter()
                .map(|m| m.hostname.as_str())
                .filter(|h| !members.iter().any(|m| m.hostname == *h))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(Retry::Again(format!(
                    "etcd has {} of {} members; missing: {}",
                    control_planes.len() - missing.len(),
                    control_planes.len(),
                    missing.join(", ")
                )))
            }
        })
        .await
    }

    /// Health in phases, each naming what is missing: etcd has every control plane, the
    /// Kubernetes API is ready, every machine registered its Node (Ready too with flannel;
    /// with cilium Nodes stay NotReady until Cilium runs).
    pub async fn health(&self, cluster: &Cluster, kubeconfig: &str) -> Result<(), Diagnostic> {
        self.wait_etcd(cluster).await?;
        let k = Kubeconfig::parse(kubeconfig).map_err(|e| fail(None, "health check", e))?;
        let api = K8sClient::new(&k, Duration::from_secs(10))
            .map_err(|e| fail(None, "health check", e))?;
        self.retry(None, "health check (Kubernetes API ready)", || async {
            api.readyz().await.map_err(|e| Retry::Again(e.to_string()))
        })
        .await?;
        let need_ready = cluster.spec.cni == Cni::Flannel;
        self.retry(None, "health check (Kubernetes nodes)", || async {
            let nodes = api.nodes().await.map_err(|e| Retry::Again(e.to_string()))?;
            let missing: Vec<String> = cluster
                .machines
                .iter()
                .filter(|m| {
                    !nodes
                        .iter()
                        .any(|n| n.name == m.hostname && (n.ready || !need_ready))
                })
                .map(|m| m.hostname.clone())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else if need_ready {
                Err(Retry::Again(format!(
                    "nodes not registered or not Ready: {}",
                    missing.join(", ")
                )))
            } else {
                Err(Retry::Again(format!(
                    "nodes not registered: {}",
                    missing.join(", ")
                )))
            }
        })
        .await
    }

    /// An admin kubeconfig from a control plane (retried: a dropped stream is retried).
    pub async fn kubeconfig(&self, m: &Machine) -> Result<String, Diagnostic> {
        let c = self.authenticated(m)?;
        self.retry(Some(m), "fetch the kubeconfig", || async {
            c.kubeconfig()
                .await
                .map_err(|e| classify(m, "fetch the kubeconfig", e))
        })
        .await
    }

    /// Takes a machine out of the cluster: its Kubernetes Node is deleted and it is reset
    /// (graceful for control planes: Talos leaves etcd first). An unreachable machine is
    /// reported, not waited for.
    pub async fn remove(
        &self,
        m: &Machine,
        kubeconfig: Option<&str>,
        etcd: Option<(u64, &Machine)>,
    ) -> Result<(), Diagnostic> {
        if let Some(k) = kubeconfig.and_then(|k| Kubeconfig::parse(k).ok())
            && let Ok(api) = K8sClient::new(&k, Duration::from_secs(10))
        {
            api.delete_node(&m.hostname)
                .await
                .map_err(|e| fail(Some(m), "delete the Kubernetes node", e))?;
        }
        let reset = self.reset(m, ResetOptions::default()).await?;
        // A control plane that could not leave by itself (gone, or reinstalled) leaves a
        // member behind that would cost etcd its quorum later: a remaining one removes it.
        if reset == Reset::NotReached
            && let Some((id, via)) = etcd
        {
            let c = self.authenticated(via)?;
            c.etcd_remove_member(id)
                .await
                .map_err(|e| fail(Some(m), "remove its etcd member", e))?;
        }
        Ok(())
    }

    /// Resets a machine back to maintenance mode and waits for it there. A machine gone, or
    /// not running with this cluster's secrets (already in maintenance mode), is not reached.
    pub async fn reset(&self, m: &Machine, opts: ResetOptions) -> Result<Reset, Diagnostic> {
        let auth = self.authenticated(m)?;
        match auth.reset(opts).await {
            Ok(()) => {}
            Err(TalosError::Tls { .. } | TalosError::Unreachable { .. }) => {
                return Ok(Reset::NotReached);
            }
            Err(e) => return Err(fail(Some(m), "reset", e)),
        }
        let maint = self.maintenance(m)?;
        maint
            .wait_for_stage(
                Stage::Maintenance,
                false,
                self.remaining().max(Duration::from_secs(1)),
                self.ctx.cancel.cancelled(),
            )
            .await
            .map(|_| Reset::Done)
            .map_err(|e| fail(Some(m), "wait for maintenance mode after reset", e))
    }

    /// Upgrades a machine to `image` and waits until it runs `version`.
    pub async fn upgrade(&self, m: &Machine, image: &str, version: &str) -> Result<(), Diagnostic> {
        let c = self.authenticated(m)?;
        self.retry(Some(m), "upgrade", || async {
            c.upgrade(image, false)
                .await
                .map(|_| ())
                .map_err(|e| classify(m, "upgrade", e))
        })
        .await?;
        // The machine reboots; wait for it to come back on the new version.
        self.retry(Some(m), "wait for the upgraded machine", || async {
            match c.version().await {
                Ok(v) if v.tag == version => match c.machine_status().await {
                    Ok(st) if st.stage == Stage::Running && st.ready => Ok(()),
                    Ok(st) => Err(Retry::Again(format!("stage {}", st.stage))),
                    Err(e) => Err(Retry::Again(e.to_string())),
                },
                Ok(v) => Err(Retry::Again(format!("still on {}", v.tag))),
                Err(e) => Err(Retry::Again(e.to_string())),
            }
        })
        .await
    }
}

/// What a wait last told the log: a line when the observation changes, and every half minute
/// otherwise, so `TF_LOG=info` shows what an apply waits for without a line per poll.
#[derive(Default)]
struct Said {
    any: bool,
    last: String,
    at: Option<Instant>,
}

impl Said {
    fn log(&mut self, m: Option<&Machine>, phase: &str, why: &str) {
        let due = self
            .at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(30));
        if why != self.last || due {
            let machine = m.map(|m| m.hostname.as_str());
            tracing::info!(phase, machine, "waiting for {phase}; last seen: {why}");
            self.any = true;
            self.last = why.to_string();
            self.at = Some(Instant::now());
        }
    }
}

/// What a reset achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// The machine reset and is back in maintenance mode.
    Done,
    /// Unreachable, or not running with this cluster's secrets: nothing to reset.
    NotReached,
}

/// A step's outcome: try again later, or give up now.
pub enum Retry {
    Again(String),
    Fatal(Diagnostic),
}

/// Retryable Talos errors (unreachable, not ready) are tried again; the rest fail the step.
fn classify(m: &Machine, phase: &str, e: TalosError) -> Retry {
    if e.is_retryable() {
        return Retry::Again(e.to_string());
    }
    Retry::Fatal(fail(Some(m), phase, &e))
}
