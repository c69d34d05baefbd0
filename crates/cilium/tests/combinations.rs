//! Combinations beyond the golden sets: every object passes kubernetes-validate (strict,
//! Kubernetes 1.34) and each option shows the differences the chart's rules give. (These
//! combinations were also checked, during development, against the real chart rendered by Helm
//! for the same values: no differences.)

mod common;

use common::{assert_valid, certs, golden_options};
use infraflux_cilium::{
    ApiServer, Bpf, Hubble, Ipam, LoadBalancer, Manifests, Operator, Options, Prometheus, Routing,
    build,
};
use serde_json::Value;

fn find<'a>(m: &'a Manifests, kind: &str, name: &str) -> Option<&'a Value> {
    m.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn config(m: &Manifests) -> &Value {
    &find(m, "ConfigMap", "cilium-config").expect("cilium-config")["data"]
}

fn agent_pod(m: &Manifests) -> &Value {
    &find(m, "DaemonSet", "cilium").expect("agent DaemonSet")["spec"]["template"]["spec"]
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect()
}

fn env_names(container: &Value) -> Vec<&str> {
    names(&container["env"])
}

#[test]
fn the_validator_rejects_what_the_apiserver_would() {
    let mut m = build(&Options::default(), certs()).expect("build");
    let svc = m
        .objects
        .iter_mut()
        .find(|o| o["kind"] == "Service")
        .expect("a Service");
    svc["spec"]["bogus"] = Value::Bool(true);
    let (ok, report) = common::validate("rejects", &m.objects);
    assert!(
        !ok && report.contains("bogus"),
        "an unknown field must fail strict validation: {report}"
    );
}

#[test]
fn every_golden_set_is_valid_kubernetes() {
    for set in [
        "talos-base",
        "hubble",
        "wireguard",
        "bgp",
        "gateway-api",
        "no-l7",
        "xdp-dsr",
        "ingress",
        "observability",
        "full",
    ] {
        let m = build(&golden_options(set), certs()).expect("build");
        assert_valid(set, &m.objects);
    }
}

