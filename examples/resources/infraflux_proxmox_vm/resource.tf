# A Talos control-plane node created from the Talos nocloud image (no template needed):
# the boot disk is imported from the image and grown to 32 GiB, a second disk holds data,
# and cloud-init (nocloud, which Talos reads) gives it a static address.
resource "infraflux_proxmox_vm" "talos_cp" {
  node        = "pve1"
  name        = "talos-cp-1"
  description = "Talos control plane, managed by Terraform"
  tags        = ["talos", "controlplane"]
  on_boot     = true
  pool        = "infraflux" # an existing resource pool

  # Changes Proxmox VE can only apply at the next start (cores, memory, …) reboot the VM once;
  # with false they stay pending and the apply warns, naming them.
  reboot_after_update = true

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
    mtu    = 1 # take the bridge's MTU
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

# A UEFI VM with a TPM, installed from the Talos metal ISO. Changing `node` later migrates it
# (live, local disks copied along); eject the ISO first (file_id = "none"), as Proxmox VE
# cannot migrate a VM with a local ISO in a drive.
resource "infraflux_proxmox_vm" "talos_metal" {
  node    = "pve2"
  name    = "talos-metal-1"
  bios    = "ovmf"
  machine = "q35"

  efi_disk {
    storage = "local-lvm"
    type    = "4m"
  }

  tpm_state {
    storage = "local-lvm"
    version = "v2.0"
  }

  cdrom {
    file_id = "local:iso/talos-metal-amd64.iso" # boots first, then scsi0
  }

  disk "scsi0" {
    storage = "local-lvm"
    size_gb = 32
  }

  network "net0" {
    bridge = "vmbr0"
  }
}
