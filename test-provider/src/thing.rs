//! `tftest_thing`: one resource that touches every lifecycle rule the framework keeps.
//!
//! - `id` computed once (UseStateForUnknown), `name` forces replacement, `size` updates in place
//! - `mode` has a default; `label` is normalised remotely (lower case) and keeps the user's
//!   spelling in state; `fingerprint` is computed at plan time; `revision` only after apply
//! - `password_wo` is write-only; `secret` is sensitive
//! - `delay_ms` waits after creating (cancellable); `fail_after_create` fails after creating
//! - schema version 1: version 0 called `size` `size_mb`

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value as Json, json};
use tfplugin::framework::planmod::{requires_replace, requires_replace_if, use_state_for_unknown};
use tfplugin::framework::resource::{IdentityAttribute, PlanRequest, PlanResponse};
use tfplugin::framework::timeouts::timeout;
use tfplugin::framework::validate::{int_between, one_of, string_length};
use tfplugin::value::encode_json;
use tfplugin::{
    Attribute, AttributePath, Block, CreateRequest, Ctx, DeleteRequest, Diagnostic, Diagnostics,
    NestedBlock, Nesting, ReadRequest, Resource, Schema, StateResponse, Type, UpdateRequest, Value,
};

use crate::store::Store;

pub struct Thing {
    pub store: Arc<OnceLock<Store>>,
}

fn fingerprint(name: &str, size: Option<i64>) -> String {
    format!("fp-{name}-{}", size.unwrap_or(0))
}

fn hash(s: &str) -> String {
    // Not cryptographic: only proves the provider saw the value without storing it.
    let h = s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{h:016x}")
}

impl Thing {
    fn store(&self) -> Result<&Store, Diagnostic> {
        self.store.get().ok_or_else(crate::unconfigured)
    }

    /// The remote object for a planned/new value.
    fn remote(v: &Value, id: &str, revision: i64, password_hash: Option<String>) -> Json {
        json!({
            "id": id,
            "name": v.attr("name").as_str(),
            "size": v.attr("size").as_i64(),
            "mode": v.attr("mode").as_str(),
            "label": v.attr("label").as_str().map(str::to_lowercase),
            "secret": v.attr("secret").as_str(),
            "tags": encode_json(v.attr("tags")),
            "ports": encode_json(v.attr("port")),
            "revision": revision,
            "password_hash": password_hash,
            "password_wo_version": v.attr("password_wo_version").as_i64(),
        })
    }

    /// State from the remote object (the framework keeps the user's spelling of `label`).
    fn state_from(remote: &Json, prior: &Value) -> Value {
        let s = |k: &str| remote[k].as_str().map(Value::from).unwrap_or(Value::Null);
        let n = |k: &str| remote[k].as_i64().map(Value::int).unwrap_or(Value::Null);
        let tags = match remote["tags"].as_array() {
            Some(a) => Value::Set(a.iter().filter_map(Json::as_str).map(Value::from).collect()),
            None => Value::Null,
        };
        let ports = match remote["ports"].as_array() {
            Some(a) => Value::List(
                a.iter()
                    .map(|p| {
                        Value::object([
                            (
                                "number",
                                p["number"].as_i64().map(Value::int).unwrap_or(Value::Null),
                            ),
                            (
                                "protocol",
                                p["protocol"]
                                    .as_str()
                                    .map(Value::from)
                                    .unwrap_or(Value::Null),
                            ),
                        ])
                    })
                    .collect(),
            ),
            None => Value::Null,
        };
        let name = remote["name"].as_str().unwrap_or_default();
        Value::object([
            ("id", s("id")),
            ("name", s("name")),
            ("size", n("size")),
            ("mode", s("mode")),
            ("label", s("label")),
            ("secret", s("secret")),
            ("tags", tags),
            ("port", ports),
            ("revision", n("revision")),
            (
                "fingerprint",
                Value::from(fingerprint(name, remote["size"].as_i64())),
            ),
            ("password_wo_version", n("password_wo_version")),
            ("password_hash", s("password_hash")),
            ("delay_ms", prior.attr("delay_ms").clone()),
            ("fail_after_create", prior.attr("fail_after_create").clone()),
            ("timeouts", prior.attr("timeouts").clone()),
        ])
    }

