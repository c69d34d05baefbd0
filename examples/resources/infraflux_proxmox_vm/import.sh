# Import an existing VM by node and VM id.
terraform import infraflux_proxmox_vm.talos_cp[0] pve1/101

# Terraform >= 1.5 can import from configuration instead:
#   import {
#     to = infraflux_proxmox_vm.talos_cp[0]
#     id = "pve1/101"
#   }
# Terraform >= 1.12 can import by identity:
#   import {
#     to       = infraflux_proxmox_vm.talos_cp[0]
#     identity = { node = "pve1", vm_id = 101 }
#   }
