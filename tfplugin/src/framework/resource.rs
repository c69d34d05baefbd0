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
    /// Cancelled when Terraform asks the provider to stop.
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

/// What [`Resource::modify_plan`] sees.
pub struct PlanRequest<'a> {
    /// The configuration.
    pub config: &'a Value,
    /// The prior state; null on create.
    pub prior: &'a Value,
    /// The private state saved with the prior state.
    pub private: &'a Private,
}

/// The plan [`Resource::modify_plan`] refines.
pub struct PlanResponse {
    /// Starts as the framework's plan (defaults, unknowns for computed values, modifiers).
    pub planned: Value,
    /// Attributes whose change replaces the object; push a path to ask for replacement.
    pub requires_replace: Vec<AttributePath>,
    /// Private state handed to create or update; starts as the prior one.
    pub private: Private,
    /// What the resource has to say about the plan.
    pub diags: Diagnostics,
}

/// What [`Resource::create`] gets.
pub struct CreateRequest {
    /// The configuration, write-only values included.
    pub config: Value,
    /// The plan the result must keep (unknowns are for the resource to fill).
    pub planned: Value,
    /// The private state the plan returned.
    pub private: Private,
}

/// What [`Resource::update`] gets.
pub struct UpdateRequest {
    /// The configuration, write-only values included.
    pub config: Value,
    /// The state before the change.
    pub prior: Value,
    /// The plan the result must keep (unknowns are for the resource to fill).
    pub planned: Value,
    /// The private state the plan returned.
    pub private: Private,
}

/// What [`Resource::delete`] gets.
pub struct DeleteRequest {
    /// The state of the object to delete.
    pub prior: Value,
    /// The private state the destroy plan returned.
    pub private: Private,
}

/// What [`Resource::read`] gets.
pub struct ReadRequest {
    /// The state Terraform has.
    pub state: Value,
    /// The private state saved with it.
    pub private: Private,
}

/// Result of create, update and read. On failure keep `state` as what really exists: a
/// non-null state with errors is saved by Terraform (tainted on create), so nothing is orphaned.
#[derive(Debug, Default)]
pub struct StateResponse {
    /// The state of what exists.
    pub state: Value,
    /// Private state to save beside it.
    pub private: Private,
    /// What went wrong, or what the user should know.
    pub diags: Diagnostics,
}

impl StateResponse {
    /// Success with this state.
    pub fn ok(state: Value) -> Self {
        Self {
            state,
            ..Self::default()
        }
    }
    /// Failure with nothing created: a null state and the error.
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
    /// The attribute's name.
    pub name: String,
    /// Its type (a primitive, or a list of primitives).
    pub ty: Type,
    /// Whether an `import` block's identity must set it.
    pub required_for_import: bool,
    /// Markdown, for the docs.
    pub description: String,
}

/// A managed resource: Terraform plans it, and the provider creates, reads, updates and
/// deletes the remote object it describes. The framework keeps Terraform's lifecycle rules
/// around every call.
#[async_trait]
pub trait Resource: Send + Sync {
    /// Full type name, e.g. `infraflux_proxmox_vm`.
    fn type_name(&self) -> &'static str;
    /// Attributes, blocks and behaviour; asked once per process.
    fn schema(&self) -> Schema;

    /// Checks across attributes that per-attribute validators cannot express.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}