    /// The new state after create/update: the plan with computed values filled in.
    fn applied(planned: &Value, id: &str, revision: i64, remote: &Json) -> Value {
        let mut v = planned.clone();
        v.set_attr("id", Value::from(id));
        v.set_attr("revision", Value::int(revision));
        v.set_attr(
            "password_hash",
            remote["password_hash"]
                .as_str()
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        v
    }
}

#[async_trait]
impl Resource for Thing {
    fn type_name(&self) -> &'static str {
        "tftest_thing"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("A test object stored as a JSON file.")
                .attr(
                    Attribute::string("id")
                        .computed()
                        .plan_modifier(use_state_for_unknown())
                        .description("Object id."),
                )
                .attr(
                    Attribute::string("name")
                        .required()
                        .validate(string_length(1, 40))
                        .plan_modifier(requires_replace())
                        .description("Name; changing it replaces the object."),
                )
                .attr(
                    Attribute::number("size")
                        .optional()
                        .validate(int_between(0, 1000))
                        .plan_modifier(requires_replace_if("shrinking replaces the object", |state, plan| {
                            matches!((state.as_i64(), plan.as_i64()), (Some(a), Some(b)) if b < a)
                        }))
                        .description("Size: grows in place, shrinking replaces the object."),
                )
                .attr(
                    Attribute::string("mode")
                        .default("fast")
                        .validate(one_of(&["fast", "safe"]))
                        .description("Mode."),
                )
                .attr(
                    Attribute::string("label")
                        .optional()
                        .semantic_equal(|a, b| {
                            a.as_str().map(str::to_lowercase) == b.as_str().map(str::to_lowercase)
                        })
                        .description(
                            "Label; stored in lower case remotely, compared without case.",
                        ),
                )
                .attr(
                    Attribute::string("secret")
                        .optional()
                        .sensitive()
                        .description("A sensitive value."),
                )
                .attr(
                    Attribute::new("tags", Type::set(Type::String))
                        .optional()
                        .description("Tags."),
                )
                .attr(
                    Attribute::number("revision")
                        .computed()
                        .description("Increments on every change."),
                )
                .attr(
                    Attribute::string("fingerprint")
                        .computed()
                        .description("Known at plan time from name and size."),
                )
                .attr(
                    Attribute::string("password_wo")
                        .optional()
                        .write_only()
                        .sensitive()
                        .description("Write-only password."),
                )
                .attr(
                    Attribute::number("password_wo_version")
                        .optional()
                        .description("Bump to send `password_wo` again."),
                )
                .attr(
                    Attribute::string("password_hash")
                        .computed()
                        .description("Hash of the last password received."),
                )
                .attr(
                    Attribute::number("delay_ms")
                        .optional()
                        .description("Wait this long after creating (cancellable)."),
                )
                .attr(
                    Attribute::bool("fail_after_create")
                        .optional()
                        .description("Fail after the object exists."),
                )
                .block(NestedBlock::new(
                    "port",
                    Nesting::List,
                    Block::new()
                        .attr(
                            Attribute::number("number")
                                .required()
                                .validate(int_between(1, 65535))
                                .description("Port."),
                        )
                        .attr(
                            Attribute::string("protocol")
                                .default("tcp")
                                .validate(one_of(&["tcp", "udp"]))
                                .description("Protocol."),
                        ),
                ))
                .timeouts(&["create"]),
        )
        .version(1)
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if config.attr("password_wo_version").is_null() && !config.attr("password_wo").is_null() {
            diags.warning_at(
                AttributePath::attr("password_wo_version"),
                "No version for password_wo",
                "Without password_wo_version a changed password is never sent again.",
            );
        }
    }

    async fn modify_plan(&self, _ctx: &Ctx, req: &PlanRequest<'_>, resp: &mut PlanResponse) {
        let (name, size) = (req.config.attr("name"), req.config.attr("size"));
        if let (Some(n), true) = (name.as_str(), size.is_wholly_known()) {
            resp.planned
                .set_attr("fingerprint", Value::from(fingerprint(n, size.as_i64())));
        }
        // A new password reaches the provider only when its version changes.
        if req
            .config
            .attr("password_wo_version")
            .equals(req.prior.attr("password_wo_version"))
            && !req.prior.is_null()
        {
            resp.planned
                .set_attr("password_hash", req.prior.attr("password_hash").clone());
        }
    }

    async fn create(&self, ctx: &Ctx, req: CreateRequest) -> StateResponse {
        let store = match self.store() {
            Ok(s) => s,
            Err(d) => return StateResponse::error(d),
        };
        let id = store.new_id();
        let pw = req.config.attr("password_wo").as_str().map(hash);
        let remote = Self::remote(&req.planned, &id, 1, pw);
        if let Err(e) = store.put(&id, &remote) {
            return StateResponse::error(Diagnostic::error("Create failed", e.to_string()));
        }
        let state = Self::applied(&req.planned, &id, 1, &remote);
        let mut private = tfplugin::Private::new();
        private.insert("created_by".into(), Json::from("tftest"));
        if let Some(ms) = req.planned.attr("delay_ms").as_i64() {
            let limit = timeout(&req.planned, "create", Duration::from_secs(600));
            let wait = Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(limit);
            if !ctx.sleep(wait).await {
                return StateResponse {
                    state,
                    diags: Diagnostic::error(
                        "Interrupted",
                        format!("Object {id} exists but was not ready when Terraform stopped; it is saved in state."),
                    )
                    .into(),
                    ..StateResponse::default()
                };
            }
        }
        if req.planned.attr("fail_after_create").as_bool() == Some(true) {
            return StateResponse {
                state,
                diags: Diagnostic::error(
                    "Failed after create",
                    format!("Object {id} exists; the next apply replaces it."),
                )
                .at(AttributePath::attr("fail_after_create"))
                .into(),
                ..StateResponse::default()
            };
        }
        StateResponse {
            state,
            private,
            ..StateResponse::default()
        }
    }

    async fn read(&self, _ctx: &Ctx, req: ReadRequest) -> StateResponse {
        let store = match self.store() {
            Ok(s) => s,
            Err(d) => return StateResponse::error(d),
        };
        let id = req.state.attr("id").as_str().unwrap_or_default();
        match store.get(id) {
            Some(remote) => StateResponse {
                state: Self::state_from(&remote, &req.state),
                private: req.private,
                ..Default::default()
            },
            None => StateResponse::ok(Value::Null),
        }
    }

    async fn update(&self, _ctx: &Ctx, req: UpdateRequest) -> StateResponse {
        let store = match self.store() {
            Ok(s) => s,
            Err(d) => return StateResponse::error(d),
        };
        let id = req.prior.attr("id").as_str().unwrap_or_default().to_owned();
        // Private state written at create must come back on every later call.
        if req.private.get("created_by") != Some(&Json::from("tftest")) {
            return StateResponse {
                state: req.prior,
                diags: Diagnostic::error(
                    "Private state lost",
                    format!("Object {id} lost its private state."),
                )
                .into(),
                ..Default::default()
            };
        }
        let revision = req.prior.attr("revision").as_i64().unwrap_or(0) + 1;
        let pw = match req.planned.attr("password_hash") {
            Value::Unknown => req.config.attr("password_wo").as_str().map(hash),
            v => v.as_str().map(str::to_owned),
        };
        let remote = Self::remote(&req.planned, &id, revision, pw);
        if let Err(e) = store.put(&id, &remote) {
            return StateResponse {
                state: req.prior,
                diags: Diagnostic::error("Update failed", e.to_string()).into(),
                ..Default::default()
            };
        }
        StateResponse {
            state: Self::applied(&req.planned, &id, revision, &remote),
            private: req.private,
            ..Default::default()
        }
    }

    async fn delete(&self, _ctx: &Ctx, req: DeleteRequest) -> Diagnostics {
        let mut diags = Diagnostics::new();
        match self.store() {
            Ok(store) => {
                if let Err(e) = store.delete(req.prior.attr("id").as_str().unwrap_or_default()) {
                    diags.error("Delete failed", e.to_string());
                }
            }
            Err(d) => diags.push(d),
        }
        diags
    }

    async fn import(&self, _ctx: &Ctx, id: &str) -> StateResponse {
        let store = match self.store() {
            Ok(s) => s,
            Err(d) => return StateResponse::error(d),
        };
        match store.get(id) {
            Some(remote) => {
                let mut private = tfplugin::Private::new();
                private.insert("created_by".into(), Json::from("tftest"));
                StateResponse {
                    state: Self::state_from(&remote, &Value::Null),
                    private,
                    ..Default::default()
                }
            }
            None => StateResponse::error(Diagnostic::error(
                "Cannot import",
                format!("No object has id {id:?}; check the id."),
            )),
        }
    }

    fn identity_schema(&self) -> Vec<IdentityAttribute> {
        vec![IdentityAttribute {
            name: "id".into(),
            ty: Type::String,
            required_for_import: true,
            description: "Object id.".into(),
        }]
    }

    fn identity(&self, state: &Value) -> Option<Value> {
        let id = state.attr("id");
        id.as_str().map(|_| Value::object([("id", id.clone())]))
    }

    async fn import_identity(&self, ctx: &Ctx, identity: &Value) -> StateResponse {
        self.import(ctx, identity.attr("id").as_str().unwrap_or_default())
            .await
    }

    fn upgrade_state(&self, version: i64, raw: &Json) -> Result<Json, Diagnostic> {
        match version {
            1 => Ok(raw.clone()),
            0 => {
                let mut v = raw.clone();
                if let Some(o) = v.as_object_mut() {
                    let size = o.remove("size_mb").unwrap_or(Json::Null);
                    o.insert("size".into(), size);
                }
                Ok(v)
            }
            _ => Err(Diagnostic::error(
                "Unsupported state version",
                format!("Version {version} is newer than this provider."),
            )),
        }
    }
}
