//! The core's orchestration without a wire: plan, apply, read, import, upgrade and validate
//! of a recording resource, through [`Server`] exactly as the gRPC edge calls it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::framework::planmod::{requires_replace, use_state_for_unknown};
use crate::framework::resource::{
    CreateRequest, DeleteRequest, IdentityAttribute, OpenResponse, PlanRequest, PlanResponse,
    Private, ReadRequest, StateResponse, UpdateRequest,
};
use crate::framework::schema::{Attribute, Block};
use crate::framework::validate::int_between;
use crate::value::AttributePath;

/// What the recording resource was asked, in order.
type Calls = Arc<Mutex<Vec<String>>>;

/// A resource that records its calls and answers as a well-behaved provider would, except
/// where a test asks for a bug: `create` echoes `name` from `config` when it is `"rogue"`.
struct Thing {
    calls: Calls,
}

impl Thing {
    fn log(&self, s: impl Into<String>) {
        self.calls.lock().unwrap().push(s.into());
    }
}

fn private(pairs: &[(&str, &str)]) -> Private {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

#[async_trait]
impl Resource for Thing {
    fn type_name(&self) -> &'static str {
        "t_thing"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .attr(
                    Attribute::string("id")
                        .computed()
                        .plan_modifier(use_state_for_unknown())
                        .description("d"),
                )
                .attr(
                    Attribute::string("name")
                        .required()
                        .plan_modifier(requires_replace())
                        .description("d"),
                )
                .attr(
                    Attribute::number("size")
                        .optional()
                        .validate(int_between(1, 8))
                        .description("d"),
                )
                .attr(
                    Attribute::string("pw")
                        .optional()
                        .write_only()
                        .description("d"),
                )
                .attr(Attribute::number("revision").computed().description("d"))
                .attr(
                    Attribute::string("label")
                        .optional()
                        .semantic_equal(|a, b| {
                            a.as_str().map(str::to_lowercase) == b.as_str().map(str::to_lowercase)
                        })
                        .description("d"),
                ),
        )
        .version(1)
    }

    async fn modify_plan(&self, _: &Ctx, req: &PlanRequest<'_>, resp: &mut PlanResponse) {
        self.log(format!("modify_plan private={:?}", req.private.get("k")));
        resp.private.insert("planned".into(), json!(true));
    }

    async fn create(&self, _: &Ctx, req: CreateRequest) -> StateResponse {
        self.log(format!("create private={:?}", req.private.get("planned")));
        let mut state = req.planned;
        state.set_attr("id", "x".into());
        state.set_attr("revision", Value::int(1));
        // A careless resource copies the write-only value into its state.
        state.set_attr("pw", req.config.attr("pw").clone());
        if req.config.attr("name").as_str() == Some("rogue") {
            state.set_attr("name", "renamed".into());
        }
        StateResponse {
            state,
            private: private(&[("created", "yes")]),
            diags: Diagnostics::new(),
        }
    }

    async fn read(&self, _: &Ctx, req: ReadRequest) -> StateResponse {
        self.log(format!("read private={:?}", req.private.get("created")));
        let mut state = req.state;
        // The remote system reports the label in its own case and a revision it cannot
        // tell yet, and a careless read returns the write-only value.
        if let Some(l) = state.attr("label").as_str().map(str::to_uppercase) {
            state.set_attr("label", l.into());
        }
        state.set_attr("revision", Value::Unknown);
        state.set_attr("pw", "leaked".into());
        StateResponse {
            state,
            private: req.private,
            diags: Diagnostics::new(),
        }
    }

    async fn update(&self, _: &Ctx, req: UpdateRequest) -> StateResponse {
        self.log("update");
        let mut state = req.planned;
        // Fails half-way: the revision is not known, and says so.
        state.set_attr("revision", Value::Unknown);
        StateResponse {
            state,
            private: req.private,
            diags: Diagnostic::error("Update failed", "the remote system went away").into(),
        }
    }

    async fn delete(&self, _: &Ctx, req: DeleteRequest) -> Diagnostics {
        self.log(format!("delete private={:?}", req.private.get("created")));
        if req.prior.attr("name").as_str() == Some("stuck") {
            Diagnostic::error("Delete failed", "still in use").into()
        } else {
            Diagnostics::new()
        }
    }

    async fn import(&self, _: &Ctx, id: &str) -> StateResponse {
        self.log(format!("import {id}"));
        if id == "missing" {
            return StateResponse::default();
        }
        StateResponse::ok(Value::object([
            ("id", Value::from(id)),
            ("name", "imported".into()),
            ("revision", Value::Unknown),
        ]))
    }

    fn identity_schema(&self) -> Vec<IdentityAttribute> {
        vec![IdentityAttribute {
            name: "id".into(),
            ty: Type::String,
            required_for_import: true,
            description: "d".into(),
        }]
    }

    fn identity(&self, state: &Value) -> Option<Value> {
        Some(Value::object([("id", state.attr("id").clone())]))
    }

    async fn import_identity(&self, ctx: &Ctx, identity: &Value) -> StateResponse {
        self.log("import_identity");
        self.import(ctx, identity.attr("id").as_str().unwrap_or_default())
            .await
    }

    fn upgrade_state(
        &self,
        version: i64,
        raw: &serde_json::Value,
    ) -> Result<serde_json::Value, Diagnostic> {
        self.log(format!("upgrade_state {version}"));
        // Version 0 called the name `title`.
        let mut v = raw.clone();
        if let Some(m) = v.as_object_mut()
            && let Some(t) = m.remove("title")
        {
            m.insert("name".into(), t);
        }
        Ok(v)
    }
}

