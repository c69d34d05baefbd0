//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`, what kubectl sends for
//! `create`, `expose`, `scale`, …): the magic `k8s\0`, then a `runtime.Unknown` whose `raw`
//! is the object. The object is decoded whole through reflection over the Kubernetes API's
//! protobuf descriptors (`data/k8s-descriptors.binpb`, Kubernetes 1.34's `generated.proto`
//! files, derived by `scripts/derive-k8s-descriptors.py`) and turned into the JSON the real
//! server would serve for it: field names are the protos' (which are the JSON names), `bytes`
//! are base64, and the types with their own JSON form (Time, MicroTime, Duration, Quantity,
//! IntOrString, FieldsV1, RawExtension and the apiextensions JSON-schema unions) are written
//! as their Go marshallers write them.
//!
//! Kubernetes' protobuf encoding writes every non-pointer scalar, so a decoded `false`, `0`
//! or `""` is dropped where the Go field is a non-pointer tagged `omitempty`
//! (`data/k8s-omitempty.txt`, derived from the Go types by `scripts/derive-k8s-omitempty.py`)
//! — `hostNetwork: false` goes, `automountServiceAccountToken: false` and `replicas: 0`
//! stay, as in the real server's JSON. Kinds without descriptors here (custom resources)
//! are refused with 415, as the real server refuses protobuf for them.

use std::collections::HashSet;
use std::sync::OnceLock;

use base64::Engine;
use protobuf::Message;
use protobuf::MessageDyn;
use protobuf::descriptor::FileDescriptorSet;
use protobuf::reflect::{FileDescriptor, MessageDescriptor, ReflectValueRef, RuntimeFieldType};
use serde_json::{Map, Value, json};

use super::store::Kind;

/// The magic prefix of Kubernetes protobuf bodies.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// No protobuf schema for the kind: the server cannot decode it (415).
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
    )]
    Unsupported,
    /// The bytes are not a protobuf object of the kind (400).
    #[error("{0}")]
    Invalid(String),
}

/// The Kubernetes API's protobuf files (empty if the derived data does not load, which a
/// unit test rules out).
fn files() -> &'static [FileDescriptor] {
    static FILES: OnceLock<Vec<FileDescriptor>> = OnceLock::new();
    FILES.get_or_init(|| {
        let Ok(set) =
            FileDescriptorSet::parse_from_bytes(include_bytes!("../../data/k8s-descriptors.binpb"))
        else {
            return Vec::new();
        };
        FileDescriptor::new_dynamic_fds(set.file, &[]).unwrap_or_default()
    })
}

/// A message by its full proto name (`api.apps.v1.Deployment`).
fn message(full_name: &str) -> Option<MessageDescriptor> {
    let dotted = format!(".{full_name}");
    files().iter().find_map(|f| f.message_by_full_name(&dotted))
}

/// The proto package of a built-in group version (`apps`, `v1` → `api.apps.v1`).
fn package(group: &str, version: &str) -> String {
    match group {
        "" => format!("api.core.{version}"),
        "apiextensions.k8s.io" => {
            format!("apiextensions_apiserver.pkg.apis.apiextensions.{version}")
        }
        g => format!("api.{}.{version}", g.split('.').next().unwrap_or(g)),
    }
}

fn kind_message(k: &Kind) -> Option<MessageDescriptor> {
    message(&format!("{}.{}", package(k.group, k.version), k.kind))
}

/// Whether the server takes protobuf bodies of this kind.
pub fn supported(k: &Kind) -> bool {
    kind_message(k).is_some()
}

/// A singular field of a message, if set.
fn field<'a>(m: &'a dyn MessageDyn, name: &str) -> Option<ReflectValueRef<'a>> {
    m.descriptor_dyn().field_by_name(name)?.get_singular(m)
}

fn str_field(m: &dyn MessageDyn, name: &str) -> String {
    match field(m, name) {
        Some(ReflectValueRef::String(s)) => s.to_string(),
        _ => String::new(),
    }
}

fn int_field(m: &dyn MessageDyn, name: &str) -> i64 {
    match field(m, name) {
        Some(ReflectValueRef::I64(n)) => n,
        Some(ReflectValueRef::I32(n)) => n.into(),
        _ => 0,
    }
}

