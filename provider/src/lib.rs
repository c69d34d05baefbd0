//! `terraform-provider-infraflux`: Proxmox VE VMs → Talos Linux → Cilium → Argo CD, from HCL.
//!
//! The provider as a library; `main.rs` only serves [`InfraFlux`] over the plugin protocol.

mod config;
mod data_sources;
mod ephemeral;
mod k8s;
mod provider;
mod resources;

pub use provider::InfraFlux;

/// The provider's registry address, as Terraform names it in `required_providers`.
pub const ADDRESS: &str = "registry.terraform.io/infraflux/infraflux";
