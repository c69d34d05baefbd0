//! Argo CD for the `infraflux_argocd_bootstrap` resource, built as Kubernetes objects: the pinned
//! upstream install manifest (checked by sha256, moved into the chosen namespace, changed by
//! typed [`Options`]), the admin password patch, repository credential Secrets and the root
//! app-of-apps Application. Pure: bytes and options in, objects out — no Kubernetes client, no
//! network, no Argo CD API.
//!
//! ```
//! use infraflux_argocd::{manifest, versions};
//! let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\n";
//! let digest = versions::sha256_hex(yaml.as_bytes());
//! versions::verify(yaml.as_bytes(), &digest).unwrap();
//! let mut objects = manifest::parse(yaml).unwrap();
//! manifest::set_namespace(&mut objects, "gitops");
//! assert_eq!(objects[0]["metadata"]["namespace"], "gitops");
//! ```

#![warn(missing_docs)]

pub mod admin;
mod error;
pub mod manifest;
mod names;
mod options;
pub mod repos;
pub mod root_app;
pub mod schema;
pub mod versions;

use serde_json::Value;

pub use error::Error;
pub use manifest::ObjectRef;
pub use options::{
    Options, RESOURCE_CUSTOMIZATION_KINDS, RESOURCE_CUSTOMIZATIONS_PREFIX, SERVER_INSECURE_KEY,
    ServiceType,
};

/// The objects to apply for an install: `manifest` (the install manifest's bytes) checked against
/// `expected_sha256` before anything else ([`versions::verify`]), parsed ([`manifest::parse`]) and
/// changed by `options` ([`Options::apply`]). Nothing is returned unless every step passes.
pub fn install_objects(
    manifest: &[u8],
    expected_sha256: &str,
    options: &Options,
) -> Result<Vec<Value>, Error> {
    options.validate()?;
    versions::verify(manifest, expected_sha256)?;
    let mut objects = manifest::parse_bytes(manifest)?;
    options.apply(&mut objects)?;
    Ok(objects)
}
