//! Managed resources: validate, plan, apply, read, import and upgrade, with the lifecycle
//! rules kept around every call into the resource.

use super::{Entry, Server, lifecycle};
use crate::diag::{Diagnostic, Diagnostics};
use crate::framework::resource::{
    CreateRequest, DeleteRequest, PlanRequest, PlanResponse, Private, ReadRequest, Resource,
    UpdateRequest,
};
use crate::value::{self, AttributePath, Value};

/// A change Terraform asks the provider to plan.
pub struct PlanChangeRequest {
    /// The configuration.
    pub config: Value,
    /// The state before the change; null on create.
    pub prior: Value,
    /// Terraform's proposal (configuration merged with prior state); null on destroy.
    pub proposed: Value,
    /// The private state saved with the prior state.
    pub prior_private: Private,
}

/// The plan, as Terraform will show and later apply it.
pub struct PlanChangeResponse {
    /// The planned state: null on destroy.
    pub planned: Value,
    /// Attributes whose change replaces the object.
    pub requires_replace: Vec<AttributePath>,
    /// Private state handed to apply.
    pub private: Private,
    /// The planned object's identity, once the plan knows it wholly.
    pub identity: Option<Value>,
    /// What went wrong, or what the user should know.
    pub diags: Diagnostics,
}

/// A planned change to carry out.
pub struct ApplyRequest {
    /// The configuration.
    pub config: Value,
    /// The state before the change; null on create.
    pub prior: Value,
    /// The plan; null on destroy.
    pub planned: Value,
    /// The private state the plan returned.
    pub planned_private: Private,
}

/// A resource's state after apply, read or import.
pub struct NewState {
    /// The state: null when the object is gone (or, for import, when nothing was imported).
    pub state: Value,
    /// Private state to save beside it.
    pub private: Private,
    /// The object's identity, when the resource has one.
    pub identity: Option<Value>,
    /// What went wrong, or what the user should know.
    pub diags: Diagnostics,
}

/// What `terraform import` or an `import {}` block names.
pub struct ImportRequest {
    /// The import id; empty when Terraform imports by identity.
    pub id: String,
    /// The identity to import by, when the id is empty.
    pub identity: Option<Value>,
}

impl Server {
    /// Attribute validators, the write-only rule for Terraform before 1.11, then the
    /// resource's own checks.
    pub async fn validate_resource_config(
        &self,
        e: &Entry<dyn Resource>,
        config: &Value,
        write_only_allowed: bool,
    ) -> Diagnostics {
        let mut diags = Diagnostics::new();
        lifecycle::validate_config(&e.schema.block, config, &mut diags);
        if !write_only_allowed {
            lifecycle::refuse_write_only(&e.schema.block, config, &mut diags);
        }
        e.imp.validate(config, &mut diags).await;
        diags
    }

    /// Plan a change: the framework's plan, refined by the resource's `modify_plan`, then
    /// checked against the plan rules before Terraform sees it.
    pub async fn plan_resource_change(
        &self,
        e: &Entry<dyn Resource>,
        req: PlanChangeRequest,
    ) -> PlanChangeResponse {
        let PlanChangeRequest {
            mut config,
            prior,
            proposed,
            prior_private,
        } = req;
        if proposed.is_null() {
            // Destroy: nothing to plan but the private state Terraform hands back on apply.
            return PlanChangeResponse {
                planned: Value::Null,
                requires_replace: Vec::new(),
                private: prior_private,
                identity: None,
                diags: Diagnostics::new(),
            };
        }
        let block = &e.schema.block;
        lifecycle::complete(block, &mut config);
        let fw = lifecycle::plan(block, &config, &prior, &proposed);
        let mut diags = fw.diags;
        let mut pr = PlanResponse {
            planned: fw.planned,
            requires_replace: fw.requires_replace,
            private: prior_private.clone(),
            diags: Diagnostics::new(),
        };
        let req = PlanRequest {
            config: &config,
            prior: &prior,
            private: &prior_private,
        };
        e.imp.modify_plan(&self.ctx(), &req, &mut pr).await;
        diags.extend(pr.diags);
        lifecycle::complete(block, &mut pr.planned);
        if !diags.has_errors() {
            let root = AttributePath::root();
            lifecycle::check_plan(block, &root, &config, &prior, &pr.planned, &mut diags);
        }
        let identity = Some(&pr.planned)
            .filter(|p| p.is_wholly_known())
            .and_then(|p| identity(e, p));
        PlanChangeResponse {
            planned: pr.planned,
            requires_replace: pr.requires_replace,
            private: pr.private,
            identity,
            diags,
        }
    }

