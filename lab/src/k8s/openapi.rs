//! `/openapi/v3`: the index of group-version documents and, per group version, an OpenAPI
//! 3.0 document with the resource paths and their operations (`x-kubernetes-action`,
//! `x-kubernetes-group-version-kind`; PATCH declares `dryRun`, `fieldManager`,
//! `fieldValidation` and `force`, which is how `kubectl` learns that the server validates
//! fields itself) and a schema per kind (`x-kubernetes-group-version-kind`). Built-in kinds
//! get an outline of their top-level fields (nested objects are not described); custom kinds
//! get their CRD's `openAPIV3Schema`.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::store::Kind;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";

/// `api/v1` or `apis/<group>/<version>`: a group version's key in the index.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The index: every group version with its document's URL (carrying the content's hash, as
/// the real server does, so clients can cache).
pub fn index(docs: &[(String, Value)]) -> Value {
    let mut paths = Map::new();
    for (gv, doc) in docs {
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", hash(doc))}),
        );
    }
    json!({ "paths": paths })
}

/// Hex of the document's SHA-256, upper case.
pub fn hash(doc: &Value) -> String {
    hex::encode_upper(Sha256::digest(serde_json::to_vec(doc).unwrap_or_default()))
}

/// The schema component name of a kind (`io.k8s.api.apps.v1.Deployment`; custom kinds: the
/// reversed group, `io.argoproj.v1alpha1.Application`).
pub fn schema_name(k: &Kind, custom: bool) -> String {
    if custom {
        let mut parts: Vec<&str> = k.group.split('.').collect();
        parts.reverse();
        return format!("{}.{}.{}", parts.join("."), k.version, k.kind);
    }
    match k.group {
        "" => format!("io.k8s.api.core.{}.{}", k.version, k.kind),
        "apiextensions.k8s.io" => format!(
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{}.{}",
            k.version, k.kind
        ),
        g => {
            let short = g.strip_suffix(".k8s.io").unwrap_or(g);
            let short = short.split('.').next().unwrap_or(short);
            format!("io.k8s.api.{short}.{}.{}", k.version, k.kind)
        }
    }
}

/// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`, `ArgoprojIoV1alpha1`: the operation id infix.
fn title(group: &str, version: &str) -> String {
    let cap = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    let g = if group.is_empty() {
        "Core".to_string()
    } else {
        group
            .strip_suffix(".k8s.io")
            .unwrap_or(group)
            .split(['.', '-'])
            .map(cap)
            .collect()
    };
    format!("{g}{}", cap(version))
}

fn gvk(k: &Kind) -> Value {
    json!({"group": k.group, "kind": k.kind, "version": k.version})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn ok(schema: &str) -> Value {
    json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference(schema)}}}})
}

/// The top-level fields of a built-in kind (beyond apiVersion, kind, metadata).
fn outline(k: &Kind) -> Value {
    let obj = json!({"type": "object"});
    let strings =
        json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}});
    let list = json!({"type": "array", "items": {"type": "object"}});
    match k.kind {
        "ConfigMap" => json!({
            "data": strings,
            "binaryData": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
            "immutable": {"type": "boolean"},
        }),
        "Secret" => json!({
            "data": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
            "stringData": strings,
            "type": {"type": "string"},
            "immutable": {"type": "boolean"},
        }),
        "ServiceAccount" => json!({
            "secrets": list,
            "imagePullSecrets": list,
            "automountServiceAccountToken": {"type": "boolean"},
        }),
        "ClusterRole" => json!({"rules": list, "aggregationRule": obj}),
        "Role" => json!({"rules": list}),
        "ClusterRoleBinding" | "RoleBinding" => json!({"subjects": list, "roleRef": obj}),
        "NetworkPolicy" => json!({"spec": obj}),
        _ => json!({"spec": obj, "status": obj}),
    }
}

