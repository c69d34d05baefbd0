//! From [`Options`] to the settings the object builders read: the preset's defaults applied, every
//! option checked, the chart's own failures turned into errors that say what to change.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::known_keys::KNOWN_CONFIG_KEYS;
use crate::options::{CILIUM_VERSION, Options};

/// An option the builder cannot honour; the message names it and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {message}")]
pub struct OptionsError {
    /// The option, as written in HCL (`routing.native_cidr`).
    pub option: String,
    /// What is wrong and what to do.
    pub message: String,
}

fn fail(option: &str, message: impl Into<String>) -> OptionsError {
    OptionsError {
        option: option.to_string(),
        message: message.into(),
    }
}

/// IPAM modes this builder supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IpamMode {
    Kubernetes,
    ClusterPool,
}

/// The resolved settings every object builder reads (chart values, in effect).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub talos: bool,
    pub k8s_service: Option<(String, u16)>,
    pub kube_proxy_replacement: bool,
    pub ipam: IpamMode,
    pub pod_cidrs: Vec<String>,
    pub pod_mask_size: u8,
    pub native_routing: bool,
    pub native_cidr: Option<String>,
    pub auto_direct_node_routes: bool,
    pub tunnel_protocol: String,
    pub hubble: bool,
    pub hubble_relay: bool,
    pub hubble_ui: bool,
    pub hubble_metrics: Vec<String>,
    pub wireguard: bool,
    pub node_encryption: bool,
    pub bgp: bool,
    pub gateway_api: bool,
    pub l7_proxy: bool,
    pub bpf_masquerade: Option<bool>,
    pub host_legacy_routing: Option<bool>,
    pub lb_mode: Option<String>,
    pub lb_acceleration: String,
    pub ingress: Option<Ingress>,
    pub prometheus: bool,
    pub operator_prometheus: bool,
    pub service_monitors: bool,
    pub dashboards: bool,
    pub operator_replicas: u32,
    pub extra_config: BTreeMap<String, String>,
}

/// The Ingress controller's settings.
#[derive(Clone, Debug)]
pub(crate) struct Ingress {
    pub default: bool,
    pub shared: bool,
}

impl Config {
    /// Whether the Envoy DaemonSet runs (the chart ties it to the L7 proxy).
    pub fn envoy(&self) -> bool {
        self.l7_proxy
    }

    /// Whether the Hubble metrics server runs.
    pub fn hubble_metrics_on(&self) -> bool {
        self.hubble && !self.hubble_metrics.is_empty()
    }
}

fn check_cidr(option: &str, cidr: &str) -> Result<(), OptionsError> {
    let bad = || {
        fail(
            option,
            format!(
                "{cidr:?} is not an IPv4 CIDR; write it as address/prefix, e.g. \"10.244.0.0/16\""
            ),
        )
    };
    let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if prefix > 32 {
        return Err(bad());
    }
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    if u32::from(addr) & !mask != 0 {
        return Err(fail(
            option,
            format!(
                "{cidr:?} has host bits set; use the network address, e.g. \"{}/{prefix}\"",
                Ipv4Addr::from(u32::from(addr) & mask)
            ),
        ));
    }
    Ok(())
}

fn one_of<'a>(option: &str, value: &'a str, allowed: &[&str]) -> Result<&'a str, OptionsError> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(fail(
            option,
            format!("unknown value {value:?}; use one of {}", allowed.join(", ")),
        ))
    }
}

