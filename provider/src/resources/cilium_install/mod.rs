//! `infraflux_cilium_install`: Cilium's objects built from typed options (`infraflux-cilium`)
//! and applied through the Kubernetes apply engine (`infraflux-kube`).
//!
//! - [`schema`]; [`options`]: the configuration typed into the builder's options;
//!   [`state`]: certificates (private state) and the inventory; [`apply`]: the steps against
//!   the cluster.
//! - Plan needs no cluster: the objects are built from the options, and `inventory` maps each
//!   to its hash, so a plan names every object that changes. Before the first apply the TLS
//!   certificates do not exist: the objects carrying them have unknown hashes and
//!   `rendered_manifests` is unknown. They are made once, kept in private state, and replaced
//!   only when `rotate_certificates` changes.
//! - Create and update apply in order, prune what left, then wait for the agents, the
//!   operator and the nodes. A failure keeps in state every object that may exist; applying
//!   again converges (there is no release object and no "in progress" state).
//! - Read reports drift per object (missing, or owned fields changed) in `inventory`.
//! - Delete removes every object and waits, unless `on_destroy.keep`.

mod apply;
mod options;
mod schema;
mod state;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use infraflux_cilium::{Certificates, Manifests, Options};
use tfplugin::framework::resource::{PlanRequest, PlanResponse, Private};
use tfplugin::framework::timeouts::timeout;
use tfplugin::{
    CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics, ReadRequest, Resource, Schema,
    StateResponse, UpdateRequest, Value,
};
use time::OffsetDateTime;

use super::terraform_run::demote_when_destroying;
use state::{
    current_certs, engine_inventory, inventory_map, inventory_of, inventory_value, keep_certs,
    plan_without_certs,
};

const CREATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const ID: &str = "kube-system/cilium";

#[derive(Default)]
pub struct CiliumInstall;

/// The options and the builder's warnings, or the diagnostics that refuse them.
fn checked(config: &Value) -> Result<Option<(Options, Vec<String>)>, Diagnostic> {
    let Some(opts) = options::options(config) else {
        return Ok(None);
    };
    let warnings = infraflux_cilium::validate(&opts).map_err(|e| options::diagnostic(&e))?;
    Ok(Some((opts, warnings)))
}

fn warn(diags: &mut Diagnostics, warnings: &[String]) {
    for w in warnings {
        diags.push(Diagnostic::warning("Cilium option", w.clone()));
    }
}

/// The certificates the configuration wants: kept ones, or new ones (first apply, rotation).
async fn certificates(config: &Value, private: &mut Private) -> Result<Certificates, Diagnostic> {
    let rotation = config.attr("rotate_certificates");
    if let Some(c) = current_certs(private, rotation) {
        return Ok(c);
    }
    // RSA key generation takes a while: off the plugin server's thread.
    let made = tokio::task::spawn_blocking(|| Certificates::generate(OffsetDateTime::now_utc()))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| Diagnostic::error("Cannot make the Cilium certificates", e))?;
    keep_certs(private, &made, rotation);
    Ok(made)
}

fn build(opts: &Options, certs: &Certificates) -> Result<Manifests, Diagnostic> {
    infraflux_cilium::build(opts, certs).map_err(|e| options::diagnostic(&e))
}

/// The state after an apply: the configuration with the computed values set.
fn state_of(
    config: &Value,
    inventory: &BTreeMap<String, String>,
    manifests: &Manifests,
    certs: &Certificates,
) -> Value {
    let mut s = config.clone();
    s.set_attr("id", Value::from(ID));
    s.set_attr("inventory", inventory_value(inventory, &[]));
    s.set_attr(
        "rendered_manifests",
        state::rendered(manifests).map_or(Value::Null, Value::from),
    );
    s.set_attr("hubble_ca_cert", Value::from(certs.ca.cert_pem.as_str()));
    s.set_attr("cilium_version", config.attr("version").clone());
    s
}

