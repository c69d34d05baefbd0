//! `infraflux_talos_machine_secrets`: a Talos cluster's machine secrets, generated once, in a
//! resource of their own.
//!
//! Terraform saves a resource's state when its operation completes, and nothing of an
//! operation in flight when Terraform or the provider is killed. Secrets generated inside the
//! cluster's create would be lost with a crash during install or bootstrap, leaving machines
//! that run with secrets nobody has. Made here, they are in the state before any machine gets
//! a config: `infraflux_talos_cluster.machine_secrets` takes them.
//!
//! Nothing is remote: read keeps the state, delete forgets it, and nothing ever regenerates
//! the secrets (`talos_version` changes in place). Import reads a file holding the JSON.

use async_trait::async_trait;
use infraflux_talos::checks;
use infraflux_talos::pem;
use infraflux_talos::secrets::{CLIENT_VALIDITY, MachineSecrets};
use tfplugin::framework::planmod::use_state_for_unknown;
use tfplugin::{
    Attribute, AttributePath, Block, CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics,
    ReadRequest, Resource, Schema, StateResponse, Type, UpdateRequest, Value,
};
use time::OffsetDateTime;

use super::terraform_run::demote_when_destroying;

#[derive(Default)]
pub struct TalosMachineSecrets;

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "A Talos cluster's machine secrets (CAs, keys, tokens), generated once and never \
                 regenerated. Give `machine_secrets` to `infraflux_talos_cluster`: the secrets \
                 are then in the state before any machine is configured, so a crash during \
                 install or bootstrap cannot lose them.",
            )
            .attr(
                Attribute::string("id")
                    .computed()
                    .plan_modifier(use_state_for_unknown())
                    .description("Hex SHA-256 of the OS CA certificate (DER)."),
            )
            .attr(Attribute::string("talos_version").optional().description(
                "The Talos version whose secrets contract the secrets follow, e.g. \
                         `v1.13.9` (the cluster's). Secrets made for an older Talos stay valid \
                         after upgrades: changing it never regenerates them.",
            ))
            .attr(
                Attribute::string("machine_secrets")
                    .computed()
                    .sensitive()
                    .plan_modifier(use_state_for_unknown())
                    .description(
                        "The secrets as JSON, for `infraflux_talos_cluster.machine_secrets`.",
                    ),
            )
            .attr(
                Attribute::new(
                    "client_configuration",
                    Type::object([
                        ("ca", Type::String),
                        ("crt", Type::String),
                        ("key", Type::String),
                    ]),
                )
                .computed()
                .sensitive()
                .plan_modifier(use_state_for_unknown())
                .description(
                    "talosctl credentials (PEM): the OS CA and an `os:admin` client certificate \
                     and key, valid for a year from creation.",
                ),
            ),
    )
}

fn check(config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    if let Some(Err(e)) = config
        .attr("talos_version")
        .as_str()
        .map(checks::secrets_talos_version)
    {
        diags.push(
            Diagnostic::error("Invalid talos_version", format!("{e}."))
                .at(AttributePath::attr("talos_version")),
        );
    }
    diags
}

/// The state for `secrets`: id, JSON and a fresh admin certificate.
fn state_of(secrets: &MachineSecrets, talos_version: Value) -> Result<Value, Diagnostic> {
    let json = secrets.to_json().map_err(|e| {
        Diagnostic::error(
            "Cannot serialise the machine secrets",
            format!("{e}. This is a provider bug; please report it."),
        )
    })?;
    let creds = secrets
        .admin_client(OffsetDateTime::now_utc(), CLIENT_VALIDITY)
        .map_err(|e| Diagnostic::error("Cannot issue the talosctl certificate", e.to_string()))?;
    let id = pem::decode_labelled(&secrets.os_ca.crt, pem::CERTIFICATE)
        .map(|der| {
            hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref())
        })
        .map_err(|e| Diagnostic::error("Unusable OS CA certificate", e.to_string()))?;
    Ok(Value::object([
        ("id", Value::from(id)),
        ("talos_version", talos_version),
        ("machine_secrets", Value::from(json)),
        (
            "client_configuration",
            Value::object([
                ("ca", Value::from(creds.ca.as_str())),
                ("crt", Value::from(creds.crt.as_str())),
                ("key", Value::from(creds.key.as_str())),
            ]),
        ),
    ]))
}

#[async_trait]
impl Resource for TalosMachineSecrets {
    fn type_name(&self) -> &'static str {
        "infraflux_talos_machine_secrets"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let mut d = check(config);
        demote_when_destroying(&mut d);
        diags.extend(d);
    }

    async fn create(&self, _ctx: &Ctx, req: CreateRequest) -> StateResponse {
        let diags = check(&req.config);
        if diags.has_errors() {
            return StateResponse {
                diags,
                ..Default::default()
            };
        }
        // RSA-4096 generation takes a while: off the plugin server's one thread.
        let secrets = match tokio::task::spawn_blocking(MachineSecrets::generate).await {
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
        };
        match state_of(&secrets, req.config.attr("talos_version").clone()) {
            Ok(state) => StateResponse::ok(state),
            Err(d) => StateResponse::error(d),
        }
    }

    async fn read(&self, _ctx: &Ctx, req: ReadRequest) -> StateResponse {
        StateResponse {
            state: req.state,
            private: req.private,
            diags: Diagnostics::new(),
        }
    }

    async fn update(&self, _ctx: &Ctx, req: UpdateRequest) -> StateResponse {
        // Only talos_version can change; the secrets stay (planned keeps them from state).
        let mut state = req.prior.clone();
        state.set_attr("talos_version", req.config.attr("talos_version").clone());
        StateResponse {
            state,
            private: req.private,
            diags: Diagnostics::new(),
        }
    }

    async fn delete(&self, _ctx: &Ctx, _req: DeleteRequest) -> Diagnostics {
        Diagnostics::new()
    }

    /// The import ID is the path of a file holding the secrets' JSON (a cluster's
    /// `machine_secrets`), so the secrets never pass through Terraform's logs.
    async fn import(&self, _ctx: &Ctx, id: &str) -> StateResponse {
        let text = match std::fs::read_to_string(id) {
            Ok(t) => t,
            Err(e) => {
                return StateResponse::error(Diagnostic::error(
                    "Cannot read the machine secrets to import",
                    format!(
                        "{id}: {e}. The import ID is the path of a file holding the machine \
                         secrets JSON (e.g. a cluster's machine_secrets)."
                    ),
                ));
            }
        };
        let secrets = match MachineSecrets::from_json(text.trim()) {
            Ok(s) => s,
            Err(e) => {
                return StateResponse::error(Diagnostic::error(
                    "Invalid machine secrets to import",
                    format!("{id}: {e}. Give the machine_secrets JSON of the cluster, unchanged."),
                ));
            }
        };
        match state_of(&secrets, Value::Null) {
            Ok(state) => StateResponse::ok(state),
            Err(d) => StateResponse::error(d),
        }
    }
}
