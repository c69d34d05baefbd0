terraform {
  required_providers {
    infraflux = { source = "infraflux/infraflux" }
  }
}

locals {
  machines = merge(
    { for k, v in var.control_planes : k => { address = v, role = "controlplane" } },
    { for k, v in var.workers : k => { address = v, role = "worker" } },
  )
  first_control_plane = sort(keys(var.control_planes))[0]
  endpoint            = coalesce(var.endpoint, "https://${var.control_planes[local.first_control_plane]}:6443")
}

# One VM per machine, booted from the Talos nocloud image with a static address (cloud-init).
resource "infraflux_proxmox_vm" "machine" {
  for_each = local.machines

  node          = var.proxmox_node
  name          = each.key
  tags          = ["talos", each.value.role, var.cluster_name]
  machine       = "q35"
  scsi_hardware = "virtio-scsi-single"

  cpu {
    cores = var.cores
    type  = "host"
  }

  memory {
    dedicated_mb = var.memory_mb
    floating_mb  = 0
  }

  disk "scsi0" {
    storage     = var.storage
    import_from = var.talos_image
    size_gb     = 20
    discard     = true
    ssd         = true
    iothread    = true
  }

  network "net0" {
    bridge = var.bridge
  }

  initialization {
    datastore = var.storage
    ip_config "ipconfig0" {
      ipv4_address = "${each.value.address}/${var.prefix_length}"
      ipv4_gateway = var.gateway
    }
  }
}

# The cluster's PKI and tokens, in state before any machine receives a config: a crash
# during install or bootstrap cannot lose them.
resource "infraflux_talos_machine_secrets" "this" {
  talos_version = var.talos_version
}

# The cluster: configs, install, bootstrap, health and credentials.
resource "infraflux_talos_cluster" "this" {
  name               = var.cluster_name
  endpoint           = local.endpoint
  talos_version      = var.talos_version
  kubernetes_version = var.kubernetes_version
  machine_secrets    = infraflux_talos_machine_secrets.this.machine_secrets
  cni                = var.cni
  config_patches     = var.config_patches

  install {
    disk = "/dev/sda"
  }

  dynamic "control_plane" {
    for_each = var.control_planes
    content {
      hostname = control_plane.key
      # The VM's address, so the cluster waits for its VM (and outlives it on destroy).
      address = infraflux_proxmox_vm.machine[control_plane.key].ipv4_addresses[0]
    }
  }

  dynamic "worker" {
    for_each = var.workers
    content {
      hostname = worker.key
      address = infraflux_proxmox_vm.machine[worker.key].ipv4_addresses[0]
    }
  }

  on_destroy {
    reset = var.reset_on_destroy
  }
}
