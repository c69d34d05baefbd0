//! `tfplugin`: Terraform plugin protocol 6 over tonic, plus a small provider framework.
//!
//! Layers, outermost first: [`serve`] (go-plugin handshake, AutoMTLS, process lifetime) →
//! `server` (the gRPC edge: one handler per RPC, converting protobuf at the edge) →
//! `framework::fwserver` (the protocol-free core: plan, apply, read, import, validate,
//! upgrade) → [`framework`] (schema, lifecycle rules, the traits resources implement) →
//! [`value`] (the value model and codecs). This crate knows no resource.

#![warn(missing_docs)]

pub mod diag;
pub mod framework;
pub mod log;
// serve.rs is being changed on another branch; its items get their docs after that merge.
#[allow(missing_docs)]
pub mod serve;
mod server;
pub mod value;

/// Generated protocol types. Public for tests that act as Terraform.
pub mod proto {
    #![allow(clippy::all, missing_docs, deprecated)]
    /// Terraform's plugin protocol 6.
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    /// go-plugin's own services: controller, stdio, broker.
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

pub use diag::{Diagnostic, Diagnostics};
pub use framework::*;
pub use value::{AttributePath, Type, Value};