fn bytes_field<'a>(m: &'a dyn MessageDyn, name: &str) -> &'a [u8] {
    match field(m, name) {
        Some(ReflectValueRef::Bytes(b)) => b,
        _ => &[],
    }
}

/// Decode a protobuf body of kind `k` into the JSON object the store keeps.
pub fn decode(k: &Kind, body: &[u8]) -> Result<Value, ProtoError> {
    let desc = kind_message(k).ok_or(ProtoError::Unsupported)?;
    let raw = body.strip_prefix(MAGIC).ok_or_else(|| {
        ProtoError::Invalid(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
                .into(),
        )
    })?;
    let unknown = message("apimachinery.pkg.runtime.Unknown")
        .ok_or(ProtoError::Unsupported)?
        .parse_from_bytes(raw)
        .map_err(|e| ProtoError::Invalid(e.to_string()))?;
    let obj = desc
        .parse_from_bytes(bytes_field(&*unknown, "raw"))
        .map_err(|e| ProtoError::Invalid(format!("unable to decode {}: {e}", k.kind)))?;
    let mut v = to_json(&*obj);
    let (api_version, kind) = match field(&*unknown, "typeMeta") {
        Some(ReflectValueRef::Message(tm)) => {
            (str_field(&*tm, "apiVersion"), str_field(&*tm, "kind"))
        }
        _ => (String::new(), String::new()),
    };
    v["apiVersion"] = json!(if api_version.is_empty() {
        k.api_version()
    } else {
        api_version
    });
    v["kind"] = json!(if kind.is_empty() {
        k.kind.to_string()
    } else {
        kind
    });
    if k.kind == "Secret" {
        fold_string_data(&mut v);
    }
    if v.get("metadata").is_none() {
        v["metadata"] = json!({});
    }
    Ok(v)
}

/// The server folds a Secret's `stringData` into `data`.
fn fold_string_data(v: &mut Value) {
    let Some(sd) = v.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    for (k, s) in sd.as_object().into_iter().flatten() {
        v["data"][k] = json!(b64.encode(s.as_str().unwrap_or_default()));
    }
}

/// Non-pointer `omitempty` fields: `<message full name> <field>`.
fn omitempty() -> &'static HashSet<(String, String)> {
    static SET: OnceLock<HashSet<(String, String)>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("../../data/k8s-omitempty.txt")
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(m, f)| (m.to_string(), f.to_string()))
            .collect()
    })
}

/// `2006-01-02T15:04:05Z` (with `micros`: six fractional digits).
fn timestamp(seconds: i64, nanos: i32, micros: bool) -> Value {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
        return Value::Null;
    };
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros {
        json!(format!("{base}.{:06}Z", nanos / 1000))
    } else {
        json!(format!("{base}Z"))
    }
}

/// Go's `time.Duration.String()`.
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        let whole = ns / div;
        let frac = ns % div;
        let frac = if frac == 0 {
            String::new()
        } else {
            let width = (div as f64).log10() as usize;
            format!(".{:0width$}", frac, width = width)
                .trim_end_matches('0')
                .to_string()
        };
        return format!("{sign}{whole}{frac}{unit}");
    }
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let s = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{frac:09}").trim_end_matches('0').to_string() + "s"
    };
    if h > 0 {
        format!("{sign}{h}h{m}m{s}")
    } else if m > 0 {
        format!("{sign}{m}m{s}")
    } else {
        format!("{sign}{s}")
    }
}

/// Raw JSON bytes as a value (null when they are not JSON).
fn raw_json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

