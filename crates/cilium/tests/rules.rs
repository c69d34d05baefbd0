//! Option checks: each wrong option is named with what to do; the preset defaults and the Talos
//! host-legacy-routing rule.

mod common;

use common::certs;
use infraflux_cilium::{
    Bpf, Encryption, Hubble, IngressController, Ipam, LoadBalancer, Operator, Options, Prometheus,
    Routing, build, validate,
};

fn error_of(o: &Options) -> (String, String) {
    let e = validate(o).expect_err("options must be rejected");
    (e.option.clone(), e.to_string())
}

fn native(cidr: Option<&str>) -> Option<Routing> {
    Some(Routing {
        mode: "native".into(),
        native_cidr: cidr.map(String::from),
        auto_direct_node_routes: false,
        tunnel_protocol: None,
    })
}

#[test]
fn the_default_options_are_the_talos_preset() {
    assert_eq!(validate(&Options::default()), Ok(Vec::new()));
}

#[test]
fn wrong_version_and_preset_are_named() {
    let (opt, msg) = error_of(&Options {
        version: "1.19.3".into(),
        ..Options::default()
    });
    assert_eq!(opt, "version");
    assert!(msg.contains("1.20.0"), "{msg}");
    let (opt, msg) = error_of(&Options {
        preset: "k3s".into(),
        ..Options::default()
    });
    assert_eq!(opt, "preset");
    assert!(msg.contains("talos, generic"), "{msg}");
}

#[test]
fn bad_cidrs_are_named_with_an_example() {
    for bad in [
        "10.42.0.0",
        "10.42.0.0/33",
        "10.42.0.300/16",
        "fd00::/104",
        "10.42.1.0/16",
    ] {
        let (opt, msg) = error_of(&Options {
            routing: native(Some(bad)),
            ..Options::default()
        });
        assert_eq!(opt, "routing.native_cidr", "{bad}");
        assert!(msg.contains(bad), "{msg}");
    }
    let (_, msg) = error_of(&Options {
        routing: native(Some("10.42.1.0/16")),
        ..Options::default()
    });
    assert!(
        msg.contains("10.42.0.0/16"),
        "host bits: the message proposes the network address: {msg}"
    );
    let ipam = Ipam {
        mode: "cluster-pool".into(),
        pod_cidrs: vec!["10.0.0.0/8".into(), "nope".into()],
        mask_size: None,
    };
    assert_eq!(
        error_of(&Options {
            ipam: Some(ipam),
            ..Options::default()
        })
        .0,
        "ipam.pod_cidrs"
    );
}

#[test]
fn native_routing_needs_its_cidr() {
    let (opt, msg) = error_of(&Options {
        routing: native(None),
        ..Options::default()
    });
    assert_eq!(opt, "routing.native_cidr");
    assert!(msg.contains("required"), "{msg}");
}

#[test]
fn unknown_modes_are_named_with_the_allowed_ones() {
    let lb = |mode: &str, acc: &str| LoadBalancer {
        mode: Some(mode.into()),
        acceleration: Some(acc.into()),
    };
    let o = Options {
        load_balancer: Some(lb("maglev", "disabled")),
        routing: native(Some("10.42.0.0/16")),
        ..Options::default()
    };
    let (opt, msg) = error_of(&o);
    assert_eq!(opt, "load_balancer.mode");
    assert!(msg.contains("snat, dsr, hybrid"), "{msg}");
    let o = Options {
        load_balancer: Some(lb("snat", "xdp")),
        ..Options::default()
    };
    let (opt, msg) = error_of(&o);
    assert_eq!(opt, "load_balancer.acceleration");
    assert!(msg.contains("disabled, native, best-effort"), "{msg}");
    let o = Options {
        ipam: Some(Ipam {
            mode: "eni".into(),
            pod_cidrs: vec![],
            mask_size: None,
        }),
        ..Options::default()
    };
    assert_eq!(error_of(&o).0, "ipam.mode");
    let o = Options {
        encryption: Some(Encryption {
            kind: "ipsec".into(),
            node_encryption: false,
        }),
        ..Options::default()
    };
    assert_eq!(error_of(&o).0, "encryption.type");
    let ingress = IngressController {
        enabled: true,
        default: false,
        load_balancer_mode: "per-node".into(),
    };
    assert_eq!(
        error_of(&Options {
            ingress_controller: Some(ingress),
            ..Options::default()
        })
        .0,
        "ingress_controller.load_balancer_mode"
    );
}

#[test]
fn dsr_needs_native_routing_and_kube_proxy_replacement() {
    let dsr = Some(LoadBalancer {
        mode: Some("dsr".into()),
        acceleration: None,
    });
    assert_eq!(
        error_of(&Options {
            load_balancer: dsr.clone(),
            ..Options::default()
        })
        .0,
        "load_balancer.mode"
    );
    let o = Options {
        load_balancer: dsr,
        routing: native(Some("10.42.0.0/16")),
        kube_proxy_replacement: Some(false),
        ..Options::default()
    };
    assert!(error_of(&o).1.contains("kube_proxy_replacement"));
}

