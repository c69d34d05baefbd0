//! A small Kubernetes API client: what the cluster resources need from the API server.
//! Knows no Terraform.
//!
//! - [`kubeconfig`]: parse the admin kubeconfig Talos hands out (one cluster, one client
//!   certificate user), build one with a fresh client certificate.
//! - [`client`]: HTTPS with the kubeconfig's CA and client certificate; readiness, nodes.

pub mod client;
pub mod kubeconfig;

pub use client::K8sClient;
pub use kubeconfig::Kubeconfig;
