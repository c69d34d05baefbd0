//! `terraform-provider-tftest`: a test-only provider that exercises every part of the
//! tfplugin framework through real Terraform. Its "remote API" is a directory of JSON files
//! (`dir` in the provider block, or `TFTEST_DIR`), so tests can inspect and tamper with what
//! exists. Never shipped.

mod mirror;
mod nested;
mod store;
mod thing;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tfplugin::framework::resource::{Parameter, Signature};
use tfplugin::{
    Attribute, Block, Ctx, DataSource, Diagnostic, Diagnostics, EphemeralResource, Function,
    FunctionError, OpenResponse, Provider, Resource, Schema, StateResponse, Type, Value,
};

use store::Store;

fn main() -> ExitCode {
    tfplugin::serve::main(
        "registry.terraform.io/infraflux/tftest",
        TestProvider::default,
    )
}

#[derive(Default)]
struct TestProvider {
    store: Arc<OnceLock<Store>>,
}

#[async_trait]
impl Provider for TestProvider {
    fn type_name(&self) -> &'static str {
        "tftest"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new().description("Test provider.").attr(
                Attribute::string("dir").optional().description(
                    "Directory that plays the remote API. Falls back to `TFTEST_DIR`.",
                ),
            ),
        )
    }
    async fn configure(&self, _ctx: &Ctx, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let dir = config
            .attr("dir")
            .as_str()
            .map(str::to_owned)
            .or_else(|| std::env::var("TFTEST_DIR").ok());
        match dir {
            Some(d) => {
                let _ = self.store.set(Store::new(d.into()));
            }
            None => diags.error_at(
                tfplugin::AttributePath::attr("dir"),
                "Missing directory",
                "Set `dir` in the provider block or the TFTEST_DIR environment variable.",
            ),
        }
        diags
    }
    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![
            Arc::new(thing::Thing {
                store: self.store.clone(),
            }),
            Arc::new(nested::Nested {
                store: self.store.clone(),
            }),
            Arc::new(mirror::Mirror),
        ]
    }
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        vec![Arc::new(ObjectData {
            store: self.store.clone(),
        })]
    }
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        vec![Arc::new(Token)]
    }
    fn functions(&self) -> Vec<Arc<dyn Function>> {
        vec![Arc::new(Upper)]
    }
}

fn unconfigured() -> Diagnostic {
    Diagnostic::error(
        "Provider not configured",
        "The provider block was not configured before use.",
    )
}

/// `data "tftest_object"`: reads one stored object by id.
struct ObjectData {
    store: Arc<OnceLock<Store>>,
}

#[async_trait]
impl DataSource for ObjectData {
    fn type_name(&self) -> &'static str {
        "tftest_object"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .attr(Attribute::string("id").required().description("Object id."))
                .attr(
                    Attribute::string("name")
                        .computed()
                        .description("Its name."),
                ),
        )
    }
    async fn read(&self, _ctx: &Ctx, config: &Value) -> StateResponse {
        let Some(store) = self.store.get() else {
            return StateResponse::error(unconfigured());
        };
        let id = config.attr("id").as_str().unwrap_or_default();
        match store.get(id) {
            Some(obj) => StateResponse::ok(Value::object([
                ("id", Value::from(id)),
                (
                    "name",
                    Value::from(obj["name"].as_str().unwrap_or_default()),
                ),
            ])),
            None => StateResponse::error(
                Diagnostic::error("No such object", format!("No object has id {id:?}."))
                    .at(tfplugin::AttributePath::attr("id")),
            ),
        }
    }
}

/// `ephemeral "tftest_token"`: a value that must never reach plan or state.
struct Token;

#[async_trait]
impl EphemeralResource for Token {
    fn type_name(&self) -> &'static str {
        "tftest_token"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .attr(
                    Attribute::string("seed")
                        .required()
                        .description("Seed of the token."),
                )
                .attr(
                    Attribute::string("value")
                        .computed()
                        .sensitive()
                        .description("The token."),
                ),
        )
    }
    async fn open(&self, _ctx: &Ctx, config: &Value) -> OpenResponse {
        let seed = config.attr("seed").as_str().unwrap_or_default();
        OpenResponse {
            result: Value::object([
                ("seed", Value::from(seed)),
                ("value", Value::from(format!("tok-{seed}-ephemeral"))),
            ]),
            ..OpenResponse::default()
        }
    }
}

/// `provider::tftest::upper(s)`.
struct Upper;

impl Function for Upper {
    fn name(&self) -> &'static str {
        "upper"
    }
    fn signature(&self) -> Signature {
        Signature {
            parameters: vec![Parameter {
                name: "s".into(),
                ty: Type::String,
                allow_null: false,
                description: "Text.".into(),
            }],
            variadic: None,
            returns: Type::String,
            summary: "Upper-cases text".into(),
            description: "Returns `s` in upper case; fails on an empty string.".into(),
        }
    }
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        match args.first().and_then(Value::as_str) {
            Some("") => Err(FunctionError {
                text: "s must not be empty".into(),
                argument: Some(0),
            }),
            Some(s) => Ok(Value::from(s.to_uppercase())),
            None => Err(FunctionError {
                text: "s must be a string".into(),
                argument: Some(0),
            }),
        }
    }
}
