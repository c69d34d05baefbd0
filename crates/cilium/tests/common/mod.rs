//! Shared by the integration tests: the golden sets' options, fixed certificates, YAML parsing,
//! object comparison and the kubernetes-validate runner.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use infraflux_cilium::{
    Bpf, Certificates, Encryption, Hubble, IngressController, LoadBalancer, Options, Prometheus,
    Routing,
};
use serde_json::Value;

/// The seven Hubble metrics the golden sets enable.
pub fn hubble_metrics() -> Vec<String> {
    [
        "dns",
        "drop",
        "tcp",
        "flow",
        "port-distribution",
        "icmp",
        "httpV2",
    ]
    .map(String::from)
    .to_vec()
}

/// The options that correspond to a golden set's values (see golden/README.md).
pub fn golden_options(set: &str) -> Options {
    let mut o = Options::default();
    let hubble_all = || {
        Some(Hubble {
            enabled: true,
            relay: true,
            ui: true,
            metrics: hubble_metrics(),
        })
    };
    let wireguard = || {
        Some(Encryption {
            kind: "wireguard".into(),
            node_encryption: true,
        })
    };
    let xdp_dsr = |o: &mut Options| {
        o.load_balancer = Some(LoadBalancer {
            mode: Some("dsr".into()),
            acceleration: Some("native".into()),
        });
        o.routing = Some(Routing {
            mode: "native".into(),
            native_cidr: Some("10.244.0.0/16".into()),
            auto_direct_node_routes: true,
            tunnel_protocol: None,
        });
        o.bpf = Some(Bpf {
            masquerade: Some(true),
            host_legacy_routing: None,
        });
    };
    let ingress = || {
        Some(IngressController {
            enabled: true,
            default: true,
            load_balancer_mode: "shared".into(),
        })
    };
    let observability = || {
        Some(Prometheus {
            enabled: true,
            service_monitor: true,
            dashboards: true,
        })
    };
    match set {
        "talos-base" => {}
        "hubble" => o.hubble = hubble_all(),
        "wireguard" => o.encryption = wireguard(),
        "bgp" => o.bgp_control_plane = true,
        "gateway-api" => o.gateway_api = true,
        "no-l7" => o.l7_proxy = false,
        "xdp-dsr" => xdp_dsr(&mut o),
        "ingress" => o.ingress_controller = ingress(),
        "observability" => {
            o.hubble = Some(Hubble {
                metrics: hubble_metrics(),
                ..Hubble::default()
            });
            o.prometheus = observability();
        }
        "full" => {
            o.hubble = hubble_all();
            o.encryption = wireguard();
            o.bgp_control_plane = true;
            o.gateway_api = true;
            xdp_dsr(&mut o);
            o.ingress_controller = ingress();
            o.prometheus = observability();
        }
        other => panic!("unknown golden set {other}"),
    }
    o
}

/// One set of certificates for every test (RSA key generation is slow in debug builds).
pub fn certs() -> &'static Certificates {
    static CERTS: OnceLock<Certificates> = OnceLock::new();
    CERTS.get_or_init(|| {
        Certificates::generate(time::OffsetDateTime::now_utc()).expect("certificates")
    })
}

/// Every document of a multi-document YAML text, as JSON values (empty documents dropped).
///
/// The chart's text is YAML 1.1 as Kubernetes reads it (go-yaml): `defaultMode: 0400` is octal
/// 256. The YAML 1.2 reader here keeps such a plain scalar as the string "0400", so file modes
/// written with a leading zero are read back as the octal numbers they are.
pub fn parse_yaml_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            let mut v = Value::deserialize(doc).expect("YAML document");
            octal_modes(&mut v);
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn octal_modes(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let octal = child.as_str().filter(|s| {
                    (k == "defaultMode" || k == "mode")
                        && s.len() > 1
                        && s.starts_with('0')
                        && s.bytes().all(|b| (b'0'..=b'7').contains(&b))
                });
                if let Some(n) = octal.and_then(|s| u32::from_str_radix(s, 8).ok()) {
                    *child = Value::from(n);
                } else {
                    octal_modes(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

/// (apiVersion, kind, namespace, name) of an object.
pub fn identity(o: &Value) -> (String, String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&o["apiVersion"]),
        s(&o["kind"]),
        s(&o["metadata"]["namespace"]),
        s(&o["metadata"]["name"]),
    )
}

/// The Secret keys that are random per render (golden/README.md).
pub fn random_keys(name: &str) -> &'static [&'static str] {
    match name {
        "cilium-ca" => &["ca.crt", "ca.key"],
        "hubble-server-certs" | "hubble-relay-client-certs" => &["ca.crt", "tls.crt", "tls.key"],
        _ => &[],
    }
}

