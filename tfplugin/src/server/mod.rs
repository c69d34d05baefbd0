//! The gRPC edge: tfplugin6.Provider on top of the framework's core, plus go-plugin's
//! controller and stdio services.
//!
//! One small handler per RPC, as terraform-plugin-framework's `proto6server`: find the type
//! the request names, decode the request ([`from_proto`]), call the core
//! ([`crate::framework::fwserver`]), encode its answer ([`to_proto`]). No lifecycle rule
//! lives here.

mod from_proto;
mod plugin;
#[cfg(test)]
mod tests;
mod to_proto;

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tonic::{Request, Response, Status};

use crate::diag::Diagnostic;
use crate::framework::fwserver::Server;
use crate::framework::resource::{FunctionError, Provider};
use crate::proto::tfplugin6 as pb;

pub use plugin::{Controller, Stdio};

/// Serves one provider over gRPC. Built once per process.
pub struct ProviderService {
    core: Server,
    /// The same every time: encoded on the first request only.
    schema_response: OnceLock<pb::get_provider_schema::Response>,
}

impl ProviderService {
    /// Serve `provider`; its schemas are computed now, once.
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        Self {
            core: Server::new(provider),
            schema_response: OnceLock::new(),
        }
    }
}

type Res<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

fn ok<T>(t: T) -> Res<T> {
    Ok(Response::new(t))
}

