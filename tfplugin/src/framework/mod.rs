//! The concepts a provider author touches: schema, validators, plan modifiers, timeouts,
//! the resource traits, and the lifecycle rules Terraform requires. Inside the crate,
//! `fwserver` orchestrates each request over them, knowing no protobuf.

pub(crate) mod fwserver;
pub mod lifecycle;
pub mod planmod;
pub mod resource;
pub mod schema;
pub mod timeouts;
pub mod validate;

pub use resource::*;
pub use schema::{AttrKind, Attribute, Block, NestedBlock, Nesting, Schema};
