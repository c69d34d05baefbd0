//! Protobuf → framework: a request's values decoded at the edge, against the schema of the
//! type it names, into the core's request types.

use crate::diag::Diagnostic;
use crate::framework::fwserver::{ApplyRequest, Entry, ImportRequest, PlanChangeRequest};
use crate::framework::resource::{FunctionError, Private, ReadRequest, Resource, Signature};
use crate::proto::tfplugin6 as pb;
use crate::value::{self, Type, Value};

/// Decode a DynamicValue (msgpack preferred, JSON accepted). Absent means null.
pub fn value(dv: Option<&pb::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostic> {
    let fail = |e: String| {
        Diagnostic::error(
            format!("Invalid {what} from Terraform"),
            format!(
                "The provider could not decode the {what}: {e}. Check that Terraform and the provider versions are compatible."
            ),
        )
    };
    match dv {
        Some(dv) if !dv.msgpack.is_empty() => {
            value::decode_msgpack(&dv.msgpack, ty).map_err(|e| fail(e.to_string()))
        }
        Some(dv) if !dv.json.is_empty() => {
            let j: serde_json::Value =
                serde_json::from_slice(&dv.json).map_err(|e| fail(e.to_string()))?;
            value::decode_json(&j, ty).map_err(fail)
        }
        _ => Ok(Value::Null),
    }
}

/// Private state as this provider writes it: a JSON object, or nothing.
pub fn private(bytes: &[u8]) -> Result<Private, Diagnostic> {
    if bytes.is_empty() {
        return Ok(Private::new());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        Diagnostic::error(
            "Unreadable private state",
            format!("Private state is not the JSON this provider writes: {e}."),
        )
    })
}

/// Whether this Terraform keeps write-only values out of state (1.11 and later say so).
pub fn write_only_allowed(c: Option<&pb::ClientCapabilities>) -> bool {
    c.is_some_and(|c| c.write_only_attributes_allowed)
}

/// PlanResourceChange, for the core.
pub fn plan_resource_change(
    req: &pb::plan_resource_change::Request,
    ty: &Type,
) -> Result<PlanChangeRequest, Diagnostic> {
    Ok(PlanChangeRequest {
        prior: value(req.prior_state.as_ref(), ty, "prior state")?,
        proposed: value(req.proposed_new_state.as_ref(), ty, "proposed new state")?,
        config: value(req.config.as_ref(), ty, "configuration")?,
        prior_private: private(&req.prior_private)?,
    })
}

/// ApplyResourceChange, for the core.
pub fn apply_resource_change(
    req: &pb::apply_resource_change::Request,
    ty: &Type,
) -> Result<ApplyRequest, Diagnostic> {
    Ok(ApplyRequest {
        prior: value(req.prior_state.as_ref(), ty, "prior state")?,
        planned: value(req.planned_state.as_ref(), ty, "planned state")?,
        config: value(req.config.as_ref(), ty, "configuration")?,
        planned_private: private(&req.planned_private)?,
    })
}

/// ReadResource, for the core.
pub fn read_resource(
    req: &pb::read_resource::Request,
    ty: &Type,
) -> Result<ReadRequest, Diagnostic> {
    Ok(ReadRequest {
        state: value(req.current_state.as_ref(), ty, "state")?,
        private: private(&req.private)?,
    })
}

/// Terraform sends an id, or an identity with an empty id; the id wins when both come.
pub fn import_resource_state(
    req: &pb::import_resource_state::Request,
    e: &Entry<dyn Resource>,
) -> Result<ImportRequest, Diagnostic> {
    let identity = match req.identity.as_ref().and_then(|i| i.identity_data.as_ref()) {
        Some(dv) if req.id.is_empty() => Some(value(Some(dv), &e.identity_type(), "identity")?),
        _ => None,
    };
    Ok(ImportRequest {
        id: req.id.clone(),
        identity,
    })
}

/// The JSON of a stored state or identity; empty when Terraform sent none. (This provider
/// never wrote the older flatmap form.)
pub fn raw_json(raw: Option<&pb::RawState>) -> &[u8] {
    raw.map(|r| r.json.as_slice()).unwrap_or_default()
}

/// A function's arguments, each decoded against its parameter (the variadic one last).
pub fn function_arguments(
    req: &pb::call_function::Request,
    sig: &Signature,
) -> Result<Vec<Value>, FunctionError> {
    let mut args = Vec::with_capacity(req.arguments.len());
    for (i, dv) in req.arguments.iter().enumerate() {
        let Some(p) = sig.parameters.get(i).or(sig.variadic.as_ref()) else {
            return Err(FunctionError {
                text: format!(
                    "too many arguments: {} takes {}",
                    req.name,
                    sig.parameters.len()
                ),
                argument: None,
            });
        };
        match value(Some(dv), &p.ty, "argument") {
            Ok(v) => args.push(v),
            Err(d) => {
                return Err(FunctionError {
                    text: d.detail,
                    argument: i64::try_from(i).ok(),
                });
            }
        }
    }
    Ok(args)
}