/// A kind's schema: built-in outline or the CRD version's schema.
fn kind_schema(k: &Kind, crd_schema: Option<&Value>) -> Value {
    let mut s = match crd_schema {
        Some(c) if c.is_object() => c.clone(),
        _ => {
            let mut props = outline(k);
            props["apiVersion"] = json!({"type": "string"});
            props["kind"] = json!({"type": "string"});
            json!({"type": "object", "properties": props})
        }
    };
    if !s["properties"].is_object() {
        s["properties"] = json!({});
    }
    s["properties"]["apiVersion"] = json!({"type": "string"});
    s["properties"]["kind"] = json!({"type": "string"});
    s["properties"]["metadata"] = json!({"allOf": [reference(META)], "default": {}});
    s["x-kubernetes-group-version-kind"] = json!([gvk(k)]);
    s
}

fn meta_schemas() -> Value {
    let strings =
        json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}});
    json!({
        META: {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "generateName": {"type": "string"},
                "namespace": {"type": "string"},
                "uid": {"type": "string"},
                "resourceVersion": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "creationTimestamp": {"type": "string", "format": "date-time"},
                "deletionTimestamp": {"type": "string", "format": "date-time"},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "labels": strings,
                "annotations": strings,
                "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set"},
                "ownerReferences": {"type": "array", "items": {"type": "object"}, "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]},
                "managedFields": {"type": "array", "items": {"type": "object"}},
            },
        },
        PATCH: {"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."},
        STATUS: {"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "status": {"type": "string"}, "message": {"type": "string"}, "reason": {"type": "string"}, "code": {"type": "integer", "format": "int32"}, "details": {"type": "object"}, "metadata": {"type": "object"}}},
        DELETE_OPTIONS: {"type": "object", "properties": {"propagationPolicy": {"type": "string"}, "orphanDependents": {"type": "boolean"}, "gracePeriodSeconds": {"type": "integer", "format": "int64"}, "dryRun": {"type": "array", "items": {"type": "string"}}}},
    })
}

