# Three control planes behind a layer-2 VIP and two workers, booted from the Talos image
# (e.g. infraflux_proxmox_vm with static cloud-init addresses). Cilium is installed afterwards
# (infraflux_cilium_install), so Talos brings no CNI and no kube-proxy.
resource "infraflux_talos_cluster" "this" {
  name               = "homelab"
  endpoint           = "https://10.0.0.10:6443" # the VIP below
  talos_version      = "v1.13.9"
  kubernetes_version = "1.34.1"
  cni                = "cilium"

  install {
    disk = "/dev/sda"
    # image defaults to ghcr.io/siderolabs/installer:<talos_version>; an Image Factory
    # installer with extensions (qemu-guest-agent) works too:
    # image = "factory.talos.dev/installer/<schematic>:v1.13.9"
  }

  vip {
    address = "10.0.0.10"
    link    = "eth0"
  }

  # Patches for every machine: strategic merge YAML, or an RFC 6902 list.
  config_patches = [
    yamlencode({
      machine = {
        time = { servers = ["time.cloudflare.com"] }
      }
    }),
  ]

  control_plane {
    hostname = "cp-1"
    address  = "10.0.0.11"
  }
  control_plane {
    hostname = "cp-2"
    address  = "10.0.0.12"
  }
  control_plane {
    hostname = "cp-3"
    address  = "10.0.0.13"
  }

  worker {
    hostname = "worker-1"
    address  = "10.0.0.21"
  }
  worker {
    hostname     = "worker-2"
    address      = "10.0.0.22"
    install_disk = "/dev/nvme0n1"
    config_patches = [
      yamlencode({ machine = { nodeLabels = { "node.kubernetes.io/pool" = "storage" } } }),
    ]
  }

  on_destroy {
    reset = true # back to maintenance mode; leave false when the VMs are destroyed anyway
  }

  timeouts {
    create = "30m"
    update = "60m"
  }
}

output "kubeconfig" {
  value     = infraflux_talos_cluster.this.kubeconfig
  sensitive = true
}
