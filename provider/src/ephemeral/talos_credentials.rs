//! `infraflux_talos_credentials`: fresh, short-lived talosctl and Kubernetes admin credentials
//! signed from a cluster's machine secrets, for other providers' configuration. Nothing is
//! written to plan or state, and no machine is contacted.

use async_trait::async_trait;
use infraflux_talos::secrets::MachineSecrets;
use infraflux_talos::talosconfig;
use tfplugin::framework::resource::OpenResponse;
use tfplugin::framework::validate::int_between;
use tfplugin::{
    Attribute, AttributePath, Block, Ctx, Diagnostic, Diagnostics, EphemeralResource, Schema, Type,
    Value,
};
use time::{Duration, OffsetDateTime};

use crate::k8s::Kubeconfig;

/// Default lifetime of the issued certificates.
const DEFAULT_HOURS: i64 = 24;

pub struct TalosCredentials;

fn strings(v: &Value) -> Vec<String> {
    v.as_elements()
        .map(|e| {
            e.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn error(summary: &str, detail: String, attr: &str) -> OpenResponse {
    OpenResponse {
        diags: Diagnostic::error(summary, detail)
            .at(AttributePath::attr(attr))
            .into(),
        ..OpenResponse::default()
    }
}

#[async_trait]
impl EphemeralResource for TalosCredentials {
    fn type_name(&self) -> &'static str {
        "infraflux_talos_credentials"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description(
                    "Fresh admin credentials for a Talos cluster, signed locally from its machine \
                     secrets: a talosconfig and a kubeconfig that exist only during this run \
                     (Terraform ≥ 1.10), e.g. for the kubernetes or helm provider.",
                )
                .attr(
                    Attribute::string("machine_secrets")
                        .required()
                        .sensitive()
                        .description("`infraflux_talos_cluster.<name>.machine_secrets`."),
                )
                .attr(
                    Attribute::string("cluster_name")
                        .required()
                        .description("The cluster name (the kubeconfig's cluster and context)."),
                )
                .attr(
                    Attribute::string("endpoint")
                        .required()
                        .description("The Kubernetes API endpoint, `https://HOST:6443`."),
                )
                .attr(
                    Attribute::new("talos_endpoints", Type::list(Type::String))
                        .optional()
                        .description("talosctl endpoints (control-plane addresses)."),
                )
                .attr(
                    Attribute::new("talos_nodes", Type::list(Type::String))
                        .optional()
                        .description("talosctl default nodes. Default: `talos_endpoints`."),
                )
                .attr(
                    Attribute::number("validity_hours")
                        .optional()
                        .validate(int_between(1, 8760))
                        .description("How long the certificates are valid. Default 24."),
                )
                .attr(
                    Attribute::string("kubeconfig")
                        .computed()
                        .sensitive()
                        .description("Admin kubeconfig (`system:masters`)."),
                )
                .attr(
                    Attribute::string("talosconfig")
                        .computed()
                        .sensitive()
                        .description("talosconfig with an `os:admin` certificate."),
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
                    .description("The talosctl credentials as PEM: `ca`, `crt`, `key`."),
                ),
        )
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Some(e) = config.attr("endpoint").as_str()
            && !e.starts_with("https://")
        {
            diags.push(
                Diagnostic::error(
                    "Invalid endpoint",
                    format!("endpoint {e:?} must be https://HOST:PORT."),
                )
                .at(AttributePath::attr("endpoint")),
            );
        }
    }

    async fn open(&self, _ctx: &Ctx, config: &Value) -> OpenResponse {
        let secrets = match MachineSecrets::from_json(
            config.attr("machine_secrets").as_str().unwrap_or(""),
        ) {
            Ok(s) => s,
            Err(e) => {
                return error(
                    "Invalid machine_secrets",
                    format!("{e}. Pass infraflux_talos_cluster.<name>.machine_secrets."),
                    "machine_secrets",
                );
            }
        };
        let hours = config
            .attr("validity_hours")
            .as_i64()
            .unwrap_or(DEFAULT_HOURS);
        let now = OffsetDateTime::now_utc();
        let validity = Duration::hours(hours);
        let name = config.attr("cluster_name").as_str().unwrap_or_default();
        let (talos, k8s) = match (
            secrets.admin_client(now, validity),
            secrets.kubernetes_admin(now, validity),
        ) {
            (Ok(t), Ok(k)) => (t, k),
            (Err(e), _) | (_, Err(e)) => {
                return error(
                    "Cannot sign the credentials",
                    e.to_string(),
                    "machine_secrets",
                );
            }
        };
        let endpoints = strings(config.attr("talos_endpoints"));
        let nodes = match strings(config.attr("talos_nodes")) {
            n if n.is_empty() => endpoints.clone(),
            n => n,
        };
        let kubeconfig = Kubeconfig {
            cluster_name: name.to_owned(),
            server: config
                .attr("endpoint")
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            ca_pem: secrets.kubernetes_ca.crt.clone(),
            client_cert_pem: k8s.crt,
            client_key_pem: k8s.key,
        };
        let mut result = config.clone();
        result.set_attr("kubeconfig", Value::from(kubeconfig.to_yaml()));
        result.set_attr(
            "talosconfig",
            Value::from(talosconfig::render(name, &endpoints, &nodes, &talos)),
        );
        result.set_attr(
            "client_configuration",
            Value::object([
                ("ca", Value::from(talos.ca.as_str())),
                ("crt", Value::from(talos.crt.as_str())),
                ("key", Value::from(talos.key.as_str())),
            ]),
        );
        OpenResponse {
            result,
            ..OpenResponse::default()
        }
    }
}
