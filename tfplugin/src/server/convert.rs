//! Wire ⇄ framework conversions: the only place that knows both the proto types and ours.

use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::framework::resource::{Function, IdentityAttribute, Private};
use crate::framework::{AttrKind, Attribute, Block, NestedBlock, Nesting, Schema};
use crate::proto::tfplugin6 as pb;
use crate::value::{self, AttributePath, PathStep, Type, Value};

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

pub fn diagnostics(d: Diagnostics) -> Vec<pb::Diagnostic> {
    d.into_iter().map(diagnostic).collect()
}

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

/// Decode a DynamicValue (msgpack preferred, JSON accepted). Absent means null.
pub fn decode(dv: Option<&pb::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostic> {
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

pub fn encode(v: &Value, ty: &Type) -> Result<pb::DynamicValue, Diagnostic> {
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

pub fn private_from(bytes: &[u8]) -> Result<Private, Diagnostic> {
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

pub fn private_to(p: &Private) -> Vec<u8> {
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

pub fn schema(s: &Schema) -> pb::Schema {
    let mut b = block(&s.block);
    b.version = s.version;
    pb::Schema {
        version: s.version,
        block: Some(b),
    }
}

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

pub fn identity_type(attrs: &[IdentityAttribute]) -> Type {
    Type::object(attrs.iter().map(|a| (a.name.clone(), a.ty.clone())))
}

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
