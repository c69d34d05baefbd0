//! `tftest_nested`: nested attributes (protocol 6 objects). Terraform 1.0.x crashes in its
//! own ProposedNew on a null nested attribute, so this lives apart from `tftest_thing` and is
//! tested with current Terraform only; provider resources use blocks while 1.0 is supported.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde_json::Value as Json;
use tfplugin::framework::planmod::use_state_for_unknown;
use tfplugin::value::{decode_json, encode_json};
use tfplugin::{
    Attribute, Block, CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics, Nesting,
    ReadRequest, Resource, Schema, StateResponse, UpdateRequest, Value,
};

use crate::store::Store;

pub struct Nested {
    pub store: Arc<OnceLock<Store>>,
}

impl Nested {
    fn save(&self, id: &str, v: &Value) -> StateResponse {
        let Some(store) = self.store.get() else {
            return StateResponse::error(crate::unconfigured());
        };
        let mut v = v.clone();
        v.set_attr("id", Value::from(id));
        match store.put(id, &encode_json(&v)) {
            Ok(()) => StateResponse::ok(v),
            Err(e) => StateResponse::error(Diagnostic::error("Write failed", e.to_string())),
        }
    }
}

#[async_trait]
impl Resource for Nested {
    fn type_name(&self) -> &'static str {
        "tftest_nested"
    }
    fn schema(&self) -> Schema {
        let item = |n: &str| Attribute::string(n).required().description("Text.");
        Schema::new(
            Block::new()
                .attr(
                    Attribute::string("id")
                        .computed()
                        .plan_modifier(use_state_for_unknown())
                        .description("Id."),
                )
                .attr(
                    Attribute::nested(
                        "meta",
                        Nesting::Single,
                        vec![
                            item("owner"),
                            Attribute::number("level").optional().description("Level."),
                            Attribute::string("stamp")
                                .computed()
                                .description("Set by the provider."),
                        ],
                    )
                    .optional()
                    .description("A single nested attribute."),
                )
                .attr(
                    Attribute::nested("items", Nesting::List, vec![item("value")])
                        .optional()
                        .description("A list."),
                ),
        )
    }
    async fn modify_plan(
        &self,
        _: &Ctx,
        req: &tfplugin::PlanRequest<'_>,
        resp: &mut tfplugin::PlanResponse,
    ) {
        // A computed attribute inside a nested one: known at plan time from the owner.
        if let Some(owner) = req.config.attr("meta").attr("owner").as_str() {
            let mut meta = resp.planned.attr("meta").clone();
            meta.set_attr("stamp", Value::from(format!("by-{owner}")));
            resp.planned.set_attr("meta", meta);
        }
    }
    async fn create(&self, _: &Ctx, req: CreateRequest) -> StateResponse {
        let id = self.store.get().map(Store::new_id).unwrap_or_default();
        self.save(&id, &req.planned)
    }
    async fn read(&self, _: &Ctx, req: ReadRequest) -> StateResponse {
        let Some(store) = self.store.get() else {
            return StateResponse::error(crate::unconfigured());
        };
        let id = req.state.attr("id").as_str().unwrap_or_default();
        let ty = self.schema().value_type();
        match store.get(id).map(|j: Json| decode_json(&j, &ty)) {
            Some(Ok(v)) => StateResponse::ok(v),
            Some(Err(e)) => StateResponse::error(Diagnostic::error("Unreadable object", e)),
            None => StateResponse::ok(Value::Null),
        }
    }
    async fn update(&self, _: &Ctx, req: UpdateRequest) -> StateResponse {
        let id = req.prior.attr("id").as_str().unwrap_or_default().to_owned();
        self.save(&id, &req.planned)
    }
    async fn delete(&self, _: &Ctx, req: DeleteRequest) -> Diagnostics {
        let mut d = Diagnostics::new();
        if let Some(store) = self.store.get()
            && let Err(e) = store.delete(req.prior.attr("id").as_str().unwrap_or_default())
        {
            d.error("Delete failed", e.to_string());
        }
        d
    }
}