    /// Carry out a plan: create, update or delete, then check the result against the apply
    /// rules. A failed delete keeps the prior state, since the object may still exist.
    pub async fn apply_resource_change(
        &self,
        e: &Entry<dyn Resource>,
        req: ApplyRequest,
    ) -> NewState {
        let ApplyRequest {
            config,
            prior,
            planned,
            planned_private,
        } = req;
        let ctx = self.ctx();
        let op = if planned.is_null() {
            "delete"
        } else if prior.is_null() {
            "create"
        } else {
            "update"
        };
        tracing::debug!(type_name = %e.imp.type_name(), op, "apply");
        if planned.is_null() {
            let delete = DeleteRequest {
                prior: prior.clone(),
                private: planned_private.clone(),
            };
            let diags = e.imp.delete(&ctx, delete).await;
            let (state, private) = if diags.has_errors() {
                (prior, planned_private)
            } else {
                (Value::Null, Private::new())
            };
            return NewState {
                state,
                private,
                identity: None,
                diags,
            };
        }
        let mut out = if prior.is_null() {
            let create = CreateRequest {
                config,
                planned: planned.clone(),
                private: planned_private,
            };
            e.imp.create(&ctx, create).await
        } else {
            let update = UpdateRequest {
                config,
                prior,
                planned: planned.clone(),
                private: planned_private,
            };
            e.imp.update(&ctx, update).await
        };
        let mut diags = std::mem::take(&mut out.diags);
        if !out.state.is_null() {
            lifecycle::complete(&e.schema.block, &mut out.state);
            lifecycle::strip_write_only(&e.schema.block, &mut out.state);
            if !diags.has_errors() {
                let root = AttributePath::root();
                lifecycle::check_applied(&planned, &out.state, &root, &mut diags);
            }
            // Terraform refuses unknowns in new state even with errors: make them null.
            if !out.state.is_wholly_known() {
                lifecycle::null_unknowns(&mut out.state);
            }
        }
        NewState {
            identity: identity(e, &out.state),
            state: out.state,
            private: out.private,
            diags,
        }
    }

    /// Refresh: the resource reads what exists; values that mean the same as the prior
    /// state keep its form, so a refresh never shows a diff that is not one.
    pub async fn read_resource(&self, e: &Entry<dyn Resource>, req: ReadRequest) -> NewState {
        let block = &e.schema.block;
        let prior = req.state.clone();
        let mut out = e.imp.read(&self.ctx(), req).await;
        let diags = std::mem::take(&mut out.diags);
        lifecycle::complete(block, &mut out.state);
        lifecycle::keep_equivalent(block, &prior, &mut out.state);
        lifecycle::strip_write_only(block, &mut out.state);
        lifecycle::null_unknowns(&mut out.state);
        NewState {
            identity: identity(e, &out.state),
            state: out.state,
            private: out.private,
            diags,
        }
    }

    /// Import by id, or by identity when Terraform sends one instead. A null state in the
    /// answer means nothing was imported; its diagnostics say why.
    pub async fn import_resource_state(
        &self,
        e: &Entry<dyn Resource>,
        req: ImportRequest,
    ) -> NewState {
        let ctx = self.ctx();
        let mut out = match &req.identity {
            Some(identity) => e.imp.import_identity(&ctx, identity).await,
            None => e.imp.import(&ctx, &req.id).await,
        };
        let mut diags = std::mem::take(&mut out.diags);
        if out.state.is_null() {
            if !diags.has_errors() {
                diags.error(
                    "Cannot import non-existent remote object",
                    format!(
                        "No {} matches the import id {:?}.",
                        e.imp.type_name(),
                        req.id
                    ),
                );
            }
            return NewState {
                state: Value::Null,
                private: Private::new(),
                identity: None,
                diags,
            };
        }
        lifecycle::complete(&e.schema.block, &mut out.state);
        lifecycle::null_unknowns(&mut out.state);
        NewState {
            identity: identity(e, &out.state),
            state: out.state,
            private: out.private,
            diags,
        }
    }

    /// Bring state saved as JSON by schema `version` to the current schema. Empty state is
    /// null; state at the current version is only decoded.
    pub fn upgrade_resource_state(
        &self,
        e: &Entry<dyn Resource>,
        version: i64,
        raw_json: &[u8],
    ) -> Result<Value, Diagnostic> {
        if raw_json.is_empty() {
            return Ok(Value::Null);
        }
        let json: serde_json::Value = serde_json::from_slice(raw_json).map_err(|err| {
            Diagnostic::error(
                "Unreadable state",
                format!("The stored state is not JSON: {err}."),
            )
        })?;
        // State at the current version needs no upgrade: the hot path of every refresh.
        let upgraded = if version == e.schema.version {
            json
        } else {
            e.imp.upgrade_state(version, &json)?
        };
        value::decode_json(&upgraded, &e.ty).map_err(|err| {
            Diagnostic::error(
                "State does not match the schema",
                format!(
                    "The stored {} state could not be read: {err}. If you downgraded the provider, return to the version that wrote it.",
                    e.imp.type_name()
                ),
            )
        })
    }

    /// Read an identity saved as JSON. Identities have one version, so nothing upgrades.
    pub fn upgrade_resource_identity(
        &self,
        e: &Entry<dyn Resource>,
        raw_json: &[u8],
    ) -> Result<Value, Diagnostic> {
        let json: serde_json::Value =
            serde_json::from_slice(raw_json).unwrap_or(serde_json::Value::Null);
        value::decode_json(&json, &e.identity_type())
            .map_err(|err| Diagnostic::error("Unreadable identity", err))
    }

    /// Moving state between resource types: no resource of this provider accepts it.
    pub fn move_resource_state(&self, source_type: &str, target_type: &str) -> Diagnostics {
        Diagnostic::error(
            "Move not supported",
            format!("{target_type} cannot take state moved from {source_type}."),
        )
        .into()
    }
}

/// The identity of the object `state` describes, for resources that have identities.
fn identity(e: &Entry<dyn Resource>, state: &Value) -> Option<Value> {
    if state.is_null() || e.imp.identity_schema().is_empty() {
        return None;
    }
    e.imp.identity(state)
}
