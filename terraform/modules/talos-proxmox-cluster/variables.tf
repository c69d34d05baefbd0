variable "cluster_name" {
  description = "Talos/Kubernetes cluster name."
  type        = string
}

variable "talos_version" {
  description = "Talos version the machines run (e.g. v1.13.9)."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes version (e.g. 1.34.1)."
  type        = string
}

variable "proxmox_node" {
  description = "Proxmox VE node the VMs are created on."
  type        = string
}

variable "talos_image" {
  description = "Volume of the Talos nocloud disk image to import (content type `import`)."
  type        = string
}

variable "storage" {
  description = "Storage for the VM disks and cloud-init drives."
  type        = string
  default     = "local-lvm"
}

variable "bridge" {
  description = "Bridge the VMs' NIC attaches to."
  type        = string
  default     = "vmbr0"
}

variable "prefix_length" {
  description = "Prefix length of the machines' static addresses."
  type        = number
  default     = 24
}

variable "gateway" {
  description = "IPv4 gateway of the machines."
  type        = string
}

variable "control_planes" {
  description = "Control-plane machines: hostname => static IPv4 address."
  type        = map(string)
}

variable "cores" {
  description = "vCPU cores per machine."
  type        = number
  default     = 2
}

variable "memory_mb" {
  description = "Memory per machine, MiB."
  type        = number
  default     = 4096
}

variable "workers" {
  description = "Worker machines: hostname => static IPv4 address."
  type        = map(string)
  default     = {}
}

variable "endpoint" {
  description = "Kubernetes API endpoint (https://VIP-or-first-control-plane:6443). Default: the first control plane."
  type        = string
  default     = null
}

variable "cni" {
  description = "`cilium` (no CNI from Talos: Cilium is installed afterwards) or `flannel`."
  type        = string
  default     = "cilium"
}

variable "config_patches" {
  description = "Machine-config patches for every machine."
  type        = list(string)
  default     = []
}

variable "reset_on_destroy" {
  description = "Reset the machines to maintenance mode on destroy."
  type        = bool
  default     = true
}
