//! Framework → protobuf: the core's answers, schemas and diagnostics encoded at the edge.

use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::framework::fwserver::{Entry, NewState, PlanChangeResponse, Server};
use crate::framework::resource::{
    EphemeralResource, Function, FunctionError, IdentityAttribute, OpenResponse, Private, Resource,
    StateResponse,
};
use crate::framework::{AttrKind, Attribute, Block, NestedBlock, Nesting, Schema};
use crate::proto::tfplugin6 as pb;
use crate::value::{self, AttributePath, PathStep, Type, Value};

/// A response with diagnostics, so a request that fails before reaching the core (an
/// unknown type, a value that does not decode) is answered with that error alone.
pub trait Answer: Default {
    /// The response's diagnostics.
    fn diagnostics_mut(&mut self) -> &mut Vec<pb::Diagnostic>;
}

macro_rules! answers {
    ($($m:ident),* $(,)?) => {$(
        impl Answer for pb::$m::Response {
            fn diagnostics_mut(&mut self) -> &mut Vec<pb::Diagnostic> {
                &mut self.diagnostics
            }
        }
    )*};
}

answers!(
    validate_provider_config,
    validate_resource_config,
    validate_data_resource_config,
    validate_ephemeral_resource_config,
    configure_provider,
    upgrade_resource_state,
    upgrade_resource_identity,
    read_resource,
    plan_resource_change,
    apply_resource_change,
    import_resource_state,
    read_data_source,
    open_ephemeral_resource,
    renew_ephemeral_resource,
    close_ephemeral_resource,
);

/// The answer to a request refused before it reached the core.
pub fn refused<R: Answer>(d: Diagnostic) -> R {
    let mut r = R::default();
    r.diagnostics_mut().push(diagnostic(d));
    r
}

/// A response that carries nothing but diagnostics.
pub fn only<R: Answer>(d: Diagnostics) -> R {
    let mut r = R::default();
    *r.diagnostics_mut() = diagnostics(d);
    r
}

/// One diagnostic; a path to the whole value is left out, as Terraform expects.
pub fn diagnostic(d: Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error as i32,
            Severity::Warning => pb::diagnostic::Severity::Warning as i32,
        },
        summary: d.summary,
        detail: d.detail,
        attribute: d.path.filter(|p| !p.is_root()).map(|p| path(&p)),
    }
}

/// Diagnostics, in order.
pub fn diagnostics(d: Diagnostics) -> Vec<pb::Diagnostic> {
    d.into_iter().map(diagnostic).collect()
}

/// An attribute path, step by step.
pub fn path(p: &AttributePath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: p
            .steps()
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attr(a) => Selector::AttributeName(a.clone()),
                    PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

/// Encode a value as msgpack, the form Terraform prefers.
pub fn value(v: &Value, ty: &Type) -> Result<pb::DynamicValue, Diagnostic> {
    value::encode_msgpack(v, ty)
        .map(|msgpack| pb::DynamicValue {
            msgpack,
            json: Vec::new(),
        })
        .map_err(|e| {
            Diagnostic::error(
                "Provider produced a value that does not fit its schema",
                format!("{e}. This is a bug in the provider; please report it."),
            )
        })
}

/// Private state as JSON; nothing when empty.
pub fn private(p: &Private) -> Vec<u8> {
    if p.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(p).unwrap_or_default()
    }
}

fn nesting_block(n: Nesting) -> i32 {
    use pb::schema::nested_block::NestingMode as M;
    (match n {
        Nesting::Single => M::Single,
        Nesting::Group => M::Group,
        Nesting::List => M::List,
        Nesting::Set => M::Set,
        Nesting::Map => M::Map,
    }) as i32
}

fn nesting_object(n: Nesting) -> i32 {
    use pb::schema::object::NestingMode as M;
    (match n {
        Nesting::Single | Nesting::Group => M::Single,
        Nesting::List => M::List,
        Nesting::Set => M::Set,
        Nesting::Map => M::Map,
    }) as i32
}

const MARKDOWN: i32 = pb::StringKind::Markdown as i32;

