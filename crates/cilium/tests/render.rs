//! Output: apply order, the multi-document YAML and the content hashes.

mod common;

use common::{certs, golden_options, parse_yaml_documents};
use infraflux_cilium::{Options, build, object_hash, rendered_manifests};
use serde_json::json;

#[test]
fn rendered_yaml_reads_back_to_the_same_objects() {
    let built = build(&golden_options("full"), certs()).expect("build");
    let yaml = built.rendered_manifests().expect("render");
    assert_eq!(yaml.matches("\n---\n").count() + 1, built.objects.len());
    let back = parse_yaml_documents(&yaml);
    assert_eq!(back.len(), built.objects.len());
    for (a, b) in built.objects.iter().zip(&back) {
        assert_eq!(
            a, b,
            "{} {} does not survive YAML",
            a["kind"], a["metadata"]["name"]
        );
    }
    // Numbers stay numbers (serde_json's arbitrary_precision must not leak into the text).
    assert!(
        !yaml.contains("serde_json"),
        "private number representation leaked into the YAML"
    );
    assert!(yaml.contains("containerPort: 9879"));
}

#[test]
fn objects_come_in_apply_order() {
    let built = build(&golden_options("full"), certs()).expect("build");
    let kinds: Vec<&str> = built
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default())
        .collect();
    let first = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let last = |k: &str| {
        kinds
            .iter()
            .rposition(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert_eq!(kinds[0], "CustomResourceDefinition");
    assert!(last("CustomResourceDefinition") < first("Namespace"));
    assert!(last("Namespace") < first("ServiceAccount"));
    assert!(last("ConfigMap") < first("DaemonSet"));
    assert!(last("RoleBinding") < first("Deployment"));
    assert!(last("Service") < first("DaemonSet"));
    assert!(last("CustomResourceDefinition") < first("GatewayClass"));
    // Deterministic: the same options give the same sequence.
    let again = build(&golden_options("full"), certs()).expect("build");
    assert_eq!(built.objects, again.objects);
}

#[test]
fn the_hash_follows_content_not_key_order() {
    let a = json!({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"}, "data": {"a": "1", "b": "2"}});
    let b = json!({"data": {"b": "2", "a": "1"}, "metadata": {"namespace": "y", "name": "x"}, "kind": "ConfigMap"});
    let c = json!({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"}, "data": {"a": "1", "b": "3"}});
    assert_eq!(object_hash(&a), object_hash(&b));
    assert_ne!(object_hash(&a), object_hash(&c));
    assert_eq!(object_hash(&a).len(), 64);
}

#[test]
fn an_option_changes_the_hash_of_the_objects_it_touches_only() {
    let base = build(&Options::default(), certs()).expect("build");
    let bgp = build(
        &Options {
            bgp_control_plane: true,
            ..Options::default()
        },
        certs(),
    )
    .expect("build");
    let hashes = |m: &infraflux_cilium::Manifests| -> std::collections::BTreeMap<String, String> {
        m.objects
            .iter()
            .map(|o| (common::identity(o), object_hash(o)))
            .map(|(id, h)| (format!("{}/{}/{}", id.1, id.2, id.3), h))
            .collect()
    };
    let (h0, h1) = (hashes(&base), hashes(&bgp));
    let changed: Vec<&String> = h0.keys().filter(|k| h1.get(*k) != h0.get(*k)).collect();
    assert_eq!(changed, vec!["ConfigMap/kube-system/cilium-config"]);
    assert_eq!(
        h1.len(),
        h0.len() + 2,
        "BGP adds its secrets Role and RoleBinding"
    );
}

#[test]
fn an_empty_list_renders_to_nothing() {
    assert_eq!(rendered_manifests(&[]).expect("render"), "");
}
