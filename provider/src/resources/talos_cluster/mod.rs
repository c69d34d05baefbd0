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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::join_all;
use infraflux_talos::client::{ResetOptions, WipeMode};
use infraflux_talos::digest::config_hash;
use infraflux_talos::pem;
use infraflux_talos::render::{NodeSpec, Role};
use infraflux_talos::secrets::{CLIENT_VALIDITY, ClientConfiguration, MachineSecrets};
use infraflux_talos::talosconfig;
use tfplugin::framework::resource::{PlanRequest, PlanResponse, Private};
use tfplugin::framework::timeouts::timeout;
use tfplugin::{
    AttributePath, CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics, ReadRequest,
    Resource, Schema, StateResponse, UpdateRequest, Value,
};
use time::OffsetDateTime;

use flow::{Observed, Run, fail};
use spec::{Cluster, Machine, Parsed, default_installer};

const CREATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Private-state flag: etcd was bootstrapped (never bootstrap twice).
const BOOTSTRAPPED: &str = "bootstrapped";

#[derive(Default)]
pub struct TalosCluster;

fn secrets_of(state: &Value) -> Result<MachineSecrets, Diagnostic> {
    let text = state.attr("machine_secrets").as_str().unwrap_or_default();
    MachineSecrets::from_json(text).map_err(|e| {
        Diagnostic::error(
            "The machine secrets in state are unusable",
            format!("{e}. The state was changed outside Terraform; restore it from a backup."),
        )
        .at(AttributePath::attr("machine_secrets"))
    })
}

fn creds_of(state: &Value) -> Result<ClientConfiguration, Diagnostic> {
    let c = state.attr("client_configuration");
    match (c.attr("ca").as_str(), c.attr("crt").as_str(), c.attr("key").as_str()) {
        (Some(ca), Some(crt), Some(key)) => Ok(ClientConfiguration {
            ca: ca.into(),
            crt: crt.into(),
            key: key.into(),
        }),
        _ => Err(Diagnostic::error(
            "No client configuration in state",
            "The cluster's talosctl credentials are missing from state; restore the state from a backup.",
        )
        .at(AttributePath::attr("client_configuration"))),
    }
}

fn creds_value(c: &ClientConfiguration) -> Value {
    Value::object([
        ("ca", Value::from(c.ca.as_str())),
        ("crt", Value::from(c.crt.as_str())),
        ("key", Value::from(c.key.as_str())),
    ])
}

/// Hex SHA-256 of the Kubernetes CA certificate's DER.
fn ca_fingerprint(secrets: &MachineSecrets) -> Value {
    match pem::decode_labelled(&secrets.kubernetes_ca.crt, pem::CERTIFICATE) {
        Ok(der) => {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
            Value::from(hex::encode(d.as_ref()))
        }
        Err(_) => Value::Null,
    }
}

fn opt(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::from)
}

/// One `nodes` entry.
fn entry(m: &Machine, stage: &str, version: Value, etcd: Value, hash: Value) -> Value {
    Value::object([
        ("role", Value::from(m.role_name())),
        ("address", Value::from(m.address.as_str())),
        ("stage", Value::from(stage)),
        ("talos_version", version),
        ("etcd_member_id", etcd),
        ("config_hash", hash),
    ])
}

/// A machine as state remembers it (for removal, reset and read).
fn machine_from_state(hostname: &str, e: &Value) -> Machine {
    let role = if e.attr("role").as_str() == Some("controlplane") {
        Role::ControlPlane
    } else {
        Role::Worker
    };
    Machine {
        hostname: hostname.to_owned(),
        index: None,
        role,
        address: e.attr("address").as_str().unwrap_or_default().to_owned(),
        spec: NodeSpec {
            role,
            hostname: hostname.to_owned(),
            install_disk: None,
            config_patches: Vec::new(),
        },
    }
}

fn state_machines(state: &Value) -> Vec<Machine> {
    let mut v: Vec<Machine> = state
        .attr("nodes")
        .as_map()
        .map(|m| m.iter().map(|(h, e)| machine_from_state(h, e)).collect())
        .unwrap_or_default();
    // Control planes last when resetting: workers first keeps etcd whole longest.
    v.sort_by_key(|m| (m.role == Role::ControlPlane, m.hostname.clone()));
    v
}

fn talosconfig_value(cluster: &Cluster, creds: &ClientConfiguration) -> Value {
    let nodes: Vec<String> = cluster.addresses().into_values().collect();
    Value::from(talosconfig::render(
        &cluster.spec.name,
        &cluster.endpoints(),
        &nodes,
        creds,
    ))
}

