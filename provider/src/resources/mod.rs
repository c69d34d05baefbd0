//! One module per resource. Resources know the framework and the API clients, never gRPC.

mod argocd_bootstrap;
mod cilium_install;
mod kube_common;
mod proxmox_vm;
mod talos_cluster;
mod talos_machine_secrets;
mod terraform_run;

use std::sync::Arc;

use tfplugin::Resource;

use crate::provider::Shared;

/// Every resource the provider offers.
pub fn all(shared: &Arc<Shared>) -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(proxmox_vm::ProxmoxVm::new(shared.clone())),
        Arc::new(talos_cluster::TalosCluster),
        Arc::new(talos_machine_secrets::TalosMachineSecrets),
        Arc::new(cilium_install::CiliumInstall),
        Arc::new(argocd_bootstrap::ArgocdBootstrap),
    ]
}