fn attribute(a: &Attribute) -> pb::schema::Attribute {
    let (ty, nested) = match &a.kind {
        AttrKind::Primitive(t) => (t.to_json_bytes(), None),
        AttrKind::Nested {
            nesting,
            attributes,
        } => (
            Vec::new(),
            Some(pb::schema::Object {
                attributes: attributes.iter().map(attribute).collect(),
                nesting: nesting_object(*nesting),
                ..Default::default()
            }),
        ),
    };
    pb::schema::Attribute {
        name: a.name.clone(),
        r#type: ty,
        nested_type: nested,
        description: describe(a),
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description_kind: MARKDOWN,
        deprecated: a.deprecation.is_some(),
        write_only: a.write_only,
    }
}

/// The attribute's description followed by what its validators and default say, so the
/// generated docs cannot drift from behaviour.
fn describe(a: &Attribute) -> String {
    let mut parts = vec![a.description.clone()];
    parts.extend(
        a.validators
            .iter()
            .map(|v| format!("Value {}.", v.description())),
    );
    if let Some(d) = &a.default {
        parts.push(format!("Defaults to `{}`.", value::encode_json(d)));
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}

fn block(b: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: b.attributes.iter().map(attribute).collect(),
        block_types: b.blocks.iter().map(nested_block).collect(),
        description: b.description.clone(),
        description_kind: MARKDOWN,
        deprecated: b.deprecated,
    }
}

fn nested_block(nb: &NestedBlock) -> pb::schema::NestedBlock {
    pb::schema::NestedBlock {
        type_name: nb.name.clone(),
        block: Some(block(&nb.block)),
        nesting: nesting_block(nb.nesting),
        min_items: nb.min_items,
        max_items: nb.max_items,
    }
}

/// A schema, with its version on the top block too.
pub fn schema(s: &Schema) -> pb::Schema {
    let mut b = block(&s.block);
    b.version = s.version;
    pb::Schema {
        version: s.version,
        block: Some(b),
    }
}

/// A resource's identity schema (version 0).
pub fn identity_schema(attrs: &[IdentityAttribute]) -> pb::ResourceIdentitySchema {
    pb::ResourceIdentitySchema {
        version: 0,
        identity_attributes: attrs
            .iter()
            .map(|a| pb::resource_identity_schema::IdentityAttribute {
                name: a.name.clone(),
                r#type: a.ty.to_json_bytes(),
                required_for_import: a.required_for_import,
                optional_for_import: !a.required_for_import,
                description: a.description.clone(),
            })
            .collect(),
    }
}

/// A function's signature and docs.
pub fn function(f: &dyn Function) -> pb::Function {
    let sig = f.signature();
    let param = |p: &crate::framework::resource::Parameter| pb::function::Parameter {
        name: p.name.clone(),
        r#type: p.ty.to_json_bytes(),
        allow_null_value: p.allow_null,
        allow_unknown_values: false,
        description: p.description.clone(),
        description_kind: MARKDOWN,
    };
    pb::Function {
        parameters: sig.parameters.iter().map(param).collect(),
        variadic_parameter: sig.variadic.as_ref().map(param),
        r#return: Some(pb::function::Return {
            r#type: sig.returns.to_json_bytes(),
        }),
        summary: sig.summary,
        description: sig.description,
        description_kind: MARKDOWN,
        deprecation_message: String::new(),
    }
}

/// The protocol features this server offers.
pub fn server_capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        // The core plans destroys: it hands the private state back to apply.
        plan_destroy: true,
        get_provider_schema_optional: false,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

/// The names of everything the provider offers.
pub fn metadata(core: &Server) -> pb::get_metadata::Response {
    use pb::get_metadata as m;
    m::Response {
        server_capabilities: Some(server_capabilities()),
        diagnostics: Vec::new(),
        data_sources: core
            .data_sources()
            .map(|(k, _)| m::DataSourceMetadata {
                type_name: k.to_owned(),
            })
            .collect(),
        resources: core
            .resources()
            .map(|(k, _)| m::ResourceMetadata {
                type_name: k.to_owned(),
            })
            .collect(),
        functions: core
            .functions()
            .map(|(k, _)| m::FunctionMetadata { name: k.to_owned() })
            .collect(),
        ephemeral_resources: core
            .ephemeral_resources()
            .map(|(k, _)| m::EphemeralMetadata {
                type_name: k.to_owned(),
            })
            .collect(),
        list_resources: Vec::new(),
        state_stores: Vec::new(),
        actions: Vec::new(),
    }
}

