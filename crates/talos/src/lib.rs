//! Talos Linux without Terraform: machine secrets, machine-config rendering, and a client for
//! apid. The provider's `infraflux_talos_cluster` resource builds on it.
//!
//! - `secrets`: [`secrets::MachineSecrets`] (generate, stable JSON for state, validate given
//!   secrets for adoption, issue an `os:admin` talosctl certificate).
//! - `render`: one node's machine config, a single v1alpha1 document (plus HostnameConfig /
//!   Layer2VIPConfig) up to Talos 1.13, the multi-document Kubernetes config from 1.14.
//! - `patch`: strategic merge and RFC 6902 patches with errors naming the patch and the path.
//! - `digest`: config hashes that survive Talos re-encoding; `talosconfig`: talosctl's file.
//! - `pem`: PEM with Talos's labels (`ED25519 PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`).
//! - [`client`]: the Talos API (apid) over gRPC, maintenance mode and mutual TLS; the only part
//!   that touches the network.

pub mod client;
pub mod digest;
pub mod patch;
pub mod pem;
pub mod render;
pub mod secrets;
pub mod talosconfig;

#[cfg(test)]
mod tests;
