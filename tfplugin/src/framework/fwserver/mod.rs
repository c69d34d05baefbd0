//! The protocol-free core of the provider server, as terraform-plugin-framework's `fwserver`.
//!
//! The gRPC edge (`crate::server`) looks up the type a request names here, decodes the
//! request's values against its schema, calls one method of [`Server`], and encodes the
//! answer. Everything in between (the lifecycle rules, the calls into the provider's
//! resources, what is kept on failure) happens here, on framework types only: [`Value`]s,
//! schemas, [`Diagnostics`] and [`Private`](super::resource::Private) state. No protobuf
//! type is known in this module, so the orchestration is unit-tested without a wire.

mod ephemeral;
mod resource;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::lifecycle;
use super::resource::{
    Ctx, DataSource, EphemeralResource, Function, FunctionError, IdentityAttribute, Provider,
    Resource, StateResponse,
};
use super::schema::Schema;
use crate::diag::{Diagnostic, Diagnostics};
use crate::value::{Type, Value};

pub use resource::{ApplyRequest, ImportRequest, NewState, PlanChangeRequest, PlanChangeResponse};

/// A registered provider type: its implementation and its schema, computed once.
pub struct Entry<T: ?Sized> {
    /// The schema the implementation declared.
    pub schema: Schema,
    /// The schema's value type, which every value of this type is decoded against.
    pub ty: Type,
    /// The provider's implementation.
    pub imp: Arc<T>,
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

impl Entry<dyn Resource> {
    /// The type of the resource's identity object (an empty object when it has none).
    pub fn identity_type(&self) -> Type {
        identity_type(&self.imp.identity_schema())
    }
}

/// The object type of an identity with these attributes.
pub fn identity_type(attrs: &[IdentityAttribute]) -> Type {
    Type::object(attrs.iter().map(|a| (a.name.clone(), a.ty.clone())))
}

type Registry<T> = HashMap<String, Entry<T>>;

/// Serves one provider: its registries, built once per process, and the stop signal.
pub struct Server {
    provider: Arc<dyn Provider>,
    provider_schema: Schema,
    provider_type: Type,
    resources: Registry<dyn Resource>,
    data_sources: Registry<dyn DataSource>,
    ephemerals: Registry<dyn EphemeralResource>,
    functions: HashMap<String, Arc<dyn Function>>,
    /// Replaced on stop: calls in flight keep the cancelled token they started with.
    stop: Mutex<CancellationToken>,
}

fn unknown_type(kind: &str, name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!(
            "This provider has no {kind} named {name:?}. Check the spelling and the provider version."
        ),
    )
}

fn lookup<'a, T: ?Sized>(
    reg: &'a Registry<T>,
    kind: &str,
    name: &str,
) -> Result<&'a Entry<T>, Diagnostic> {
    reg.get(name).ok_or_else(|| unknown_type(kind, name))
}

impl Server {
    /// Asks the provider for everything it offers and computes every schema once.
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
            stop: Mutex::new(CancellationToken::new()),
        }
    }

    /// The context of a call starting now: cancelled by the next [`Server::stop`].
    fn ctx(&self) -> Ctx {
        let token = self.stop.lock().map(|t| t.clone()).unwrap_or_default();
        Ctx { cancel: token }
    }

    /// Cancel the calls in flight. Later calls get a fresh token: Terraform may still need
    /// them, to save the state of what was interrupted.
    pub fn stop(&self) {
        if let Ok(mut t) = self.stop.lock() {
            t.cancel();
            *t = CancellationToken::new();
        }
        tracing::info!("stop requested: cancelling calls in flight");
    }

    /// The provider block's schema.
    pub fn provider_schema(&self) -> &Schema {
        &self.provider_schema
    }

    /// The provider block's value type.
    pub fn provider_type(&self) -> &Type {
        &self.provider_type
    }

    /// Every resource type, by name.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &Entry<dyn Resource>)> {
        self.resources.iter().map(|(k, e)| (k.as_str(), e))
    }

    /// Every data source type, by name.
    pub fn data_sources(&self) -> impl Iterator<Item = (&str, &Entry<dyn DataSource>)> {
        self.data_sources.iter().map(|(k, e)| (k.as_str(), e))
    }

    /// Every ephemeral resource type, by name.
    pub fn ephemeral_resources(
        &self,
    ) -> impl Iterator<Item = (&str, &Entry<dyn EphemeralResource>)> {
        self.ephemerals.iter().map(|(k, e)| (k.as_str(), e))
    }

    /// Every function, by name.
    pub fn functions(&self) -> impl Iterator<Item = (&str, &dyn Function)> {
        self.functions.iter().map(|(k, f)| (k.as_str(), f.as_ref()))
    }

    /// The resource type `name`, or the error a user sees for a name this provider lacks.
    pub fn resource(&self, name: &str) -> Result<&Entry<dyn Resource>, Diagnostic> {
        lookup(&self.resources, "resource", name)
    }

    /// The data source type `name`.
    pub fn data_source(&self, name: &str) -> Result<&Entry<dyn DataSource>, Diagnostic> {
        lookup(&self.data_sources, "data source", name)
    }

    /// The ephemeral resource type `name`.
    pub fn ephemeral_resource(
        &self,
        name: &str,
    ) -> Result<&Entry<dyn EphemeralResource>, Diagnostic> {
        lookup(&self.ephemerals, "ephemeral resource", name)
    }

    /// The function `name`, if the provider has one.
    pub fn function(&self, name: &str) -> Option<&dyn Function> {
        self.functions.get(name).map(AsRef::as_ref)
    }

    /// The provider block's attribute validators, then the provider's own checks.
    pub async fn validate_provider_config(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        lifecycle::validate_config(&self.provider_schema.block, config, &mut diags);
        self.provider.validate(config, &mut diags).await;
        diags
    }

    /// Configure the provider with its block's values.
    pub async fn configure_provider(&self, config: &Value) -> Diagnostics {
        self.provider.configure(&self.ctx(), config).await
    }

    /// A data source's attribute validators, then its own checks.
    pub async fn validate_data_source_config(
        &self,
        e: &Entry<dyn DataSource>,
        config: &Value,
    ) -> Diagnostics {
        let mut diags = Diagnostics::new();
        lifecycle::validate_config(&e.schema.block, config, &mut diags);
        e.imp.validate(config, &mut diags).await;
        diags
    }

    /// Read a data source, brought to Terraform's shape.
    pub async fn read_data_source(
        &self,
        e: &Entry<dyn DataSource>,
        config: &Value,
    ) -> StateResponse {
        let mut out = e.imp.read(&self.ctx(), config).await;
        lifecycle::complete(&e.schema.block, &mut out.state);
        out
    }

    /// Call a function with arguments already checked against its signature.
    pub fn call_function(&self, f: &dyn Function, args: &[Value]) -> Result<Value, FunctionError> {
        f.call(args)
    }
}
