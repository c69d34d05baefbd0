//! Argo CD's application controller, simulated: once a StatefulSet named
//! `argocd-application-controller` has a ready pod and the `applications.argoproj.io` CRD is
//! Established, the controller reconciles the Applications in the StatefulSet's namespace
//! every [`TICK`]:
//!
//! - a directory source in a repository the lab was told about ([`repo::GitRepo`]) is read
//!   from the local checkout, compared with the live objects and, on a sync, applied with
//!   server-side apply (field manager `argocd-controller`) wave by wave ([`sync`]);
//! - any other source (a Helm chart, an unknown repository) gets the `ComparisonError` a
//!   real controller reports when the repo-server cannot reach the repository: the lab
//!   renders no charts;
//! - status (`sync`, `health`, `resources`, `operationState`, `conditions`, `reconciledAt`)
//!   is written like the real controller does, with a JSON patch of the Application;
//! - deleting an Application with `resources-finalizer.argocd.argoproj.io` deletes what it
//!   manages (child Applications too) before the finalizer goes.
//!
//! The controller is an API client: its requests go through the API server's handler
//! ([`client`]), so validation, admission and watches see them as any other.

pub mod app;
pub mod client;
pub mod health;
pub mod repo;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::k8s::ApiServer;
use crate::k8s::store;
pub use repo::GitRepo;

/// How often the controller reconciles (the real one reacts to watch events and refreshes
/// every `timeout.reconciliation`, 180 s by default).
pub const TICK: Duration = Duration::from_millis(100);

/// The application controller's StatefulSet name in the install manifest.
pub const STATEFULSET: &str = "argocd-application-controller";

/// Run the controller for one API server until `stop` (the server stopping).
pub async fn run(api: Arc<ApiServer>, repos: Arc<Vec<GitRepo>>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for ns in namespaces(&api) {
                    app::reconcile_namespace(&api, &repos, &ns).await;
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// The namespaces where a controller runs: its StatefulSet has a ready pod, and the
/// Application CRD is Established (else a real controller crash-loops on its informer).
pub fn namespaces(api: &ApiServer) -> Vec<String> {
    if api
        .store
        .find("argoproj.io", "v1alpha1", "applications")
        .is_none()
    {
        return Vec::new();
    }
    let Some(sts) = store::kind_in("apps", "statefulsets") else {
        return Vec::new();
    };
    let (items, _) = api.store.list(sts, None);
    items
        .into_iter()
        .filter(|s| s["metadata"]["name"] == STATEFULSET)
        .map(|s| api.view(sts, s))
        .filter(|s| s["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0)
        .filter_map(|s| s["metadata"]["namespace"].as_str().map(str::to_string))
        .collect()
}
