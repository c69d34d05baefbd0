//! The gRPC services: tfplugin6.Provider on top of the framework, plus go-plugin's controller
//! and stdio services. Requests are converted at the edge; the lifecycle rules live in
//! `framework::lifecycle`.

mod convert;
mod plugin;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::diag::{Diagnostic, Diagnostics};
use crate::framework::Schema;
use crate::framework::lifecycle;
use crate::framework::resource::*;
use crate::proto::tfplugin6 as pb;
use crate::value::{Type, Value};

pub use plugin::{Controller, Stdio};

struct Entry<T: ?Sized> {
    schema: Schema,
    ty: Type,
    imp: Arc<T>,
}

impl<T: ?Sized> Entry<T> {
    fn new(schema: Schema, imp: Arc<T>) -> Self {
        Self {
            ty: schema.value_type(),
            schema,
            imp,
        }
    }
}

type Registry<T> = HashMap<String, Entry<T>>;

/// Serves one provider. Built once per process; schemas are computed once.
pub struct ProviderService {
    provider: Arc<dyn Provider>,
    provider_schema: Schema,
    provider_type: Type,
    resources: Registry<dyn Resource>,
    data_sources: Registry<dyn DataSource>,
    ephemerals: Registry<dyn EphemeralResource>,
    functions: HashMap<String, Arc<dyn Function>>,
    schema_response: OnceLock<pb::get_provider_schema::Response>,
    /// Replaced on StopProvider: calls in flight keep the cancelled token they started with.
    stop: Mutex<CancellationToken>,
}

type Res<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

fn ok<T>(t: T) -> Res<T> {
    Ok(Response::new(t))
}

/// Collects diagnostics while a handler works; `?` on a `Result<_, Diagnostic>` ends the
/// handler with that diagnostic in the response.
macro_rules! attempt {
    ($diags:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(d) => {
                $diags.push(d);
                return None;
            }
        }
    };
}

fn unknown_type(kind: &str, name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!(
            "This provider has no {kind} named {name:?}. Check the spelling and the provider version."
        ),
    )
}

/// Find a registered type and decode its configuration.
fn entry_config<'a, T: ?Sized>(
    reg: &'a Registry<T>,
    kind: &str,
    type_name: &str,
    dv: Option<&pb::DynamicValue>,
) -> Result<(&'a Entry<T>, Value), Diagnostic> {
    let e = reg
        .get(type_name)
        .ok_or_else(|| unknown_type(kind, type_name))?;
    Ok((e, convert::decode(dv, &e.ty, "configuration")?))
}

fn caps_allow_write_only(c: Option<&pb::ClientCapabilities>) -> bool {
    c.is_some_and(|c| c.write_only_attributes_allowed)
}

