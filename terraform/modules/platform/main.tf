terraform {
  required_providers {
    infraflux = { source = "infraflux/infraflux" }
  }
}

# Cilium, the cluster's CNI: kube-proxy replacement, Hubble. Every object is built inside the
# provider (no Helm, no download) and applied server-side; the plan lists each object it changes.
resource "infraflux_cilium_install" "this" {
  kubeconfig = var.kubeconfig
  preset     = "talos"

  hubble {
    relay = var.hubble_relay
    ui    = var.hubble_ui
  }

  operator {
    replicas = var.cilium_operator_replicas
  }
}
