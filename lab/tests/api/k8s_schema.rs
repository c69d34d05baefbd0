//! Custom objects are type-checked against their CRD version's schema whatever
//! `fieldValidation` says: a wrong type or a value outside `enum` → 422 Invalid in the
//! apiextensions server's words, on create, update, patch and apply (also through real
//! kubectl); nothing is stored.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::T;
use crate::k8s::{get_json, send};
use crate::k8s_apps::{cluster, opts};
use crate::k8s_kubectl::kubectl;

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "replicas": {"type": "integer"},
                        "ratio": {"type": "number"},
                        "enabled": {"type": "boolean"},
                        "owner": {"type": "string"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "ports": {"type": "array", "items": {"type": "integer"}},
                        "mode": {"type": "string", "enum": ["fast", "safe"]},
                    }},
                }}}}],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_objects_are_type_checked_whatever_field_validation_says() {
    let t = T::with(opts(100)).await;
    let (kube, base, yaml, _) = cluster(&t, "127.77.94", 941, ("cp1", None), true).await;
    let (s, v) = send(
        &kube,
        Method::POST,
        &format!("{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"),
        "application/json",
        &widget_crd(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let coll = format!("{base}/apis/example.com/v1/namespaces/default/gadgets");
    let deadline = Instant::now() + Duration::from_secs(5);
    while get_json(&kube, &coll).await.0 != 200 {
        assert!(Instant::now() < deadline, "never established");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gadget = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": spec});
    let want_replicas = "Gadget.example.com \"g1\" is invalid: spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"";
    for fv in [
        "",
        "&fieldValidation=Ignore",
        "&fieldValidation=Warn",
        "&fieldValidation=Strict",
    ] {
        let (s, v) = send(
            &kube,
            Method::POST,
            &format!("{coll}?x=1{fv}"),
            "application/json",
            &gadget(json!({"replicas": "three"})),
        )
        .await;
        assert_eq!(s, 422, "{fv}: {v}");
        assert_eq!(v["reason"], "Invalid");
        assert_eq!(v["message"], want_replicas, "{fv}");
        assert_eq!(
            v["details"],
            json!({"name": "g1", "group": "example.com", "kind": "Gadget", "causes": [{
                "reason": "FieldValueInvalid",
                "message": "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                "field": "spec.replicas"}]})
        );
    }
    assert_eq!(
        get_json(&kube, &format!("{coll}/g1")).await.0,
        404,
        "nothing stored"
    );

    // Every basic type and enum, several errors at once.
    let (s, v) = send(
        &kube,
        Method::POST,
        &coll,
        "application/json",
        &gadget(json!({
        "ratio": "x", "enabled": "yes", "owner": 7, "labels": {"a": true},
        "ports": [80, "http"], "mode": "slow"})),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let msg = v["message"].as_str().expect("message");
    for part in [
        "Gadget.example.com \"g1\" is invalid: [",
        "spec.ratio: Invalid value: \"string\": spec.ratio in body must be of type number: \"string\"",
        "spec.enabled: Invalid value: \"string\": spec.enabled in body must be of type boolean: \"string\"",
        "spec.owner: Invalid value: \"integer\": spec.owner in body must be of type string: \"integer\"",
        "spec.labels.a: Invalid value: \"boolean\": spec.labels.a in body must be of type string: \"boolean\"",
        "spec.ports[1]: Invalid value: \"string\": spec.ports[1] in body must be of type integer: \"string\"",
        "spec.mode: Unsupported value: \"slow\": supported values: \"fast\", \"safe\"",
    ] {
        assert!(msg.contains(part), "{part} not in {msg}");
    }
    assert_eq!(
        v["details"]["causes"].as_array().map(Vec::len),
        Some(6),
        "{v}"
    );
    let (s, v) = send(
        &kube,
        Method::POST,
        &coll,
        "application/json",
        &gadget(json!({"owner": [1], "mode": "fast"})),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.owner in body must be of type string: \"array\"")),
        "{v}"
    );
    let (s, v) = send(
        &kube,
        Method::POST,
        &coll,
        "application/json",
        &gadget(json!("flat")),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec in body must be of type object: \"string\"")),
        "{v}"
    );

    // A valid object is stored; wrong types are refused on update, patches and apply too.
    let (s, v) = send(
        &kube,
        Method::POST,
        &coll,
        "application/json",
        &gadget(json!({"replicas": 2, "ratio": 1, "mode": "safe"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rv = v["metadata"]["resourceVersion"].clone();
    let mut put = v.clone();
    put["spec"]["replicas"] = json!("two");
    let (s, v) = send(
        &kube,
        Method::PUT,
        &format!("{coll}/g1?fieldValidation=Ignore"),
        "application/json",
        &put,
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (422, Some(want_replicas)),
        "{v}"
    );
    let (s, v) = send(
        &kube,
        Method::PATCH,
        &format!("{coll}/g1"),
        "application/merge-patch+json",
        &json!({"spec": {"replicas": "three"}}),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (422, Some(want_replicas)),
        "{v}"
    );
    let (s, v) = send(
        &kube,
        Method::PATCH,
        &format!("{coll}/g1"),
        "application/json-patch+json",
        &json!([{"op": "replace", "path": "/spec/mode", "value": "slow"}]),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        v["details"]["causes"][0]["reason"],
        "FieldValueNotSupported"
    );
    let (s, v) = send(
        &kube,
        Method::PATCH,
        &format!("{coll}/g1?fieldManager=m&fieldValidation=Ignore"),
        "application/apply-patch+yaml",
        &gadget(json!({"replicas": "three"})),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (422, Some(want_replicas)),
        "{v}"
    );
    // kubectl shows the server's words.
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, &yaml).expect("write kubeconfig");
    let manifest = dir.path().join("g.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g1\n  namespace: default\nspec:\n  replicas: three\n",
    )
    .expect("write");
    let (ok, out, err) = kubectl(
        &kc,
        &[
            "apply",
            "--server-side",
            "-f",
            manifest.to_str().expect("path"),
        ],
    )
    .await;
    assert!(!ok, "{out}");
    // kubectl words it from the Status details, as with a real server.
    assert!(
        err.contains("The Gadget \"g1\" is invalid: spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""),
        "{err}"
    );
    let (_, now) = get_json(&kube, &format!("{coll}/g1")).await;
    assert_eq!(now["metadata"]["resourceVersion"], rv, "nothing written");
    assert_eq!(
        now["spec"],
        json!({"replicas": 2, "ratio": 1, "mode": "safe"})
    );
}