impl ProviderService {
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        fn registry<T: ?Sized>(
            items: Vec<Arc<T>>,
            schema: impl Fn(&T) -> Schema,
            name: impl Fn(&T) -> &'static str,
        ) -> Registry<T> {
            items
                .into_iter()
                .map(|i| (name(&i).to_owned(), Entry::new(schema(&i), i)))
                .collect()
        }
        let provider_schema = provider.schema();
        Self {
            provider_type: provider_schema.value_type(),
            provider_schema,
            resources: registry(provider.resources(), |r| r.schema(), |r| r.type_name()),
            data_sources: registry(provider.data_sources(), |r| r.schema(), |r| r.type_name()),
            ephemerals: registry(
                provider.ephemeral_resources(),
                |r| r.schema(),
                |r| r.type_name(),
            ),
            functions: provider
                .functions()
                .into_iter()
                .map(|f| (f.name().to_owned(), f))
                .collect(),
            provider,
            schema_response: OnceLock::new(),
            stop: Mutex::new(CancellationToken::new()),
        }
    }

    fn ctx(&self) -> Ctx {
        let token = self.stop.lock().map(|t| t.clone()).unwrap_or_default();
        Ctx { cancel: token }
    }

    fn resource(&self, name: &str) -> Result<&Entry<dyn Resource>, Diagnostic> {
        self.resources
            .get(name)
            .ok_or_else(|| unknown_type("resource", name))
    }

    fn server_capabilities() -> pb::ServerCapabilities {
        pb::ServerCapabilities {
            plan_destroy: true,
            get_provider_schema_optional: false,
            move_resource_state: false,
            generate_resource_config: false,
        }
    }

    fn identity(&self, e: &Entry<dyn Resource>, state: &Value) -> Option<pb::ResourceIdentityData> {
        let attrs = e.imp.identity_schema();
        if attrs.is_empty() || state.is_null() {
            return None;
        }
        let id = e.imp.identity(state)?;
        convert::encode(&id, &convert::identity_type(&attrs))
            .ok()
            .map(|dv| pb::ResourceIdentityData {
                identity_data: Some(dv),
            })
    }

    async fn validate_resource(&self, req: pb::validate_resource_config::Request) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let _ = async {
            let e = attempt!(diags, self.resource(&req.type_name));
            let config = attempt!(
                diags,
                convert::decode(req.config.as_ref(), &e.ty, "configuration")
            );
            lifecycle::validate_config(&e.schema.block, &config, &mut diags);
            if !caps_allow_write_only(req.client_capabilities.as_ref()) {
                check_write_only_unsupported(&e.schema, &config, &mut diags);
            }
            e.imp.validate(&config, &mut diags).await;
            Some(())
        }
        .await;
        diags
    }

    async fn plan(
        &self,
        req: pb::plan_resource_change::Request,
    ) -> (pb::plan_resource_change::Response, Diagnostics) {
        let mut diags = Diagnostics::new();
        let mut resp = pb::plan_resource_change::Response::default();
        let _ = async {
            let e = attempt!(diags, self.resource(&req.type_name));
            let prior = attempt!(
                diags,
                convert::decode(req.prior_state.as_ref(), &e.ty, "prior state")
            );
            let proposed = attempt!(
                diags,
                convert::decode(req.proposed_new_state.as_ref(), &e.ty, "proposed new state")
            );
            let mut config = attempt!(
                diags,
                convert::decode(req.config.as_ref(), &e.ty, "configuration")
            );
            lifecycle::complete(&e.schema.block, &mut config);
            let private = attempt!(diags, convert::private_from(&req.prior_private));
            if proposed.is_null() {
                // Destroy: nothing to plan but the private state Terraform hands back on apply.
                resp.planned_private = req.prior_private.clone();
                resp.planned_state = Some(attempt!(diags, convert::encode(&Value::Null, &e.ty)));
                return Some(());
            }
            let fw = lifecycle::plan(&e.schema.block, &config, &prior, &proposed);
            diags.extend(fw.diags);
            let mut pr = PlanResponse {
                planned: fw.planned,
                requires_replace: fw.requires_replace,
                private: private.clone(),
                diags: Diagnostics::new(),
            };
            e.imp
                .modify_plan(
                    &self.ctx(),
                    &PlanRequest {
                        config: &config,
                        prior: &prior,
                        private: &private,
                    },
                    &mut pr,
                )
                .await;
            diags.extend(pr.diags);
            lifecycle::complete(&e.schema.block, &mut pr.planned);
            if !diags.has_errors() {
                lifecycle::check_plan(
                    &e.schema.block,
                    &crate::AttributePath::root(),
                    &config,
                    &prior,
                    &pr.planned,
                    &mut diags,
                );
            }
            resp.planned_state = Some(attempt!(diags, convert::encode(&pr.planned, &e.ty)));
            resp.requires_replace = pr.requires_replace.iter().map(convert::path).collect();
            resp.planned_private = convert::private_to(&pr.private);
            resp.planned_identity = self
                .identity(e, &pr.planned)
                .filter(|_| pr.planned.is_wholly_known());
            Some(())
        }
        .await;
        (resp, diags)
    }

    async fn apply(
        &self,
        req: pb::apply_resource_change::Request,
    ) -> (pb::apply_resource_change::Response, Diagnostics) {
        let mut diags = Diagnostics::new();
        let mut resp = pb::apply_resource_change::Response::default();
        let _ = async {
            let e = attempt!(diags, self.resource(&req.type_name));
            let prior = attempt!(
                diags,
                convert::decode(req.prior_state.as_ref(), &e.ty, "prior state")
            );
            let planned = attempt!(
                diags,
                convert::decode(req.planned_state.as_ref(), &e.ty, "planned state")
            );
            let config = attempt!(
                diags,
                convert::decode(req.config.as_ref(), &e.ty, "configuration")
            );
            let private = attempt!(diags, convert::private_from(&req.planned_private));
            let ctx = self.ctx();
            let op = if planned.is_null() {
                "delete"
            } else if prior.is_null() {
                "create"
            } else {
                "update"
            };
            tracing::debug!(type_name = %req.type_name, op, "apply");
            if planned.is_null() {
                diags.extend(e.imp.delete(&ctx, DeleteRequest { prior, private }).await);
                // On failure the object may still exist: keep the prior state.
                if diags.has_errors() {
                    let prior_again =
                        convert::decode(req.prior_state.as_ref(), &e.ty, "prior state")
                            .unwrap_or(Value::Null);
                    resp.new_state = Some(attempt!(diags, convert::encode(&prior_again, &e.ty)));
                    resp.private = req.planned_private.clone();
                } else {
                    resp.new_state = Some(attempt!(diags, convert::encode(&Value::Null, &e.ty)));
                }
                return Some(());
            }
            let mut out = if prior.is_null() {
                e.imp
                    .create(
                        &ctx,
                        CreateRequest {
                            config,
                            planned: planned.clone(),
                            private,
                        },
                    )
                    .await
            } else {
                e.imp
                    .update(
                        &ctx,
                        UpdateRequest {
                            config,
                            prior,
                            planned: planned.clone(),
                            private,
                        },
                    )
                    .await
            };
            diags.extend(std::mem::take(&mut out.diags));
            if !out.state.is_null() {
                lifecycle::complete(&e.schema.block, &mut out.state);
                lifecycle::strip_write_only(&e.schema.block, &mut out.state);
                if !diags.has_errors() {
                    lifecycle::check_applied(
                        &planned,
                        &out.state,
                        &crate::AttributePath::root(),
                        &mut diags,
                    );
                }
                // Terraform refuses unknowns in new state even with errors: make them null.
                if !out.state.is_wholly_known() {
                    null_unknowns(&mut out.state);
                }
            }
            resp.new_state = Some(attempt!(diags, convert::encode(&out.state, &e.ty)));
            resp.private = convert::private_to(&out.private);
            resp.new_identity = self.identity(e, &out.state);
            Some(())
        }
        .await;
        (resp, diags)
    }

    async fn read(
        &self,
        req: pb::read_resource::Request,
    ) -> (pb::read_resource::Response, Diagnostics) {
        let mut diags = Diagnostics::new();
        let mut resp = pb::read_resource::Response::default();
        let _ = async {
            let e = attempt!(diags, self.resource(&req.type_name));
            let state = attempt!(
                diags,
                convert::decode(req.current_state.as_ref(), &e.ty, "state")
            );
            let private = attempt!(diags, convert::private_from(&req.private));
            let mut out = e
                .imp
                .read(
                    &self.ctx(),
                    ReadRequest {
                        state: state.clone(),
                        private,
                    },
                )
                .await;
            diags.extend(std::mem::take(&mut out.diags));
            lifecycle::complete(&e.schema.block, &mut out.state);
            lifecycle::keep_equivalent(&e.schema.block, &state, &mut out.state);
            lifecycle::strip_write_only(&e.schema.block, &mut out.state);
            null_unknowns(&mut out.state);
            resp.new_state = Some(attempt!(diags, convert::encode(&out.state, &e.ty)));
            resp.private = convert::private_to(&out.private);
            resp.new_identity = self.identity(e, &out.state);
            Some(())
        }
        .await;
        (resp, diags)
    }

    async fn import(
        &self,
        req: pb::import_resource_state::Request,
    ) -> (pb::import_resource_state::Response, Diagnostics) {
        let mut diags = Diagnostics::new();
        let mut resp = pb::import_resource_state::Response::default();
        let _ = async {
            let e = attempt!(diags, self.resource(&req.type_name));
            let ctx = self.ctx();
            let identity_data = req.identity.as_ref().and_then(|i| i.identity_data.as_ref());
            let mut out = match identity_data {
                Some(dv) if req.id.is_empty() => {
                    let ity = convert::identity_type(&e.imp.identity_schema());
                    let identity = attempt!(diags, convert::decode(Some(dv), &ity, "identity"));
                    e.imp.import_identity(&ctx, &identity).await
                }
                _ => e.imp.import(&ctx, &req.id).await,
            };
            diags.extend(std::mem::take(&mut out.diags));
            if out.state.is_null() {
                if !diags.has_errors() {
                    diags.error(
                        "Cannot import non-existent remote object",
                        format!("No {} matches the import id {:?}.", req.type_name, req.id),
                    );
                }
                return None;
            }
            lifecycle::complete(&e.schema.block, &mut out.state);
            null_unknowns(&mut out.state);
            resp.imported_resources
                .push(pb::import_resource_state::ImportedResource {
                    type_name: req.type_name.clone(),
                    state: Some(attempt!(diags, convert::encode(&out.state, &e.ty))),
                    private: convert::private_to(&out.private),
                    identity: self.identity(e, &out.state),
                });
            Some(())
        }
        .await;
        (resp, diags)
    }
}