/// The object with its random certificate fields replaced by a marker.
pub fn masked(o: &Value) -> Value {
    let mut o = o.clone();
    if o["kind"] == "Secret" {
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for key in random_keys(&name) {
            if o["data"].get(*key).is_some() {
                o["data"][*key] = Value::String("<random>".into());
            }
        }
    }
    o
}

/// Field-by-field differences between two JSON values, as `path: left != right` lines.
pub fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => diff(&format!("{path}.{k}"), l, r, out),
                    (Some(_), None) => out.push(format!("{path}.{k}: only built")),
                    (None, Some(_)) => out.push(format!("{path}.{k}: only in the chart's render")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!(
                    "{path}: {} items built, {} in the chart's render",
                    x.len(),
                    y.len()
                ));
            }
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), l, r, out);
            }
        }
        _ if a != b => {
            let short = |v: &Value| v.to_string().chars().take(160).collect::<String>();
            out.push(format!("{path}: built {} != chart {}", short(a), short(b)));
        }
        _ => {}
    }
}

/// Compares built objects with the chart's, object by object and field by field (random
/// certificate fields masked). Returns one line per difference.
pub fn compare(built: &[Value], chart: &[Value]) -> Vec<String> {
    let index = |objs: &[Value]| -> BTreeMap<_, Value> {
        objs.iter().map(|o| (identity(o), masked(o))).collect()
    };
    let (ours, theirs) = (index(built), index(chart));
    let mut out = Vec::new();
    for (id, o) in &ours {
        match theirs.get(id) {
            None => out.push(format!("{id:?}: built but not in the chart's render")),
            Some(t) => {
                let mut d = Vec::new();
                diff("", o, t, &mut d);
                out.extend(
                    d.into_iter()
                        .map(|l| format!("{} {}/{}{l}", id.1, id.2, id.3)),
                );
            }
        }
    }
    for id in theirs.keys().filter(|id| !ours.contains_key(*id)) {
        out.push(format!("{id:?}: in the chart's render but not built"));
    }
    out
}

/// The worktree's `.venv/bin/kubernetes-validate`; panics with what to run when absent.
pub fn kubernetes_validate() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join(".venv/bin/kubernetes-validate");
    assert!(
        bin.is_file(),
        "{} is missing: run `make tools` (scripts/install-tools.sh) to install the pinned Python tools",
        bin.display()
    );
    bin
}

/// Kinds kubernetes-validate has no schema for (CRD-defined); checked elsewhere.
const SKIPPED_KINDS: &[&str] = &["GatewayClass", "ServiceMonitor"];

/// Runs kubernetes-validate (strict, Kubernetes 1.34) on the objects it has schemas for:
/// `(passed, report)`.
pub fn validate(label: &str, objects: &[Value]) -> (bool, String) {
    let bin = kubernetes_validate();
    let dir = std::env::temp_dir().join(format!(
        "infraflux-cilium-validate-{}-{label}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if SKIPPED_KINDS.contains(&o["kind"].as_str().unwrap_or_default()) {
            continue;
        }
        let path = dir.join(format!("{i:03}.json"));
        std::fs::write(&path, serde_json::to_vec(o).expect("json")).expect("write object");
        files.push(path);
    }
    let out = Command::new(&bin)
        .args(["-k", "1.34.0", "--strict", "--quiet"])
        .args(&files)
        .output()
        .expect("running kubernetes-validate");
    let _ = std::fs::remove_dir_all(&dir);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && !report.contains("ERROR"), report)
}

/// Panics with kubernetes-validate's report when an object fails it.
pub fn assert_valid(label: &str, objects: &[Value]) {
    let (ok, report) = validate(label, objects);
    assert!(
        ok,
        "{label}: kubernetes-validate rejected objects:\n{report}"
    );
}
