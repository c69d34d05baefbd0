data "infraflux_proxmox_nodes" "all" {}

locals {
  online_nodes = [for n in data.infraflux_proxmox_nodes.all.nodes : n.name if n.status == "online"]

  # Free GiB on local-lvm per node (0 where a node has no local-lvm).
  local_lvm_free_gb = {
    for n in data.infraflux_proxmox_nodes.all.nodes :
    n.name => sum(concat([0], [for s in n.storages : s.free_gb if s.name == "local-lvm"]))
  }
}

output "online_nodes" {
  value = local.online_nodes
}

output "local_lvm_free_gb" {
  value = local.local_lvm_free_gb
}
