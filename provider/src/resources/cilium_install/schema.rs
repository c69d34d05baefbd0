//! The schema of `infraflux_cilium_install`: one block or attribute per Cilium option the
//! builder knows, named as users write them (the docs map each to the chart value it sets).

use tfplugin::framework::planmod::use_state_for_unknown;
use tfplugin::framework::validate::{int_between, one_of};
use tfplugin::{Attribute, Block, NestedBlock, Nesting, Schema, Type};

/// The Cilium releases the builder makes.
pub const VERSIONS: &[&str] = &[infraflux_cilium::CILIUM_VERSION];

fn ipam() -> Block {
    Block::new()
        .description("Pod address management (chart `ipam.*`).")
        .attr(
            Attribute::string("mode")
                .required()
                .validate(one_of(&["kubernetes", "cluster-pool"]))
                .description(
                    "`kubernetes` (each node's `podCIDR`, as Talos configures it) or \
                     `cluster-pool` (the operator hands out `pod_cidrs`). Chart `ipam.mode`.",
                ),
        )
        .attr(
            Attribute::new("pod_cidrs", Type::list(Type::String))
                .optional()
                .description(
                    "IPv4 pools for `cluster-pool` (default `[\"10.0.0.0/8\"]`). Chart \
                     `ipam.operator.clusterPoolIPv4PodCIDRList`.",
                ),
        )
        .attr(
            Attribute::number("mask_size")
                .optional()
                .validate(int_between(8, 30))
                .description(
                    "Per-node block size for `cluster-pool` (default 24). Chart \
                     `ipam.operator.clusterPoolIPv4MaskSize`.",
                ),
        )
}

fn routing() -> Block {
    Block::new()
        .description("How pod traffic crosses nodes (chart `routingMode` and friends).")
        .attr(
            Attribute::string("mode")
                .required()
                .validate(one_of(&["tunnel", "native"]))
                .description("`tunnel` (the chart's default) or `native`. Chart `routingMode`."),
        )
        .attr(Attribute::string("native_cidr").optional().description(
            "The IPv4 range routed without masquerading; required with `native`. Chart \
             `ipv4NativeRoutingCIDR`.",
        ))
        .attr(
            Attribute::bool("auto_direct_node_routes")
                .optional()
                .description(
                    "Install routes to the other nodes' pod ranges (nodes share an L2 \
                     network). Chart `autoDirectNodeRoutes`.",
                ),
        )
        .attr(
            Attribute::string("tunnel_protocol")
                .optional()
                .validate(one_of(&["vxlan", "geneve"]))
                .description("`vxlan` (default) or `geneve`. Chart `tunnelProtocol`."),
        )
}

fn hubble() -> Block {
    Block::new()
        .description("Flow observability (chart `hubble.*`).")
        .attr(
            Attribute::bool("enabled")
                .optional()
                .description("Hubble in the agents. Default `true`. Chart `hubble.enabled`."),
        )
        .attr(Attribute::bool("relay").optional().description(
            "The hubble-relay Deployment. Default `false`. Chart `hubble.relay.enabled`.",
        ))
        .attr(Attribute::bool("ui").optional().description(
            "The hubble-ui Deployment (needs `relay`). Default `false`. Chart `hubble.ui.enabled`.",
        ))
        .attr(
            Attribute::new("metrics", Type::list(Type::String))
                .optional()
                .description(
                    "Flow metrics to expose, e.g. `[\"dns\", \"drop\", \"tcp\"]`. Chart \
                     `hubble.metrics.enabled`.",
                ),
        )
}

fn encryption() -> Block {
    Block::new()
        .description("Transparent encryption between nodes (chart `encryption.*`).")
        .attr(
            Attribute::string("type")
                .required()
                .validate(one_of(&["wireguard"]))
                .description(
                    "`wireguard`. IPsec is not offered: it needs a key Secret this resource \
                     does not manage. Chart `encryption.type`.",
                ),
        )
        .attr(
            Attribute::bool("node_encryption").optional().description(
                "Also encrypt node-to-node traffic. Chart `encryption.nodeEncryption`.",
            ),
        )
}