    /// Refine the framework's plan: compute values known before apply, forbid changes, ask
    /// for replacement with a path.
    async fn modify_plan(&self, _ctx: &Ctx, _req: &PlanRequest<'_>, _resp: &mut PlanResponse) {}

    /// Create the remote object. On failure after it exists, return its state with the
    /// error: Terraform saves it, tainted.
    async fn create(&self, ctx: &Ctx, req: CreateRequest) -> StateResponse;
    /// Refresh the state from the remote object. A null `state` in the response means the
    /// object is gone.
    async fn read(&self, ctx: &Ctx, req: ReadRequest) -> StateResponse;
    /// Change the remote object in place. On failure, return the state of what exists.
    async fn update(&self, ctx: &Ctx, req: UpdateRequest) -> StateResponse;
    /// Delete the remote object. Already gone is success.
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

/// A data source: reads something that exists, by its configuration, on every plan.
#[async_trait]
pub trait DataSource: Send + Sync {
    /// Full type name, e.g. `infraflux_proxmox_nodes`.
    fn type_name(&self) -> &'static str;
    /// Attributes and blocks; asked once per process.
    fn schema(&self) -> Schema;
    /// Checks across attributes that per-attribute validators cannot express.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Read: the configuration with its computed attributes filled in.
    async fn read(&self, ctx: &Ctx, config: &Value) -> StateResponse;
}

/// Result of opening or renewing an ephemeral resource.
#[derive(Debug, Default)]
pub struct OpenResponse {
    /// The values, shaped by the schema (unused on renew).
    pub result: Value,
    /// When Terraform should call `renew`.
    pub renew_at: Option<std::time::SystemTime>,
    /// What `renew` and `close` need to find what was opened.
    pub private: Private,
    /// What went wrong, or what the user should know.
    pub diags: Diagnostics,
}

/// Values that exist only during one Terraform run and are never written to plan or state.
#[async_trait]
pub trait EphemeralResource: Send + Sync {
    /// Full type name.
    fn type_name(&self) -> &'static str;
    /// Attributes and blocks; asked once per process.
    fn schema(&self) -> Schema;
    /// Checks across attributes that per-attribute validators cannot express.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Produce the values, from a wholly known configuration.
    async fn open(&self, ctx: &Ctx, config: &Value) -> OpenResponse;
    /// Extend what `open` produced before `renew_at`; the default does nothing.
    async fn renew(&self, _ctx: &Ctx, _private: &Private) -> OpenResponse {
        OpenResponse::default()
    }
    /// Release what `open` produced, at the end of the run; the default does nothing.
    async fn close(&self, _ctx: &Ctx, _private: &Private) -> Diagnostics {
        Diagnostics::new()
    }
}

/// One parameter of a function.
#[derive(Clone, Debug)]
pub struct Parameter {
    /// The name shown in docs and errors.
    pub name: String,
    /// The type arguments are converted to.
    pub ty: Type,
    /// Whether null is a valid argument.
    pub allow_null: bool,
    /// Markdown, for the docs.
    pub description: String,
}

/// What a function takes and returns.
#[derive(Clone, Debug)]
pub struct Signature {
    /// Positional parameters.
    pub parameters: Vec<Parameter>,
    /// The parameter any further arguments are for.
    pub variadic: Option<Parameter>,
    /// The type of the result.
    pub returns: Type,
    /// One line, for the docs.
    pub summary: String,
    /// Markdown, for the docs.
    pub description: String,
}

/// A function error: a sentence, and the argument at fault if one is.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct FunctionError {
    /// What is wrong, as a sentence.
    pub text: String,
    /// The index of the argument at fault.
    pub argument: Option<i64>,
}

/// A provider-defined function (`provider::infraflux::name(...)`, Terraform ≥ 1.8).
pub trait Function: Send + Sync {
    /// The name after `provider::<provider>::`.
    fn name(&self) -> &'static str;
    /// Parameters and result.
    fn signature(&self) -> Signature;
    /// The result for arguments already converted to the signature's types.
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError>;
}

/// A provider: its block, and everything it offers.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's local name, e.g. `infraflux`.
    fn type_name(&self) -> &'static str;
    /// The provider block's schema.
    fn schema(&self) -> Schema;
    /// Checks of the provider block across attributes.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Called once per run before any resource call that needs the provider configured.
    async fn configure(&self, ctx: &Ctx, config: &Value) -> Diagnostics;
    /// The resource types; asked once per process.
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    /// The data source types.
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }
    /// The ephemeral resource types.
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        Vec::new()
    }
    /// The functions.
    fn functions(&self) -> Vec<Arc<dyn Function>> {
        Vec::new()
    }
}
