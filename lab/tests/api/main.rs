//! Drives the lab in-process over real HTTPS (reqwest + rustls trusting the lab CA).

mod apply;
mod auth;
mod cli;
mod common;
mod control;
mod director;
mod etcd;
mod k8s;
mod k8s_apps;
mod k8s_argocd;
mod k8s_faults;
mod k8s_gc;
mod k8s_kubectl;
mod k8s_openapi;
mod locks;
mod schema;
mod talos;
mod talos_kit;
mod vm;
