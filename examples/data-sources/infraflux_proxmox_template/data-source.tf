# Clone from a template by name instead of hard-coding its VM id.
data "infraflux_proxmox_template" "talos" {
  name = "talos-template"
  # node = "pve1" # needed only when templates of that name live on several nodes
}

resource "infraflux_proxmox_vm" "worker" {
  node = data.infraflux_proxmox_template.talos.node
  name = "talos-worker-1"

  clone {
    source_vm_id = data.infraflux_proxmox_template.talos.vm_id
  }
}