#[test]
fn ingress_and_gateway_api_need_the_l7_proxy() {
    let ingress = Some(IngressController::default());
    let (opt, msg) = error_of(&Options {
        ingress_controller: ingress,
        l7_proxy: false,
        ..Options::default()
    });
    assert_eq!(opt, "ingress_controller.enabled");
    assert!(msg.contains("l7_proxy = true"), "{msg}");
    let (opt, _) = error_of(&Options {
        gateway_api: true,
        l7_proxy: false,
        ..Options::default()
    });
    assert_eq!(opt, "gateway_api");
    // A disabled controller does not need it.
    let off = Some(IngressController {
        enabled: false,
        ..IngressController::default()
    });
    assert!(
        validate(&Options {
            ingress_controller: off,
            l7_proxy: false,
            ..Options::default()
        })
        .is_ok()
    );
}

#[test]
fn hubble_parts_need_what_they_read_from() {
    let ui_only = Hubble {
        ui: true,
        ..Hubble::default()
    };
    assert_eq!(
        error_of(&Options {
            hubble: Some(ui_only),
            ..Options::default()
        })
        .0,
        "hubble.ui"
    );
    let relay_off = Hubble {
        enabled: false,
        relay: true,
        ..Hubble::default()
    };
    assert_eq!(
        error_of(&Options {
            hubble: Some(relay_off),
            ..Options::default()
        })
        .0,
        "hubble.enabled"
    );
    let service_monitor_only = Prometheus {
        enabled: false,
        service_monitor: true,
        dashboards: false,
    };
    assert_eq!(
        error_of(&Options {
            prometheus: Some(service_monitor_only),
            ..Options::default()
        })
        .0,
        "prometheus.service_monitor"
    );
    assert_eq!(
        error_of(&Options {
            operator: Some(Operator { replicas: Some(0) }),
            ..Options::default()
        })
        .0,
        "operator.replicas"
    );
}

#[test]
fn unknown_extra_config_keys_warn_and_known_ones_do_not() {
    let mut o = Options::default();
    o.extra_config
        .insert("enable-bpf-masquerade".into(), "true".into());
    assert_eq!(validate(&o), Ok(Vec::new()));
    o.extra_config.insert("hubble-metricz".into(), "dns".into());
    let warnings = validate(&o).expect("a warning, not an error");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("hubble-metricz"), "{warnings:?}");
}

fn config_value(o: &Options, key: &str) -> Option<String> {
    let m = build(o, certs()).expect("build");
    let cm = m
        .objects
        .iter()
        .find(|x| x["metadata"]["name"] == "cilium-config")
        .expect("cilium-config");
    cm["data"]
        .get(key)
        .and_then(|v| v.as_str())
        .map(String::from)
}

#[test]
fn talos_with_kpr_and_bpf_masquerade_uses_host_legacy_routing() {
    let masq = |on: bool| {
        Some(Bpf {
            masquerade: Some(on),
            host_legacy_routing: None,
        })
    };
    let talos = Options {
        bpf: masq(true),
        ..Options::default()
    };
    assert_eq!(
        config_value(&talos, "enable-host-legacy-routing").as_deref(),
        Some("true")
    );
    // Not on other presets, not without masquerading, not without kube-proxy replacement.
    let generic = Options {
        preset: "generic".into(),
        kube_proxy_replacement: Some(true),
        api_server: Some(infraflux_cilium::ApiServer {
            host: "10.0.0.1".into(),
            port: 6443,
        }),
        bpf: masq(true),
        ..Options::default()
    };
    assert_eq!(config_value(&generic, "enable-host-legacy-routing"), None);
    assert_eq!(
        config_value(
            &Options {
                bpf: masq(false),
                ..Options::default()
            },
            "enable-host-legacy-routing"
        ),
        None
    );
    let no_kpr = Options {
        kube_proxy_replacement: Some(false),
        bpf: masq(true),
        ..Options::default()
    };
    assert_eq!(config_value(&no_kpr, "enable-host-legacy-routing"), None);
    // An explicit choice wins.
    let explicit = Options {
        bpf: Some(Bpf {
            masquerade: Some(true),
            host_legacy_routing: Some(false),
        }),
        ..Options::default()
    };
    assert_eq!(
        config_value(&explicit, "enable-host-legacy-routing").as_deref(),
        Some("false")
    );
}

#[test]
fn absent_blocks_keep_the_charts_defaults() {
    let o = Options::default();
    assert_eq!(config_value(&o, "ipam").as_deref(), Some("kubernetes"));
    assert_eq!(
        config_value(&o, "kube-proxy-replacement").as_deref(),
        Some("true")
    );
    assert_eq!(config_value(&o, "routing-mode").as_deref(), Some("tunnel"));
    assert_eq!(
        config_value(&o, "bpf-lb-mode"),
        None,
        "no load_balancer block: the chart sets no mode"
    );
    assert_eq!(config_value(&o, "enable-bpf-masquerade"), None);
    assert_eq!(
        config_value(&o, "operator-prometheus-serve-addr").as_deref(),
        Some(":9963")
    );
    let snat = Options {
        load_balancer: Some(LoadBalancer {
            mode: Some("snat".into()),
            acceleration: None,
        }),
        ..o
    };
    assert_eq!(config_value(&snat, "bpf-lb-mode").as_deref(), Some("snat"));
}
