# Defaults describe the embedded lab (`make demo` fills in its endpoint, token and CA).

variable "proxmox_endpoint" {
  description = "Proxmox VE API endpoint, https://HOST:8006."
  type        = string
}

variable "proxmox_api_token" {
  description = "API token `user@realm!id=secret`."
  type        = string
  sensitive   = true
}

variable "proxmox_ca_cert_pem" {
  description = "CA certificate of the Proxmox VE API (PEM). Null: the system's roots."
  type        = string
  default     = null
}

variable "proxmox_node" {
  type    = string
  default = "pve1"
}

variable "talos_image" {
  type    = string
  default = "local:import/talos-nocloud-amd64.raw"
}

variable "cluster_name" {
  type    = string
  default = "infraflux"
}

variable "talos_version" {
  type    = string
  default = "v1.13.9"
}

variable "kubernetes_version" {
  type    = string
  default = "1.34.1"
}

variable "gateway" {
  type    = string
  default = "127.0.0.1"
}

variable "prefix_length" {
  type    = number
  default = 8
}

variable "control_planes" {
  description = "hostname => static IPv4 address."
  type        = map(string)
  default = {
    "cp-1" = "127.20.0.11"
    "cp-2" = "127.20.0.12"
    "cp-3" = "127.20.0.13"
  }
}

variable "workers" {
  description = "hostname => static IPv4 address."
  type        = map(string)
  default = {
    "worker-1" = "127.20.0.21"
    "worker-2" = "127.20.0.22"
  }
}

variable "config_patches" {
  description = "Machine-config patches for every machine (strategic merge YAML or RFC 6902)."
  type        = list(string)
  default     = []
}

variable "install_platform" {
  description = "Install the platform (Cilium) on the cluster. False leaves the nodes NotReady without a CNI."
  type        = bool
  default     = true
}
