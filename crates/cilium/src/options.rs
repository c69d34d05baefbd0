//! The typed options of a Cilium install: what `infraflux_cilium_install` maps its HCL onto.
//!
//! Every block is optional: an absent block means the chart's defaults for the preset. Modes are
//! kept as the strings a user writes so that [`crate::resolve`] can name a wrong one in its error.

use std::collections::BTreeMap;

/// The one Cilium release this crate builds.
pub const CILIUM_VERSION: &str = "1.20.0";

/// Options of a Cilium install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Cilium release; only [`CILIUM_VERSION`] is built.
    pub version: String,
    /// `talos` or `generic`.
    pub preset: String,
    /// Replace kube-proxy (eBPF service handling). Default: on for `talos`, off for `generic`.
    pub kube_proxy_replacement: Option<bool>,
    /// Where the agents reach the Kubernetes API when there is no kube-proxy. Default: KubePrism
    /// (`localhost:7445`) for `talos`, the in-cluster service for `generic`.
    pub api_server: Option<ApiServer>,
    /// Pod address management.
    pub ipam: Option<Ipam>,
    /// How pod traffic crosses nodes.
    pub routing: Option<Routing>,
    /// Flow observability.
    pub hubble: Option<Hubble>,
    /// Transparent encryption between nodes.
    pub encryption: Option<Encryption>,
    /// The BGP control plane.
    pub bgp_control_plane: bool,
    /// Gateway API support; its CRDs (standard channel) are applied first.
    pub gateway_api: bool,
    /// The L7 proxy (Envoy DaemonSet). Ingress and Gateway API need it.
    pub l7_proxy: bool,
    /// eBPF datapath switches.
    pub bpf: Option<Bpf>,
    /// eBPF service load balancing.
    pub load_balancer: Option<LoadBalancer>,
    /// The Ingress controller.
    pub ingress_controller: Option<IngressController>,
    /// Prometheus metrics, ServiceMonitors and Grafana dashboards.
    pub prometheus: Option<Prometheus>,
    /// The operator Deployment.
    pub operator: Option<Operator>,
    /// `cilium-config` entries set last (they override the built ones). Keys the chart does not
    /// know are kept and reported as warnings.
    pub extra_config: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            version: CILIUM_VERSION.to_string(),
            preset: "talos".to_string(),
            kube_proxy_replacement: None,
            api_server: None,
            ipam: None,
            routing: None,
            hubble: None,
            encryption: None,
            bgp_control_plane: false,
            gateway_api: false,
            l7_proxy: true,
            bpf: None,
            load_balancer: None,
            ingress_controller: None,
            prometheus: None,
            operator: None,
            extra_config: BTreeMap::new(),
        }
    }
}

/// The Kubernetes API endpoint the agents use (`k8sServiceHost`/`k8sServicePort`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiServer {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// `ipam { mode, pod_cidrs, mask_size }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipam {
    /// `kubernetes` (node podCIDRs) or `cluster-pool` (the operator hands out `pod_cidrs`).
    pub mode: String,
    /// IPv4 pools for `cluster-pool` (default `10.0.0.0/8`).
    pub pod_cidrs: Vec<String>,
    /// Per-node block size for `cluster-pool` (default 24).
    pub mask_size: Option<u8>,
}

/// `routing { mode, native_cidr, auto_direct_node_routes, tunnel_protocol }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    /// `tunnel` or `native`.
    pub mode: String,
    /// The IPv4 range routed without masquerading (required with `native`).
    pub native_cidr: Option<String>,
    /// Install routes to other nodes' pod ranges (nodes share an L2 network).
    pub auto_direct_node_routes: bool,
    /// `vxlan` or `geneve` (tunnel mode).
    pub tunnel_protocol: Option<String>,
}

/// `hubble { enabled, relay, ui, metrics }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hubble {
    /// Hubble in the agents (on by default).
    pub enabled: bool,
    /// The hubble-relay Deployment.
    pub relay: bool,
    /// The hubble-ui Deployment (needs the relay).
    pub ui: bool,
    /// Flow metrics to expose, e.g. `dns`, `drop`, `tcp`, `flow`, `httpV2`.
    pub metrics: Vec<String>,
}

impl Default for Hubble {
    fn default() -> Self {
        Self {
            enabled: true,
            relay: false,
            ui: false,
            metrics: Vec::new(),
        }
    }
}

/// `encryption { type, node_encryption }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// `wireguard` (the only type built: IPsec needs a key Secret this builder does not manage).
    pub kind: String,
    /// Also encrypt node-to-node traffic.
    pub node_encryption: bool,
}

/// `bpf { masquerade, host_legacy_routing }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bpf {
    /// eBPF masquerading instead of iptables.
    pub masquerade: Option<bool>,
    /// Route host traffic through the kernel stack. Default: on with preset `talos`, kube-proxy
    /// replacement and eBPF masquerading (Talos forwards kube DNS to the host).
    pub host_legacy_routing: Option<bool>,
}

/// `load_balancer { mode, acceleration }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadBalancer {
    /// `snat`, `dsr` or `hybrid`.
    pub mode: Option<String>,
    /// `disabled`, `native` or `best-effort` (XDP).
    pub acceleration: Option<String>,
}

/// `ingress_controller { enabled, default, load_balancer_mode }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressController {
    /// Run the Ingress controller.
    pub enabled: bool,
    /// Make `cilium` the cluster's default IngressClass.
    pub default: bool,
    /// `dedicated` (a LoadBalancer per Ingress) or `shared`.
    pub load_balancer_mode: String,
}

impl Default for IngressController {
    fn default() -> Self {
        Self {
            enabled: true,
            default: false,
            load_balancer_mode: "dedicated".to_string(),
        }
    }
}

/// `prometheus { enabled, service_monitor, dashboards }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prometheus {
    /// Metrics endpoints on the agents and the operator.
    pub enabled: bool,
    /// prometheus-operator ServiceMonitors (agent, operator, Hubble metrics).
    pub service_monitor: bool,
    /// Grafana dashboards as ConfigMaps (label `grafana_dashboard: "1"`).
    pub dashboards: bool,
}

/// `operator { replicas }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Operator {
    /// Operator replicas (chart default 2).
    pub replicas: Option<u32>,
}
