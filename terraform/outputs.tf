output "kubeconfig" {
  value     = module.cluster.kubeconfig
  sensitive = true
}

output "talosconfig" {
  value     = module.cluster.talosconfig
  sensitive = true
}

output "endpoint" {
  value = module.cluster.endpoint
}

output "nodes" {
  value = module.cluster.nodes
}

output "vm_ids" {
  value = module.cluster.vm_ids
}

output "cilium_version" {
  value = one(module.platform[*].cilium_version)
}

output "cilium_objects" {
  value = one(module.platform[*].cilium_objects)
}