/// The JSON of the types whose Go marshallers write their own form; None for others.
fn special(m: &dyn MessageDyn) -> Option<Value> {
    let d = m.descriptor_dyn();
    let time = |micros| {
        let (s, n) = (int_field(m, "seconds"), int_field(m, "nanos"));
        if s == 0 && n == 0 {
            Value::Null
        } else {
            timestamp(s, i32::try_from(n).unwrap_or(0), micros)
        }
    };
    let schema_or = |other: Value| match field(m, "schema") {
        Some(ReflectValueRef::Message(s)) => to_json(&*s),
        _ => other,
    };
    Some(match d.full_name() {
        "apimachinery.pkg.apis.meta.v1.Time" => time(false),
        "apimachinery.pkg.apis.meta.v1.MicroTime" => time(true),
        "apimachinery.pkg.apis.meta.v1.Duration" => json!(go_duration(int_field(m, "duration"))),
        "apimachinery.pkg.api.resource.Quantity" => json!(str_field(m, "string")),
        "apimachinery.pkg.util.intstr.IntOrString" => {
            if int_field(m, "type") == 1 {
                json!(str_field(m, "strVal"))
            } else {
                json!(int_field(m, "intVal"))
            }
        }
        "apimachinery.pkg.apis.meta.v1.FieldsV1" => raw_json(bytes_field(m, "Raw")),
        "apimachinery.pkg.runtime.RawExtension"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON" => {
            raw_json(bytes_field(m, "raw"))
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray" => {
            let list = d.field_by_name("jSONSchemas").map(|f| f.get_repeated(m));
            schema_or(Value::Array(
                list.iter()
                    .flat_map(|r| (0..r.len()).map(|i| value(r.get(i))))
                    .collect(),
            ))
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool" => {
            schema_or(json!(matches!(
                field(m, "allows"),
                Some(ReflectValueRef::Bool(true))
            )))
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray" => {
            let list = d.field_by_name("property").map(|f| f.get_repeated(m));
            schema_or(Value::Array(
                list.iter()
                    .flat_map(|r| (0..r.len()).map(|i| value(r.get(i))))
                    .collect(),
            ))
        }
        _ => return None,
    })
}

