//! `cilium-config`: the agent's and operator's configuration, key by key as the chart sets it.

use serde_json::{Map, Value, json};

use crate::meta::NAMESPACE;
use crate::resolve::{Config, IpamMode};

/// The `cilium-config` ConfigMap.
pub(crate) fn cilium_config(c: &Config) -> Value {
    let mut d = Data::default();
    d.set("identity-allocation-mode", "crd");
    d.set("identity-heartbeat-timeout", "30m0s");
    d.set("identity-gc-interval", "15m0s");
    d.set("cilium-endpoint-gc-interval", "5m0s");
    d.set("nodes-gc-interval", "5m0s");
    d.set("debug", "false");
    d.set("metrics-sampling-interval", "5m");
    d.set("enable-policy", "default");
    if c.prometheus {
        d.set("prometheus-serve-addr", ":9962");
        d.set(
            "controller-group-metrics",
            "write-cni-file sync-host-ips sync-lb-maps-with-k8s-services",
        );
    }
    if !c.envoy() {
        // Without the Envoy DaemonSet the agent runs Envoy itself and serves its metrics.
        d.set("proxy-prometheus-port", "9964");
    }
    if c.operator_prometheus {
        d.set("operator-prometheus-serve-addr", ":9963");
        d.set("enable-metrics", "true");
    }
    if c.ingress.is_some() || c.gateway_api {
        d.set("enable-envoy-config", "true");
        d.set("envoy-config-retry-interval", "15s");
    }
    if let Some(ingress) = &c.ingress {
        d.set("enable-ingress-controller", "true");
        d.set("enforce-ingress-https", "true");
        d.set("enable-ingress-proxy-protocol", "false");
        d.set("enable-ingress-secrets-sync", "true");
        d.set("ingress-secrets-namespace", "cilium-secrets");
        d.set(
            "ingress-lb-annotation-prefixes",
            "lbipam.cilium.io nodeipam.cilium.io service.beta.kubernetes.io service.kubernetes.io cloud.google.com",
        );
        d.set(
            "ingress-default-lb-mode",
            if ingress.shared {
                "shared"
            } else {
                "dedicated"
            },
        );
        d.set("ingress-shared-lb-service-name", "cilium-ingress");
        d.set("ingress-default-xff-num-trusted-hops", "0");
        d.set("ingress-use-remote-address", "true");
        d.set("ingress-hostnetwork-enabled", "false");
        d.set("ingress-hostnetwork-shared-listener-port", "8080");
        d.set("ingress-hostnetwork-http-listener-port", "0");
        d.set("ingress-hostnetwork-https-listener-port", "0");
        d.set("ingress-hostnetwork-tls-passthrough-listener-port", "0");
        d.set("ingress-hostnetwork-nodelabelselector", "");
    }
    if c.gateway_api {
        d.set("enable-gateway-api", "true");
        d.set("enable-gateway-api-secrets-sync", "true");
        d.set("enable-gateway-api-proxy-protocol", "false");
        d.set("enable-gateway-api-app-protocol", "false");
        d.set("enable-gateway-api-alpn", "false");
        d.set("gateway-api-xff-num-trusted-hops", "0");
        d.set("gateway-api-use-remote-address", "true");
        d.set("gateway-api-service-externaltrafficpolicy", "Cluster");
        d.set("gateway-api-secrets-namespace", "cilium-secrets");
        d.set("gateway-api-hostnetwork-enabled", "false");
        d.set("gateway-api-hostnetwork-nodelabelselector", "");
    }
    d.set("enable-policy-secrets-sync", "true");
    d.set("policy-secrets-only-from-secrets-namespace", "true");
    d.set("policy-secrets-namespace", "cilium-secrets");
    d.set("enable-ipv4", "true");
    d.set("enable-ipv6", "false");
    d.set("custom-cni-conf", "false");
    d.set("enable-bpf-clock-probe", "false");
    d.set("monitor-aggregation", "medium");
    d.set("monitor-aggregation-interval", "5s");
    d.set("monitor-aggregation-flags", "all");
    d.set("bpf-map-dynamic-size-ratio", "0.0025");
    if let Some(v) = c.host_legacy_routing {
        d.set("enable-host-legacy-routing", bool_str(v));
    }
    d.set("bpf-policy-map-max", "16384");
    d.set("bpf-policy-stats-map-max", "65536");
    d.set("bpf-lb-map-max", "65536");
    d.set("bpf-lb-external-clusterip", "false");
    d.set("bpf-lb-source-range-all-types", "false");
    // Gateway API forces it so per-backend weights on TCPRoute/UDPRoute take effect.
    d.set("bpf-lb-algorithm-annotation", bool_str(c.gateway_api));
    d.set("bpf-lb-mode-annotation", "false");
    d.set("bpf-distributed-lru", "false");
    d.set("bpf-events-drop-enabled", "true");
    d.set("bpf-events-policy-verdict-enabled", "true");
    d.set("bpf-events-trace-enabled", "true");
    d.set("preallocate-bpf-maps", "false");
    d.set("cluster-name", "default");
    d.set("cluster-id", "0");
    d.set(
        "routing-mode",
        if c.native_routing { "native" } else { "tunnel" },
    );
    d.set("tunnel-protocol", &c.tunnel_protocol);
    d.set("tunnel-source-port-range", "0-0");
    d.set("service-no-backend-response", "reject");
    d.set("policy-deny-response", "none");
    d.set("enable-l7-proxy", bool_str(c.l7_proxy));
    d.set("enable-ipv4-masquerade", "true");
    d.set("enable-ipv4-big-tcp", "false");
    d.set("enable-ipv6-big-tcp", "false");
    d.set("enable-ipv6-masquerade", "true");
    d.set("enable-tcx", "true");
    d.set("datapath-mode", "veth");
    if let Some(v) = c.bpf_masquerade {
        d.set("enable-bpf-masquerade", bool_str(v));
    }
    d.set("enable-masquerade-to-route-source", "false");
    if c.wireguard {
        d.set("enable-wireguard", "true");
        d.set("wireguard-persistent-keepalive", "0s");
        if c.node_encryption {
            d.set("encrypt-node", "true");
        }
    }
    d.set("enable-xt-socket-fallback", "true");
    d.set("install-no-conntrack-iptables-rules", "false");
    d.set("iptables-random-fully", "false");
    d.set(
        "auto-direct-node-routes",
        bool_str(c.auto_direct_node_routes),
    );
    d.set("direct-routing-skip-unreachable", "false");
    if let Some(cidr) = &c.native_cidr {
        d.set("ipv4-native-routing-cidr", cidr);
    }
    d.set("enable-host-firewall", "false");
    d.set("devices", "");
    d.set("kube-proxy-replacement", bool_str(c.kube_proxy_replacement));
    if c.kube_proxy_replacement {
        d.set("kube-proxy-replacement-healthz-bind-address", "");
    }
    d.set("enable-no-service-endpoints-routable", "true");
    d.set("bpf-lb-sock", "false");
    if c.gateway_api {
        d.set("bpf-lb-sock-hostns-only", "true");
    }
    d.set("enable-health-check-nodeport", "true");
    d.set("enable-dynamic-source-lookup-nodeport", "false");
    d.set("enable-health-check-loadbalancer-ip", "false");
    d.set("node-port-bind-protection", "true");
    d.set("enable-auto-protect-node-port-range", "true");
    if let Some(mode) = &c.lb_mode {
        d.set("bpf-lb-mode", mode);
    }
    d.set("bpf-lb-acceleration", &c.lb_acceleration);
    d.set("enable-service-topology", "false");
    d.set("enable-l2-neigh-discovery", "false");
    d.set("k8s-require-ipv4-pod-cidr", "false");
    d.set("k8s-require-ipv6-pod-cidr", "false");
    d.set("enable-k8s-networkpolicy", "true");
    d.set("enable-endpoint-lockdown-on-policy-overflow", "false");
    d.set(
        "write-cni-conf-when-ready",
        "/host/etc/cni/net.d/05-cilium.conflist",
    );
    d.set("cni-exclusive", "true");
    d.set("cni-log-file", "/var/run/cilium/cilium-cni.log");
    d.set("enable-endpoint-health-checking", "true");
    d.set("enable-health-checking", "true");
    d.set("health-check-icmp-failure-threshold", "3");
    d.set("enable-well-known-identities", "false");
    d.set("enable-node-selector-labels", "false");
    d.set("synchronize-k8s-nodes", "true");
    d.set("operator-api-serve-addr", "127.0.0.1:9234");
    d.set("enable-hubble", bool_str(c.hubble));
    if c.hubble {
        d.set("hubble-socket-path", "/var/run/cilium/hubble.sock");
        if c.hubble_metrics_on() {
            d.set("hubble-metrics-server", ":9965");
            d.set("hubble-metrics-server-enable-tls", "false");
            d.set("enable-hubble-open-metrics", "false");
            d.set("hubble-metrics", &c.hubble_metrics.join(" "));
        }
        d.set("hubble-network-policy-correlation-enabled", "true");
        d.set("hubble-listen-address", ":4244");
        d.set("hubble-disable-tls", "false");
        d.set(
            "hubble-tls-cert-file",
            "/var/lib/cilium/tls/hubble/server.crt",
        );
        d.set(
            "hubble-tls-key-file",
            "/var/lib/cilium/tls/hubble/server.key",
        );
        d.set(
            "hubble-tls-client-ca-files",
            "/var/lib/cilium/tls/hubble/client-ca.crt",
        );
    }
    match c.ipam {
        IpamMode::Kubernetes => d.set("ipam", "kubernetes"),
        IpamMode::ClusterPool => d.set("ipam", "cluster-pool"),
    }
    d.set("ipam-cilium-node-update-rate", "15s");
    if c.ipam == IpamMode::ClusterPool {
        d.set("cluster-pool-ipv4-cidr", &c.pod_cidrs.join(" "));
        d.set("cluster-pool-ipv4-mask-size", &c.pod_mask_size.to_string());
    }
    d.set("default-lb-service-ipam", "lbipam");
    d.set("egress-gateway-reconciliation-trigger-interval", "1s");
    d.set("enable-vtep", "false");
    d.set("vtep-endpoint", "");
    d.set("vtep-cidr", "");
    d.set("vtep-mask", "");
    d.set("vtep-mac", "");
    if c.bgp {
        d.set("enable-bgp-control-plane", "true");
        d.set("bgp-secrets-namespace", "kube-system");
        d.set("enable-bgp-control-plane-status-report", "true");
        d.set("bgp-router-id-allocation-mode", "default");
        d.set("bgp-router-id-allocation-ip-pool", "");
        d.set("enable-bgp-legacy-origin-attribute", "false");
    }
    d.set("packetization-layer-pmtud-mode", "blackhole");
    d.set("procfs", "/host/proc");
    d.set("bpf-root", "/sys/fs/bpf");
    d.set("cgroup-root", crate::meta::cgroup_root(c));
    d.set("identity-management-mode", "agent");
    d.set("enable-sctp", "false");
    d.set("remove-cilium-node-taints", "true");
    d.set("set-cilium-node-taints", "true");
    d.set("set-cilium-is-up-condition", "true");
    d.set("unmanaged-pod-watcher-interval", "15s");
    d.set("dnsproxy-enable-transparent-mode", "true");
    d.set("dnsproxy-socket-linger-timeout", "10");
    d.set("tofqdns-dns-reject-response-code", "refused");
    d.set("tofqdns-enable-dns-compression", "true");
    d.set("tofqdns-endpoint-max-ip-per-hostname", "1000");
    d.set("tofqdns-idle-connection-grace-period", "0s");
    d.set("tofqdns-max-deferred-connection-deletes", "10000");
    d.set("tofqdns-proxy-response-max-delay", "100ms");
    d.set("tofqdns-preallocate-identities", "true");
    d.set(
        "agent-not-ready-taint-key",
        "node.cilium.io/agent-not-ready",
    );
    d.set("mesh-auth-enabled", "false");
    d.set("mesh-auth-queue-size", "1024");
    d.set("mesh-auth-rotated-identities-queue-size", "1024");
    d.set("mesh-auth-gc-interval", "5m0s");
    d.set("proxy-xff-num-trusted-hops-ingress", "0");
    d.set("proxy-xff-num-trusted-hops-egress", "0");
    d.set("proxy-connect-timeout", "2");
    d.set("proxy-initial-fetch-timeout", "30");
    d.set("proxy-max-active-downstream-connections", "50000");
    d.set("proxy-max-requests-per-connection", "0");
    d.set("proxy-max-connection-duration-seconds", "0");
    d.set("proxy-idle-timeout-seconds", "60");
    d.set("proxy-max-concurrent-retries", "128");
    d.set("proxy-use-original-source-address", "true");
    d.set("proxy-cluster-max-connections", "1024");
    d.set("proxy-cluster-max-pending-requests", "1024");
    d.set("proxy-cluster-max-requests", "1024");
    d.set("http-retry-count", "3");
    d.set("http-stream-idle-timeout", "300");
    d.set("envoy-node-locality-enabled", "false");
    d.set("external-envoy-proxy", bool_str(c.envoy()));
    d.set("envoy-base-id", "0");
    d.set("envoy-access-log-enabled", "true");
    d.set("envoy-access-log-buffer-size", "4096");
    d.set("envoy-keep-cap-netbindservice", "false");
    d.set("envoy-xds-mode", "ads");
    d.set("max-connected-clusters", "255");
    d.set("clustermesh-cache-ttl", "0s");
    d.set("clustermesh-enable-endpoint-sync", "false");
    d.set("clustermesh-enable-mcs-api", "false");
    d.set("clustermesh-mcs-api-install-crds", "true");
    d.set("clustermesh-default-global-namespace", "true");
    d.set("policy-default-local-cluster", "true");
    d.set("nat-map-stats-entries", "32");
    d.set("nat-map-stats-interval", "30s");
    d.set("enable-lb-ipam", "true");
    d.set("enable-non-default-deny-policies", "true");
    d.set("enable-source-ip-verification", "true");
    d.set("enable-dynamic-config", "true");
    d.set("enable-drift-checker", "true");
    d.set("enable-datapath-plugins", "false");
    d.set("datapath-plugins-state-dir", "/var/run/cilium/plugins");
    // Last, so they win over what the options built (the chart appends them the same way).
    for (k, v) in &c.extra_config {
        d.set(k, v);
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cilium-config", "namespace": NAMESPACE},
        "data": Value::Object(d.0),
    })
}

fn bool_str(v: bool) -> &'static str {
    if v { "true" } else { "false" }
}

/// ConfigMap data in insertion order; setting a key again replaces its value in place.
#[derive(Default)]
struct Data(Map<String, Value>);

impl Data {
    fn set(&mut self, key: &str, value: &str) {
        self.0
            .insert(key.to_string(), Value::String(value.to_string()));
    }
}
