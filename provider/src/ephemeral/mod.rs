//! Ephemeral resources: values that live for one Terraform run and never reach plan or state.

mod talos_credentials;

use std::sync::Arc;

use tfplugin::EphemeralResource;

/// Every ephemeral resource the provider offers.
pub fn all() -> Vec<Arc<dyn EphemeralResource>> {
    vec![Arc::new(talos_credentials::TalosCredentials)]
}