struct Ephemeral {
    calls: Calls,
}

#[async_trait]
impl EphemeralResource for Ephemeral {
    fn type_name(&self) -> &'static str {
        "t_token"
    }
    fn schema(&self) -> Schema {
        Schema::new(Block::new().attr(Attribute::string("for").required().description("d")))
    }
    async fn open(&self, _: &Ctx, _: &Value) -> OpenResponse {
        self.calls.lock().unwrap().push("open".into());
        OpenResponse::default()
    }
}

struct TestProvider {
    calls: Calls,
}

#[async_trait]
impl Provider for TestProvider {
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
        vec![Arc::new(Thing {
            calls: self.calls.clone(),
        })]
    }
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        vec![Arc::new(Ephemeral {
            calls: self.calls.clone(),
        })]
    }
}

fn server() -> (Server, Calls) {
    let calls = Calls::default();
    let s = Server::new(Arc::new(TestProvider {
        calls: calls.clone(),
    }));
    (s, calls)
}

fn thing(s: &Server) -> &Entry<dyn Resource> {
    s.resource("t_thing").unwrap()
}

/// An object of the thing's type, as Terraform sends it: every attribute present.
fn obj(s: &Server, pairs: &[(&str, Value)]) -> Value {
    let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
    lifecycle::complete(&thing(s).schema.block, &mut v);
    v
}

fn prior(s: &Server) -> Value {
    obj(
        s,
        &[
            ("id", "x".into()),
            ("name", "a".into()),
            ("revision", Value::int(1)),
            ("label", "Hello".into()),
        ],
    )
}

fn errors(d: &Diagnostics) -> Vec<String> {
    d.iter()
        .filter(|d| d.severity == crate::diag::Severity::Error)
        .map(|d| match &d.path {
            Some(p) => format!("{}: {p}", d.summary),
            None => d.summary.clone(),
        })
        .collect()
}

fn taken(calls: &Calls) -> Vec<String> {
    std::mem::take(&mut *calls.lock().unwrap())
}

#[tokio::test]
async fn plan_create_leaves_computed_values_unknown_and_drops_write_only() {
    let (s, calls) = server();
    let config = obj(&s, &[("name", "a".into()), ("pw", "secret".into())]);
    let r = s
        .plan_resource_change(
            thing(&s),
            PlanChangeRequest {
                config: config.clone(),
                prior: Value::Null,
                proposed: config,
                prior_private: Private::new(),
            },
        )
        .await;
    assert!(r.diags.is_empty(), "{:?}", r.diags);
    assert_eq!(r.planned.attr("id"), &Value::Unknown);
    assert_eq!(r.planned.attr("revision"), &Value::Unknown);
    assert_eq!(
        r.planned.attr("pw"),
        &Value::Null,
        "write-only never planned"
    );
    assert!(r.requires_replace.is_empty());
    assert_eq!(r.identity, None, "identity waits for a wholly known plan");
    assert_eq!(r.private.get("planned"), Some(&json!(true)));
    assert_eq!(taken(&calls), ["modify_plan private=None"]);
}

