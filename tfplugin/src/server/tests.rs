//! The edge alone: requests decoded, refused before the core when they cannot be, and
//! answers encoded, through the gRPC trait's handlers without a transport.

use std::sync::Arc;

use async_trait::async_trait;
use tonic::Request;

use super::*;
use crate::diag::Diagnostics;
use crate::framework::resource::{
    CreateRequest, Ctx, DeleteRequest, Function, FunctionError, Parameter, PlanRequest,
    PlanResponse, Private, ReadRequest, Resource, Signature, StateResponse, UpdateRequest,
};
use crate::framework::schema::{Attribute, Block, Schema};
use crate::proto::tfplugin6::provider_server::Provider as _;
use crate::value::{Type, Value};

struct Thing;

#[async_trait]
impl Resource for Thing {
    fn type_name(&self) -> &'static str {
        "t_thing"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .attr(Attribute::string("id").computed().description("d"))
                .attr(Attribute::string("name").required().description("d")),
        )
    }
    async fn modify_plan(&self, _: &Ctx, _: &PlanRequest<'_>, resp: &mut PlanResponse) {
        resp.private.insert("k".into(), "v".into());
    }
    async fn create(&self, _: &Ctx, req: CreateRequest) -> StateResponse {
        StateResponse::ok(req.planned)
    }
    async fn read(&self, _: &Ctx, req: ReadRequest) -> StateResponse {
        StateResponse::ok(req.state)
    }
    async fn update(&self, _: &Ctx, req: UpdateRequest) -> StateResponse {
        StateResponse::ok(req.planned)
    }
    async fn delete(&self, _: &Ctx, _: DeleteRequest) -> Diagnostics {
        Diagnostics::new()
    }
}

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
                description: "d".into(),
            }],
            variadic: None,
            returns: Type::String,
            summary: "s".into(),
            description: "d".into(),
        }
    }
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        Ok(args[0].as_str().unwrap_or_default().to_uppercase().into())
    }
}

struct P;

#[async_trait]
impl crate::framework::resource::Provider for P {
    fn type_name(&self) -> &'static str {
        "t"
    }
    fn schema(&self) -> Schema {
        Schema::new(Block::new())
    }
    async fn configure(&self, _: &Ctx, _: &Value) -> Diagnostics {
        Diagnostics::new()
    }
    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(Thing)]
    }
    fn functions(&self) -> Vec<Arc<dyn Function>> {
        vec![Arc::new(Upper)]
    }
}

fn service() -> ProviderService {
    ProviderService::new(Arc::new(P))
}

fn thing_type() -> Type {
    Type::object([("id", Type::String), ("name", Type::String)])
}

fn dv(v: &Value, ty: &Type) -> Option<pb::DynamicValue> {
    Some(to_proto::value(v, ty).unwrap())
}

fn plan_request(type_name: &str) -> pb::plan_resource_change::Request {
    let config = Value::object([("id", Value::Null), ("name", Value::from("a"))]);
    pb::plan_resource_change::Request {
        type_name: type_name.into(),
        prior_state: dv(&Value::Null, &thing_type()),
        proposed_new_state: dv(&config, &thing_type()),
        config: dv(&config, &thing_type()),
        ..Default::default()
    }
}

fn summaries(d: &[pb::Diagnostic]) -> Vec<&str> {
    d.iter().map(|d| d.summary.as_str()).collect()
}

#[tokio::test]
async fn plan_is_decoded_planned_and_encoded() {
    let r = service()
        .plan_resource_change(Request::new(plan_request("t_thing")))
        .await
        .unwrap()
        .into_inner();
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let planned = from_proto::value(r.planned_state.as_ref(), &thing_type(), "plan").unwrap();
    assert_eq!(planned.attr("id"), &Value::Unknown);
    assert_eq!(planned.attr("name"), &Value::from("a"));
    assert_eq!(r.planned_private, br#"{"k":"v"}"#);
}

#[tokio::test]
async fn requests_that_cannot_reach_the_core_are_answered_with_their_error_alone() {
    let s = service();
    let unknown = s
        .plan_resource_change(Request::new(plan_request("t_nope")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summaries(&unknown.diagnostics), ["Unknown resource type"]);
    assert!(unknown.planned_state.is_none());

    let mut garbled = plan_request("t_thing");
    garbled.prior_state = Some(pb::DynamicValue {
        msgpack: vec![0xc1],
        json: Vec::new(),
    });
    let r = s
        .plan_resource_change(Request::new(garbled))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        summaries(&r.diagnostics),
        ["Invalid prior state from Terraform"]
    );
    assert!(r.planned_state.is_none());

    let mut private = plan_request("t_thing");
    private.prior_private = b"not json".to_vec();
    let r = s
        .plan_resource_change(Request::new(private))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summaries(&r.diagnostics), ["Unreadable private state"]);
}

#[test]
fn private_state_round_trips_through_its_bytes() {
    let p = from_proto::private(br#"{"b":1,"a":{"x":[true]}}"#).unwrap();
    assert_eq!(to_proto::private(&p), br#"{"b":1,"a":{"x":[true]}}"#);
    assert!(from_proto::private(b"").unwrap().is_empty());
    assert!(
        to_proto::private(&Private::new()).is_empty(),
        "nothing, not {{}}"
    );
}

#[tokio::test]
async fn function_arguments_are_checked_against_the_signature() {
    let s = service();
    let call = |args: Vec<Value>| pb::call_function::Request {
        name: "upper".into(),
        arguments: args.iter().filter_map(|a| dv(a, &Type::String)).collect(),
    };
    let ok = s
        .call_function(Request::new(call(vec!["a".into()])))
        .await
        .unwrap()
        .into_inner();
    let result = from_proto::value(ok.result.as_ref(), &Type::String, "result").unwrap();
    assert_eq!(result, Value::from("A"));

    let too_many = s
        .call_function(Request::new(call(vec!["a".into(), "b".into()])))
        .await
        .unwrap()
        .into_inner();
    let err = too_many.error.unwrap();
    assert_eq!(err.text, "too many arguments: upper takes 1");
    assert_eq!(err.function_argument, None);
}
