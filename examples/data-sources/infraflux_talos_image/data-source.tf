# The Talos image for Proxmox VE nodes that also run Longhorn: the QEMU guest agent, and the
# iSCSI and util-linux tools Longhorn needs. Computed offline; nothing is downloaded at plan.
data "infraflux_talos_image" "nodes" {
  talos_version = "v1.13.9"
  platform      = "nocloud"
  extensions = [
    "siderolabs/iscsi-tools",
    "siderolabs/qemu-guest-agent",
    "siderolabs/util-linux-tools",
  ]
}

resource "infraflux_talos_cluster" "this" {
  # ...
  install {
    image = data.infraflux_talos_image.nodes.installer_image
  }
}

output "schematic_id" {
  # 88d1f7a5c4f1d3aba7df787c448c1d3d008ed29cfb34af53fa0df4336a56040b
  value = data.infraflux_talos_image.nodes.schematic_id
}
