//! The derived data (scripts/derive-cilium.py) keeps the facts of its sources: the Gateway API
//! CRDs equal ../shared's with only the schema `description` prose removed.

mod common;

use common::parse_yaml_documents;
use infraflux_cilium::gateway_api_crds;
use serde_json::Value;

/// The schema without `description` keys; names under `properties` are fields, kept.
fn strip(v: &Value, in_properties: bool) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| in_properties || k.as_str() != "description")
                .map(|(k, child)| (k.clone(), strip(child, !in_properties && k == "properties")))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| strip(i, false)).collect()),
        other => other.clone(),
    }
}

#[test]
fn gateway_api_crds_are_upstreams_without_prose() {
    let Some(dir) = infraflux_reference::path("crds/gateway-api-v1.6.1") else {
        return;
    };
    let mut upstream = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        for mut crd in parse_yaml_documents(&std::fs::read_to_string(f).expect("read")) {
            if crd["kind"] != "CustomResourceDefinition" {
                continue;
            }
            for version in crd["spec"]["versions"].as_array_mut().expect("versions") {
                if let Some(schema) = version.get("schema") {
                    version["schema"] = strip(schema, false);
                }
            }
            upstream.push(crd);
        }
    }
    upstream.sort_by_key(|c| {
        c["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    let ours = gateway_api_crds();
    assert_eq!(ours.len(), upstream.len());
    assert!(!ours.is_empty());
    for (a, b) in ours.iter().zip(&upstream) {
        assert_eq!(
            a, b,
            "{} differs from upstream beyond its descriptions",
            a["metadata"]["name"]
        );
    }
    // Prose is really gone (and nothing else was: a field named `description` survives).
    let text = serde_json::to_string(&ours).expect("json");
    assert!(
        !text.contains("\"description\":\""),
        "a description string is left"
    );
    assert!(
        text.contains("\"description\":{"),
        "GatewayClass's spec.description field must stay"
    );
}

#[test]
fn the_crds_are_the_standard_channel_of_v1_6_1() {
    let crds = gateway_api_crds();
    let names: Vec<&str> = crds
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    for required in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "grpcroutes",
        "referencegrants",
        "tlsroutes",
    ] {
        assert!(
            names.contains(&format!("{required}.gateway.networking.k8s.io").as_str()),
            "{required} missing: {names:?}"
        );
    }
    for c in &crds {
        let annotations = &c["metadata"]["annotations"];
        assert_eq!(
            annotations["gateway.networking.k8s.io/bundle-version"],
            "v1.6.1"
        );
        assert_eq!(annotations["gateway.networking.k8s.io/channel"], "standard");
    }
}