#[test]
fn generic_preset_uses_the_charts_own_defaults() {
    let m = build(
        &Options {
            preset: "generic".into(),
            ..Options::default()
        },
        certs(),
    )
    .expect("build");
    assert_valid("generic", &m.objects);
    let data = config(&m);
    assert_eq!(data["kube-proxy-replacement"], "false");
    assert!(
        data.get("kube-proxy-replacement-healthz-bind-address")
            .is_none()
    );
    assert_eq!(data["ipam"], "cluster-pool");
    assert_eq!(data["cluster-pool-ipv4-cidr"], "10.0.0.0/8");
    assert_eq!(data["cluster-pool-ipv4-mask-size"], "24");
    assert_eq!(data["cgroup-root"], "/run/cilium/cgroupv2");
    let pod = agent_pod(&m);
    // The chart mounts cgroup2 itself off Talos, and keeps SYS_MODULE.
    assert_eq!(
        names(&pod["initContainers"]),
        [
            "config",
            "mount-cgroup",
            "apply-sysctl-overwrites",
            "mount-bpf-fs",
            "clean-cilium-state",
            "install-cni-binaries"
        ]
    );
    let agent = &pod["containers"][0];
    assert!(!env_names(agent).contains(&"KUBERNETES_SERVICE_HOST"));
    assert!(
        agent["securityContext"]["capabilities"]["add"]
            .as_array()
            .expect("caps")
            .iter()
            .any(|c| c == "SYS_MODULE")
    );
    assert!(
        !agent["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|v| v["name"] == "cilium-cgroup")
    );
}

#[test]
fn generic_preset_with_kube_proxy_replacement_needs_the_api_server() {
    let mut o = Options {
        preset: "generic".into(),
        kube_proxy_replacement: Some(true),
        ..Options::default()
    };
    let e = build(&o, certs()).expect_err("no API server");
    assert_eq!(e.option, "api_server");
    o.api_server = Some(ApiServer {
        host: "10.0.0.1".into(),
        port: 6443,
    });
    o.ipam = Some(Ipam {
        mode: "cluster-pool".into(),
        pod_cidrs: vec!["10.42.0.0/16".into(), "10.43.0.0/16".into()],
        mask_size: Some(25),
    });
    let m = build(&o, certs()).expect("build");
    assert_valid("generic-kpr", &m.objects);
    assert_eq!(
        config(&m)["cluster-pool-ipv4-cidr"],
        "10.42.0.0/16 10.43.0.0/16"
    );
    assert_eq!(config(&m)["cluster-pool-ipv4-mask-size"], "25");
    let agent = &agent_pod(&m)["containers"][0];
    let host = agent["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "KUBERNETES_SERVICE_HOST")
        .expect("host");
    assert_eq!(host["value"], "10.0.0.1");
}

#[test]
fn hubble_metrics_without_the_l7_proxy() {
    let o = Options {
        hubble: Some(Hubble {
            metrics: vec!["dns".into(), "drop".into()],
            ..Hubble::default()
        }),
        l7_proxy: false,
        ..Options::default()
    };
    let m = build(&o, certs()).expect("build");
    assert_valid("hubble-no-l7", &m.objects);
    assert!(find(&m, "DaemonSet", "cilium-envoy").is_none());
    assert!(find(&m, "ConfigMap", "cilium-envoy-config").is_none());
    assert!(find(&m, "Service", "hubble-metrics").is_some());
    let data = config(&m);
    assert_eq!(data["hubble-metrics"], "dns drop");
    assert_eq!(data["enable-l7-proxy"], "false");
    assert_eq!(data["external-envoy-proxy"], "false");
    assert_eq!(data["proxy-prometheus-port"], "9964");
    let agent = &agent_pod(&m)["containers"][0];
    assert_eq!(
        names(&agent["ports"]),
        ["health", "peer-service", "hubble-metrics"]
    );
    assert!(!names(&agent_pod(&m)["volumes"]).contains(&"envoy-sockets"));
}

#[test]
fn prometheus_without_service_monitors_uses_scrape_annotations() {
    let o = Options {
        prometheus: Some(Prometheus {
            enabled: true,
            service_monitor: false,
            dashboards: false,
        }),
        l7_proxy: false,
        operator: Some(Operator { replicas: Some(1) }),
        ..Options::default()
    };
    let m = build(&o, certs()).expect("build");
    assert_valid("prometheus-annotations", &m.objects);
    assert!(!m.objects.iter().any(|o| o["kind"] == "ServiceMonitor"));
    let annotations = &find(&m, "DaemonSet", "cilium").expect("agent")["spec"]["template"]["metadata"]
        ["annotations"];
    assert_eq!(annotations["prometheus.io/port"], "9962");
    // The agent serves Envoy's metrics itself: a headless Service exposes them for scraping.
    let svc = find(&m, "Service", "cilium-agent").expect("cilium-agent Service");
    assert_eq!(svc["spec"]["ports"][0]["name"], "envoy-metrics");
    let operator = find(&m, "Deployment", "cilium-operator").expect("operator");
    assert_eq!(operator["spec"]["replicas"], 1);
    assert_eq!(
        operator["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        "100%"
    );
}

#[test]
fn native_routing_with_hybrid_load_balancing() {
    let o = Options {
        routing: Some(Routing {
            mode: "native".into(),
            native_cidr: Some("10.42.0.0/16".into()),
            auto_direct_node_routes: false,
            tunnel_protocol: None,
        }),
        bpf: Some(Bpf {
            masquerade: Some(true),
            host_legacy_routing: None,
        }),
        load_balancer: Some(LoadBalancer {
            mode: Some("hybrid".into()),
            acceleration: Some("best-effort".into()),
        }),
        ..Options::default()
    };
    let m = build(&o, certs()).expect("build");
    assert_valid("native-hybrid", &m.objects);
    let data = config(&m);
    assert_eq!(data["routing-mode"], "native");
    assert_eq!(data["ipv4-native-routing-cidr"], "10.42.0.0/16");
    assert_eq!(data["bpf-lb-mode"], "hybrid");
    assert_eq!(data["bpf-lb-acceleration"], "best-effort");
    // Talos + kube-proxy replacement + BPF masquerading: host legacy routing (kube DNS forwarding).
    assert_eq!(data["enable-bpf-masquerade"], "true");
    assert_eq!(data["enable-host-legacy-routing"], "true");
}

#[test]
fn talos_without_kube_proxy_replacement_keeps_ebpf_host_routing() {
    let o = Options {
        kube_proxy_replacement: Some(false),
        bpf: Some(Bpf {
            masquerade: Some(true),
            host_legacy_routing: None,
        }),
        ..Options::default()
    };
    let m = build(&o, certs()).expect("build");
    assert_valid("talos-no-kpr", &m.objects);
    assert!(config(&m).get("enable-host-legacy-routing").is_none());
    assert_eq!(config(&m)["kube-proxy-replacement"], "false");
}

#[test]
fn hubble_off_drops_its_objects_and_certificates() {
    let o = Options {
        hubble: Some(Hubble {
            enabled: false,
            ..Hubble::default()
        }),
        ..Options::default()
    };
    let m = build(&o, certs()).expect("build");
    assert_valid("no-hubble", &m.objects);
    assert!(!m.objects.iter().any(|o| o["kind"] == "Secret"));
    assert!(find(&m, "Service", "hubble-peer").is_none());
    assert_eq!(config(&m)["enable-hubble"], "false");
    assert!(config(&m).get("hubble-listen-address").is_none());
    assert!(!names(&agent_pod(&m)["volumes"]).contains(&"hubble-tls"));
}

#[test]
fn extra_config_overrides_and_warns_on_unknown_keys() {
    let mut o = Options::default();
    o.extra_config.insert("debug".into(), "true".into());
    o.extra_config
        .insert("enable-bpf-masquerad".into(), "true".into());
    let m = build(&o, certs()).expect("build");
    assert_eq!(config(&m)["debug"], "true");
    assert_eq!(config(&m)["enable-bpf-masquerad"], "true");
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("enable-bpf-masquerad"));
}

/// A CRD's OpenAPI schema as a strict JSON Schema: unknown fields are errors (the API server
/// would prune or reject them) unless the schema keeps unknown fields.
fn strict(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    let child = if k == "properties" {
                        Value::Object(
                            v.as_object()
                                .into_iter()
                                .flatten()
                                .map(|(n, s)| (n.clone(), strict(s)))
                                .collect(),
                        )
                    } else {
                        strict(v)
                    };
                    (k.clone(), child)
                })
                .collect();
            if out.contains_key("properties")
                && !out.contains_key("additionalProperties")
                && out.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
            {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strict).collect()),
        other => other.clone(),
    }
}

