//! One module per resource. Resources know the framework and the API clients, never gRPC.

use std::sync::Arc;

use tfplugin::Resource;

use crate::provider::Shared;

/// Every resource the provider offers.
pub fn all(_shared: &Arc<Shared>) -> Vec<Arc<dyn Resource>> {
    Vec::new()
}
