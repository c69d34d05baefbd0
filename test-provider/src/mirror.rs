//! `tftest_mirror`: a no-op resource wearing another provider's schema, for benchmarks that
//! need Terraform's own time for a resource of that shape (its schema decides how much
//! Terraform decodes, compares and stores). `TFTEST_MIRROR_SCHEMA` names a file holding one
//! resource schema as `terraform providers schema -json` prints it (`{"version", "block"}`);
//! without it the schema is a single optional `name`. Create and update store the plan
//! (unknowns as null), read returns the state as it is, delete forgets.

use std::sync::OnceLock;

use async_trait::async_trait;
use serde_json::Value as Json;
use tfplugin::{
    Attribute, Block, CreateRequest, Ctx, DeleteRequest, Diagnostics, NestedBlock, Nesting,
    ReadRequest, Resource, Schema, StateResponse, Type, UpdateRequest, Value,
};

pub struct Mirror;

/// The schema from `TFTEST_MIRROR_SCHEMA`, read once.
fn mirrored() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        let from_file = std::env::var_os("TFTEST_MIRROR_SCHEMA")
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
            .and_then(|j| {
                let block = block_from_json(&j["block"])?;
                Some(Schema::new(block).version(j["version"].as_i64().unwrap_or(0)))
            });
        from_file
            .unwrap_or_else(|| Schema::new(Block::new().attr(Attribute::string("name").optional())))
    })
}

/// A block in Terraform's JSON schema form.
fn block_from_json(j: &Json) -> Option<Block> {
    let mut b = Block::new();
    for (name, a) in j["attributes"].as_object().into_iter().flatten() {
        let flag = |k: &str| a[k].as_bool().unwrap_or(false);
        let mut attr = Attribute::new(name.clone(), Type::from_json(&a["type"]).ok()?);
        if flag("required") {
            attr = attr.required();
        }
        if flag("optional") {
            attr = attr.optional();
        }
        if flag("computed") {
            attr = attr.computed();
        }
        if flag("sensitive") {
            attr = attr.sensitive();
        }
        b = b.attr(attr);
    }
    for (name, nb) in j["block_types"].as_object().into_iter().flatten() {
        let nesting = match nb["nesting_mode"].as_str()? {
            "single" => Nesting::Single,
            "group" => Nesting::Group,
            "list" => Nesting::List,
            "set" => Nesting::Set,
            "map" => Nesting::Map,
            _ => return None,
        };
        let inner = block_from_json(&nb["block"])?;
        b = b.block(NestedBlock::new(name.clone(), nesting, inner).items(
            nb["min_items"].as_i64().unwrap_or(0),
            nb["max_items"].as_i64().unwrap_or(0),
        ));
    }
    Some(b)
}

/// Unknown values as null: what a no-op apply can say it knows.
fn known(v: Value) -> Value {
    match v {
        Value::Unknown => Value::Null,
        Value::List(xs) => Value::List(xs.into_iter().map(known).collect()),
        Value::Set(xs) => Value::Set(xs.into_iter().map(known).collect()),
        Value::Tuple(xs) => Value::Tuple(xs.into_iter().map(known).collect()),
        Value::Map(m) => Value::Map(m.into_iter().map(|(k, v)| (k, known(v))).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, known(v))).collect()),
        other => other,
    }
}

#[async_trait]
impl Resource for Mirror {
    fn type_name(&self) -> &'static str {
        "tftest_mirror"
    }
    fn schema(&self) -> Schema {
        mirrored().clone()
    }
    async fn create(&self, _: &Ctx, req: CreateRequest) -> StateResponse {
        StateResponse::ok(known(req.planned))
    }
    async fn read(&self, _: &Ctx, req: ReadRequest) -> StateResponse {
        StateResponse {
            state: req.state,
            private: req.private,
            diags: Diagnostics::new(),
        }
    }
    async fn update(&self, _: &Ctx, req: UpdateRequest) -> StateResponse {
        StateResponse::ok(known(req.planned))
    }
    async fn delete(&self, _: &Ctx, _: DeleteRequest) -> Diagnostics {
        Diagnostics::new()
    }
}