/// Every schema the provider has.
pub fn provider_schema(core: &Server) -> pb::get_provider_schema::Response {
    pb::get_provider_schema::Response {
        provider: Some(schema(core.provider_schema())),
        resource_schemas: core
            .resources()
            .map(|(k, e)| (k.to_owned(), schema(&e.schema)))
            .collect(),
        data_source_schemas: core
            .data_sources()
            .map(|(k, e)| (k.to_owned(), schema(&e.schema)))
            .collect(),
        ephemeral_resource_schemas: core
            .ephemeral_resources()
            .map(|(k, e)| (k.to_owned(), schema(&e.schema)))
            .collect(),
        functions: functions(core),
        server_capabilities: Some(server_capabilities()),
        ..Default::default()
    }
}

/// The identity schemas of the resources that have identities.
pub fn identity_schemas(core: &Server) -> pb::get_resource_identity_schemas::Response {
    pb::get_resource_identity_schemas::Response {
        identity_schemas: core
            .resources()
            .filter_map(|(k, e)| {
                let attrs = e.imp.identity_schema();
                (!attrs.is_empty()).then(|| (k.to_owned(), identity_schema(&attrs)))
            })
            .collect(),
        diagnostics: Vec::new(),
    }
}

/// Every function's signature, by name.
pub fn functions(core: &Server) -> std::collections::HashMap<String, pb::Function> {
    core.functions()
        .map(|(k, f)| (k.to_owned(), function(f)))
        .collect()
}

/// An identity, when the resource gave one that fits its identity schema.
fn identity(e: &Entry<dyn Resource>, id: Option<Value>) -> Option<pb::ResourceIdentityData> {
    let dv = value(&id?, &e.identity_type()).ok()?;
    Some(pb::ResourceIdentityData {
        identity_data: Some(dv),
    })
}

/// Encodes `v` into `slot`, or adds the error: a value that does not fit its schema ends
/// the answer there, with the fields after it left empty.
fn fill(
    slot: &mut Option<pb::DynamicValue>,
    v: &Value,
    ty: &Type,
    diags: &mut Diagnostics,
) -> bool {
    match value(v, ty) {
        Ok(dv) => {
            *slot = Some(dv);
            true
        }
        Err(d) => {
            diags.push(d);
            false
        }
    }
}

/// The core's plan, as PlanResourceChange answers it.
pub fn plan_resource_change(
    e: &Entry<dyn Resource>,
    r: PlanChangeResponse,
) -> pb::plan_resource_change::Response {
    let mut diags = r.diags;
    let mut resp = pb::plan_resource_change::Response::default();
    if fill(&mut resp.planned_state, &r.planned, &e.ty, &mut diags) {
        resp.requires_replace = r.requires_replace.iter().map(path).collect();
        resp.planned_private = private(&r.private);
        resp.planned_identity = identity(e, r.identity);
    }
    resp.diagnostics = diagnostics(diags);
    resp
}

/// The state after apply, as ApplyResourceChange answers it.
pub fn apply_resource_change(
    e: &Entry<dyn Resource>,
    r: NewState,
) -> pb::apply_resource_change::Response {
    let mut diags = r.diags;
    let mut resp = pb::apply_resource_change::Response::default();
    if fill(&mut resp.new_state, &r.state, &e.ty, &mut diags) {
        resp.private = private(&r.private);
        resp.new_identity = identity(e, r.identity);
    }
    resp.diagnostics = diagnostics(diags);
    resp
}

/// The refreshed state, as ReadResource answers it.
pub fn read_resource(e: &Entry<dyn Resource>, r: NewState) -> pb::read_resource::Response {
    let mut diags = r.diags;
    let mut resp = pb::read_resource::Response::default();
    if fill(&mut resp.new_state, &r.state, &e.ty, &mut diags) {
        resp.private = private(&r.private);
        resp.new_identity = identity(e, r.identity);
    }
    resp.diagnostics = diagnostics(diags);
    resp
}

