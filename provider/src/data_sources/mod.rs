//! Data sources. Like resources they know the framework and the API clients, never gRPC.
//!
//! - `infraflux_proxmox_nodes`: the cluster's nodes, their free CPU and memory, and the
//!   storages each sees (free space, content types).
//! - `infraflux_proxmox_template`: a template VM looked up by name (optionally on one node).

mod proxmox_nodes;
mod proxmox_template;

use std::sync::{Arc, OnceLock};

use tfplugin::{AttributePath, DataSource, Diagnostic};

use crate::provider::Shared;
use infraflux_proxmox::Client;

/// The Proxmox VE client the data sources of one provider process share.
#[derive(Clone)]
pub struct ProxmoxData {
    shared: Arc<Shared>,
    client: Arc<OnceLock<Client>>,
}

impl ProxmoxData {
    fn client(&self, data_source: &str) -> Result<Client, Diagnostic> {
        if let Some(c) = self.client.get() {
            return Ok(c.clone());
        }
        let Some(Some(settings)) = self.shared.proxmox.get() else {
            return Err(Diagnostic::error(
                "Proxmox VE is not configured",
                format!(
                    "{data_source} needs a `proxmox {{ endpoint = …, api_token = … }}` block in the `provider \"infraflux\"` block (or the PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN environment variables)."
                ),
            ));
        };
        let c = crate::provider::proxmox_client(settings).map_err(|e| {
            Diagnostic::error("Invalid Proxmox VE settings", e.to_string())
                .at(AttributePath::attr("proxmox"))
        })?;
        Ok(self.client.get_or_init(|| c).clone())
    }
}

/// Every data source the provider offers.
pub fn all(shared: &Arc<Shared>) -> Vec<Arc<dyn DataSource>> {
    let px = ProxmoxData {
        shared: shared.clone(),
        client: Arc::new(OnceLock::new()),
    };
    vec![
        Arc::new(proxmox_nodes::ProxmoxNodes(px.clone())),
        Arc::new(proxmox_template::ProxmoxTemplate(px)),
    ]
}
