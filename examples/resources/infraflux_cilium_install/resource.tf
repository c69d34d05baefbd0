# Cilium on a Talos cluster made with cni = "cilium" (no CNI and no kube-proxy from Talos).
resource "infraflux_cilium_install" "this" {
  kubeconfig = infraflux_talos_cluster.this.kubeconfig # may be unknown at plan

  preset                 = "talos" # KubePrism (localhost:7445), Talos cgroups and capabilities
  kube_proxy_replacement = true

  ipam {
    mode = "kubernetes"
  }

  routing {
    mode                    = "native"
    native_cidr             = "10.244.0.0/16"
    auto_direct_node_routes = true
  }

  hubble {
    relay   = true
    ui      = true
    metrics = ["dns", "drop", "tcp", "flow"]
  }

  encryption {
    type = "wireguard"
  }

  bpf {
    masquerade = true # with preset talos this also sets bpf.hostLegacyRouting
  }

  bgp_control_plane = true
  gateway_api       = true

  operator {
    replicas = 2
  }

  timeouts {
    create = "20m"
  }
}