/// Checks `options` and applies the preset's defaults. Returns the settings and the warnings
/// (unknown `extra_config` keys).
pub(crate) fn resolve(options: &Options) -> Result<(Config, Vec<String>), OptionsError> {
    if options.version != CILIUM_VERSION {
        return Err(fail(
            "version",
            format!(
                "Cilium {:?} is not built by this provider; set version = \"{CILIUM_VERSION}\"",
                options.version
            ),
        ));
    }
    let talos = one_of("preset", &options.preset, &["talos", "generic"])? == "talos";
    let kube_proxy_replacement = options.kube_proxy_replacement.unwrap_or(talos);
    let k8s_service = match (&options.api_server, talos) {
        (Some(api), _) => {
            if api.host.is_empty() || api.port == 0 {
                return Err(fail("api_server", "set both host and a non-zero port"));
            }
            Some((api.host.clone(), api.port))
        }
        (None, true) => Some(("localhost".to_string(), 7445)),
        (None, false) => None,
    };
    if kube_proxy_replacement && k8s_service.is_none() {
        return Err(fail(
            "api_server",
            "kube_proxy_replacement needs the API server's address (there is no kube-proxy to reach the service); set api_server { host, port }",
        ));
    }

    let (ipam, pod_cidrs, pod_mask_size) = match &options.ipam {
        None if talos => (IpamMode::Kubernetes, Vec::new(), 24),
        None => (IpamMode::ClusterPool, vec!["10.0.0.0/8".to_string()], 24),
        Some(i) => match one_of("ipam.mode", &i.mode, &["kubernetes", "cluster-pool"])? {
            "kubernetes" => {
                if !i.pod_cidrs.is_empty() {
                    return Err(fail(
                        "ipam.pod_cidrs",
                        "only used with mode = \"cluster-pool\"; remove it or change the mode",
                    ));
                }
                (IpamMode::Kubernetes, Vec::new(), 24)
            }
            _ => {
                for c in &i.pod_cidrs {
                    check_cidr("ipam.pod_cidrs", c)?;
                }
                let cidrs = if i.pod_cidrs.is_empty() {
                    vec!["10.0.0.0/8".to_string()]
                } else {
                    i.pod_cidrs.clone()
                };
                let mask = i.mask_size.unwrap_or(24);
                if !(8..=30).contains(&mask) {
                    return Err(fail(
                        "ipam.mask_size",
                        format!("{mask} is out of range; use 8..=30"),
                    ));
                }
                (IpamMode::ClusterPool, cidrs, mask)
            }
        },
    };

    let (native_routing, native_cidr, auto_direct_node_routes, tunnel_protocol) = match &options
        .routing
    {
        None => (false, None, false, "vxlan".to_string()),
        Some(r) => {
            let native = one_of("routing.mode", &r.mode, &["tunnel", "native"])? == "native";
            if let Some(c) = &r.native_cidr {
                check_cidr("routing.native_cidr", c)?;
            }
            if native && r.native_cidr.is_none() {
                return Err(fail(
                    "routing.native_cidr",
                    "required with mode = \"native\": the pod range routed without masquerading, e.g. \"10.244.0.0/16\"",
                ));
            }
            let tunnel = r.tunnel_protocol.as_deref().unwrap_or("vxlan");
            one_of("routing.tunnel_protocol", tunnel, &["vxlan", "geneve"])?;
            if native && r.tunnel_protocol.is_some() {
                return Err(fail(
                    "routing.tunnel_protocol",
                    "only used with mode = \"tunnel\"; remove it",
                ));
            }
            (
                native,
                r.native_cidr.clone(),
                r.auto_direct_node_routes,
                tunnel.to_string(),
            )
        }
    };

    let hubble = options.hubble.clone().unwrap_or_default();
    if hubble.ui && !hubble.relay {
        return Err(fail(
            "hubble.ui",
            "the UI reads flows through the relay; set relay = true as well",
        ));
    }
    if !hubble.enabled && (hubble.relay || hubble.ui || !hubble.metrics.is_empty()) {
        return Err(fail(
            "hubble.enabled",
            "relay, ui and metrics need Hubble; set enabled = true or drop them",
        ));
    }
    for m in &hubble.metrics {
        if m.is_empty() || m.chars().any(char::is_whitespace) {
            return Err(fail(
                "hubble.metrics",
                format!(
                    "{m:?} is not a metric name (e.g. \"dns\", \"drop\", \"httpV2:exemplars=true\")"
                ),
            ));
        }
    }

    let (wireguard, node_encryption) = match &options.encryption {
        None => (false, false),
        Some(e) => {
            if e.kind != "wireguard" {
                return Err(fail(
                    "encryption.type",
                    format!(
                        "unknown value {:?}; use \"wireguard\" (IPsec needs a key Secret this provider does not manage)",
                        e.kind
                    ),
                ));
            }
            (true, e.node_encryption)
        }
    };

    let ingress = match &options.ingress_controller {
        Some(i) if i.enabled => {
            let shared = one_of(
                "ingress_controller.load_balancer_mode",
                &i.load_balancer_mode,
                &["dedicated", "shared"],
            )? == "shared";
            Some(Ingress {
                default: i.default,
                shared,
            })
        }
        _ => None,
    };
    if !options.l7_proxy {
        if ingress.is_some() {
            return Err(fail(
                "ingress_controller.enabled",
                "the Ingress controller runs in the L7 proxy; set l7_proxy = true or disable the controller",
            ));
        }
        if options.gateway_api {
            return Err(fail(
                "gateway_api",
                "Gateway API runs in the L7 proxy; set l7_proxy = true or gateway_api = false",
            ));
        }
    }

    let bpf = options.bpf.clone().unwrap_or_default();
    let host_legacy_routing = match bpf.host_legacy_routing {
        Some(v) => Some(v),
        // Talos forwards kube DNS to the host (forwardKubeDNSToHost): with eBPF host routing the
        // forwarded queries never come back (cilium PR #36852, siderolabs/talos #10002).
        None if talos && kube_proxy_replacement && bpf.masquerade == Some(true) => Some(true),
        None => None,
    };

    let lb = options.load_balancer.clone().unwrap_or_default();
    if let Some(m) = &lb.mode {
        one_of("load_balancer.mode", m, &["snat", "dsr", "hybrid"])?;
        if m != "snat" && !kube_proxy_replacement {
            return Err(fail(
                "load_balancer.mode",
                format!("{m:?} needs kube_proxy_replacement = true"),
            ));
        }
        if m != "snat" && !native_routing {
            return Err(fail(
                "load_balancer.mode",
                format!(
                    "{m:?} needs routing {{ mode = \"native\" }} (DSR carries the client address to the backend node)"
                ),
            ));
        }
    }
    let acceleration = lb
        .acceleration
        .clone()
        .unwrap_or_else(|| "disabled".to_string());
    one_of(
        "load_balancer.acceleration",
        &acceleration,
        &["disabled", "native", "best-effort"],
    )?;
    if acceleration != "disabled" && !kube_proxy_replacement {
        return Err(fail(
            "load_balancer.acceleration",
            "XDP acceleration needs kube_proxy_replacement = true",
        ));
    }

    let prom = options.prometheus.clone();
    let (prometheus, operator_prometheus, service_monitors, dashboards) = match &prom {
        None => (false, true, false, false),
        Some(p) => {
            if !p.enabled && p.service_monitor {
                return Err(fail(
                    "prometheus.service_monitor",
                    "ServiceMonitors scrape the metrics endpoints; set enabled = true as well",
                ));
            }
            (p.enabled, p.enabled, p.service_monitor, p.dashboards)
        }
    };

    let operator_replicas = options
        .operator
        .as_ref()
        .and_then(|o| o.replicas)
        .unwrap_or(2);
    if operator_replicas == 0 {
        return Err(fail(
            "operator.replicas",
            "at least one operator must run; use 1 or more",
        ));
    }

    let mut warnings = Vec::new();
    for (key, value) in &options.extra_config {
        if key.is_empty() {
            return Err(fail("extra_config", "empty key"));
        }
        if KNOWN_CONFIG_KEYS.binary_search(&key.as_str()).is_err() {
            warnings.push(format!(
                "extra_config: {key:?} is not a cilium-config key the Cilium {CILIUM_VERSION} chart knows; it is set as given (= {value:?}): check its spelling against cilium-agent's flags"
            ));
        }
    }

    let config = Config {
        talos,
        k8s_service,
        kube_proxy_replacement,
        ipam,
        pod_cidrs,
        pod_mask_size,
        native_routing,
        native_cidr,
        auto_direct_node_routes,
        tunnel_protocol,
        hubble: hubble.enabled,
        hubble_relay: hubble.relay,
        hubble_ui: hubble.ui,
        hubble_metrics: hubble.metrics,
        wireguard,
        node_encryption,
        bgp: options.bgp_control_plane,
        gateway_api: options.gateway_api,
        l7_proxy: options.l7_proxy,
        bpf_masquerade: bpf.masquerade,
        host_legacy_routing,
        lb_mode: lb.mode,
        lb_acceleration: acceleration,
        ingress,
        prometheus,
        operator_prometheus,
        service_monitors,
        dashboards,
        operator_replicas,
        extra_config: options.extra_config.clone(),
    };
    Ok((config, warnings))
}
