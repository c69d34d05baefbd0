# The InfraFlux stack: Proxmox VE VMs → Talos Linux cluster → Cilium. (Argo CD follows.)

provider "infraflux" {
  proxmox {
    endpoint    = var.proxmox_endpoint
    api_token   = var.proxmox_api_token
    ca_cert_pem = var.proxmox_ca_cert_pem
  }
}

module "cluster" {
  source = "./modules/talos-proxmox-cluster"

  cluster_name       = var.cluster_name
  talos_version      = var.talos_version
  kubernetes_version = var.kubernetes_version
  proxmox_node       = var.proxmox_node
  talos_image        = var.talos_image
  gateway            = var.gateway
  prefix_length      = var.prefix_length
  control_planes     = var.control_planes
  workers            = var.workers
  config_patches     = var.config_patches
}

# The platform on the cluster: Cilium now (nodes become Ready once its agents run).
module "platform" {
  source = "./modules/platform"
  count  = var.install_platform ? 1 : 0

  kubeconfig = module.cluster.kubeconfig
  # The operator's replicas need a node each.
  cilium_operator_replicas = min(2, length(var.control_planes) + length(var.workers))
}
