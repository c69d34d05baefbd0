//! The steps against the cluster, through the apply engine: connect, apply and wait, read
//! drift, delete. Errors become diagnostics that name the attribute or the object.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use infraflux_kube::{Engine, Error as KubeError, Inventory, ObjectRef};
use serde_json::Value as Json;
use tfplugin::{Ctx, Diagnostic};

use super::state::engine_inventory;

/// The label that marks our objects, so a lost state can be rebuilt (import).
pub const INVENTORY_LABEL: (&str, &str) = ("infraflux.dev/install", "cilium");
/// The taint cilium-operator keeps on a node until its agent runs there.
pub const AGENT_NOT_READY_TAINT: &str = "node.cilium.io/agent-not-ready";

use crate::resources::kube_common;
pub use crate::resources::kube_common::{Applied, key_of, kube_diag, refresh};

/// The engine for the cluster the kubeconfig names.
pub fn connect(kubeconfig: Option<&str>) -> Result<Engine, Diagnostic> {
    crate::resources::kube_common::connect(kubeconfig, INVENTORY_LABEL)
}

fn progress(msg: &str) {
    tracing::info!(target: "infraflux::cilium", "{msg}");
}

/// Applies `objects` over `previous` (pruning what left), then waits for the agents, the
/// operator and the nodes, within `timeout`. Failures keep in the inventory what may exist.
pub async fn apply_and_wait(
    ctx: &Ctx,
    engine: &Engine,
    objects: &[Json],
    built: &BTreeMap<String, String>,
    previous: &Inventory,
    timeout: Duration,
) -> Applied {
    let started = Instant::now();
    let keep = |_: &ObjectRef| false;
    let applied = kube_common::apply(
        ctx, engine, objects, built, previous, &keep, timeout, "Cilium", &progress,
    );
    let inventory = match applied.await {
        Ok(inv) => inv,
        Err(failed) => return failed,
    };
    let engine_inv = engine_inventory(&inventory);
    let left = |started: Instant| timeout.saturating_sub(started.elapsed());
    let waited = tokio::select! {
        () = ctx.cancel.cancelled() => Err(Diagnostic::error(
            "Cilium install interrupted",
            "Terraform asked the provider to stop while waiting for Cilium to become ready; \
             every object is applied.")),
        r = async {
            engine.wait_ready(&engine_inv, left(started), &progress).await?;
            engine.wait_nodes(Some(AGENT_NOT_READY_TAINT), left(started), &progress).await
        } => r.map_err(|e| kube_diag("Cilium did not become ready", &e)),
    };
    Applied {
        inventory,
        error: waited.err(),
    }
}

/// Deletes what the inventory names and waits until it is gone.
pub async fn delete(
    ctx: &Ctx,
    engine: &Engine,
    inventory: &Inventory,
    timeout: Duration,
) -> Result<(), Diagnostic> {
    tokio::select! {
        () = ctx.cancel.cancelled() => Err(Diagnostic::error(
            "Cilium removal interrupted",
            "Terraform asked the provider to stop; run destroy again to finish.")),
        r = engine.delete(inventory, timeout, &progress) =>
            r.map_err(|e| kube_diag("Cannot remove the Cilium objects", &e)),
    }
}

/// The certificates of an install found in the cluster (`cilium-ca` and the Hubble TLS
/// Secrets), when all three are there.
pub async fn certificates_in_cluster(
    engine: &Engine,
) -> Result<Option<infraflux_cilium::Certificates>, KubeError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let secret = |name: &str| ObjectRef {
        group: String::new(),
        version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some("kube-system".into()),
        name: name.into(),
    };
    let mut found = Vec::new();
    for (name, cert, key) in [
        ("cilium-ca", "ca.crt", "ca.key"),
        ("hubble-server-certs", "tls.crt", "tls.key"),
        ("hubble-relay-client-certs", "tls.crt", "tls.key"),
    ] {
        let Some(s) = engine.get(&secret(name)).await? else {
            return Ok(None);
        };
        let field = |k: &str| {
            s["data"][k]
                .as_str()
                .and_then(|v| b64.decode(v).ok())
                .and_then(|v| String::from_utf8(v).ok())
        };
        let (Some(cert_pem), Some(key_pem)) = (field(cert), field(key)) else {
            return Ok(None);
        };
        found.push(infraflux_cilium::CertKey { cert_pem, key_pem });
    }
    let mut it = found.into_iter();
    match (it.next(), it.next(), it.next()) {
        (Some(ca), Some(hubble_server), Some(hubble_relay_client)) => {
            Ok(Some(infraflux_cilium::Certificates {
                ca,
                hubble_server,
                hubble_relay_client,
            }))
        }
        _ => Ok(None),
    }
}
