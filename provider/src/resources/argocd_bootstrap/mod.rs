//! `infraflux_argocd_bootstrap`: Argo CD from its upstream install manifest (`infraflux-argocd`
//! builds the objects) applied through the Kubernetes apply engine (`infraflux-kube`). No Argo
//! CD API, ever.
//!
//! - [`schema`]; [`options`]: the configuration typed; [`source`]: the manifest read or
//!   fetched and verified at plan (cached by digest); [`build`]: the objects, the admin hash in
//!   private state; [`apply`]: the steps against the cluster.
//! - Plan needs no cluster: `inventory` maps each object to its hash. Before a new password is
//!   hashed the `argocd-secret` hash is unknown; an unchanged password reuses the kept hash, so
//!   the plan stays empty.
//! - Create and update apply in order, prune what left (never `argocd-redis`), then wait for the
//!   Deployments and the application controller. A failure keeps in state what may exist.
//! - Read reports drift per object in `inventory`; a cluster that cannot be read keeps state.
//! - Delete removes the root Application first (Argo CD still runs to handle its finalizer),
//!   then the rest; `on_destroy.keep_applications` drops the finalizer first (orphan).

mod apply;
mod build;
mod options;
mod schema;
mod source;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use infraflux_argocd::admin;
use tfplugin::framework::resource::{PlanRequest, PlanResponse, Private};
use tfplugin::framework::timeouts::timeout;
use tfplugin::{
    CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics, ReadRequest, Resource, Schema,
    StateResponse, UpdateRequest, Value,
};
use time::OffsetDateTime;

use super::kube_common::{
    connect, engine_inventory, inventory_map, inventory_value, kube_diag, refresh,
};
use super::terraform_run::demote_when_destroying;
use build::{Admin, admin_for, admin_secret_key, inventory_of, keep_admin, placeholder_admin};
use options::Settings;

const CREATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

#[derive(Default)]
pub struct ArgocdBootstrap;

/// The admin password the plan carries: the configured one, else the one in state (generated
/// earlier); unknown when it is yet to be generated.
fn planned_password(config: &Value, prior: &Value) -> Value {
    match config.attr("admin_password") {
        Value::Null => match prior.attr("admin_password") {
            v @ Value::String(_) => v.clone(),
            _ => Value::Unknown,
        },
        v => v.clone(),
    }
}

/// The hash for `password`: the kept one when it matches, else a new one (kept).
async fn admin_hash(private: &mut Private, password: &str) -> Result<Admin, Diagnostic> {
    if let Some(a) = admin_for(private, password) {
        return Ok(a);
    }
    let pw = password.to_string();
    // bcrypt is slow on purpose: off the plugin server's thread.
    let hash = tokio::task::spawn_blocking(move || admin::hash_password(&pw))
        .await
        .map_err(|e| Diagnostic::error("Cannot hash the admin password", e.to_string()))?
        .map_err(|e| options::diagnostic(&e, "admin_password"))?;
    let a = Admin {
        hash,
        mtime: admin::format_mtime(OffsetDateTime::now_utc()),
    };
    keep_admin(private, &a);
    Ok(a)
}

impl ArgocdBootstrap {
    /// Create and update: build, apply over `previous`, wait; the state of what exists.
    /// `planned` is the plan (every option known).
    async fn converge(
        ctx: &Ctx,
        planned: Value,
        mut private: Private,
        previous: BTreeMap<String, String>,
        limit: Duration,
    ) -> StateResponse {
        let fail = |d: Diagnostic, private: Private| StateResponse {
            state: Value::Null,
            private,
            diags: d.into(),
        };
        let settings = match options::settings(&planned) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return fail(
                    Diagnostic::error(
                        "Argo CD options unknown at apply",
                        "Every option must be known when applying. This is a provider bug; \
                         please report it.",
                    ),
                    private,
                );
            }
            Err(d) => return fail(d, private),
        };
        let manifest = match source::manifest(&settings).await {
            Ok(m) => m,
            Err(d) => return fail(d, private),
        };
        let password = match planned.attr("admin_password").as_str() {
            Some(p) => p.to_string(),
            None => match admin::generate_password() {
                Ok(p) => p,
                Err(e) => return fail(options::diagnostic(&e, "admin_password"), private),
            },
        };
        let admin = match admin_hash(&mut private, &password).await {
            Ok(a) => a,
            Err(d) => return fail(d, private),
        };
        let objects = match build::objects(&settings, &manifest, &admin) {
            Ok(o) => o,
            Err(d) => return fail(d, private),
        };
        let engine = match connect(planned.attr("kubeconfig").as_str(), apply::INVENTORY_LABEL) {
            Ok(e) => e,
            Err(d) => return fail(d, private),
        };
        let built = inventory_of(&objects);
        let ns = settings.options.namespace.clone();
        let keep = move |r: &infraflux_kube::ObjectRef| build::never_prune(&ns, r);
        let applied = apply::apply_and_wait(
            ctx,
            &engine,
            &objects,
            &built,
            &engine_inventory(&previous),
            &keep,
            limit,
        )
        .await;
        let mut state = state_of(planned, &settings, &applied.inventory);
        state.set_attr("admin_password", Value::from(password));
        let mut diags = Diagnostics::new();
        if let Some(e) = applied.error {
            diags.push(e);
        }
        StateResponse {
            state,
            private,
            diags,
        }
    }
}

