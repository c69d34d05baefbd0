//! The provider: its configuration block and what it shares with every resource.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tfplugin::{
    AttributePath, Ctx, DataSource, Diagnostic, Diagnostics, EphemeralResource, Provider, Resource,
    Schema, Value,
};

use infraflux_proxmox as proxmox;

use crate::config;

/// State shared by all resources and data sources of one provider process (one Terraform run).
#[derive(Default)]
pub struct Shared {
    /// Set by ConfigureProvider; `None` inside when no Proxmox endpoint is configured.
    proxmox_settings: OnceLock<Option<proxmox::Settings>>,
    /// Built on first use, then the one client of the process: one connection pool, ticket,
    /// task limiter and `/cluster/resources` cache for every resource and data source.
    proxmox_client: OnceLock<proxmox::Client>,
}

impl Shared {
    /// Remember the resolved `proxmox` block (ConfigureProvider runs once per process).
    pub fn configure_proxmox(&self, settings: Option<proxmox::Settings>) {
        let _ = self.proxmox_settings.set(settings);
    }

    /// The process's Proxmox VE client, for the resource or data source `who`; an error naming
    /// what to configure when there is no `proxmox` block.
    pub fn proxmox(&self, who: &str) -> Result<proxmox::Client, Diagnostic> {
        if let Some(c) = self.proxmox_client.get() {
            return Ok(c.clone());
        }
        let Some(Some(settings)) = self.proxmox_settings.get() else {
            return Err(Diagnostic::error(
                "Proxmox VE is not configured",
                format!(
                    "{who} needs a `proxmox {{ endpoint = …, api_token = … }}` block in the `provider \"infraflux\"` block (or the PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN environment variables)."
                ),
            ));
        };
        let opts = proxmox::ClientOptions {
            user_agent: concat!("terraform-provider-infraflux/", env!("CARGO_PKG_VERSION")).into(),
            ..proxmox::ClientOptions::default()
        };
        let c = proxmox::Client::with_options(settings, opts).map_err(|e| {
            Diagnostic::error("Invalid Proxmox VE settings", e.to_string())
                .at(AttributePath::attr("proxmox"))
        })?;
        // Two first callers at once may both build one; every caller gets the one kept.
        Ok(self.proxmox_client.get_or_init(|| c).clone())
    }
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
                self.shared.configure_proxmox(settings);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxmox_without_its_block_names_who_needs_it() {
        let shared = Shared::default();
        shared.configure_proxmox(None);
        let e = shared.proxmox("infraflux_proxmox_nodes").unwrap_err();
        assert_eq!(e.summary, "Proxmox VE is not configured");
        assert!(
            e.detail
                .starts_with("infraflux_proxmox_nodes needs a `proxmox {"),
            "{}",
            e.detail
        );
    }
}
