//! What a provider author implements: provider, resources, data sources, ephemeral resources
//! and functions. Nothing here knows gRPC; values are [`Value`]s shaped by the schema.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::schema::Schema;
use crate::diag::{Diagnostic, Diagnostics};
use crate::value::{AttributePath, Type, Value};

/// Per-call context. `cancel` fires when Terraform asks the provider to stop (Ctrl-C):
/// long waits must select on it and return what exists so far.
#[derive(Clone, Debug, Default)]
pub struct Ctx {
    pub cancel: CancellationToken,
}

impl Ctx {
    /// Sleep unless cancelled first; `false` means cancelled.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }
}

/// Provider-private state kept by Terraform beside the resource state (never shown to users).
pub type Private = serde_json::Map<String, Json>;

pub struct PlanRequest<'a> {
    pub config: &'a Value,
    /// Null on create.
    pub prior: &'a Value,
    pub private: &'a Private,
}

pub struct PlanResponse {
    /// Starts as the framework's plan (defaults, unknowns for computed values, modifiers).
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
    pub private: Private,
    pub diags: Diagnostics,
}

pub struct CreateRequest {
    pub config: Value,
    pub planned: Value,
    pub private: Private,
}

pub struct UpdateRequest {
    pub config: Value,
    pub prior: Value,
    pub planned: Value,
    pub private: Private,
}

pub struct DeleteRequest {
    pub prior: Value,
    pub private: Private,
}

pub struct ReadRequest {
    pub state: Value,
    pub private: Private,
}

/// Result of create, update and read. On failure keep `state` as what really exists: a
/// non-null state with errors is saved by Terraform (tainted on create), so nothing is orphaned.
#[derive(Debug, Default)]
pub struct StateResponse {
    pub state: Value,
    pub private: Private,
    pub diags: Diagnostics,
}

impl StateResponse {
    pub fn ok(state: Value) -> Self {
        Self {
            state,
            ..Self::default()
        }
    }
    pub fn error(d: Diagnostic) -> Self {
        Self {
            diags: d.into(),
            ..Self::default()
        }
    }
}

/// Resource identity (Terraform ≥ 1.12): a small object that names the remote object.
#[derive(Clone, Debug)]
pub struct IdentityAttribute {
    pub name: String,
    pub ty: Type,
    pub required_for_import: bool,
    pub description: String,
}

#[async_trait]
pub trait Resource: Send + Sync {
    /// Full type name, e.g. `infraflux_proxmox_vm`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// Checks across attributes that per-attribute validators cannot express.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}

    /// Refine the framework's plan: compute values known before apply, forbid changes, ask
    /// for replacement with a path.
    async fn modify_plan(&self, _ctx: &Ctx, _req: &PlanRequest<'_>, _resp: &mut PlanResponse) {}

    async fn create(&self, ctx: &Ctx, req: CreateRequest) -> StateResponse;
    /// A null `state` in the response means the object is gone.
    async fn read(&self, ctx: &Ctx, req: ReadRequest) -> StateResponse;
    async fn update(&self, ctx: &Ctx, req: UpdateRequest) -> StateResponse;
    /// Already gone is success.
    async fn delete(&self, ctx: &Ctx, req: DeleteRequest) -> Diagnostics;

    /// `terraform import` / `import {}` blocks. The default takes the id as the `id` attribute.
    async fn import(&self, _ctx: &Ctx, id: &str) -> StateResponse {
        if self.schema().block.attribute("id").is_some() {
            StateResponse::ok(Value::object([("id", Value::from(id))]))
        } else {
            StateResponse::error(Diagnostic::error(
                "Import not supported",
                format!("{} cannot be imported.", self.type_name()),
            ))
        }
    }

    /// Identity attributes; empty means no identity.
    fn identity_schema(&self) -> Vec<IdentityAttribute> {
        Vec::new()
    }
    /// The identity of the object a state describes.
    fn identity(&self, _state: &Value) -> Option<Value> {
        None
    }
    /// Import by identity (an `import { identity = {...} }` block).
    async fn import_identity(&self, ctx: &Ctx, identity: &Value) -> StateResponse {
        let _ = (ctx, identity);
        StateResponse::error(Diagnostic::error(
            "Import by identity not supported",
            format!("{} can only be imported by id.", self.type_name()),
        ))
    }

    /// Turn state written by schema `version` (as JSON) into the current shape. Called only
    /// when `version` is not the schema's current one; the default refuses.
    fn upgrade_state(&self, version: i64, _raw: &Json) -> Result<Json, Diagnostic> {
        Err(Diagnostic::error(
            "Unsupported state version",
            format!(
                "{} state has schema version {version}, this provider knows {}. Use the provider version that wrote it.",
                self.type_name(),
                self.schema().version
            ),
        ))
    }
}

#[async_trait]
pub trait DataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    async fn read(&self, ctx: &Ctx, config: &Value) -> StateResponse;
}

#[derive(Debug, Default)]
pub struct OpenResponse {
    pub result: Value,
    /// When Terraform should call `renew`.
    pub renew_at: Option<std::time::SystemTime>,
    pub private: Private,
    pub diags: Diagnostics,
}

/// Values that exist only during one Terraform run and are never written to plan or state.
#[async_trait]
pub trait EphemeralResource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    async fn open(&self, ctx: &Ctx, config: &Value) -> OpenResponse;
    async fn renew(&self, _ctx: &Ctx, _private: &Private) -> OpenResponse {
        OpenResponse::default()
    }
    async fn close(&self, _ctx: &Ctx, _private: &Private) -> Diagnostics {
        Diagnostics::new()
    }
}

#[derive(Clone, Debug)]
pub struct Parameter {
    pub name: String,
    pub ty: Type,
    pub allow_null: bool,
    pub description: String,
}

#[derive(Clone, Debug)]
pub struct Signature {
    pub parameters: Vec<Parameter>,
    pub variadic: Option<Parameter>,
    pub returns: Type,
    pub summary: String,
    pub description: String,
}

/// A function error: a sentence, and the argument at fault if one is.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct FunctionError {
    pub text: String,
    pub argument: Option<i64>,
}

/// A provider-defined function (`provider::infraflux::name(...)`, Terraform ≥ 1.8).
pub trait Function: Send + Sync {
    fn name(&self) -> &'static str;
    fn signature(&self) -> Signature;
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError>;
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's local name, e.g. `infraflux`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Called once per run before any resource call that needs the provider configured.
    async fn configure(&self, ctx: &Ctx, config: &Value) -> Diagnostics;
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        Vec::new()
    }
    fn functions(&self) -> Vec<Arc<dyn Function>> {
        Vec::new()
    }
}