fn value(v: ReflectValueRef<'_>) -> Value {
    match v {
        ReflectValueRef::U32(n) => json!(n),
        ReflectValueRef::U64(n) => json!(n),
        ReflectValueRef::I32(n) => json!(n),
        ReflectValueRef::I64(n) => json!(n),
        ReflectValueRef::F32(n) => json!(n),
        ReflectValueRef::F64(n) => json!(n),
        ReflectValueRef::Bool(b) => json!(b),
        ReflectValueRef::String(s) => json!(s),
        ReflectValueRef::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        ReflectValueRef::Enum(d, n) => d.value_by_number(n).map_or(json!(n), |e| json!(e.name())),
        ReflectValueRef::Message(m) => to_json(&*m),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// A generated message as the real server's JSON.
pub fn to_json(m: &dyn MessageDyn) -> Value {
    if let Some(v) = special(m) {
        return v;
    }
    let d = m.descriptor_dyn();
    let skip = omitempty();
    let mut out = Map::new();
    for f in d.fields() {
        let v = match f.runtime_field_type() {
            RuntimeFieldType::Singular(_) => {
                let Some(v) = f.get_singular(m) else {
                    continue;
                };
                let v = value(v);
                // A zero Time is `null` in Go's JSON and omitted under omitempty.
                if v.is_null()
                    || (is_zero(&v)
                        && skip.contains(&(d.full_name().to_string(), f.name().to_string())))
                {
                    continue;
                }
                v
            }
            RuntimeFieldType::Repeated(_) => {
                let r = f.get_repeated(m);
                if r.is_empty() {
                    continue;
                }
                Value::Array((0..r.len()).map(|i| value(r.get(i))).collect())
            }
            RuntimeFieldType::Map(..) => {
                let map = f.get_map(m);
                if map.is_empty() {
                    continue;
                }
                let mut o = Map::new();
                for (k, v) in &map {
                    let key = match k {
                        ReflectValueRef::String(s) => s.to_string(),
                        other => value(other).to_string(),
                    };
                    o.insert(key, value(v));
                }
                Value::Object(o)
            }
        };
        out.insert(f.name().to_string(), v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_rs_pb::api::apps::v1 as apps;
    use k8s_rs_pb::api::core::v1 as core;
    use k8s_rs_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_rs_pb::apimachinery::pkg::runtime::Unknown;
    use k8s_rs_pb::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn descriptors_load_for_every_served_builtin_kind() {
        assert!(files().len() > 10, "the derived descriptor set loads");
        for k in crate::k8s::store::KINDS {
            assert!(supported(k), "{} has a protobuf schema", k.kind);
        }
    }

    fn body<M: Message>(api_version: &str, kind: &str, m: &M) -> Vec<u8> {
        let mut u = Unknown::new();
        let mut tm = k8s_rs_pb::apimachinery::pkg::runtime::TypeMeta::new();
        tm.set_apiVersion(api_version.into());
        tm.set_kind(kind.into());
        u.typeMeta = protobuf::MessageField::some(tm);
        u.set_raw(m.write_to_bytes().expect("encode"));
        let mut out = MAGIC.to_vec();
        out.extend(u.write_to_bytes().expect("encode"));
        out
    }

    #[test]
    fn deployment_decodes_whole_with_go_json_zero_rules() {
        let mut c = core::Container::new();
        c.set_name("nginx".into());
        c.set_image("nginx".into());
        c.resources = protobuf::MessageField::some(core::ResourceRequirements::new());
        let mut port = core::ContainerPort::new();
        port.set_containerPort(80);
        port.set_hostPort(0);
        c.ports.push(port);
        let mut spec = core::PodSpec::new();
        spec.containers.push(c);
        spec.set_hostNetwork(false);
        spec.set_automountServiceAccountToken(false);
        let mut tmpl = core::PodTemplateSpec::new();
        let mut tm = meta::ObjectMeta::new();
        tm.labels.insert("app".into(), "web".into());
        tm.creationTimestamp = protobuf::MessageField::some(meta::Time::new());
        tmpl.metadata = protobuf::MessageField::some(tm.clone());
        tmpl.spec = protobuf::MessageField::some(spec);
        let mut ds = apps::DeploymentSpec::new();
        ds.set_replicas(0);
        ds.set_paused(false);
        let mut sel = meta::LabelSelector::new();
        sel.matchLabels.insert("app".into(), "web".into());
        ds.selector = protobuf::MessageField::some(sel);
        ds.template = protobuf::MessageField::some(tmpl);
        let mut strategy = apps::DeploymentStrategy::new();
        let mut ru = apps::RollingUpdateDeployment::new();
        let mut max = IntOrString::new();
        max.set_type(1);
        max.set_strVal("25%".into());
        ru.maxSurge = protobuf::MessageField::some(max);
        strategy.rollingUpdate = protobuf::MessageField::some(ru);
        ds.strategy = protobuf::MessageField::some(strategy);
        let mut d = apps::Deployment::new();
        let mut meta = meta::ObjectMeta::new();
        meta.set_name("web".into());
        d.metadata = protobuf::MessageField::some(meta);
        d.spec = protobuf::MessageField::some(ds);
        let k = crate::k8s::store::kind_in("apps", "deployments").expect("kind");
        let v = decode(k, &body("apps/v1", "Deployment", &d)).expect("decodes");
        assert_eq!(
            v,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [{
                                "name": "nginx",
                                "image": "nginx",
                                "ports": [{"containerPort": 80}],
                                "resources": {},
                            }],
                            "automountServiceAccountToken": false,
                        },
                    },
                    "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
                },
            })
        );
    }

    #[test]
    fn secrets_fold_string_data_and_custom_kinds_are_refused() {
        let mut s = core::Secret::new();
        s.data.insert("a".into(), b"xy".to_vec());
        s.stringData.insert("b".into(), "z".into());
        let k = crate::k8s::store::kind("secrets").expect("kind");
        let v = decode(k, &body("v1", "Secret", &s)).expect("decodes");
        assert_eq!(v["data"], json!({"a": "eHk=", "b": "eg=="}));
        assert!(v.get("stringData").is_none());
        let custom = Kind {
            group: "example.com",
            version: "v1",
            resource: "widgets",
            singular: "widget",
            kind: "Widget",
            namespaced: true,
            short_names: &[],
            verbs: &[],
            has_spec: true,
        };
        assert_eq!(decode(&custom, b"k8s\0"), Err(ProtoError::Unsupported));
        assert!(matches!(
            decode(k, b"{}"),
            Err(ProtoError::Invalid(m)) if m.contains("expected prefix")
        ));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(2_000_000), "2ms");
    }
}