/// The handler's answer, or, when it stopped before the core, its error alone.
fn answer<R: to_proto::Answer>(r: Result<R, Diagnostic>) -> Res<R> {
    ok(r.unwrap_or_else(to_proto::refused))
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
        ok(to_proto::metadata(&self.core))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Res<pb::get_provider_schema::Response> {
        let r = self
            .schema_response
            .get_or_init(|| to_proto::provider_schema(&self.core));
        ok(r.clone())
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Res<pb::validate_provider_config::Response> {
        let req = req.into_inner();
        answer(
            async {
                let ty = self.core.provider_type();
                let config = from_proto::value(req.config.as_ref(), ty, "provider configuration")?;
                let diags = self.core.validate_provider_config(&config).await;
                Ok(to_proto::only(diags))
            }
            .await,
        )
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> Res<pb::validate_resource_config::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.resource(&req.type_name)?;
                let config = from_proto::value(req.config.as_ref(), &e.ty, "configuration")?;
                let allowed = from_proto::write_only_allowed(req.client_capabilities.as_ref());
                let diags = self
                    .core
                    .validate_resource_config(e, &config, allowed)
                    .await;
                Ok(to_proto::only(diags))
            }
            .await,
        )
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> Res<pb::validate_data_resource_config::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.data_source(&req.type_name)?;
                let config = from_proto::value(req.config.as_ref(), &e.ty, "configuration")?;
                let diags = self.core.validate_data_source_config(e, &config).await;
                Ok(to_proto::only(diags))
            }
            .await,
        )
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> Res<pb::upgrade_resource_state::Response> {
        let req = req.into_inner();
        answer(self.core.resource(&req.type_name).map(|e| {
            let raw = from_proto::raw_json(req.raw_state.as_ref());
            let r = self.core.upgrade_resource_state(e, req.version, raw);
            to_proto::upgrade_resource_state(e, r)
        }))
    }

    async fn get_resource_identity_schemas(
        &self,
        _: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Res<pb::get_resource_identity_schemas::Response> {
        ok(to_proto::identity_schemas(&self.core))
    }

    async fn upgrade_resource_identity(
        &self,
        req: Request<pb::upgrade_resource_identity::Request>,
    ) -> Res<pb::upgrade_resource_identity::Response> {
        let req = req.into_inner();
        answer(self.core.resource(&req.type_name).map(|e| {
            let raw = from_proto::raw_json(req.raw_identity.as_ref());
            let r = self.core.upgrade_resource_identity(e, raw);
            to_proto::upgrade_resource_identity(e, r)
        }))
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Res<pb::configure_provider::Response> {
        let req = req.into_inner();
        answer(
            async {
                let ty = self.core.provider_type();
                let config = from_proto::value(req.config.as_ref(), ty, "provider configuration")?;
                Ok(to_proto::only(self.core.configure_provider(&config).await))
            }
            .await,
        )
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> Res<pb::read_resource::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.resource(&req.type_name)?;
                let fw = from_proto::read_resource(&req, &e.ty)?;
                Ok(to_proto::read_resource(
                    e,
                    self.core.read_resource(e, fw).await,
                ))
            }
            .await,
        )
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> Res<pb::plan_resource_change::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.resource(&req.type_name)?;
                let fw = from_proto::plan_resource_change(&req, &e.ty)?;
                let r = self.core.plan_resource_change(e, fw).await;
                Ok(to_proto::plan_resource_change(e, r))
            }
            .await,
        )
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> Res<pb::apply_resource_change::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.resource(&req.type_name)?;
                let fw = from_proto::apply_resource_change(&req, &e.ty)?;
                let r = self.core.apply_resource_change(e, fw).await;
                Ok(to_proto::apply_resource_change(e, r))
            }
            .await,
        )
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> Res<pb::import_resource_state::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.resource(&req.type_name)?;
                let fw = from_proto::import_resource_state(&req, e)?;
                let r = self.core.import_resource_state(e, fw).await;
                Ok(to_proto::import_resource_state(e, r))
            }
            .await,
        )
    }

    async fn move_resource_state(
        &self,
        req: Request<pb::move_resource_state::Request>,
    ) -> Res<pb::move_resource_state::Response> {
        let req = req.into_inner();
        let diags = self
            .core
            .move_resource_state(&req.source_type_name, &req.target_type_name);
        ok(pb::move_resource_state::Response {
            diagnostics: to_proto::diagnostics(diags),
            ..Default::default()
        })
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Res<pb::read_data_source::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.data_source(&req.type_name)?;
                let config = from_proto::value(req.config.as_ref(), &e.ty, "configuration")?;
                let r = self.core.read_data_source(e, &config).await;
                Ok(to_proto::read_data_source(e, r))
            }
            .await,
        )
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
        answer(
            async {
                let e = self.core.ephemeral_resource(&req.type_name)?;
                let config = from_proto::value(req.config.as_ref(), &e.ty, "configuration")?;
                let diags = self
                    .core
                    .validate_ephemeral_resource_config(e, &config)
                    .await;
                Ok(to_proto::only(diags))
            }
            .await,
        )
    }

    async fn open_ephemeral_resource(
        &self,
        req: Request<pb::open_ephemeral_resource::Request>,
    ) -> Res<pb::open_ephemeral_resource::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.ephemeral_resource(&req.type_name)?;
                let config = from_proto::value(req.config.as_ref(), &e.ty, "configuration")?;
                let r = self.core.open_ephemeral_resource(e, &config).await;
                Ok(to_proto::open_ephemeral_resource(e, r))
            }
            .await,
        )
    }

    async fn renew_ephemeral_resource(
        &self,
        req: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Res<pb::renew_ephemeral_resource::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.ephemeral_resource(&req.type_name)?;
                let private = from_proto::private(req.private.as_deref().unwrap_or_default())?;
                let r = self.core.renew_ephemeral_resource(e, &private).await;
                Ok(to_proto::renew_ephemeral_resource(r))
            }
            .await,
        )
    }

    async fn close_ephemeral_resource(
        &self,
        req: Request<pb::close_ephemeral_resource::Request>,
    ) -> Res<pb::close_ephemeral_resource::Response> {
        let req = req.into_inner();
        answer(
            async {
                let e = self.core.ephemeral_resource(&req.type_name)?;
                let private = from_proto::private(req.private.as_deref().unwrap_or_default())?;
                Ok(to_proto::only(
                    self.core.close_ephemeral_resource(e, &private).await,
                ))
            }
            .await,
        )
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
            functions: to_proto::functions(&self.core),
            diagnostics: Vec::new(),
        })
    }

    async fn call_function(
        &self,
        req: Request<pb::call_function::Request>,
    ) -> Res<pb::call_function::Response> {
        let req = req.into_inner();
        let result = (|| {
            let f = self.core.function(&req.name).ok_or_else(|| FunctionError {
                text: format!("no function named {:?}", req.name),
                argument: None,
            })?;
            let sig = f.signature();
            let args = from_proto::function_arguments(&req, &sig)?;
            let v = self.core.call_function(f, &args)?;
            to_proto::value(&v, &sig.returns).map_err(|d| FunctionError {
                text: d.detail,
                argument: None,
            })
        })();
        ok(to_proto::call_function(result))
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
        self.core.stop();
        ok(pb::stop_provider::Response {
            error: String::new(),
        })
    }
}
