//! The steps against the cluster, through the apply engine: apply and wait for the
//! Deployments and the application controller's StatefulSet; delete the root Application
//! first (while the application controller still runs to handle its finalizer), then the rest.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use infraflux_kube::{Engine, Inventory, ObjectRef};
use serde_json::{Value as Json, json};
use tfplugin::{Ctx, Diagnostic};

pub use crate::resources::kube_common::Applied;
use crate::resources::kube_common::{self, engine_inventory, kube_diag};

use super::build::is_application;

/// The label that marks our objects.
pub const INVENTORY_LABEL: (&str, &str) = ("infraflux.dev/install", "argocd");

fn progress(msg: &str) {
    tracing::info!(target: "infraflux::argocd", "{msg}");
}

/// Applies `objects` over `previous` (pruning what left, sparing what `keep` names), then
/// waits for the workloads, within `timeout`. Failures keep in the inventory what may exist.
pub async fn apply_and_wait(
    ctx: &Ctx,
    engine: &Engine,
    objects: &[Json],
    built: &BTreeMap<String, String>,
    previous: &Inventory,
    keep: &(dyn Fn(&ObjectRef) -> bool + Send + Sync),
    timeout: Duration,
) -> Applied {
    let started = Instant::now();
    let applied = kube_common::apply(
        ctx, engine, objects, built, previous, keep, timeout, "Argo CD", &progress,
    );
    let inventory = match applied.await {
        Ok(inv) => inv,
        Err(failed) => return failed,
    };
    let engine_inv = engine_inventory(&inventory);
    let left = timeout.saturating_sub(started.elapsed());
    let waited = tokio::select! {
        () = ctx.cancel.cancelled() => Err(Diagnostic::error(
            "Argo CD install interrupted",
            "Terraform asked the provider to stop while waiting for Argo CD to become ready; \
             every object is applied.")),
        r = engine.wait_ready(&engine_inv, left, &progress) =>
            r.map_err(|e| kube_diag("Argo CD did not become ready", &e)),
    };
    Applied {
        inventory,
        error: waited.err(),
    }
}

/// Deletes the inventory: the Applications first, waited until gone (Argo CD's application
/// controller handles their finalizer while it still runs), then everything else.
/// `orphan_apps` are the Applications to apply without their finalizer before deleting them,
/// so the workloads they deployed stay.
pub async fn delete(
    ctx: &Ctx,
    engine: &Engine,
    inventory: &BTreeMap<String, String>,
    orphan_apps: &[Json],
    timeout: Duration,
) -> Result<(), Diagnostic> {
    let started = Instant::now();
    let (apps, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = inventory
        .iter()
        .map(|(k, h)| (k.clone(), h.clone()))
        .partition(|(k, _)| is_application(k));
    let steps = async {
        if !apps.is_empty() {
            let apps_inv = engine_inventory(&apps);
            // Only the ones still there: applying a gone one would create it again.
            let mut present = Vec::new();
            for app in orphan_apps {
                let r = ObjectRef::from_object(app)
                    .map_err(|e| kube_diag("Invalid root Application", &e))?;
                if engine
                    .get(&r)
                    .await
                    .map_err(|e| kube_diag("Cannot read the root Application", &e))?
                    .is_some()
                {
                    present.push(app.clone());
                }
            }
            if !present.is_empty() {
                let keep_all = |_: &ObjectRef| true;
                engine
                    .apply(&present, &apps_inv, &keep_all, &progress)
                    .await
                    .map_err(|e| {
                        kube_diag("Cannot remove the root Application's finalizer", &e.error)
                    })?;
            }
            engine
                .delete(&apps_inv, timeout, &progress)
                .await
                .map_err(|e| {
                    let mut d = kube_diag("The root Application was not deleted", &e);
                    d.detail.push_str(
                        " Argo CD's application controller removes the finalizer \
                         resources-finalizer.argocd.argoproj.io once it has deleted what the \
                         Application deployed; if the controller is not running, set \
                         on_destroy { keep_applications = true } and apply, so the Application \
                         is deleted without it (its workloads stay).",
                    );
                    d
                })?;
        }
        engine
            .delete(
                &engine_inventory(&rest),
                timeout.saturating_sub(started.elapsed()),
                &progress,
            )
            .await
            .map_err(|e| kube_diag("Cannot remove the Argo CD objects", &e))
    };
    tokio::select! {
        () = ctx.cancel.cancelled() => Err(Diagnostic::error(
            "Argo CD removal interrupted",
            "Terraform asked the provider to stop; run destroy again to finish.")),
        r = steps => r,
    }
}

/// `app` as applied by us without any finalizer: server-side apply then drops the one we set.
pub fn without_finalizer(mut app: Json) -> Json {
    app["metadata"]["finalizers"] = json!([]);
    app
}
