# The InfraFlux stack: Proxmox VE VMs → Talos Linux cluster. (Cilium and Argo CD follow.)

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
