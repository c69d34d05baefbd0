//! Defaults the API server fills in on write.

use serde_json::{Value, json};

use super::meta_of;

/// The defaults the API server sets on apps/v1 workloads (what `kubectl rollout status`
/// reads back, e.g. a StatefulSet's `updateStrategy`). Only fields left unset are filled.
pub fn apps_defaults(resource: &str, obj: &mut Value) {
    if !matches!(resource, "deployments" | "statefulsets" | "daemonsets") {
        return;
    }
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = obj["spec"].as_object_mut().expect("object");
    let mut set = |k: &str, v: Value| {
        spec.entry(k.to_string()).or_insert(v);
    };
    set("revisionHistoryLimit", json!(10));
    match resource {
        "deployments" => {
            set("replicas", json!(1));
            set("progressDeadlineSeconds", json!(600));
            set(
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
        }
        "statefulsets" => {
            set("replicas", json!(1));
            set("podManagementPolicy", json!("OrderedReady"));
            set(
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            set(
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        _ => set(
            "updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        ),
    }
}

/// The label every namespace carries with its own name.
pub fn namespace_defaults(obj: &mut Value, name: &str) {
    let meta = meta_of(obj);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["kubernetes.io/metadata.name"] = json!(name);
}
