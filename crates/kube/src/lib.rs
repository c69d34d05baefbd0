//! A Kubernetes apply engine on kube-rs. Knows no Terraform.
//!
//! [`Engine::apply`] server-side applies an object set in dependency order under one field
//! manager, labels every object with an inventory label and prunes what a previous apply made
//! and this one no longer has; [`Engine::wait_ready`] and [`Engine::wait_nodes`] wait for
//! rollouts and Nodes; [`Engine::drift`] compares desired with live objects; [`Engine::delete`]
//! removes an inventory; [`Engine::import`] rebuilds one from the labelled objects.

mod client;
mod discovery;
mod drift;
mod engine;
mod error;
mod kubeconfig;
mod object;
mod order;
mod wait;

pub use client::{Client, NodeInfo};
pub use drift::{Drift, DriftKind, changed_fields};
pub use engine::{ApplyError, Engine};
pub use error::Error;
pub use kubeconfig::Kubeconfig;
pub use object::{Inventory, InventoryEntry, ObjectRef, object_hash};