fn bpf() -> Block {
    Block::new()
        .description("eBPF datapath switches (chart `bpf.*`).")
        .attr(
            Attribute::bool("masquerade")
                .optional()
                .description("eBPF masquerading instead of iptables. Chart `bpf.masquerade`."),
        )
        .attr(
            Attribute::bool("host_legacy_routing")
                .optional()
                .description(
                    "Route host traffic through the kernel stack. Default: on with preset `talos`, \
             kube-proxy replacement and `masquerade` (Talos forwards kube DNS to the host). \
             Chart `bpf.hostLegacyRouting`.",
                ),
        )
}

fn load_balancer() -> Block {
    Block::new()
        .description("eBPF service load balancing (chart `loadBalancer.*`).")
        .attr(
            Attribute::string("mode")
                .optional()
                .validate(one_of(&["snat", "dsr", "hybrid"]))
                .description("`snat` (default), `dsr` or `hybrid`. Chart `loadBalancer.mode`."),
        )
        .attr(
            Attribute::string("acceleration")
                .optional()
                .validate(one_of(&["disabled", "native", "best-effort"]))
                .description(
                    "XDP acceleration: `disabled` (default), `native` or `best-effort`. Chart \
                     `loadBalancer.acceleration`.",
                ),
        )
}

fn ingress_controller() -> Block {
    Block::new()
        .description("Cilium's Ingress controller (chart `ingressController.*`; needs `l7_proxy`).")
        .attr(
            Attribute::bool("enabled")
                .optional()
                .description("Run the controller. Default `true` when the block is present."),
        )
        .attr(Attribute::bool("default").optional().description(
            "Make `cilium` the default IngressClass. Chart `ingressController.default`.",
        ))
        .attr(
            Attribute::string("load_balancer_mode")
                .optional()
                .validate(one_of(&["dedicated", "shared"]))
                .description(
                    "`dedicated` (a LoadBalancer per Ingress, default) or `shared`. Chart \
                     `ingressController.loadbalancerMode`.",
                ),
        )
}

fn prometheus() -> Block {
    Block::new()
        .description("Metrics (chart `prometheus.*`, `operator.prometheus.*`, `hubble.metrics.*`).")
        .attr(
            Attribute::bool("enabled")
                .optional()
                .description("Metrics endpoints on the agents and the operator."),
        )
        .attr(
            Attribute::bool("service_monitor").optional().description(
                "prometheus-operator ServiceMonitors (needs its CRDs in the cluster).",
            ),
        )
        .attr(
            Attribute::bool("dashboards").optional().description(
                "Grafana dashboards as ConfigMaps labelled `grafana_dashboard: \"1\"`.",
            ),
        )
}

fn operator() -> Block {
    Block::new()
        .description("The cilium-operator Deployment (chart `operator.*`).")
        .attr(
            Attribute::number("replicas")
                .optional()
                .validate(int_between(1, 10))
                .description("Replicas (default 2; one node needs 1). Chart `operator.replicas`."),
        )
}

fn api_server() -> Block {
    Block::new()
        .description(
            "Where the agents reach the Kubernetes API without kube-proxy (chart \
             `k8sServiceHost`/`k8sServicePort`). Default: KubePrism (`localhost:7445`) with \
             preset `talos`, the in-cluster Service otherwise.",
        )
        .attr(
            Attribute::string("host")
                .required()
                .description("Host name or address."),
        )
        .attr(
            Attribute::number("port")
                .required()
                .validate(int_between(1, 65535))
                .description("TCP port."),
        )
}

fn on_destroy() -> Block {
    Block::new()
        .description("What `terraform destroy` does to the installed objects.")
        .attr(Attribute::bool("keep").optional().description(
            "Leave every object in the cluster and only forget them (hand Cilium over to Argo \
             CD or another tool). Default `false`: delete them all and wait until gone.",
        ))
}

/// The type of one `inventory` entry's value: the applied object's content hash.
pub fn inventory_type() -> Type {
    Type::map(Type::String)
}

