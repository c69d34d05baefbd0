//! `tfplugin`: Terraform plugin protocol 6 over tonic, plus a small provider framework.
//!
//! Layers, outermost first: [`serve`] (go-plugin handshake, AutoMTLS, process lifetime) →
//! `server` (gRPC services; converts the wire at the edge) → [`framework`] (schema, lifecycle
//! rules, the traits resources implement) → [`value`] (the value model and codecs).
//! This crate knows no resource.

pub mod diag;
pub mod framework;
pub mod log;
pub mod serve;
mod server;
pub mod value;

/// Generated protocol types. Public for tests that act as Terraform.
pub mod proto {
    #![allow(clippy::all, missing_docs, deprecated)]
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

pub use diag::{Diagnostic, Diagnostics};
pub use framework::*;
pub use value::{AttributePath, Type, Value};
