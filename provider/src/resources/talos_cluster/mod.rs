//! `infraflux_talos_cluster`: one resource owns a Talos cluster's secrets, configs, install,
//! bootstrap, health, credentials, scaling, upgrades and reset, so no ordering between
//! resources can go wrong.
//!
//! - [`schema`]; [`spec`]: the configuration typed and checked (every patch rendered at plan
//!   time); [`flow`]: the steps against the machines.
//! - Plan: per machine the hash of the config it will run, so a plan shows which machines a
//!   change touches; drift (a machine back in maintenance mode, another active config) shows
//!   as a change of `nodes`.
//! - Create: secrets (or adopted ones) → apply in parallel → wait running → bootstrap once →
//!   kubeconfig → health. Secrets reach state even when a later step fails; a create that
//!   failed leaves `kubeconfig` null, which marks it incomplete: destroying or replacing it
//!   resets the machines it configured.
//! - Update: remove machines that left (Node deleted, graceful reset), add new ones in
//!   parallel, change the others one at a time (apply mode, upgrades), then health.
//! - Delete: reset only when `on_destroy.reset` says so; never a health check.

mod flow;
mod schema;
mod spec;
mod state;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::join_all;
use infraflux_talos::client::{ResetOptions, WipeMode};
use infraflux_talos::digest::config_hash;
use infraflux_talos::render::Role;
use infraflux_talos::secrets::{CLIENT_VALIDITY, ClientConfiguration, MachineSecrets};
use tfplugin::framework::resource::{PlanRequest, PlanResponse, Private};
use tfplugin::framework::timeouts::timeout;
use tfplugin::{
    CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics, ReadRequest, Resource, Schema,
    StateResponse, UpdateRequest, Value,
};
use time::OffsetDateTime;

use flow::{Observed, Run, fail};
use schema::DEFAULT_BOOT_TIMEOUT;
use spec::{Cluster, Machine, Parsed, default_installer, given_secrets};
use state::{
    ca_fingerprint, creds_of, creds_value, entry, etcd_ids, etcd_lost, opt, secrets_changed,
    secrets_of, state_machines, talosconfig_value,
};

use super::terraform_run::demote_when_destroying;

const CREATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Private-state flag: etcd was bootstrapped (never bootstrap twice).
const BOOTSTRAPPED: &str = "bootstrapped";

#[derive(Default)]
pub struct TalosCluster;