fn crd_errors(object: &Value, crd: &Value) -> Vec<String> {
    let version = object["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit('/').next())
        .expect("apiVersion");
    let schema = crd["spec"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| strict(&v["schema"]["openAPIV3Schema"]))
        .expect("served version");
    let mut instance = object.clone();
    // The API server sets these; CRD schemas do not describe them.
    if let Some(m) = instance.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("metadata");
    }
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect()
}

fn assert_matches_crd(object: &Value, crd: &Value) {
    let errors = crd_errors(object, crd);
    assert!(
        errors.is_empty(),
        "{} {}: {errors:?}",
        object["kind"],
        object["metadata"]["name"]
    );
}

#[test]
fn custom_resources_match_their_crds() {
    let m = build(&golden_options("full"), certs()).expect("build");
    let crds = infraflux_cilium::gateway_api_crds();
    let gateway_class_crd = crds
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == "GatewayClass")
        .expect("GatewayClass CRD");
    let class = find(&m, "GatewayClass", "cilium").expect("GatewayClass");
    assert_matches_crd(class, gateway_class_crd);
    let mut bad = class.clone();
    bad["spec"]["controller"] = Value::from("typo");
    assert!(
        !crd_errors(&bad, gateway_class_crd).is_empty(),
        "unknown fields must fail"
    );

    let Some(text) =
        infraflux_reference::read("crds/prometheus-operator-kps-88.5.3/crd-servicemonitors.yaml")
    else {
        return;
    };
    let sm_crd = common::parse_yaml_documents(&text)
        .into_iter()
        .next()
        .expect("ServiceMonitor CRD");
    let monitors: Vec<&Value> = m
        .objects
        .iter()
        .filter(|o| o["kind"] == "ServiceMonitor")
        .collect();
    assert_eq!(monitors.len(), 3);
    for sm in monitors {
        assert_matches_crd(sm, &sm_crd);
    }
}