#[tokio::test]
async fn plan_update_in_place_keeps_the_id_and_hands_private_state_through() {
    let (s, calls) = server();
    let prior = prior(&s);
    let config = obj(
        &s,
        &[
            ("name", "a".into()),
            ("size", Value::int(2)),
            ("label", "Hello".into()),
        ],
    );
    let mut proposed = prior.clone();
    proposed.set_attr("size", Value::int(2));
    let r = s
        .plan_resource_change(
            thing(&s),
            PlanChangeRequest {
                config,
                prior,
                proposed,
                prior_private: private(&[("k", "v")]),
            },
        )
        .await;
    assert!(r.diags.is_empty(), "{:?}", r.diags);
    assert_eq!(
        r.planned.attr("id"),
        &Value::from("x"),
        "UseStateForUnknown"
    );
    assert_eq!(r.planned.attr("size"), &Value::int(2));
    assert_eq!(r.planned.attr("revision"), &Value::Unknown);
    assert!(r.requires_replace.is_empty());
    assert_eq!(r.private.get("k"), Some(&json!("v")), "prior private kept");
    assert_eq!(taken(&calls), [r#"modify_plan private=Some(String("v"))"#]);
}

#[tokio::test]
async fn plan_without_change_is_the_prior_state_with_its_identity() {
    let (s, _) = server();
    let prior = prior(&s);
    // The user writes the label in another case: semantically equal, so nothing changes.
    let config = obj(&s, &[("name", "a".into()), ("label", "HELLO".into())]);
    let mut proposed = prior.clone();
    proposed.set_attr("label", "HELLO".into());
    let r = s
        .plan_resource_change(
            thing(&s),
            PlanChangeRequest {
                config,
                prior: prior.clone(),
                proposed,
                prior_private: Private::new(),
            },
        )
        .await;
    assert!(r.diags.is_empty(), "{:?}", r.diags);
    assert!(r.planned.equals(&prior), "{:?}", r.planned);
    assert_eq!(r.identity, Some(Value::object([("id", Value::from("x"))])));
}

#[tokio::test]
async fn plan_replace_names_the_attribute() {
    let (s, _) = server();
    let prior = prior(&s);
    let config = obj(&s, &[("name", "b".into()), ("label", "Hello".into())]);
    let mut proposed = prior.clone();
    proposed.set_attr("name", "b".into());
    let r = s
        .plan_resource_change(
            thing(&s),
            PlanChangeRequest {
                config,
                prior,
                proposed,
                prior_private: Private::new(),
            },
        )
        .await;
    assert!(r.diags.is_empty(), "{:?}", r.diags);
    assert_eq!(r.requires_replace, vec![AttributePath::attr("name")]);
}

#[tokio::test]
async fn plan_destroy_hands_back_the_private_state_without_asking_the_resource() {
    let (s, calls) = server();
    let r = s
        .plan_resource_change(
            thing(&s),
            PlanChangeRequest {
                config: Value::Null,
                prior: prior(&s),
                proposed: Value::Null,
                prior_private: private(&[("created", "yes")]),
            },
        )
        .await;
    assert!(r.diags.is_empty());
    assert_eq!(r.planned, Value::Null);
    assert_eq!(r.private, private(&[("created", "yes")]));
    assert!(
        taken(&calls).is_empty(),
        "modify_plan is not called on destroy"
    );
}

/// Plan, then apply the plan, as Terraform does for a create.
async fn create(s: &Server, name: &str) -> NewState {
    let config = obj(s, &[("name", name.into()), ("pw", "secret".into())]);
    let planned = s
        .plan_resource_change(
            thing(s),
            PlanChangeRequest {
                config: config.clone(),
                prior: Value::Null,
                proposed: config.clone(),
                prior_private: Private::new(),
            },
        )
        .await;
    assert!(planned.diags.is_empty(), "{:?}", planned.diags);
    s.apply_resource_change(
        thing(s),
        ApplyRequest {
            config,
            prior: Value::Null,
            planned: planned.planned,
            planned_private: planned.private,
        },
    )
    .await
}

#[tokio::test]
async fn apply_create_drops_write_only_values_and_keeps_private_state() {
    let (s, calls) = server();
    let r = create(&s, "a").await;
    assert!(r.diags.is_empty(), "{:?}", r.diags);
    assert_eq!(r.state.attr("id"), &Value::from("x"));
    assert_eq!(r.state.attr("pw"), &Value::Null, "write-only never stored");
    assert_eq!(r.private, private(&[("created", "yes")]));
    assert_eq!(r.identity, Some(Value::object([("id", Value::from("x"))])));
    assert_eq!(
        taken(&calls),
        [
            "modify_plan private=None",
            "create private=Some(Bool(true))"
        ],
        "create receives the private state its plan returned"
    );
}

#[tokio::test]
async fn apply_that_breaks_the_plan_is_an_error_naming_the_attribute_with_the_state_kept() {
    let (s, _) = server();
    let r = create(&s, "rogue").await;
    assert_eq!(
        errors(&r.diags),
        ["Provider returned an invalid value: name"]
    );
    assert!(
        r.diags
            .iter()
            .all(|d| d.detail.contains("bug in the provider"))
    );
    assert_eq!(r.state.attr("id"), &Value::from("x"), "nothing orphaned");
}

#[tokio::test]
async fn failed_update_returns_its_state_with_unknowns_made_null() {
    let (s, _) = server();
    let prior = prior(&s);
    let mut planned = prior.clone();
    planned.set_attr("size", Value::int(3));
    planned.set_attr("revision", Value::Unknown);
    let r = s
        .apply_resource_change(
            thing(&s),
            ApplyRequest {
                config: obj(&s, &[("name", "a".into()), ("size", Value::int(3))]),
                prior,
                planned,
                planned_private: Private::new(),
            },
        )
        .await;
    assert_eq!(
        errors(&r.diags),
        ["Update failed"],
        "no rule check on failure"
    );
    assert_eq!(r.state.attr("size"), &Value::int(3));
    assert_eq!(r.state.attr("revision"), &Value::Null);
}

#[tokio::test]
async fn delete_returns_null_state_or_on_failure_the_prior_state() {
    let (s, calls) = server();
    let gone = s
        .apply_resource_change(
            thing(&s),
            ApplyRequest {
                config: Value::Null,
                prior: prior(&s),
                planned: Value::Null,
                planned_private: private(&[("created", "yes")]),
            },
        )
        .await;
    assert!(gone.diags.is_empty());
    assert_eq!((gone.state, gone.private.len()), (Value::Null, 0));
    assert_eq!(taken(&calls), [r#"delete private=Some(String("yes"))"#]);

    let mut stuck = prior(&s);
    stuck.set_attr("name", "stuck".into());
    let kept = s
        .apply_resource_change(
            thing(&s),
            ApplyRequest {
                config: Value::Null,
                prior: stuck.clone(),
                planned: Value::Null,
                planned_private: private(&[("created", "yes")]),
            },
        )
        .await;
    assert_eq!(errors(&kept.diags), ["Delete failed"]);
    assert_eq!(kept.state, stuck, "the object may still exist");
    assert_eq!(kept.private, private(&[("created", "yes")]));
}

#[tokio::test]
async fn read_keeps_the_prior_form_and_drops_write_only_values_and_unknowns() {
    let (s, calls) = server();
    let r = s
        .read_resource(
            thing(&s),
            ReadRequest {
                state: prior(&s),
                private: private(&[("created", "yes")]),
            },
        )
        .await;
    assert!(r.diags.is_empty(), "{:?}", r.diags);
    assert_eq!(
        r.state.attr("label"),
        &Value::from("Hello"),
        "HELLO means the same"
    );
    assert_eq!(r.state.attr("pw"), &Value::Null);
    assert_eq!(r.state.attr("revision"), &Value::Null);
    assert_eq!(
        r.private,
        private(&[("created", "yes")]),
        "private round trip"
    );
    assert_eq!(r.identity, Some(Value::object([("id", Value::from("x"))])));
    assert_eq!(taken(&calls), [r#"read private=Some(String("yes"))"#]);
}

#[tokio::test]
async fn import_by_id_or_identity_gives_a_complete_state() {
    let (s, calls) = server();
    let by_id = s
        .import_resource_state(
            thing(&s),
            ImportRequest {
                id: "x".into(),
                identity: None,
            },
        )
        .await;
    assert!(by_id.diags.is_empty(), "{:?}", by_id.diags);
    assert_eq!(by_id.state.attr("name"), &Value::from("imported"));
    assert_eq!(by_id.state.attr("size"), &Value::Null, "completed");
    assert_eq!(
        by_id.state.attr("revision"),
        &Value::Null,
        "no unknowns in state"
    );
    assert_eq!(
        by_id.identity,
        Some(Value::object([("id", Value::from("x"))]))
    );

    let by_identity = s
        .import_resource_state(
            thing(&s),
            ImportRequest {
                id: String::new(),
                identity: Some(Value::object([("id", Value::from("y"))])),
            },
        )
        .await;
    assert_eq!(by_identity.state.attr("id"), &Value::from("y"));
    assert_eq!(taken(&calls), ["import x", "import_identity", "import y"]);
}

#[tokio::test]
async fn import_of_nothing_is_an_error() {
    let (s, _) = server();
    let r = s
        .import_resource_state(
            thing(&s),
            ImportRequest {
                id: "missing".into(),
                identity: None,
            },
        )
        .await;
    assert_eq!(r.state, Value::Null);
    assert_eq!(
        errors(&r.diags),
        ["Cannot import non-existent remote object"]
    );
}

#[test]
fn upgrade_at_the_current_version_only_decodes() {
    let (s, calls) = server();
    let raw = br#"{"id":"x","name":"a","revision":1}"#;
    let v = s.upgrade_resource_state(thing(&s), 1, raw).unwrap();
    assert_eq!(v.attr("name"), &Value::from("a"));
    assert_eq!(v.attr("label"), &Value::Null, "absent attributes are null");
    assert!(taken(&calls).is_empty(), "upgrade_state is not called");

    let v = s
        .upgrade_resource_state(thing(&s), 0, br#"{"id":"x","title":"a"}"#)
        .unwrap();
    assert_eq!(v.attr("name"), &Value::from("a"));
    assert_eq!(taken(&calls), ["upgrade_state 0"]);

    assert_eq!(s.upgrade_resource_state(thing(&s), 1, b""), Ok(Value::Null));
    let summary = |raw: &[u8]| {
        s.upgrade_resource_state(thing(&s), 1, raw)
            .unwrap_err()
            .summary
    };
    assert_eq!(summary(b"{"), "Unreadable state");
    assert_eq!(
        summary(br#"{"title":"a"}"#),
        "State does not match the schema"
    );
}

#[test]
fn identity_upgrade_reads_the_identity_type() {
    let (s, _) = server();
    let v = s.upgrade_resource_identity(thing(&s), br#"{"id":"x"}"#);
    assert_eq!(v, Ok(Value::object([("id", Value::from("x"))])));
    let bad = s.upgrade_resource_identity(thing(&s), br#"{"nope":1}"#);
    assert_eq!(bad.unwrap_err().summary, "Unreadable identity");
}

#[tokio::test]
async fn validate_refuses_write_only_values_where_terraform_would_store_them() {
    let (s, _) = server();
    let config = obj(
        &s,
        &[
            ("name", "a".into()),
            ("pw", "secret".into()),
            ("size", Value::int(9)),
        ],
    );
    let old = s.validate_resource_config(thing(&s), &config, false).await;
    assert_eq!(
        errors(&old),
        [
            "Invalid value for size: size",
            "Write-only attribute not supported by this Terraform: pw"
        ]
    );
    let new = s.validate_resource_config(thing(&s), &config, true).await;
    assert_eq!(errors(&new), ["Invalid value for size: size"]);
}

#[test]
fn unknown_types_are_named() {
    let (s, _) = server();
    let err = |r: Result<&Entry<dyn Resource>, Diagnostic>| r.err().map(|d| d.detail);
    assert_eq!(
        err(s.resource("t_nope")).as_deref(),
        Some(
            r#"This provider has no resource named "t_nope". Check the spelling and the provider version."#
        )
    );
    assert!(s.data_source("t_thing").is_err());
}

#[tokio::test]
async fn stop_cancels_calls_in_flight_but_not_later_ones() {
    let (s, _) = server();
    let in_flight = s.ctx();
    s.stop();
    assert!(in_flight.cancel.is_cancelled());
    assert!(
        !s.ctx().cancel.is_cancelled(),
        "Terraform may still save state"
    );
}

#[tokio::test]
async fn ephemeral_resources_open_only_when_the_configuration_is_known() {
    let (s, calls) = server();
    let e = s.ephemeral_resource("t_token").unwrap();
    let unknown = Value::object([("for", Value::Unknown)]);
    assert!(s.open_ephemeral_resource(e, &unknown).await.is_none());
    assert!(taken(&calls).is_empty());
    let known = Value::object([("for", Value::from("me"))]);
    let opened = s.open_ephemeral_resource(e, &known).await.unwrap();
    assert_eq!(opened.result, Value::Null);
    assert_eq!(taken(&calls), ["open"]);
}

/// The core knows no protobuf: what the edge decodes never leaks in.
#[test]
fn core_sources_know_no_protobuf() {
    for (file, src) in [
        ("mod.rs", include_str!("mod.rs")),
        ("resource.rs", include_str!("resource.rs")),
        ("ephemeral.rs", include_str!("ephemeral.rs")),
    ] {
        for word in ["crate::proto", "prost", "tonic", "DynamicValue"] {
            assert!(!src.contains(word), "{file} mentions {word}");
        }
    }
}
