//! InfraFlux lab: a simulated Proxmox VE cluster, Talos nodes (and, later, a Kubernetes API)
//! that speaks the real wire protocols, for tests and the embedded demo.
//!
//! Module seams:
//! - [`lab`]: lifecycle (`Lab::start`, `Lab::info`, shutdown) and the `lab.json` document.
//! - [`tls`]: the lab CA and server certificates.
//! - [`faults`]: fault injection settings and the seeded RNG behind them.
//! - [`control`]: the plain-HTTP loopback control endpoint (`/state`, `/faults`).
//! - [`pve`]: the Proxmox VE API (schema validation, auth, state, tasks, handlers).
//! - [`talos`]: simulated Talos nodes, one per started VM (gRPC over TLS/mTLS).
//! - [`k8s`]: a Kubernetes API server per bootstrapped Talos cluster.
//! - [`cli`]: the `infraflux-lab up|down` command line.

pub mod cli;
pub mod control;
pub mod faults;
pub mod http;
pub mod k8s;
pub mod lab;
pub mod pve;
pub mod talos;
pub mod tls;

pub use lab::{Lab, LabError, LabInfo, LabOptions, TokenInfo, TokenSpec};
