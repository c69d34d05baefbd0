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

// The engine is driven from async request handlers on a multi-threaded runtime: its futures
// must be Send (checked at compile time).
const _: fn() = || {
    fn send<T: Send>(_: T) {}
    fn check(e: &Engine, i: &Inventory, o: &ObjectRef) {
        let keep = |_: &ObjectRef| false;
        let progress = |_: &str| {};
        send(e.apply(&[], i, &keep, &progress));
        send(e.wait_ready(i, std::time::Duration::ZERO, &progress));
        send(e.wait_nodes(None, std::time::Duration::ZERO, &progress));
        send(e.drift(&[]));
        send(e.delete(i, std::time::Duration::ZERO, &progress));
        send(e.import());
        send(e.get(o));
    }
    fn shared<T: Send + Sync>() {}
    shared::<Engine>();
    shared::<Client>();
    let _ = check;
};
