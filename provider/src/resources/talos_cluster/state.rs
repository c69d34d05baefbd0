//! What the state holds and what is read back from it: secrets, credentials, `nodes`
//! entries, machines as state remembers them, and the refusals that compare state with
//! the configuration.

use std::collections::BTreeMap;

use infraflux_talos::pem;
use infraflux_talos::render::{NodeSpec, Role};
use infraflux_talos::secrets::{ClientConfiguration, MachineSecrets};
use infraflux_talos::talosconfig;
use tfplugin::{AttributePath, Diagnostic, Value};

use super::spec::{Cluster, Machine};

pub(super) fn secrets_of(state: &Value) -> Result<MachineSecrets, Diagnostic> {
    let text = state.attr("machine_secrets").as_str().unwrap_or_default();
    MachineSecrets::from_json(text).map_err(|e| {
        Diagnostic::error(
            "The machine secrets in state are unusable",
            format!("{e}. The state was changed outside Terraform; restore it from a backup."),
        )
        .at(AttributePath::attr("machine_secrets"))
    })
}

pub(super) fn creds_of(state: &Value) -> Result<ClientConfiguration, Diagnostic> {
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

pub(super) fn creds_value(c: &ClientConfiguration) -> Value {
    Value::object([
        ("ca", Value::from(c.ca.as_str())),
        ("crt", Value::from(c.crt.as_str())),
        ("key", Value::from(c.key.as_str())),
    ])
}

/// Hex SHA-256 of the Kubernetes CA certificate's DER.
pub(super) fn ca_fingerprint(secrets: &MachineSecrets) -> Value {
    match pem::decode_labelled(&secrets.kubernetes_ca.crt, pem::CERTIFICATE) {
        Ok(der) => {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
            Value::from(hex::encode(d.as_ref()))
        }
        Err(_) => Value::Null,
    }
}

pub(super) fn opt(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::from)
}

/// One `nodes` entry.
pub(super) fn entry(m: &Machine, stage: &str, version: Value, etcd: Value, hash: Value) -> Value {
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
pub(super) fn machine_from_state(hostname: &str, e: &Value) -> Machine {
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

pub(super) fn state_machines(state: &Value) -> Vec<Machine> {
    let mut v: Vec<Machine> = state
        .attr("nodes")
        .as_map()
        .map(|m| m.iter().map(|(h, e)| machine_from_state(h, e)).collect())
        .unwrap_or_default();
    // Control planes last when resetting: workers first keeps etcd whole longest.
    v.sort_by_key(|m| (m.role == Role::ControlPlane, m.hostname.clone()));
    v
}

pub(super) fn talosconfig_value(cluster: &Cluster, creds: &ClientConfiguration) -> Value {
    let nodes: Vec<String> = cluster.addresses().into_values().collect();
    Value::from(talosconfig::render(
        &cluster.spec.name,
        &cluster.endpoints(),
        &nodes,
        creds,
    ))
}

pub(super) fn etcd_ids(
    members: &[infraflux_talos::client::EtcdMember],
) -> BTreeMap<String, String> {
    members
        .iter()
        .map(|m| (m.hostname.clone(), format!("{:016x}", m.id)))
        .collect()
}

/// An error when the configuration gives other secrets than the cluster has: its machines run
/// with the old ones, which cannot be swapped in place.
pub(super) fn secrets_changed(planned: &Value, prior: &Value) -> Option<Diagnostic> {
    let (Some(now), Some(before)) = (
        planned.attr("machine_secrets").as_str(),
        prior.attr("machine_secrets").as_str(),
    ) else {
        return None;
    };
    (now != before).then(|| {
        Diagnostic::error(
            "machine_secrets cannot change",
            "The configuration gives other machine secrets than this cluster was created with, \
             and its machines run with those: they cannot be swapped in place. If the \
             infraflux_talos_machine_secrets resource was replaced or recreated by mistake, \
             restore it: terraform import it from a file holding this cluster's machine_secrets \
             (terraform output of the old value, or a state backup). To build a new cluster with \
             new secrets instead, destroy this one first.",
        )
        .at(AttributePath::attr("machine_secrets"))
    })
}

/// An error when every control plane the cluster had is back in maintenance mode (as Read saw
/// them): etcd's data went with their disks, so configuring them again would only wait for a
/// cluster that cannot come back.
pub(super) fn etcd_lost(cluster: &Cluster, prior: &Value) -> Option<Diagnostic> {
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