/// Write-only attributes need Terraform ≥ 1.11; older ones would store them in state.
fn check_write_only_unsupported(schema: &Schema, config: &Value, diags: &mut Diagnostics) {
    for a in schema.block.attributes.iter().filter(|a| a.write_only) {
        if !config.attr(&a.name).is_null() {
            diags.error_at(
                crate::AttributePath::attr(&a.name),
                "Write-only attribute not supported by this Terraform",
                format!("{} is write-only: it is never stored in state, which needs Terraform 1.11 or later. Upgrade Terraform, or leave it unset.", a.name),
            );
        }
    }
}

fn null_unknowns(v: &mut Value) {
    match v {
        Value::Unknown => *v = Value::Null,
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.iter_mut().for_each(null_unknowns)
        }
        Value::Map(m) | Value::Object(m) => m.values_mut().for_each(null_unknowns),
        Value::Dynamic(_, inner) => null_unknowns(inner),
        _ => {}
    }
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not offered by this provider"))
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderService {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Res<pb::get_metadata::Response> {
        use pb::get_metadata as m;
        ok(m::Response {
            server_capabilities: Some(Self::server_capabilities()),
            diagnostics: Vec::new(),
            data_sources: self
                .data_sources
                .keys()
                .map(|k| m::DataSourceMetadata {
                    type_name: k.clone(),
                })
                .collect(),
            resources: self
                .resources
                .keys()
                .map(|k| m::ResourceMetadata {
                    type_name: k.clone(),
                })
                .collect(),
            functions: self
                .functions
                .keys()
                .map(|k| m::FunctionMetadata { name: k.clone() })
                .collect(),
            ephemeral_resources: self
                .ephemerals
                .keys()
                .map(|k| m::EphemeralMetadata {
                    type_name: k.clone(),
                })
                .collect(),
            list_resources: Vec::new(),
            state_stores: Vec::new(),
            actions: Vec::new(),
        })
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Res<pb::get_provider_schema::Response> {
        let r = self
            .schema_response
            .get_or_init(|| pb::get_provider_schema::Response {
                provider: Some(convert::schema(&self.provider_schema)),
                resource_schemas: self
                    .resources
                    .iter()
                    .map(|(k, e)| (k.clone(), convert::schema(&e.schema)))
                    .collect(),
                data_source_schemas: self
                    .data_sources
                    .iter()
                    .map(|(k, e)| (k.clone(), convert::schema(&e.schema)))
                    .collect(),
                ephemeral_resource_schemas: self
                    .ephemerals
                    .iter()
                    .map(|(k, e)| (k.clone(), convert::schema(&e.schema)))
                    .collect(),
                functions: self
                    .functions
                    .iter()
                    .map(|(k, f)| (k.clone(), convert::function(f.as_ref())))
                    .collect(),
                server_capabilities: Some(Self::server_capabilities()),
                ..Default::default()
            });
        ok(r.clone())
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Res<pb::validate_provider_config::Response> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        match convert::decode(
            req.config.as_ref(),
            &self.provider_type,
            "provider configuration",
        ) {
            Ok(config) => {
                lifecycle::validate_config(&self.provider_schema.block, &config, &mut diags);
                self.provider.validate(&config, &mut diags).await;
            }
            Err(d) => diags.push(d),
        }
        ok(pb::validate_provider_config::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> Res<pb::validate_resource_config::Response> {
        let diags = self.validate_resource(req.into_inner()).await;
        ok(pb::validate_resource_config::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> Res<pb::validate_data_resource_config::Response> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        match entry_config(
            &self.data_sources,
            "data source",
            &req.type_name,
            req.config.as_ref(),
        ) {
            Ok((e, config)) => {
                lifecycle::validate_config(&e.schema.block, &config, &mut diags);
                e.imp.validate(&config, &mut diags).await;
            }
            Err(d) => diags.push(d),
        }
        ok(pb::validate_data_resource_config::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> Res<pb::upgrade_resource_state::Response> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let mut resp = pb::upgrade_resource_state::Response::default();
        let r: Option<()> = (|| {
            let e = attempt!(diags, self.resource(&req.type_name));
            let raw = req
                .raw_state
                .as_ref()
                .map(|r| r.json.as_slice())
                .unwrap_or_default();
            if raw.is_empty() {
                resp.upgraded_state = Some(attempt!(diags, convert::encode(&Value::Null, &e.ty)));
                return Some(());
            }
            let json: serde_json::Value = attempt!(
                diags,
                serde_json::from_slice(raw).map_err(|err| Diagnostic::error(
                    "Unreadable state",
                    format!("The stored state is not JSON: {err}.")
                ))
            );
            // State at the current version needs no upgrade: the hot path of every refresh.
            let upgraded = if req.version == e.schema.version {
                json
            } else {
                attempt!(diags, e.imp.upgrade_state(req.version, &json))
            };
            let v = attempt!(
                diags,
                crate::value::decode_json(&upgraded, &e.ty).map_err(|err| Diagnostic::error(
                    "State does not match the schema",
                    format!("The stored {} state could not be read: {err}. If you downgraded the provider, return to the version that wrote it.", req.type_name)
                ))
            );
            resp.upgraded_state = Some(attempt!(diags, convert::encode(&v, &e.ty)));
            Some(())
        })();
        let _ = r;
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn get_resource_identity_schemas(
        &self,
        _: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Res<pb::get_resource_identity_schemas::Response> {
        ok(pb::get_resource_identity_schemas::Response {
            identity_schemas: self
                .resources
                .iter()
                .filter_map(|(k, e)| {
                    let attrs = e.imp.identity_schema();
                    (!attrs.is_empty()).then(|| (k.clone(), convert::identity_schema(&attrs)))
                })
                .collect(),
            diagnostics: Vec::new(),
        })
    }

    async fn upgrade_resource_identity(
        &self,
        req: Request<pb::upgrade_resource_identity::Request>,
    ) -> Res<pb::upgrade_resource_identity::Response> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let mut resp = pb::upgrade_resource_identity::Response::default();
        let r: Option<()> = (|| {
            let e = attempt!(diags, self.resource(&req.type_name));
            let ty = convert::identity_type(&e.imp.identity_schema());
            let raw = req
                .raw_identity
                .as_ref()
                .map(|r| r.json.as_slice())
                .unwrap_or_default();
            let json: serde_json::Value =
                serde_json::from_slice(raw).unwrap_or(serde_json::Value::Null);
            let v = attempt!(
                diags,
                crate::value::decode_json(&json, &ty)
                    .map_err(|err| Diagnostic::error("Unreadable identity", err))
            );
            resp.upgraded_identity = Some(pb::ResourceIdentityData {
                identity_data: Some(attempt!(diags, convert::encode(&v, &ty))),
            });
            Some(())
        })();
        let _ = r;
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Res<pb::configure_provider::Response> {
        let req = req.into_inner();
        let diags = match convert::decode(
            req.config.as_ref(),
            &self.provider_type,
            "provider configuration",
        ) {
            Ok(config) => self.provider.configure(&self.ctx(), &config).await,
            Err(d) => d.into(),
        };
        ok(pb::configure_provider::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> Res<pb::read_resource::Response> {
        let (mut resp, diags) = self.read(req.into_inner()).await;
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> Res<pb::plan_resource_change::Response> {
        let (mut resp, diags) = self.plan(req.into_inner()).await;
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> Res<pb::apply_resource_change::Response> {
        let (mut resp, diags) = self.apply(req.into_inner()).await;
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> Res<pb::import_resource_state::Response> {
        let (mut resp, diags) = self.import(req.into_inner()).await;
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn move_resource_state(
        &self,
        req: Request<pb::move_resource_state::Request>,
    ) -> Res<pb::move_resource_state::Response> {
        let req = req.into_inner();
        let d = Diagnostic::error(
            "Move not supported",
            format!(
                "{} cannot take state moved from {}.",
                req.target_type_name, req.source_type_name
            ),
        );
        ok(pb::move_resource_state::Response {
            diagnostics: convert::diagnostics(d.into()),
            ..Default::default()
        })
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Res<pb::read_data_source::Response> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let mut resp = pb::read_data_source::Response::default();
        match entry_config(
            &self.data_sources,
            "data source",
            &req.type_name,
            req.config.as_ref(),
        ) {
            Ok((e, config)) => {
                let mut out = e.imp.read(&self.ctx(), &config).await;
                diags.extend(std::mem::take(&mut out.diags));
                lifecycle::complete(&e.schema.block, &mut out.state);
                match convert::encode(&out.state, &e.ty) {
                    Ok(dv) => resp.state = Some(dv),
                    Err(d) => diags.push(d),
                }
            }
            Err(d) => diags.push(d),
        }
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn generate_resource_config(
        &self,
        _: Request<pb::generate_resource_config::Request>,
    ) -> Res<pb::generate_resource_config::Response> {
        Err(unimplemented("GenerateResourceConfig"))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        req: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Res<pb::validate_ephemeral_resource_config::Response> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        match entry_config(
            &self.ephemerals,
            "ephemeral resource",
            &req.type_name,
            req.config.as_ref(),
        ) {
            Ok((e, config)) => {
                lifecycle::validate_config(&e.schema.block, &config, &mut diags);
                e.imp.validate(&config, &mut diags).await;
            }
            Err(d) => diags.push(d),
        }
        ok(pb::validate_ephemeral_resource_config::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn open_ephemeral_resource(
        &self,
        req: Request<pb::open_ephemeral_resource::Request>,
    ) -> Res<pb::open_ephemeral_resource::Response> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let mut resp = pb::open_ephemeral_resource::Response::default();
        match entry_config(
            &self.ephemerals,
            "ephemeral resource",
            &req.type_name,
            req.config.as_ref(),
        ) {
            Ok((e, config)) if !config.is_wholly_known() => {
                // Terraform opens again once the configuration is known.
                resp.result = convert::encode(&Value::Unknown, &e.ty).ok();
            }
            Ok((e, config)) => {
                let mut out = e.imp.open(&self.ctx(), &config).await;
                diags.extend(std::mem::take(&mut out.diags));
                lifecycle::complete(&e.schema.block, &mut out.result);
                match convert::encode(&out.result, &e.ty) {
                    Ok(dv) => resp.result = Some(dv),
                    Err(d) => diags.push(d),
                }
                resp.renew_at = out.renew_at.map(prost_types::Timestamp::from);
                resp.private = Some(convert::private_to(&out.private));
            }
            Err(d) => diags.push(d),
        }
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn renew_ephemeral_resource(
        &self,
        req: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Res<pb::renew_ephemeral_resource::Response> {
        let req = req.into_inner();
        let mut resp = pb::renew_ephemeral_resource::Response::default();
        let diags = match (
            self.ephemerals.get(&req.type_name),
            convert::private_from(req.private.as_deref().unwrap_or_default()),
        ) {
            (None, _) => unknown_type("ephemeral resource", &req.type_name).into(),
            (_, Err(d)) => d.into(),
            (Some(e), Ok(private)) => {
                let out = e.imp.renew(&self.ctx(), &private).await;
                resp.renew_at = out.renew_at.map(prost_types::Timestamp::from);
                resp.private = Some(convert::private_to(&out.private));
                out.diags
            }
        };
        resp.diagnostics = convert::diagnostics(diags);
        ok(resp)
    }

    async fn close_ephemeral_resource(
        &self,
        req: Request<pb::close_ephemeral_resource::Request>,
    ) -> Res<pb::close_ephemeral_resource::Response> {
        let req = req.into_inner();
        let diags = match (
            self.ephemerals.get(&req.type_name),
            convert::private_from(req.private.as_deref().unwrap_or_default()),
        ) {
            (None, _) => unknown_type("ephemeral resource", &req.type_name).into(),
            (_, Err(d)) => d.into(),
            (Some(e), Ok(private)) => e.imp.close(&self.ctx(), &private).await,
        };
        ok(pb::close_ephemeral_resource::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    type ListResourceStream = BoxStream<pb::list_resource::Event>;
    async fn list_resource(
        &self,
        _: Request<pb::list_resource::Request>,
    ) -> Res<Self::ListResourceStream> {
        Err(unimplemented("ListResource"))
    }
    async fn validate_list_resource_config(
        &self,
        _: Request<pb::validate_list_resource_config::Request>,
    ) -> Res<pb::validate_list_resource_config::Response> {
        Err(unimplemented("ValidateListResourceConfig"))
    }

    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Res<pb::get_functions::Response> {
        ok(pb::get_functions::Response {
            functions: self
                .functions
                .iter()
                .map(|(k, f)| (k.clone(), convert::function(f.as_ref())))
                .collect(),
            diagnostics: Vec::new(),
        })
    }

    async fn call_function(
        &self,
        req: Request<pb::call_function::Request>,
    ) -> Res<pb::call_function::Response> {
        let req = req.into_inner();
        let fail = |text: String, argument: Option<i64>| {
            ok(pb::call_function::Response {
                result: None,
                error: Some(pb::FunctionError {
                    text,
                    function_argument: argument,
                }),
            })
        };
        let Some(f) = self.functions.get(&req.name) else {
            return fail(format!("no function named {:?}", req.name), None);
        };
        let sig = f.signature();
        let mut args = Vec::with_capacity(req.arguments.len());
        for (i, dv) in req.arguments.iter().enumerate() {
            let Some(p) = sig.parameters.get(i).or(sig.variadic.as_ref()) else {
                return fail(
                    format!(
                        "too many arguments: {} takes {}",
                        req.name,
                        sig.parameters.len()
                    ),
                    None,
                );
            };
            match convert::decode(Some(dv), &p.ty, "argument") {
                Ok(v) => args.push(v),
                Err(d) => return fail(d.detail, i64::try_from(i).ok()),
            }
        }
        match f.call(&args).and_then(|v| {
            convert::encode(&v, &sig.returns).map_err(|d| FunctionError {
                text: d.detail,
                argument: None,
            })
        }) {
            Ok(dv) => ok(pb::call_function::Response {
                result: Some(dv),
                error: None,
            }),
            Err(e) => fail(e.text, e.argument),
        }
    }

    async fn validate_state_store_config(
        &self,
        _: Request<pb::validate_state_store::Request>,
    ) -> Res<pb::validate_state_store::Response> {
        Err(unimplemented("state storage"))
    }
    async fn configure_state_store(
        &self,
        _: Request<pb::configure_state_store::Request>,
    ) -> Res<pb::configure_state_store::Response> {
        Err(unimplemented("state storage"))
    }
    type ReadStateBytesStream = BoxStream<pb::read_state_bytes::Response>;
    async fn read_state_bytes(
        &self,
        _: Request<pb::read_state_bytes::Request>,
    ) -> Res<Self::ReadStateBytesStream> {
        Err(unimplemented("state storage"))
    }
    async fn write_state_bytes(
        &self,
        _: Request<tonic::Streaming<pb::write_state_bytes::RequestChunk>>,
    ) -> Res<pb::write_state_bytes::Response> {
        Err(unimplemented("state storage"))
    }
    async fn lock_state(
        &self,
        _: Request<pb::lock_state::Request>,
    ) -> Res<pb::lock_state::Response> {
        Err(unimplemented("state storage"))
    }
    async fn unlock_state(
        &self,
        _: Request<pb::unlock_state::Request>,
    ) -> Res<pb::unlock_state::Response> {
        Err(unimplemented("state storage"))
    }
    async fn get_states(
        &self,
        _: Request<pb::get_states::Request>,
    ) -> Res<pb::get_states::Response> {
        Err(unimplemented("state storage"))
    }
    async fn delete_state(
        &self,
        _: Request<pb::delete_state::Request>,
    ) -> Res<pb::delete_state::Response> {
        Err(unimplemented("state storage"))
    }
    async fn plan_action(
        &self,
        _: Request<pb::plan_action::Request>,
    ) -> Res<pb::plan_action::Response> {
        Err(unimplemented("actions"))
    }
    type InvokeActionStream = BoxStream<pb::invoke_action::Event>;
    async fn invoke_action(
        &self,
        _: Request<pb::invoke_action::Request>,
    ) -> Res<Self::InvokeActionStream> {
        Err(unimplemented("actions"))
    }
    async fn validate_action_config(
        &self,
        _: Request<pb::validate_action_config::Request>,
    ) -> Res<pb::validate_action_config::Response> {
        Err(unimplemented("actions"))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Res<pb::stop_provider::Response> {
        // Cancel what runs now; later calls (Terraform may still need to save state) get a fresh token.
        if let Ok(mut t) = self.stop.lock() {
            t.cancel();
            *t = CancellationToken::new();
        }
        tracing::info!("stop requested: cancelling calls in flight");
        ok(pb::stop_provider::Response {
            error: String::new(),
        })
    }
}
