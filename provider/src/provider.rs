//! The provider: its configuration block and what it shares with every resource.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tfplugin::{
    Ctx, DataSource, Diagnostics, EphemeralResource, Provider, Resource, Schema, Value,
};

use infraflux_proxmox as proxmox;

use crate::config;

/// State shared by all resources of one provider process (one Terraform run).
#[derive(Default)]
pub struct Shared {
    /// Set by ConfigureProvider; `None` inside when no Proxmox endpoint is configured.
    pub proxmox: OnceLock<Option<proxmox::Settings>>,
}

/// A Proxmox VE client that names the provider in its requests.
pub fn proxmox_client(settings: &proxmox::Settings) -> Result<proxmox::Client, proxmox::Error> {
    let opts = proxmox::ClientOptions {
        user_agent: concat!("terraform-provider-infraflux/", env!("CARGO_PKG_VERSION")).into(),
        ..proxmox::ClientOptions::default()
    };
    proxmox::Client::with_options(settings, opts)
}

/// The `infraflux` provider: its block, resources, data sources and ephemeral resources.
#[derive(Default)]
pub struct InfraFlux {
    shared: Arc<Shared>,
}

#[async_trait]
impl Provider for InfraFlux {
    fn type_name(&self) -> &'static str {
        "infraflux"
    }

    fn schema(&self) -> Schema {
        config::schema()
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        config::validate(config, diags);
    }

    async fn configure(&self, _ctx: &Ctx, config: &Value) -> Diagnostics {
        match config::resolve(config, &|k| std::env::var(k).ok()) {
            Ok((settings, warnings)) => {
                let _ = self.shared.proxmox.set(settings);
                warnings
            }
            Err(diags) => diags,
        }
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        crate::resources::all(&self.shared)
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        crate::data_sources::all(&self.shared)
    }

    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        crate::ephemeral::all()
    }
}
