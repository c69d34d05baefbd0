//! The built objects equal the real chart's render for the same values, for every golden set in
//! ../shared/reference/cilium/golden/ (random certificate fields masked; the TLS Secrets'
//! `ca.crt` must be the CA's).

mod common;

use common::{certs, compare, golden_options, parse_yaml_documents};
use infraflux_cilium::build;
use serde_json::Value;

fn secret<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == name)
}

fn check_set(set: &str) {
    let Some(text) = infraflux_reference::read(&format!("cilium/golden/{set}.yaml")) else {
        return;
    };
    let chart = parse_yaml_documents(&text);
    let built = build(&golden_options(set), certs()).expect("golden options build");
    // The CRDs are applied with the install but are not part of the chart.
    let objects: Vec<Value> = built
        .objects
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .cloned()
        .collect();
    let differences = compare(&objects, &chart);
    assert!(
        differences.is_empty(),
        "{set}: {} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );

    // Same shape of TLS material as the chart: each TLS Secret carries the CA's certificate.
    let ca = secret(&objects, "cilium-ca").map(|s| s["data"]["ca.crt"].clone());
    for name in ["hubble-server-certs", "hubble-relay-client-certs"] {
        if let Some(s) = secret(&objects, name) {
            assert_eq!(
                Some(s["data"]["ca.crt"].clone()),
                ca,
                "{set}: {name} must carry the CA's certificate"
            );
        }
        if let (Some(c), Some(cs)) = (secret(&chart, name), secret(&chart, "cilium-ca")) {
            assert_eq!(
                c["data"]["ca.crt"], cs["data"]["ca.crt"],
                "{set}: the chart's {name} carries its CA"
            );
        }
    }
    assert!(built.warnings.is_empty(), "{set}: {:?}", built.warnings);
}

#[test]
fn talos_base() {
    check_set("talos-base");
}

#[test]
fn hubble() {
    check_set("hubble");
}

#[test]
fn wireguard() {
    check_set("wireguard");
}

#[test]
fn bgp() {
    check_set("bgp");
}

#[test]
fn gateway_api() {
    check_set("gateway-api");
}

#[test]
fn no_l7() {
    check_set("no-l7");
}

#[test]
fn xdp_dsr() {
    check_set("xdp-dsr");
}

#[test]
fn ingress() {
    check_set("ingress");
}

#[test]
fn observability() {
    check_set("observability");
}

#[test]
fn full() {
    check_set("full");
}

/// The YAML reader the comparison uses reads the chart's text as the apiserver would: octal
/// `0400` is 256, quoted numbers stay strings.
#[test]
fn golden_yaml_is_read_like_kubernetes_reads_it() {
    let docs =
        parse_yaml_documents("defaultMode: 0400\nb: '1'\nc: \"7445\"\nd: 1\n---\n---\ne: |\n  x\n");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["defaultMode"], serde_json::json!(256));
    assert_eq!(docs[0]["b"], serde_json::json!("1"));
    assert_eq!(docs[0]["c"], serde_json::json!("7445"));
    assert_eq!(docs[0]["d"], serde_json::json!(1));
    assert_eq!(docs[1]["e"], serde_json::json!("x\n"));
}