/// Runs a step per machine at once; the diagnostics of all that failed.
async fn each<'a, F, Fut>(machines: impl Iterator<Item = &'a Machine>, f: F) -> Diagnostics
where
    F: Fn(&'a Machine) -> Fut,
    Fut: std::future::Future<Output = Result<(), Diagnostic>>,
{
    let mut diags = Diagnostics::new();
    for r in join_all(machines.map(f)).await {
        if let Err(d) = r {
            diags.push(d);
        }
    }
    diags
}

impl TalosCluster {
    /// Renders and applies a machine's config, then waits for it to run.
    async fn converge(
        run: &Run<'_>,
        cluster: &Cluster,
        secrets: &MachineSecrets,
        m: &Machine,
    ) -> Result<(), Diagnostic> {
        let config = cluster
            .render(m, secrets)
            .map_err(|e| cluster.render_error(&[m], &e))?;
        run.apply(m, &config, cluster.apply_mode).await?;
        run.wait_running(m).await
    }

    /// Asks each running machine whose config changes what Talos would do (a dry run): the
    /// plan says which machines reboot; a config Talos refuses, or a reboot `no_reboot`
    /// forbids, fails the plan. Unreachable machines are only mentioned.
    async fn preview(
        ctx: &Ctx,
        cluster: &Cluster,
        secrets: &MachineSecrets,
        creds: &ClientConfiguration,
        prior: &Value,
        planned: &BTreeMap<String, Value>,
        diags: &mut Diagnostics,
    ) {
        let run = Run {
            ctx,
            deadline: Instant::now() + Duration::from_secs(20),
            creds,
            boot_timeout: cluster.boot_timeout,
        };
        let changed = cluster.machines.iter().filter(|m| {
            let before = prior
                .attr("nodes")
                .as_map()
                .and_then(|n| n.get(&m.hostname));
            before.is_some_and(|b| {
                b.attr("stage").as_str() == Some("running")
                    && planned.get(&m.hostname).map(|p| p.attr("config_hash"))
                        != Some(b.attr("config_hash"))
            })
        });
        let run = &run;
        let previews = join_all(changed.map(|m| async move {
            let config = cluster
                .render(m, secrets)
                .map_err(|e| cluster.render_error(&[m], &e))?;
            Ok::<_, Diagnostic>((m, run.dry_run(m, &config, cluster.apply_mode).await))
        }))
        .await;
        for p in previews {
            match p {
                Ok((_, Ok(d))) | Err(d) => diags.push(d),
                Ok((m, Err(d))) => diags.push(d.at(m.path())),
            }
        }
    }

    /// `nodes` as the machines report themselves (after an error: the truth for state).
    async fn observed_nodes(run: &Run<'_>, machines: &[Machine], prior: &Value) -> Value {
        let seen: Vec<Observed> = join_all(machines.iter().map(|m| run.observe(m))).await;
        let ids = match machines.iter().find(|m| m.role == Role::ControlPlane) {
            Some(cp) => run.etcd_members(cp).await.map(|m| etcd_ids(&m)).ok(),
            None => None,
        };
        let mut out = BTreeMap::new();
        for (m, o) in machines.iter().zip(seen) {
            let before = prior
                .attr("nodes")
                .as_map()
                .and_then(|n| n.get(&m.hostname));
            let keep = |k: &str| before.map_or(Value::Null, |b| b.attr(k).clone());
            let version = o
                .talos_version
                .map_or_else(|| keep("talos_version"), Value::from);
            let hash = match (o.stage.as_str(), o.config_hash) {
                (_, Some(h)) => Value::from(h),
                ("maintenance", None) => Value::Null,
                _ => keep("config_hash"),
            };
            let etcd = match (&ids, m.role) {
                (_, Role::Worker) => Value::Null,
                (Some(ids), _) => opt(ids.get(&m.hostname).cloned()),
                (None, _) => keep("etcd_member_id"),
            };
            out.insert(m.hostname.clone(), entry(m, &o.stage, version, etcd, hash));
        }
        Value::Map(out)
    }

    /// The plan: per machine the hash of the config it will run (from the secrets in state),
    /// Talos's dry run for the machines whose config changes.
    async fn plan(ctx: &Ctx, req: &PlanRequest<'_>, resp: &mut PlanResponse) {
        if resp.planned.is_null() {
            return; // destroy
        }
        if let Some(name) = req.config.attr("name").as_str() {
            resp.planned.set_attr("id", Value::from(name));
        }
        let cluster = match Cluster::from_config(req.config) {
            Parsed::Known(c) => c,
            Parsed::Invalid(d) => {
                resp.diags.extend(d);
                return;
            }
            Parsed::Unknown => return,
        };
        let planned = &mut resp.planned;
        let prior = req.prior;
        let version = || Value::from(cluster.talos_version_text.as_str());
        if prior.is_null() {
            let nodes = cluster
                .machines
                .iter()
                .map(|m| {
                    let etcd = match m.role {
                        Role::ControlPlane => Value::Unknown,
                        Role::Worker => Value::Null,
                    };
                    (
                        m.hostname.clone(),
                        entry(m, "running", version(), etcd, Value::Unknown),
                    )
                })
                .collect();
            planned.set_attr("nodes", Value::Map(nodes));
            return;
        }
        if let Some(d) = secrets_changed(planned, prior) {
            resp.diags.push(d);
            return;
        }
        let secrets = match secrets_of(prior) {
            Ok(s) => s,
            Err(d) => {
                resp.diags.push(d);
                return;
            }
        };
        let configs = match cluster.render_all(&secrets) {
            Ok(c) => c,
            Err(d) => {
                resp.diags.extend(d);
                return;
            }
        };
        let mut nodes = BTreeMap::new();
        for m in &cluster.machines {
            let hash = opt(configs.get(&m.hostname).and_then(|c| config_hash(c)));
            let before = prior
                .attr("nodes")
                .as_map()
                .and_then(|n| n.get(&m.hostname));
            let etcd = match (m.role, before.map(|b| b.attr("etcd_member_id"))) {
                (Role::Worker, _) => Value::Null,
                (Role::ControlPlane, Some(Value::String(id))) => Value::from(id.as_str()),
                (Role::ControlPlane, _) => Value::Unknown,
            };
            nodes.insert(
                m.hostname.clone(),
                entry(m, "running", version(), etcd, hash),
            );
        }
        planned.set_attr("nodes", Value::Map(nodes.clone()));
        if let Ok(creds) = creds_of(prior) {
            planned.set_attr("talosconfig", talosconfig_value(&cluster, &creds));
            Self::preview(
                ctx,
                &cluster,
                &secrets,
                &creds,
                prior,
                &nodes,
                &mut resp.diags,
            )
            .await;
        }
        if planned.attr("endpoint") != prior.attr("endpoint") {
            planned.set_attr("kubeconfig", Value::Unknown);
        }
    }

    /// Bootstrap (once), kubeconfig, health, and the final `nodes`.
    async fn finish(
        run: &Run<'_>,
        cluster: &Cluster,
        secrets: &MachineSecrets,
        state: &mut Value,
        private: &mut Private,
        fetch_kubeconfig: bool,
    ) -> Result<(), Diagnostic> {
        let first = cluster
            .control_planes()
            .next()
            .ok_or_else(|| fail(None, "bootstrap", "no control plane"))?;
        if private.get(BOOTSTRAPPED).and_then(|v| v.as_bool()) != Some(true) {
            run.bootstrap(first).await?;
            private.insert(BOOTSTRAPPED.into(), true.into());
        }
        if fetch_kubeconfig || state.attr("kubeconfig").as_str().is_none() {
            let k = run.kubeconfig(first).await?;
            state.set_attr("kubeconfig", Value::from(k));
        }
        let kubeconfig = state
            .attr("kubeconfig")
            .as_str()
            .unwrap_or_default()
            .to_owned();
        run.health(cluster, &kubeconfig).await?;
        let ids = run
            .etcd_members(first)
            .await
            .map(|m| etcd_ids(&m))
            .map_err(|e| fail(Some(first), "list etcd members", e))?;
        let mut nodes = BTreeMap::new();
        for m in &cluster.machines {
            let hash = cluster
                .render(m, secrets)
                .ok()
                .and_then(|c| config_hash(&c));
            let etcd = match m.role {
                Role::ControlPlane => opt(ids.get(&m.hostname).cloned()),
                Role::Worker => Value::Null,
            };
            let version = Value::from(cluster.talos_version_text.as_str());
            nodes.insert(
                m.hostname.clone(),
                entry(m, "running", version, etcd, opt(hash)),
            );
        }
        state.set_attr("nodes", Value::Map(nodes));
        Ok(())
    }
}

#[async_trait]
impl Resource for TalosCluster {
    fn type_name(&self) -> &'static str {
        "infraflux_talos_cluster"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Parsed::Invalid(mut d) = Cluster::from_config(config) {
            demote_when_destroying(&mut d);
            diags.extend(d);
        }
    }

    async fn modify_plan(&self, ctx: &Ctx, req: &PlanRequest<'_>, resp: &mut PlanResponse) {
        Self::plan(ctx, req, resp).await;
        demote_when_destroying(&mut resp.diags);
    }

    async fn create(&self, ctx: &Ctx, req: CreateRequest) -> StateResponse {
        let cluster = match Cluster::from_config(&req.config) {
            Parsed::Known(c) => c,
            Parsed::Invalid(d) => {
                return StateResponse {
                    diags: d,
                    ..Default::default()
                };
            }
            Parsed::Unknown => {
                return StateResponse::error(Diagnostic::error(
                    "Unknown values at apply time",
                    "Every attribute of infraflux_talos_cluster must be known when it is created.",
                ));
            }
        };
        let deadline = Instant::now() + timeout(&req.planned, "create", CREATE_TIMEOUT);
        // Given secrets (machine_secrets from infraflux_talos_machine_secrets, or adopted with
        // machine_secrets_wo) are already safe elsewhere; generated ones exist only in this
        // call until it returns.
        let mut invalid = Diagnostics::new();
        let secrets = match given_secrets(&req.config, &mut invalid) {
            Some(s) => s,
            None if invalid.has_errors() => {
                return StateResponse {
                    diags: invalid,
                    ..Default::default()
                };
            }
            None => match tokio::task::spawn_blocking(MachineSecrets::generate).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return StateResponse::error(Diagnostic::error(
                        "Cannot generate the machine secrets",
                        e.to_string(),
                    ));
                }
                Err(e) => {
                    return StateResponse::error(Diagnostic::error(
                        "Cannot generate the machine secrets",
                        e.to_string(),
                    ));
                }
            },
        };
        let creds = match secrets.admin_client(OffsetDateTime::now_utc(), CLIENT_VALIDITY) {
            Ok(c) => c,
            Err(e) => {
                return StateResponse::error(Diagnostic::error(
                    "Cannot issue the talosctl certificate",
                    e.to_string(),
                ));
            }
        };
        let mut state = req.planned.clone();
        let Ok(secrets_json) = secrets.to_json() else {
            return StateResponse::error(Diagnostic::error(
                "Cannot serialise the machine secrets",
                "This is a provider bug; please report it.",
            ));
        };
        // Given as machine_secrets: the state keeps the text as planned.
        if req.config.attr("machine_secrets").is_null() {
            state.set_attr("machine_secrets", Value::from(secrets_json));
        }
        state.set_attr("client_configuration", creds_value(&creds));
        state.set_attr("kubernetes_ca_fingerprint", ca_fingerprint(&secrets));
        state.set_attr("talosconfig", talosconfig_value(&cluster, &creds));
        state.set_attr("kubeconfig", Value::Null);
        let mut private = Private::new();
        let run = Run {
            ctx,
            deadline,
            creds: &creds,
            boot_timeout: cluster.boot_timeout,
        };
        let mut diags = each(cluster.machines.iter(), |m| {
            Self::converge(&run, &cluster, &secrets, m)
        })
        .await;
        if !diags.has_errors()
            && let Err(d) =
                Self::finish(&run, &cluster, &secrets, &mut state, &mut private, true).await
        {
            diags.push(d);
        }
        if diags.has_errors() {
            let nodes = Self::observed_nodes(&run, &cluster.machines, &Value::Null).await;
            state.set_attr("nodes", nodes);
            // Incomplete: a replacement (Terraform gives Delete no private state then) must
            // reset what this create configured, or those machines keep secrets nobody has.
            state.set_attr("kubeconfig", Value::Null);
        }
        StateResponse {
            state,
            private,
            diags,
        }
    }

    async fn read(&self, ctx: &Ctx, req: ReadRequest) -> StateResponse {
        // A refresh that fails blocks every plan and destroy: without credentials the state
        // stays as it was, with a warning.
        let creds = match creds_of(&req.state) {
            Ok(c) => c,
            Err(mut d) => {
                d.severity = tfplugin::diag::Severity::Warning;
                d.summary = format!("{} (the machines were not read)", d.summary);
                return StateResponse {
                    state: req.state,
                    private: req.private,
                    diags: d.into(),
                };
            }
        };
        let run = Run {
            ctx,
            deadline: Instant::now() + Duration::from_secs(30),
            creds: &creds,
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
        };
        let machines = state_machines(&req.state);
        let mut state = req.state.clone();
        let nodes = Self::observed_nodes(&run, &machines, &req.state).await;
        state.set_attr("nodes", nodes);
        StateResponse {
            state,
            private: req.private,
            diags: Diagnostics::new(),
        }
    }

    async fn update(&self, ctx: &Ctx, req: UpdateRequest) -> StateResponse {
        let cluster = match Cluster::from_config(&req.config) {
            Parsed::Known(c) => c,
            Parsed::Invalid(d) => {
                return StateResponse {
                    state: req.prior,
                    private: req.private,
                    diags: d,
                };
            }
            Parsed::Unknown => {
                return StateResponse {
                    state: req.prior,
                    private: req.private,
                    diags: Diagnostic::error(
                        "Unknown values at apply time",
                        "Every attribute of infraflux_talos_cluster must be known when it is updated.",
                    )
                    .into(),
                };
            }
        };
        let deadline = Instant::now() + timeout(&req.planned, "update", UPDATE_TIMEOUT);
        let (secrets, creds) = match (secrets_of(&req.prior), creds_of(&req.prior)) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(d), _) | (_, Err(d)) => {
                return StateResponse {
                    state: req.prior,
                    private: req.private,
                    diags: d.into(),
                };
            }
        };
        let run = Run {
            ctx,
            deadline,
            creds: &creds,
            boot_timeout: cluster.boot_timeout,
        };
        let mut private = req.private.clone();
        // What is applied is known from the prior state; the planned values are the goal.
        let mut state = req.planned.clone();
        for k in [
            "machine_secrets",
            "client_configuration",
            "kubernetes_ca_fingerprint",
        ] {
            state.set_attr(k, req.prior.attr(k).clone());
        }
        state.set_attr("talosconfig", talosconfig_value(&cluster, &creds));
        let fetch_kubeconfig = req.planned.attr("kubeconfig").is_unknown();
        if fetch_kubeconfig {
            state.set_attr("kubeconfig", Value::Null);
        } else {
            state.set_attr("kubeconfig", req.prior.attr("kubeconfig").clone());
        }
        let kubeconfig = req.prior.attr("kubeconfig").as_str().map(str::to_owned);
        let mut diags = Diagnostics::new();
        if let Some(d) = etcd_lost(&cluster, &req.prior) {
            return StateResponse {
                state: req.prior,
                private: req.private,
                diags: d.into(),
            };
        }

        // Machines that left: out of Kubernetes and etcd, reset.
        for m in state_machines(&req.prior)
            .into_iter()
            .filter(|m| cluster.machine(&m.hostname).is_none())
        {
            let member = req
                .prior
                .attr("nodes")
                .as_map()
                .and_then(|n| n.get(&m.hostname))
                .and_then(|e| e.attr("etcd_member_id").as_str())
                .and_then(|id| u64::from_str_radix(id, 16).ok());
            let etcd = member.zip(cluster.control_planes().next());
            if let Err(d) = run.remove(&m, kubeconfig.as_deref(), etcd).await {
                diags.push(d);
            }
        }
        let prior_nodes = req
            .prior
            .attr("nodes")
            .as_map()
            .cloned()
            .unwrap_or_default();
        let (new, existing): (Vec<&Machine>, Vec<&Machine>) = cluster
            .machines
            .iter()
            .partition(|m| !prior_nodes.contains_key(&m.hostname));
        if !diags.has_errors() {
            diags.extend(
                each(new.into_iter(), |m| {
                    Self::converge(&run, &cluster, &secrets, m)
                })
                .await,
            );
        }
        // The others one at a time, control planes first, so etcd keeps its quorum.
        for m in existing {
            if diags.has_errors() {
                break;
            }
            let planned = req
                .planned
                .attr("nodes")
                .as_map()
                .and_then(|n| n.get(&m.hostname));
            let before = &prior_nodes[&m.hostname];
            let target = &cluster.talos_version_text;
            let config_changed = planned.map(|p| p.attr("config_hash"))
                != Some(before.attr("config_hash"))
                || before.attr("stage").as_str() != Some("running");
            if config_changed && let Err(d) = Self::converge(&run, &cluster, &secrets, m).await {
                diags.push(d);
                break;
            }
            if before.attr("talos_version").as_str() != Some(target.as_str()) {
                let image = cluster.spec.install_image.clone();
                let image = if image.is_empty() {
                    default_installer(target)
                } else {
                    image
                };
                if let Err(d) = run.upgrade(m, &image, target).await {
                    diags.push(d);
                    break;
                }
            }
        }
        if !diags.has_errors()
            && let Err(d) = Self::finish(
                &run,
                &cluster,
                &secrets,
                &mut state,
                &mut private,
                fetch_kubeconfig,
            )
            .await
        {
            diags.push(d);
        }
        if diags.has_errors() {
            // Machines removed so far are gone; the rest as they are.
            let mut machines = cluster.machines.clone();
            machines.extend(
                state_machines(&req.prior)
                    .into_iter()
                    .filter(|m| cluster.machine(&m.hostname).is_none()),
            );
            let nodes = Self::observed_nodes(&run, &machines, &req.prior).await;
            state.set_attr("nodes", nodes);
            if state.attr("kubeconfig").is_null() {
                state.set_attr("kubeconfig", req.prior.attr("kubeconfig").clone());
            }
        }
        StateResponse {
            state,
            private,
            diags,
        }
    }

    async fn delete(&self, ctx: &Ctx, req: DeleteRequest) -> Diagnostics {
        let od = req.prior.attr("on_destroy");
        // A create that failed never got its kubeconfig (see `create`).
        let incomplete = req.prior.attr("kubeconfig").is_null();
        let reset = od.attr("reset").as_bool() == Some(true);
        if !reset && !incomplete {
            return Diagnostics::new();
        }
        // Destroy must always be possible: what cannot be reset is said, not refused.
        let creds = match creds_of(&req.prior) {
            Ok(c) => c,
            Err(d) => {
                return Diagnostic::warning(
                    "Talos cluster forgotten without resetting its machines",
                    format!(
                        "{} The machines were left as they are; reset them by hand if they \
                         should go back to maintenance mode.",
                        d.detail
                    ),
                )
                .into();
            }
        };
        let run = Run {
            ctx,
            deadline: Instant::now() + timeout(&req.prior, "delete", DELETE_TIMEOUT),
            creds: &creds,
            boot_timeout: req
                .prior
                .attr("boot_timeout")
                .as_str()
                .and_then(|t| tfplugin::framework::timeouts::parse_duration(t).ok())
                .unwrap_or(DEFAULT_BOOT_TIMEOUT),
        };
        let wipe = match od.attr("wipe_mode").as_str() {
            Some("system_disk") => WipeMode::SystemDisk,
            Some("user_disks") => WipeMode::UserDisks,
            _ => WipeMode::All,
        };
        // A cluster that never became whole has nothing to leave gracefully.
        let graceful = !incomplete && od.attr("graceful").as_bool() != Some(false);
        let mut diags = Diagnostics::new();
        // An address no client can use (state written by an older provider, or edited) is
        // skipped with a warning rather than failing the destroy.
        let (machines, unusable): (Vec<Machine>, Vec<Machine>) = state_machines(&req.prior)
            .into_iter()
            .partition(|m| run.authenticated(m).is_ok());
        for m in unusable {
            diags.push(Diagnostic::warning(
                format!("Talos machine {} not reset", m.hostname),
                format!(
                    "Its address in state, {:?}, cannot be used to reach it; it was left as it \
                     is. Reset it by hand if it should go back to maintenance mode.",
                    m.address
                ),
            ));
        }
        let opts = ResetOptions {
            graceful,
            reboot: true,
            wipe,
        };
        let (workers, cps): (Vec<&Machine>, Vec<&Machine>) =
            machines.iter().partition(|m| m.role == Role::Worker);
        let run = &run;
        diags.extend(
            each(workers.into_iter(), |m| async move {
                run.reset(m, opts).await.map(|_| ())
            })
            .await,
        );
        // Control planes one by one: each graceful leave needs the others' quorum.
        for m in cps {
            if let Err(d) = run.reset(m, opts).await {
                diags.push(d);
            }
        }
        diags
    }

    async fn import(&self, _ctx: &Ctx, _id: &str) -> StateResponse {
        StateResponse::error(Diagnostic::error(
            "infraflux_talos_cluster cannot be imported",
            "Importing cannot bring the cluster's secrets along. To manage an existing cluster, \
             declare it and give its secrets once with `machine_secrets_wo` (see the guide \
             \"Adopting an existing Talos cluster\").",
        ))
    }
}
