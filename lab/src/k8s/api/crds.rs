//! What the apiextensions server checks on writes: CRD validation and initial status, custom
//! objects pruned, defaulted and validated by their structural schema, creation refused while
//! a CRD terminates.

use serde_json::{Value, json};

use super::status::{bad_request, invalid, status};
use super::{Early, Resp, q};
use crate::k8s::store::{self, Kind};

/// A custom kind's structural schema: its CRD version's `openAPIV3Schema`.
pub(super) fn custom_schema(store: &store::Store, k: &Kind) -> Option<Value> {
    if store::kind_in(k.group, k.resource).is_some() {
        return None;
    }
    let crds = store::kind_in("apiextensions.k8s.io", "customresourcedefinitions")?;
    let crd = store.get(crds, "", &k.qualified()).ok()?;
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == k.version)?
        .pointer("/schema/openAPIV3Schema")
        .cloned()
}

/// Prune and default a custom object by its CRD's schema. `fieldValidation` decides what
/// unknown (pruned) fields mean: `Strict` → 400 BadRequest (the decoder's strict error),
/// `Ignore` → nothing, `Warn` (the default) → `Warning` headers. Returns the warnings.
pub(super) fn structural(
    store: &store::Store,
    k: &Kind,
    qs: &[(String, String)],
    obj: &mut Value,
) -> Result<Vec<String>, Early> {
    let Some(schema) = custom_schema(store, k) else {
        return Ok(Vec::new());
    };
    let pruned = crate::k8s::structural::prune_and_default(obj, &schema);
    let unknown: Vec<String> = pruned
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    let mode = q(qs, "fieldValidation");
    if !unknown.is_empty() && mode == Some("Strict") {
        return Err(Box::new(bad_request(&format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", "),
            kind = k.kind,
            v = k.version
        ))));
    }
    // Types and enums are checked whatever fieldValidation says.
    let errs = crate::k8s::validation::validate(obj, &schema);
    if !errs.is_empty() {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(Box::new(schema_invalid(k, name, &errs)));
    }
    match mode {
        Some("Ignore") => Ok(Vec::new()),
        _ => Ok(unknown),
    }
}

/// 422 Invalid for a custom object's schema errors, worded as the apiextensions server does:
/// `Widget.example.com "w" is invalid: spec.replicas: …` (several: `is invalid: [a, b]`).
fn schema_invalid(k: &Kind, name: &str, errs: &[crate::k8s::validation::FieldError]) -> Resp {
    let each: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.field, e.detail))
        .collect();
    let list = if each.len() == 1 {
        each[0].clone()
    } else {
        format!("[{}]", each.join(", "))
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.detail, "field": e.field}))
        .collect();
    status(
        422,
        "Invalid",
        &format!("{}.{} \"{name}\" is invalid: {list}", k.kind, k.group),
        Some(json!({"name": name, "group": k.group, "kind": k.kind, "causes": causes})),
    )
}

/// A custom object's CRD is being deleted: creation is refused (405, as the apiextensions
/// server answers).
pub(super) fn crd_terminating(store: &store::Store, k: &Kind) -> Option<Resp> {
    if store::kind_in(k.group, k.resource).is_some() {
        return None;
    }
    let crds = store::kind_in("apiextensions.k8s.io", "customresourcedefinitions")?;
    let crd = store.get(crds, "", &k.qualified()).ok()?;
    crd.pointer("/metadata/deletionTimestamp")?;
    Some(status(
        405,
        "MethodNotAllowed",
        "create not allowed while custom resource definition is terminating",
        Some(json!({"group": k.group, "kind": k.resource})),
    ))
}

/// What CRD validation checks here: the name is `<plural>.<group>` (the real message), and
/// the fields the rest of the server reads are there.
pub(super) fn crd_validate(obj: &Value, name: &str) -> Result<(), Early> {
    let kind = "CustomResourceDefinition.apiextensions.k8s.io";
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (plural, group) = (s("/spec/names/plural"), s("/spec/group"));
    for (field, v) in [
        ("spec.group", group),
        ("spec.names.plural", plural),
        ("spec.names.kind", s("/spec/names/kind")),
    ] {
        if v.is_empty() {
            return Err(Box::new(invalid(kind, name, field, "", "Required value")));
        }
    }
    if name != format!("{plural}.{group}") {
        return Err(Box::new(invalid(
            kind,
            name,
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        )));
    }
    let scope = s("/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        let why = if scope.is_empty() {
            "Required value".to_string()
        } else {
            "Unsupported value: \"".to_string()
                + scope
                + "\": supported values: \"Cluster\", \"Namespaced\""
        };
        if scope.is_empty() {
            return Err(Box::new(invalid(kind, name, "spec.scope", "", &why)));
        }
        return Err(Box::new(status(
            422,
            "Invalid",
            &format!("{kind} \"{name}\" is invalid: spec.scope: {why}"),
            Some(
                json!({"name": name, "group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition",
                "causes": [{"reason": "FieldValueNotSupported", "message": why, "field": "spec.scope"}]}),
            ),
        )));
    }
    let versions = obj.pointer("/spec/versions").and_then(Value::as_array);
    let storage = versions.map_or(0, |vs| vs.iter().filter(|v| v["storage"] == true).count());
    if storage != 1 {
        // The real server prints the Go value of the list here; its contents are elided.
        let why = "Invalid value: []apiextensions.CustomResourceDefinitionVersion{…}: must have exactly one version marked as storage version";
        return Err(Box::new(status(
            422,
            "Invalid",
            &format!("{kind} \"{name}\" is invalid: spec.versions: {why}"),
            Some(
                json!({"name": name, "group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition",
                "causes": [{"reason": "FieldValueInvalid", "message": why, "field": "spec.versions"}]}),
            ),
        )));
    }
    Ok(())
}

/// A CRD's status as created: nothing accepted yet, the storage version stored. The names'
/// defaults (singular: the kind in lower case; listKind: `<kind>List`) are set first.
pub(super) fn crd_initial_status(obj: &mut Value) -> Value {
    let kind = obj["spec"]["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let names = &mut obj["spec"]["names"];
    if names["singular"].as_str().is_none_or(str::is_empty) {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names["listKind"].as_str().is_none_or(str::is_empty) {
        names["listKind"] = json!(format!("{kind}List"));
    }
    let stored: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    json!({"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": stored})
}