impl CiliumInstall {
    /// Create and update: build, apply over `previous`, wait; the state of what exists.
    /// `config` is the plan (the configuration with defaults, every option known).
    async fn converge(
        ctx: &Ctx,
        config: Value,
        mut private: Private,
        previous: BTreeMap<String, String>,
        limit: Duration,
    ) -> StateResponse {
        let mut diags = Diagnostics::new();
        let (opts, warnings) = match checked(&config) {
            Ok(Some(o)) => o,
            Ok(None) => {
                return StateResponse::error(Diagnostic::error(
                    "Cilium options unknown at apply",
                    "Every option must be known when applying. This is a provider bug; please report it.",
                ));
            }
            Err(d) => return StateResponse::error(d),
        };
        warn(&mut diags, &warnings);
        let fail = |d: Diagnostic, private: Private| StateResponse {
            state: Value::Null,
            private,
            diags: d.into(),
        };
        let certs = match certificates(&config, &mut private).await {
            Ok(c) => c,
            Err(d) => return fail(d, private),
        };
        let manifests = match build(&opts, &certs) {
            Ok(m) => m,
            Err(d) => return fail(d, private),
        };
        let engine = match apply::connect(config.attr("kubeconfig").as_str()) {
            Ok(e) => e,
            Err(d) => return fail(d, private),
        };
        let built = inventory_of(&manifests.objects);
        let applied = apply::apply_and_wait(
            ctx,
            &engine,
            &manifests.objects,
            &built,
            &engine_inventory(&previous),
            limit,
        )
        .await;
        if let Some(e) = applied.error {
            diags.push(e);
            if applied.inventory.is_empty() {
                // Nothing reached the cluster: nothing to keep (a create leaves no state).
                return StateResponse {
                    state: Value::Null,
                    private,
                    diags,
                };
            }
        }
        StateResponse {
            state: state_of(&config, &applied.inventory, &manifests, &certs),
            private,
            diags,
        }
    }
}

