//! Ephemeral resources: values that live for one Terraform run, opened, renewed and closed.

use super::{Entry, Server, lifecycle};
use crate::diag::Diagnostics;
use crate::framework::resource::{EphemeralResource, OpenResponse, Private};
use crate::value::Value;

impl Server {
    /// Attribute validators, then the ephemeral resource's own checks.
    pub async fn validate_ephemeral_resource_config(
        &self,
        e: &Entry<dyn EphemeralResource>,
        config: &Value,
    ) -> Diagnostics {
        let mut diags = Diagnostics::new();
        lifecycle::validate_config(&e.schema.block, config, &mut diags);
        e.imp.validate(config, &mut diags).await;
        diags
    }

    /// Open the ephemeral resource, its result brought to Terraform's shape. `None` while
    /// the configuration is not wholly known: Terraform opens it again once it is, and
    /// until then its result is unknown.
    pub async fn open_ephemeral_resource(
        &self,
        e: &Entry<dyn EphemeralResource>,
        config: &Value,
    ) -> Option<OpenResponse> {
        if !config.is_wholly_known() {
            return None;
        }
        let mut out = e.imp.open(&self.ctx(), config).await;
        lifecycle::complete(&e.schema.block, &mut out.result);
        Some(out)
    }

    /// Renew what `open` returned, by its private state.
    pub async fn renew_ephemeral_resource(
        &self,
        e: &Entry<dyn EphemeralResource>,
        private: &Private,
    ) -> OpenResponse {
        e.imp.renew(&self.ctx(), private).await
    }

    /// Close what `open` returned, by its private state.
    pub async fn close_ephemeral_resource(
        &self,
        e: &Entry<dyn EphemeralResource>,
        private: &Private,
    ) -> Diagnostics {
        e.imp.close(&self.ctx(), private).await
    }
}
