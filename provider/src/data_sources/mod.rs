//! Data sources. Like resources they know the framework and the API clients, never gRPC.
//!
//! - `infraflux_proxmox_nodes`: the cluster's nodes, their free CPU and memory, and the
//!   storages each sees (free space, content types).
//! - `infraflux_proxmox_template`: a template VM looked up by name (optionally on one node).

mod proxmox_nodes;
mod proxmox_template;

use std::sync::Arc;

use tfplugin::DataSource;

use crate::provider::Shared;

/// Every data source the provider offers.
pub fn all(shared: &Arc<Shared>) -> Vec<Arc<dyn DataSource>> {
    vec![
        Arc::new(proxmox_nodes::ProxmoxNodes(shared.clone())),
        Arc::new(proxmox_template::ProxmoxTemplate(shared.clone())),
    ]
}