#[async_trait]
impl Resource for CiliumInstall {
    fn type_name(&self) -> &'static str {
        "infraflux_cilium_install"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let mut d = Diagnostics::new();
        match checked(config) {
            Ok(Some((_, warnings))) => warn(&mut d, &warnings),
            Ok(None) => {}
            Err(e) => d.push(e),
        }
        demote_when_destroying(&mut d);
        diags.extend(d);
    }

    async fn modify_plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>, resp: &mut PlanResponse) {
        if req.config.is_null() {
            return;
        }
        let planned = &mut resp.planned;
        planned.set_attr("id", Value::from(ID));
        let opts = match checked(req.config) {
            Ok(Some((opts, _))) => opts,
            Ok(None) => {
                for a in ["inventory", "rendered_manifests", "cilium_version"] {
                    planned.set_attr(a, Value::Unknown);
                }
                return;
            }
            Err(d) => {
                resp.diags.push(d);
                return;
            }
        };
        planned.set_attr("cilium_version", Value::from(opts.version.as_str()));
        let rotation = req.config.attr("rotate_certificates");
        if let Some(certs) = current_certs(req.private, rotation) {
            match build(&opts, &certs) {
                Ok(m) => {
                    planned.set_attr("inventory", inventory_value(&inventory_of(&m.objects), &[]));
                    planned.set_attr(
                        "rendered_manifests",
                        state::rendered(&m).map_or(Value::Unknown, Value::from),
                    );
                    planned.set_attr("hubble_ca_cert", Value::from(certs.ca.cert_pem.as_str()));
                }
                Err(d) => resp.diags.push(d),
            }
        } else if let Some((inv, unknown)) = plan_without_certs(&opts) {
            planned.set_attr("inventory", inventory_value(&inv, &unknown));
            planned.set_attr("rendered_manifests", Value::Unknown);
            planned.set_attr("hubble_ca_cert", Value::Unknown);
        }
    }

    async fn create(&self, ctx: &Ctx, req: CreateRequest) -> StateResponse {
        let limit = timeout(&req.config, "create", CREATE_TIMEOUT);
        Self::converge(ctx, req.planned, req.private, BTreeMap::new(), limit).await
    }

    async fn read(&self, _ctx: &Ctx, req: ReadRequest) -> StateResponse {
        let mut resp = StateResponse {
            state: req.state,
            private: req.private,
            diags: Diagnostics::new(),
        };
        // Imported and never applied: nothing to compare with yet.
        if resp.state.attr("cilium_version").is_null() {
            return resp;
        }
        let Some(certs) = current_certs(&resp.private, resp.state.attr("rotate_certificates"))
        else {
            return resp;
        };
        let Ok(Some((opts, _))) = checked(&resp.state) else {
            return resp;
        };
        let Ok(manifests) = build(&opts, &certs) else {
            return resp;
        };
        let inventory = inventory_map(resp.state.attr("inventory"));
        let refreshed = match apply::connect(resp.state.attr("kubeconfig").as_str()) {
            Ok(engine) => apply::refresh(&engine, &manifests.objects, &inventory)
                .await
                .map_err(|e| apply::kube_diag("Cannot read the Cilium objects", &e)),
            Err(d) => Err(d),
        };
        crate::resources::kube_common::set_refreshed(&mut resp, refreshed);
        resp
    }

    async fn update(&self, ctx: &Ctx, req: UpdateRequest) -> StateResponse {
        let limit = timeout(&req.config, "update", UPDATE_TIMEOUT);
        let previous = inventory_map(req.prior.attr("inventory"));
        let mut resp = Self::converge(ctx, req.planned, req.private, previous, limit).await;
        if resp.state.is_null() {
            // Nothing was applied: what existed still does.
            resp.state = req.prior;
        }
        resp
    }

    /// The import ID is the path of a kubeconfig file (`~/` allowed), so no credential
    /// passes through a command line. The inventory is rebuilt from the objects' label and
    /// the certificates are read back from their Secrets; the next apply re-applies every
    /// object with the configured options.
    async fn import(&self, _ctx: &Ctx, id: &str) -> StateResponse {
        let path = match (id.strip_prefix("~/"), std::env::var("HOME")) {
            (Some(rest), Ok(home)) => format!("{home}/{rest}"),
            _ => id.to_string(),
        };
        let kubeconfig = match std::fs::read_to_string(&path) {
            Ok(k) => k,
            Err(e) => {
                return StateResponse::error(Diagnostic::error(
                    "Cannot read the kubeconfig to import with",
                    format!(
                        "{path}: {e}. The import ID is the path of the cluster's admin \
                         kubeconfig file."
                    ),
                ));
            }
        };
        let engine = match apply::connect(Some(&kubeconfig)) {
            Ok(e) => e,
            Err(d) => return StateResponse::error(d),
        };
        let found = match engine.import().await {
            Ok(inv) => inv,
            Err(e) => {
                return StateResponse::error(apply::kube_diag(
                    "Cannot list the Cilium objects",
                    &e,
                ));
            }
        };
        if found.entries.is_empty() {
            return StateResponse::error(Diagnostic::error(
                "No Cilium install to import",
                format!(
                    "The cluster at {path} has no object labelled {}={}: it was not installed \
                     by infraflux_cilium_install. Create the resource instead.",
                    apply::INVENTORY_LABEL.0,
                    apply::INVENTORY_LABEL.1
                ),
            ));
        }
        let mut private = Private::new();
        match apply::certificates_in_cluster(&engine).await {
            Ok(Some(certs)) => keep_certs(&mut private, &certs, &Value::Null),
            Ok(None) => {}
            Err(e) => {
                return StateResponse::error(apply::kube_diag(
                    "Cannot read the Cilium certificates",
                    &e,
                ));
            }
        }
        // Hashes are unknown to us: "imported" makes the next plan re-apply every object.
        let inventory: BTreeMap<String, String> = found
            .entries
            .iter()
            .map(|e| (apply::key_of(&e.object), "imported".to_string()))
            .collect();
        let mut state = match schema::schema().value_type() {
            tfplugin::Type::Object(ot) => {
                Value::object(ot.attrs.keys().map(|k| (k.clone(), Value::Null)))
            }
            _ => Value::object([("id", Value::Null)]),
        };
        state.set_attr("id", Value::from(ID));
        state.set_attr("kubeconfig", Value::from(kubeconfig));
        state.set_attr("inventory", inventory_value(&inventory, &[]));
        if let Some((certs, _)) = state::certs(&private) {
            state.set_attr("hubble_ca_cert", Value::from(certs.ca.cert_pem.as_str()));
        }
        StateResponse {
            state,
            private,
            diags: Diagnostics::new(),
        }
    }

    async fn delete(&self, ctx: &Ctx, req: DeleteRequest) -> Diagnostics {
        if req.prior.attr("on_destroy").attr("keep").as_bool() == Some(true) {
            tracing::info!("on_destroy.keep: the Cilium objects stay in the cluster");
            return Diagnostics::new();
        }
        let inventory = engine_inventory(&inventory_map(req.prior.attr("inventory")));
        if inventory.entries.is_empty() {
            return Diagnostics::new();
        }
        let limit = timeout(&req.prior, "delete", DELETE_TIMEOUT);
        let result = match apply::connect(req.prior.attr("kubeconfig").as_str()) {
            Ok(engine) => apply::delete(ctx, &engine, &inventory, limit).await,
            Err(d) => Err(d),
        };
        match result {
            Ok(()) => Diagnostics::new(),
            Err(mut d) => {
                d.detail.push_str(
                    " To forget the objects instead, set on_destroy { keep = true } and apply, \
                     or `terraform state rm` this resource.",
                );
                d.into()
            }
        }
    }
}