pub fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Cilium 1.20 installed from typed options: every object built in the provider \
                 (no Helm, no chart download), applied server-side with field manager \
                 `infraflux`, pruned when options drop it, and awaited until the agents run \
                 and nodes are Ready. The plan lists each object that changes in `inventory`.",
            )
            .attr(
                Attribute::string("id")
                    .computed()
                    .plan_modifier(use_state_for_unknown())
                    .description("`kube-system/cilium`."),
            )
            .attr(
                Attribute::string("kubeconfig")
                    .required()
                    .sensitive()
                    .description(
                        "An admin kubeconfig (YAML), e.g. `infraflux_talos_cluster.this.kubeconfig`. \
                         It may be unknown at plan (the cluster does not exist yet): the plan \
                         needs no cluster.",
                    ),
            )
            .attr(
                Attribute::string("version")
                    .default(infraflux_cilium::CILIUM_VERSION)
                    .validate(one_of(VERSIONS))
                    .description("The Cilium release. Default and only choice: `1.20.0`."),
            )
            .attr(
                Attribute::string("preset")
                    .optional()
                    .validate(one_of(&["talos", "generic"]))
                    .description(
                        "`talos` (default: KubePrism API endpoint, Talos's cgroup mount and \
                         capabilities) or `generic`.",
                    ),
            )
            .attr(Attribute::bool("kube_proxy_replacement").optional().description(
                "Replace kube-proxy with eBPF service handling. Default: `true` with preset \
                 `talos` (Talos runs without kube-proxy: `cluster.proxy.disabled`), `false` \
                 otherwise. Chart `kubeProxyReplacement`.",
            ))
            .attr(Attribute::bool("bgp_control_plane").optional().description(
                "The BGP control plane (CiliumBGP* resources). Default `false`. Chart \
                 `bgpControlPlane.enabled`.",
            ))
            .attr(Attribute::bool("gateway_api").optional().description(
                "Gateway API support; its standard-channel CRDs are applied first. Default \
                 `false`. Chart `gatewayAPI.enabled`.",
            ))
            .attr(Attribute::bool("l7_proxy").optional().description(
                "The L7 proxy (the cilium-envoy DaemonSet); Ingress and Gateway API need it. \
                 Default `true`. Chart `l7Proxy`.",
            ))
            .attr(
                Attribute::new("extra_config", Type::map(Type::String))
                    .optional()
                    .description(
                        "`cilium-config` entries set last, over the built ones. Keys Cilium \
                         does not know are kept and reported as warnings.",
                    ),
            )
            .attr(Attribute::string("rotate_certificates").optional().description(
                "Any change of this value makes a new Cilium CA and Hubble certificates on the \
                 next apply. The certificates are otherwise made once and kept.",
            ))
            .attr(
                Attribute::string("rendered_manifests")
                    .computed()
                    .sensitive()
                    .description(
                        "Every object as one YAML text (the TLS Secrets included, hence \
                         sensitive), for Argo CD or Talos `inlineManifests`. Known at plan \
                         once the certificates exist (after the first apply).",
                    ),
            )
            .attr(
                Attribute::new("inventory", inventory_type())
                    .computed()
                    .description(
                        "The applied objects: `<apiVersion> <Kind> <namespace>/<name>` → hash \
                         of the object as built. A plan shows which objects change; drift \
                         found by refresh shows as `drifted: <fields>`.",
                    ),
            )
            .attr(
                Attribute::string("hubble_ca_cert")
                    .computed()
                    .plan_modifier(use_state_for_unknown())
                    .description("The Cilium CA certificate (PEM) that signs Hubble's certificates."),
            )
            .attr(
                Attribute::string("cilium_version")
                    .computed()
                    .description("The Cilium release installed."),
            )
            .block(NestedBlock::new("api_server", Nesting::Single, api_server()))
            .block(NestedBlock::new("ipam", Nesting::Single, ipam()))
            .block(NestedBlock::new("routing", Nesting::Single, routing()))
            .block(NestedBlock::new("hubble", Nesting::Single, hubble()))
            .block(NestedBlock::new("encryption", Nesting::Single, encryption()))
            .block(NestedBlock::new("bpf", Nesting::Single, bpf()))
            .block(NestedBlock::new("load_balancer", Nesting::Single, load_balancer()))
            .block(NestedBlock::new(
                "ingress_controller",
                Nesting::Single,
                ingress_controller(),
            ))
            .block(NestedBlock::new("prometheus", Nesting::Single, prometheus()))
            .block(NestedBlock::new("operator", Nesting::Single, operator()))
            .block(NestedBlock::new("on_destroy", Nesting::Single, on_destroy()))
            .timeouts(&["create", "update", "delete"]),
    )
}
