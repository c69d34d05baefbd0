output "cilium_version" {
  description = "The Cilium release installed."
  value       = infraflux_cilium_install.this.cilium_version
}

output "cilium_objects" {
  description = "How many Kubernetes objects the Cilium install applied."
  value       = length(infraflux_cilium_install.this.inventory)
}

output "hubble_ca_cert" {
  description = "The CA certificate (PEM) that signs Hubble's TLS certificates."
  value       = infraflux_cilium_install.this.hubble_ca_cert
}
