//! The configuration typed into the builder's [`Options`], and the builder's refusals turned
//! into diagnostics at the attribute they name.

use infraflux_cilium::{
    ApiServer, Bpf, Encryption, Hubble, IngressController, Ipam, LoadBalancer, Operator, Options,
    OptionsError, Prometheus, Routing,
};
use tfplugin::{AttributePath, Diagnostic, Value};

/// The options the configuration describes; `None` while any of them is unknown (plan before
/// the values they come from exist).
pub fn options(config: &Value) -> Option<Options> {
    let option_attrs = [
        "version",
        "preset",
        "kube_proxy_replacement",
        "bgp_control_plane",
        "gateway_api",
        "l7_proxy",
        "extra_config",
        "api_server",
        "ipam",
        "routing",
        "hubble",
        "encryption",
        "bpf",
        "load_balancer",
        "ingress_controller",
        "prometheus",
        "operator",
    ];
    if !option_attrs
        .iter()
        .all(|a| config.attr(a).is_wholly_known())
    {
        return None;
    }
    let d = Options::default();
    Some(Options {
        version: string(config.attr("version")).unwrap_or(d.version),
        preset: string(config.attr("preset")).unwrap_or(d.preset),
        kube_proxy_replacement: config.attr("kube_proxy_replacement").as_bool(),
        api_server: block(config, "api_server").map(|b| ApiServer {
            host: string(b.attr("host")).unwrap_or_default(),
            port: b
                .attr("port")
                .as_i64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(0),
        }),
        ipam: block(config, "ipam").map(|b| Ipam {
            mode: string(b.attr("mode")).unwrap_or_default(),
            pod_cidrs: strings(b.attr("pod_cidrs")),
            mask_size: b
                .attr("mask_size")
                .as_i64()
                .and_then(|m| u8::try_from(m).ok()),
        }),
        routing: block(config, "routing").map(|b| Routing {
            mode: string(b.attr("mode")).unwrap_or_default(),
            native_cidr: string(b.attr("native_cidr")),
            auto_direct_node_routes: b.attr("auto_direct_node_routes").as_bool().unwrap_or(false),
            tunnel_protocol: string(b.attr("tunnel_protocol")),
        }),
        hubble: block(config, "hubble").map(|b| {
            let d = Hubble::default();
            Hubble {
                enabled: b.attr("enabled").as_bool().unwrap_or(d.enabled),
                relay: b.attr("relay").as_bool().unwrap_or(d.relay),
                ui: b.attr("ui").as_bool().unwrap_or(d.ui),
                metrics: strings(b.attr("metrics")),
            }
        }),
        encryption: block(config, "encryption").map(|b| Encryption {
            kind: string(b.attr("type")).unwrap_or_default(),
            node_encryption: b.attr("node_encryption").as_bool().unwrap_or(false),
        }),
        bgp_control_plane: config.attr("bgp_control_plane").as_bool().unwrap_or(false),
        gateway_api: config.attr("gateway_api").as_bool().unwrap_or(false),
        l7_proxy: config.attr("l7_proxy").as_bool().unwrap_or(d.l7_proxy),
        bpf: block(config, "bpf").map(|b| Bpf {
            masquerade: b.attr("masquerade").as_bool(),
            host_legacy_routing: b.attr("host_legacy_routing").as_bool(),
        }),
        load_balancer: block(config, "load_balancer").map(|b| LoadBalancer {
            mode: string(b.attr("mode")),
            acceleration: string(b.attr("acceleration")),
        }),
        ingress_controller: block(config, "ingress_controller").map(|b| {
            let d = IngressController::default();
            IngressController {
                enabled: b.attr("enabled").as_bool().unwrap_or(d.enabled),
                default: b.attr("default").as_bool().unwrap_or(d.default),
                load_balancer_mode: string(b.attr("load_balancer_mode"))
                    .unwrap_or(d.load_balancer_mode),
            }
        }),
        prometheus: block(config, "prometheus").map(|b| Prometheus {
            enabled: b.attr("enabled").as_bool().unwrap_or(false),
            service_monitor: b.attr("service_monitor").as_bool().unwrap_or(false),
            dashboards: b.attr("dashboards").as_bool().unwrap_or(false),
        }),
        operator: block(config, "operator").map(|b| Operator {
            replicas: b
                .attr("replicas")
                .as_i64()
                .and_then(|r| u32::try_from(r).ok()),
        }),
        extra_config: config
            .attr("extra_config")
            .as_map()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The builder's refusal as an error at the attribute it names (`routing.native_cidr`).
pub fn diagnostic(e: &OptionsError) -> Diagnostic {
    let mut path = AttributePath::root();
    for part in e.option.split('.') {
        // `extra_config.<key>` names a map key, the rest are attributes and blocks.
        path = if path.steps().len() == 1 && e.option.starts_with("extra_config.") {
            path.push_key(part)
        } else {
            path.push_attr(part)
        };
    }
    Diagnostic::error(format!("Invalid {}", e.option), e.message.clone()).at(path)
}

fn block<'a>(config: &'a Value, name: &str) -> Option<&'a Value> {
    let b = config.attr(name);
    (!b.is_null()).then_some(b)
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_elements()
        .map(|items| items.iter().filter_map(string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(attrs: &[(&str, Value)]) -> Value {
        let mut c = Value::object(attrs.iter().cloned());
        for name in [
            "version",
            "preset",
            "ipam",
            "routing",
            "hubble",
            "extra_config",
        ] {
            if c.attr(name).is_null() {
                c.set_attr(name, Value::Null);
            }
        }
        c
    }

    #[test]
    fn absent_blocks_are_the_builder_defaults() {
        let o = options(&config(&[])).expect("known");
        assert_eq!(o, Options::default());
    }

    #[test]
    fn unknown_values_defer_the_options() {
        assert!(options(&config(&[("preset", Value::Unknown)])).is_none());
        let routing = Value::object([
            ("mode", Value::from("native")),
            ("native_cidr", Value::Unknown),
        ]);
        assert!(options(&config(&[("routing", routing)])).is_none());
    }

    #[test]
    fn blocks_map_onto_the_builder_options() {
        let o = options(&config(&[
            (
                "routing",
                Value::object([
                    ("mode", Value::from("native")),
                    ("native_cidr", Value::from("10.42.0.0/16")),
                    ("auto_direct_node_routes", Value::from(true)),
                    ("tunnel_protocol", Value::Null),
                ]),
            ),
            (
                "hubble",
                Value::object([
                    ("enabled", Value::Null),
                    ("relay", Value::from(true)),
                    ("ui", Value::Null),
                    (
                        "metrics",
                        Value::List(vec![Value::from("dns"), Value::from("drop")]),
                    ),
                ]),
            ),
        ]))
        .expect("known");
        let r = o.routing.expect("routing");
        assert_eq!(r.native_cidr.as_deref(), Some("10.42.0.0/16"));
        assert!(r.auto_direct_node_routes);
        let h = o.hubble.expect("hubble");
        assert!(h.enabled && h.relay && !h.ui);
        assert_eq!(h.metrics, ["dns", "drop"]);
    }

    #[test]
    fn refusals_point_at_the_attribute() {
        let e = OptionsError {
            option: "routing.native_cidr".into(),
            message: "bad".into(),
        };
        let d = diagnostic(&e);
        assert_eq!(
            d.path,
            Some(AttributePath::attr("routing").push_attr("native_cidr"))
        );
        let e = OptionsError {
            option: "extra_config.foo".into(),
            message: "bad".into(),
        };
        assert_eq!(
            diagnostic(&e).path,
            Some(AttributePath::attr("extra_config").push_key("foo"))
        );
    }
}
