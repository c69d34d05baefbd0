//! A Proxmox VE API client that knows nothing of Terraform: the provider's
//! `infraflux_proxmox_vm` resource and `infraflux_proxmox_*` data sources build on it.
//!
//! - [`settings`]: what a user configures (endpoint, credentials, TLS trust, limits).
//! - [`client`]: transport, request retries; [`auth`]: API token or ticket+CSRF.
//! - [`tls`]: CA pinning, SHA-256 fingerprint pinning, system roots (the shared
//!   `infraflux_tls` crypto provider).
//! - [`error`]: one error type whose messages say what to do.
//! - [`upid`], [`tasks`]: task ids and waiting for tasks on the node that runs them.
//! - [`retry`]: jittered backoff; [`limiter`]: per-node/per-storage task slots;
//!   [`cache`]: the shared `/cluster/resources?type=vm` answer.
//! - [`api`]: cluster verbs and VM id allocation; [`vm`]: QEMU verbs; [`types`]: answers.
//! - [`normalize`]: PVE's value forms ↔ canonical ones.

pub mod api;
pub mod auth;
pub mod cache;
pub mod client;
pub mod error;
pub mod limiter;
pub mod normalize;
pub mod retry;
pub mod settings;
pub mod tasks;
pub mod tls;
pub mod types;
pub mod upid;
pub mod vm;

#[cfg(test)]
mod tests;

pub use client::{Client, ClientOptions, Params};
pub use error::Error;
pub use settings::{Auth, Settings, TlsTrust};
pub use upid::Upid;
pub use vm::{CloneSpec, DeleteOptions};
