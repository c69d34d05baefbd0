output "kubeconfig" {
  description = "Admin kubeconfig."
  value       = infraflux_talos_cluster.this.kubeconfig
  sensitive   = true
}

output "talosconfig" {
  description = "talosctl configuration."
  value       = infraflux_talos_cluster.this.talosconfig
  sensitive   = true
}

output "machine_secrets" {
  description = "The cluster's machine secrets (JSON)."
  value       = infraflux_talos_cluster.this.machine_secrets
  sensitive   = true
}

output "endpoint" {
  description = "Kubernetes API endpoint."
  value       = infraflux_talos_cluster.this.endpoint
}

output "nodes" {
  description = "Per machine: role, address, stage, Talos version, etcd member id, config hash."
  value       = infraflux_talos_cluster.this.nodes
}

output "vm_ids" {
  description = "Proxmox VE VM id per machine."
  value       = { for k, vm in infraflux_proxmox_vm.machine : k => vm.vm_id }
}
