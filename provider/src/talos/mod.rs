//! Talos Linux: machine secrets and machine-config rendering. Pure code: no network, no
//! Terraform. The Talos cluster resource (issue 5) builds on it.
//!
//! - `secrets`: [`secrets::MachineSecrets`] (generate, stable JSON for state, validate given
//!   secrets for adoption, issue an `os:admin` talosctl certificate).
//! - `render`: one node's machine config, a single v1alpha1 document (plus HostnameConfig /
//!   Layer2VIPConfig) up to Talos 1.13, the multi-document Kubernetes config from 1.14.
//! - `patch`: strategic merge and RFC 6902 patches with errors naming the patch and the path.
//! - `digest`: config hashes that survive Talos re-encoding; `talosconfig`: talosctl's file.
//! - `pem`: PEM with Talos's labels (`ED25519 PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`).

// The whole client API is tested against the lab; not every verb has a resource caller yet.
#[allow(dead_code)]
pub mod client;
pub mod digest;
pub mod patch;
pub mod pem;
pub mod render;
pub mod secrets;
pub mod talosconfig;

#[cfg(test)]
mod tests;
