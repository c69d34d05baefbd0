//! A Proxmox VE API client that knows nothing of Terraform: the `infraflux_proxmox_vm`
//! resource builds on it.
//!
//! - [`client`]: transport, request retries; [`auth`]: API token or ticket+CSRF.
//! - [`tls`]: CA pinning, SHA-256 fingerprint pinning, system roots (aws-lc-rs provider).
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
pub mod tasks;
pub mod tls;
pub mod types;
pub mod upid;
pub mod vm;

#[cfg(test)]
mod tests;

// The resource's entry points; unused until `infraflux_proxmox_vm` exists.
#[allow(unused_imports)]
pub use client::{Client, ClientOptions, Params};
#[allow(unused_imports)]
pub use error::Error;
pub use upid::Upid;
#[allow(unused_imports)]
pub use vm::{CloneSpec, DeleteOptions};