/// A group version's document. `kinds`: the kinds it serves, each with its CRD version schema
/// when custom.
pub fn document(
    group: &str,
    version: &str,
    kinds: &[(&Kind, Option<Value>)],
    k8s_version: &str,
) -> Value {
    let mut paths = Map::new();
    let mut schemas = meta_schemas();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let t = title(group, version);
    for (k, crd) in kinds {
        let custom = crd.is_some();
        let name = schema_name(k, custom);
        let crd_schema = crd
            .as_ref()
            .and_then(|v| v.pointer("/schema/openAPIV3Schema"));
        schemas[name.as_str()] = kind_schema(k, crd_schema);
        let list_name = format!("{name}List");
        schemas[list_name.as_str()] = json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "items": {"type": "array", "items": reference(&name)},
                "metadata": {"type": "object"},
            },
            "x-kubernetes-group-version-kind": [{"group": k.group, "kind": format!("{}List", k.kind), "version": k.version}],
        });
        let scope = if k.namespaced { "Namespaced" } else { "" };
        let op = |verb: &str, action: &str, schema: &str, extra: Vec<Value>| {
            let mut o = json!({
                "tags": [format!("{}_{}", if group.is_empty() { "core" } else { group }, version)],
                "operationId": format!("{verb}{t}{scope}{}", k.kind),
                "responses": ok(schema),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk(k),
            });
            if !extra.is_empty() {
                o["parameters"] = json!(extra);
            }
            o
        };
        let dry = query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        );
        let manager = query(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        );
        let validation = query(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict.",
        );
        let force = query(
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests.",
        );
        let patch_types: Vec<&str> = if custom {
            vec![
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
            ]
        } else {
            vec![
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ]
        };
        let mut patch_body = Map::new();
        for ct in patch_types {
            patch_body.insert(ct.into(), json!({"schema": reference(PATCH)}));
        }
        let body = json!({"content": {"application/json": {"schema": reference(&name)}, "application/yaml": {"schema": reference(&name)}}, "required": true});
        let ns_seg = if k.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let mut scope_params = vec![
            json!({"name": "pretty", "in": "query", "description": "If 'true', then the output is pretty printed.", "schema": {"type": "string", "uniqueItems": true}}),
        ];
        if k.namespaced {
            scope_params.insert(
                0,
                path_param(
                    "namespace",
                    "object name and auth scope, such as for teams and projects",
                ),
            );
        }
        let mut collection = json!({
            "get": op("list", "list", &list_name, vec![query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."), query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."), query("watch", "boolean", "Watch for changes to the described resources."), query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."), query("timeoutSeconds", "integer", "Timeout for the list/watch call.")]),
            "post": op("create", "post", &name, vec![dry.clone(), manager.clone(), validation.clone()]),
            "delete": op("deleteCollection", "deletecollection", STATUS, vec![query("propagationPolicy", "string", "Whether and how garbage collection will be performed.")]),
            "parameters": scope_params.clone(),
        });
        collection["post"]["requestBody"] = body.clone();
        if !k.verbs.contains(&"deletecollection")
            && let Some(c) = collection.as_object_mut()
        {
            c.remove("delete");
        }
        paths.insert(format!("{prefix}{ns_seg}/{}", k.resource), collection);
        let mut item_params = scope_params;
        item_params.insert(0, path_param("name", &format!("name of the {}", k.kind)));
        let mut item = json!({
            "get": op("read", "get", &name, vec![]),
            "put": op("replace", "put", &name, vec![dry.clone(), manager.clone(), validation.clone()]),
            "patch": op("patch", "patch", &name, vec![dry.clone(), manager, validation, force]),
            "delete": op("delete", "delete", STATUS, vec![dry, query("propagationPolicy", "string", "Whether and how garbage collection will be performed."), query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy.")]),
            "parameters": item_params,
        });
        item["put"]["requestBody"] = body;
        item["patch"]["requestBody"] = json!({"content": patch_body, "required": true});
        paths.insert(format!("{prefix}{ns_seg}/{}/{{name}}", k.resource), item);
        if k.namespaced {
            let mut all = json!({
                "get": op("list", "list", &list_name, vec![]),
                "parameters": [{"name": "pretty", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
            });
            all["get"]["operationId"] = json!(format!("list{t}{}ForAllNamespaces", k.kind));
            paths.insert(format!("{prefix}/{}", k.resource), all);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": k8s_version},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::store::{KINDS, kind_in};

    #[test]
    fn names_and_patch_parameters() {
        let dep = kind_in("apps", "deployments").expect("deployments");
        assert_eq!(schema_name(dep, false), "io.k8s.api.apps.v1.Deployment");
        let np = kind_in("networking.k8s.io", "networkpolicies").expect("np");
        assert_eq!(
            schema_name(np, false),
            "io.k8s.api.networking.v1.NetworkPolicy"
        );
        let crb = kind_in("rbac.authorization.k8s.io", "clusterrolebindings").expect("crb");
        assert_eq!(
            schema_name(crb, false),
            "io.k8s.api.rbac.v1.ClusterRoleBinding"
        );
        assert_eq!(
            title("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(title("argoproj.io", "v1alpha1"), "ArgoprojIoV1alpha1");
        let core: Vec<(&Kind, Option<Value>)> = KINDS
            .iter()
            .filter(|k| k.group.is_empty())
            .map(|k| (k, None))
            .collect();
        let doc = document("", "v1", &core, "v1.34.1");
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(patch["operationId"], "patchCoreV1NamespacedConfigMap");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "kind": "ConfigMap", "version": "v1"})
        );
        assert!(
            patch["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert_eq!(
            doc["components"]["schemas"]["io.k8s.api.core.v1.Node"]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Node", "version": "v1"}])
        );
        assert!(doc["paths"].get("/api/v1/nodes/{name}").is_some());
        // Namespaces have no deletecollection verb.
        assert!(doc["paths"]["/api/v1/namespaces"].get("delete").is_none());
        assert!(doc["paths"]["/api/v1/nodes"].get("delete").is_some());
    }
}