/// The imported object, if any, as ImportResourceState answers it.
pub fn import_resource_state(
    e: &Entry<dyn Resource>,
    r: NewState,
) -> pb::import_resource_state::Response {
    let mut diags = r.diags;
    let mut resp = pb::import_resource_state::Response::default();
    if !r.state.is_null() {
        let mut state = None;
        if fill(&mut state, &r.state, &e.ty, &mut diags) {
            resp.imported_resources
                .push(pb::import_resource_state::ImportedResource {
                    type_name: e.imp.type_name().to_owned(),
                    state,
                    private: private(&r.private),
                    identity: identity(e, r.identity),
                });
        }
    }
    resp.diagnostics = diagnostics(diags);
    resp
}

/// The upgraded state, as UpgradeResourceState answers it.
pub fn upgrade_resource_state(
    e: &Entry<dyn Resource>,
    r: Result<Value, Diagnostic>,
) -> pb::upgrade_resource_state::Response {
    let mut diags = Diagnostics::new();
    let mut resp = pb::upgrade_resource_state::Response::default();
    match r {
        Ok(v) => {
            fill(&mut resp.upgraded_state, &v, &e.ty, &mut diags);
        }
        Err(d) => diags.push(d),
    }
    resp.diagnostics = diagnostics(diags);
    resp
}

/// The upgraded identity, as UpgradeResourceIdentity answers it.
pub fn upgrade_resource_identity(
    e: &Entry<dyn Resource>,
    r: Result<Value, Diagnostic>,
) -> pb::upgrade_resource_identity::Response {
    let mut diags = Diagnostics::new();
    let mut resp = pb::upgrade_resource_identity::Response::default();
    let mut data = None;
    match r {
        Ok(v) if fill(&mut data, &v, &e.identity_type(), &mut diags) => {
            resp.upgraded_identity = Some(pb::ResourceIdentityData {
                identity_data: data,
            });
        }
        Ok(_) => {}
        Err(d) => diags.push(d),
    }
    resp.diagnostics = diagnostics(diags);
    resp
}

/// A data source's state, as ReadDataSource answers it.
pub fn read_data_source<T: ?Sized>(
    e: &Entry<T>,
    r: StateResponse,
) -> pb::read_data_source::Response {
    let mut diags = r.diags;
    let mut resp = pb::read_data_source::Response::default();
    fill(&mut resp.state, &r.state, &e.ty, &mut diags);
    resp.diagnostics = diagnostics(diags);
    resp
}

/// `None` from the core: the configuration is not known yet, so neither is the result.
pub fn open_ephemeral_resource(
    e: &Entry<dyn EphemeralResource>,
    r: Option<OpenResponse>,
) -> pb::open_ephemeral_resource::Response {
    let mut resp = pb::open_ephemeral_resource::Response::default();
    let Some(r) = r else {
        resp.result = value(&Value::Unknown, &e.ty).ok();
        return resp;
    };
    let mut diags = r.diags;
    fill(&mut resp.result, &r.result, &e.ty, &mut diags);
    resp.renew_at = r.renew_at.map(prost_types::Timestamp::from);
    resp.private = Some(private(&r.private));
    resp.diagnostics = diagnostics(diags);
    resp
}

/// A renewal, as RenewEphemeralResource answers it.
pub fn renew_ephemeral_resource(r: OpenResponse) -> pb::renew_ephemeral_resource::Response {
    pb::renew_ephemeral_resource::Response {
        renew_at: r.renew_at.map(prost_types::Timestamp::from),
        private: Some(private(&r.private)),
        diagnostics: diagnostics(r.diags),
    }
}

/// A function's result or error, as CallFunction answers it.
pub fn call_function(r: Result<pb::DynamicValue, FunctionError>) -> pb::call_function::Response {
    match r {
        Ok(dv) => pb::call_function::Response {
            result: Some(dv),
            error: None,
        },
        Err(e) => pb::call_function::Response {
            result: None,
            error: Some(pb::FunctionError {
                text: e.text,
                function_argument: e.argument,
            }),
        },
    }
}
