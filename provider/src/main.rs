//! `terraform-provider-infraflux`: Proxmox VE VMs → Talos Linux → Cilium → Argo CD, from HCL.

mod config;
mod data_sources;
mod ephemeral;
mod k8s;
mod provider;
// The Proxmox VE client; infraflux_proxmox_vm uses it, disks/migration/create_vm wait for later slices.
#[allow(dead_code)]
mod proxmox;
mod resources;
mod talos;
mod tls;

use std::process::ExitCode;

fn main() -> ExitCode {
    tfplugin::serve::main(
        "registry.terraform.io/infraflux/infraflux",
        provider::InfraFlux::default,
    )
}