/// The plan with the computed values of an apply set.
fn state_of(mut s: Value, settings: &Settings, inventory: &BTreeMap<String, String>) -> Value {
    s.set_attr("id", Value::from(settings.id()));
    s.set_attr("inventory", inventory_value(inventory, &[]));
    s.set_attr("server_address", Value::from(settings.server_address()));
    s
}

#[async_trait]
impl Resource for ArgocdBootstrap {
    fn type_name(&self) -> &'static str {
        "infraflux_argocd_bootstrap"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let mut d = Diagnostics::new();
        if let Err(e) = options::settings(config) {
            d.push(e);
        }
        demote_when_destroying(&mut d);
        diags.extend(d);
    }

    async fn modify_plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>, resp: &mut PlanResponse) {
        if req.config.is_null() {
            return;
        }
        let planned = &mut resp.planned;
        let password = planned_password(req.config, req.prior);
        planned.set_attr("admin_password", password.clone());
        let settings = match options::settings(req.config) {
            Ok(Some(s)) => s,
            Ok(None) => {
                for a in ["inventory", "server_address", "id"] {
                    planned.set_attr(a, Value::Unknown);
                }
                return;
            }
            Err(d) => {
                resp.diags.push(d);
                return;
            }
        };
        planned.set_attr("id", Value::from(settings.id()));
        planned.set_attr("server_address", Value::from(settings.server_address()));
        // The manifest is read and verified now: a wrong digest fails the plan, before
        // anything is applied.
        let manifest = match source::manifest(&settings).await {
            Ok(m) => m,
            Err(d) => {
                resp.diags.push(d);
                return;
            }
        };
        let kept = password.as_str().and_then(|p| admin_for(req.private, p));
        let unknown = if kept.is_some() {
            Vec::new()
        } else {
            vec![admin_secret_key(&settings)]
        };
        let admin = kept.unwrap_or_else(placeholder_admin);
        match build::objects(&settings, &manifest, &admin) {
            Ok(objects) => {
                planned.set_attr(
                    "inventory",
                    inventory_value(&inventory_of(&objects), &unknown),
                );
            }
            Err(d) => resp.diags.push(d),
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
        let Ok(Some(settings)) = options::settings(&resp.state) else {
            return resp;
        };
        let Some(admin) = build::kept_admin(&resp.private) else {
            return resp;
        };
        let inventory = inventory_map(resp.state.attr("inventory"));
        let refreshed = async {
            let manifest = source::manifest(&settings).await?;
            let objects = build::objects(&settings, &manifest, &admin)?;
            let engine = connect(
                resp.state.attr("kubeconfig").as_str(),
                apply::INVENTORY_LABEL,
            )?;
            refresh(&engine, &objects, &inventory)
                .await
                .map_err(|e| kube_diag("Cannot read the Argo CD objects", &e))
        }
        .await;
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

    async fn delete(&self, ctx: &Ctx, req: DeleteRequest) -> Diagnostics {
        let inventory = inventory_map(req.prior.attr("inventory"));
        if inventory.is_empty() {
            return Diagnostics::new();
        }
        let keep_apps = req
            .prior
            .attr("on_destroy")
            .attr("keep_applications")
            .as_bool()
            == Some(true);
        let orphan_apps: Vec<serde_json::Value> = if keep_apps {
            match options::settings(&req.prior) {
                Ok(Some(s)) => s
                    .root_app
                    .iter()
                    .filter_map(|a| a.build().ok())
                    .map(apply::without_finalizer)
                    .collect(),
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let limit = timeout(&req.prior, "delete", DELETE_TIMEOUT);
        let result = match connect(
            req.prior.attr("kubeconfig").as_str(),
            apply::INVENTORY_LABEL,
        ) {
            Ok(engine) => apply::delete(ctx, &engine, &inventory, &orphan_apps, limit).await,
            Err(d) => Err(d),
        };
        match result {
            Ok(()) => Diagnostics::new(),
            Err(d) => d.into(),
        }
    }
}
