# A Talos control-plane node created from the Talos nocloud image (no template needed):
# the boot disk is imported from the image and grown to 32 GiB, a second disk holds data,
# and cloud-init (nocloud, which Talos reads) gives it a static address.
resource "infraflux_proxmox_vm" "talos_cp" {
  node        = "pve1"
  name        = "talos-cp-1"
  description = "Talos control plane, managed by Terraform"
  tags        = ["talos", "controlplane"]
  on_boot     = true

  bios          = "seabios"
  machine       = "q35"
  scsi_hardware = "virtio-scsi-single"

  cpu {
    cores = 4
    type  = "host"
  }

  memory {
    dedicated_mb = 8192
    floating_mb  = 0 # Talos: no ballooning
  }

  # Boot disk: imported from the image on `local` (content type "import"), then grown.
  disk "scsi0" {
    storage     = "local-lvm"
    import_from = "local:import/talos-nocloud-amd64.raw"
    size_gb     = 32
    discard     = true
    ssd         = true
    iothread    = true
  }

  # A second, empty disk (e.g. for Talos user volumes).
  disk "scsi1" {
    storage  = "local-lvm"
    size_gb  = 100
    discard  = true
    iothread = true
  }

  network "net0" {
    bridge = "vmbr0"
  }

  initialization {
    datastore = "local-lvm" # where the ide2 cloud-init drive lives
    ip_config "ipconfig0" {
      ipv4_address = "10.0.0.11/24"
      ipv4_gateway = "10.0.0.1"
    }
    dns {
      servers = ["10.0.0.1", "1.1.1.1"]
      domain  = "cluster.internal"
    }
  }

  agent {
    enabled = true # needs the Talos qemu-guest-agent extension in the image
  }

  timeouts {
    create = "15m"
    delete = "10m"
  }
}

output "talos_cp_address" {
  # The static cloud-init address (the guest agent's addresses when there is none).
  value = infraflux_proxmox_vm.talos_cp.ipv4_addresses[0]
}
