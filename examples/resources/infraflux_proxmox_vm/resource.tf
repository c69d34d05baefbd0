# Three Talos control-plane nodes, cloned from a Talos nocloud template (VM 9000 on pve1).
resource "infraflux_proxmox_vm" "talos_cp" {
  count = 3

  node        = "pve${count.index + 1}"
  name        = "talos-cp-${count.index + 1}"
  description = "Talos control plane, managed by Terraform"
  tags        = ["talos", "controlplane"]
  on_boot     = true

  clone {
    source_vm_id = 9000
    source_node  = "pve1"
    full         = true
    storage      = "ceph" # shared storage: clones may land on another node
  }

  cpu {
    cores   = 4
    sockets = 1
    type    = "host"
  }

  memory {
    dedicated_mb = 8192
    floating_mb  = 0 # Talos: no ballooning
  }

  network "net0" {
    bridge  = "vmbr0"
    model   = "virtio"
    vlan_id = 20
  }

  timeouts {
    create = "15m"
    delete = "10m"
  }
}

output "talos_cp_addresses" {
  # From the QEMU guest agent; empty until the agent reports an address.
  value = infraflux_proxmox_vm.talos_cp[*].ipv4_addresses
}