fn etcd_ids(members: &[infraflux_talos::client::EtcdMember]) -> BTreeMap<String, String> {
    members
        .iter()
        .map(|m| (m.hostname.clone(), format!("{:016x}", m.id)))
        .collect()
}

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
            .map_err(|e| cluster.render_error(&e))?;
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
                .map_err(|e| cluster.render_error(&e))?;
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
        if let Parsed::Invalid(d) = Cluster::from_config(config) {
            diags.extend(d);
        }
    }

    async fn modify_plan(&self, ctx: &Ctx, req: &PlanRequest<'_>, resp: &mut PlanResponse) {
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
        let secrets = match secrets_of(prior) {
            Ok(s) => s,
            Err(d) => {
                resp.diags.push(d);
                return;
            }
        };
        let mut nodes = BTreeMap::new();
        for m in &cluster.machines {
            let hash = match cluster.render(m, &secrets) {
                Ok(c) => opt(config_hash(&c)),
                Err(e) => {
                    resp.diags.push(cluster.render_error(&e));
                    return;
                }
            };
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
        let secrets = match req.config.attr("machine_secrets_wo").as_str() {
            Some(text) => match MachineSecrets::from_json(text) {
                Ok(s) => s,
                Err(e) => {
                    return StateResponse::error(
                        Diagnostic::error(
                            "Invalid machine_secrets_wo",
                            format!(
                                "{e}. Give the `machine_secrets` JSON of the cluster to adopt."
                            ),
                        )
                        .at(AttributePath::attr("machine_secrets_wo")),
                    );
                }
            },
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
        state.set_attr("machine_secrets", Value::from(secrets_json));
        state.set_attr("client_configuration", creds_value(&creds));
        state.set_attr("kubernetes_ca_fingerprint", ca_fingerprint(&secrets));
        state.set_attr("talosconfig", talosconfig_value(&cluster, &creds));
        state.set_attr("kubeconfig", Value::Null);
        let mut private = Private::new();
        let run = Run {
            ctx,
            deadline,
            creds: &creds,
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
        let creds = match creds_of(&req.state) {
            Ok(c) => c,
            Err(d) => return StateResponse::error(d),
        };
        let run = Run {
            ctx,
            deadline: Instant::now() + Duration::from_secs(30),
            creds: &creds,
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
        let creds = match creds_of(&req.prior) {
            Ok(c) => c,
            Err(d) => return d.into(),
        };
        let run = Run {
            ctx,
            deadline: Instant::now() + timeout(&req.prior, "delete", DELETE_TIMEOUT),
            creds: &creds,
        };
        let wipe = match od.attr("wipe_mode").as_str() {
            Some("system_disk") => WipeMode::SystemDisk,
            Some("user_disks") => WipeMode::UserDisks,
            _ => WipeMode::All,
        };
        // A cluster that never became whole has nothing to leave gracefully.
        let graceful = !incomplete && od.attr("graceful").as_bool() != Some(false);
        let machines = state_machines(&req.prior);
        let opts = ResetOptions {
            graceful,
            reboot: true,
            wipe,
        };
        let (workers, cps): (Vec<&Machine>, Vec<&Machine>) =
            machines.iter().partition(|m| m.role == Role::Worker);
        let run = &run;
        let mut diags = each(workers.into_iter(), |m| async move {
            run.reset(m, opts).await.map(|_| ())
        })
        .await;
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

/// An error when every control plane the cluster had is back in maintenance mode (as Read saw
/// them): etcd's data went with their disks, so configuring them again would only wait for a
/// cluster that cannot come back.
fn etcd_lost(cluster: &Cluster, prior: &Value) -> Option<Diagnostic> {
    let nodes = prior.attr("nodes").as_map()?;
    let had: Vec<&Machine> = cluster
        .control_planes()
        .filter(|m| nodes.contains_key(&m.hostname))
        .collect();
    let all_blank = !had.is_empty()
        && had
            .iter()
            .all(|m| nodes[&m.hostname].attr("stage").as_str() == Some("maintenance"));
    all_blank.then(|| {
        let names: Vec<&str> = had.iter().map(|m| m.hostname.as_str()).collect();
        Diagnostic::error(
            "Talos cluster: every control plane lost its state",
            format!(
                "etcd has 0 of {} members: the control planes ({}) are all back in maintenance mode \
                 (reinstalled, or a lab that restarted), so the cluster's etcd data is gone and it \
                 was never bootstrapped on these machines. Replace the cluster to bootstrap it anew \
                 (terraform apply -replace=<this resource>), or see \
                 docs/guides/adopting-an-existing-cluster.md if its data lives elsewhere.",
                had.len(),
                names.join(", ")
            ),
        )
    })
}
