provider "infraflux" {
  proxmox {
    endpoint    = "https://pve.example.com:8006"
    api_token   = var.proxmox_api_token # user@realm!tokenid=secret
    ca_cert_pem = file("pve-root-ca.pem")
  }
}

variable "proxmox_api_token" {
  type      = string
  sensitive = true
}
