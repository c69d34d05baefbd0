//! The Cilium 1.20.0 object set, built in Rust from typed [`Options`]: no Helm, no templates, no
//! network. The objects equal what the real chart renders for the same values (the golden tests
//! compare them object by object); the chart's random TLS material comes in as [`Certificates`]
//! so a caller can keep it across plans.
//!
//! ```
//! use infraflux_cilium::{Certificates, Options, build};
//! let certs = Certificates::generate(time::OffsetDateTime::now_utc()).unwrap();
//! let manifests = build(&Options::default(), &certs).unwrap();
//! assert!(manifests.objects.iter().any(|o| o["kind"] == "DaemonSet"));
//! let yaml = manifests.rendered_manifests().unwrap();
//! assert!(yaml.contains("kind: ConfigMap"));
//! ```

#![warn(missing_docs)]

mod agent;
mod certs;
mod config_map;
mod envoy;
mod gateway;
mod hubble;
mod ingress;
mod known_keys;
mod meta;
mod monitoring;
mod operator;
mod options;
mod rbac;
mod render;
mod resolve;

use serde_json::{Value, json};

pub use certs::{CertError, CertKey, Certificates};
pub use options::{
    ApiServer, Bpf, CILIUM_VERSION, Encryption, Hubble, IngressController, Ipam, LoadBalancer,
    Operator, Options, Prometheus, Routing,
};
pub use render::{RenderError, object_hash, rendered_manifests};
pub use resolve::OptionsError;

/// The built objects of one install.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifests {
    /// Every object, in apply order: CRDs, Namespaces, then the rest by kind (identity and RBAC
    /// before configuration, Services before workloads), each kind sorted by namespace and name.
    pub objects: Vec<Value>,
    /// Things the user should know that do not stop the build (unknown `extra_config` keys).
    pub warnings: Vec<String>,
}

impl Manifests {
    /// The objects as one multi-document YAML text.
    pub fn rendered_manifests(&self) -> Result<String, RenderError> {
        rendered_manifests(&self.objects)
    }
}

/// Checks `options` without building: `Ok(warnings)` or the first problem.
pub fn validate(options: &Options) -> Result<Vec<String>, OptionsError> {
    resolve::resolve(options).map(|(_, warnings)| warnings)
}

/// Builds every object of the install `options` describe, with the given TLS material.
pub fn build(options: &Options, certs: &Certificates) -> Result<Manifests, OptionsError> {
    let (c, warnings) = resolve::resolve(options)?;
    let mut objects = Vec::new();
    if c.gateway_api {
        objects.extend(gateway::crds());
    }
    // The secrets namespace exists whatever the options: policies read TLS secrets from it.
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": meta::SECRETS_NAMESPACE,
            "labels": meta::part_of(),
            // The chart leaves an empty `annotations:` (null).
            "annotations": null,
        },
    }));
    objects.push(config_map::cilium_config(&c));
    objects.extend(rbac::objects(&c));
    objects.push(agent::daemon_set(&c));
    objects.push(operator::deployment(&c));
    objects.extend(envoy::objects(&c));
    objects.extend(hubble::objects(&c, certs));
    objects.extend(ingress::objects(&c));
    objects.extend(gateway::objects(&c));
    objects.extend(monitoring::objects(&c));
    render::sort(&mut objects);
    Ok(Manifests { objects, warnings })
}

/// The Gateway API CRDs (standard channel, v1.6.1: the version Cilium 1.20 is built against),
/// schema prose dropped. [`build`] puts them first when `gateway_api` is on.
pub fn gateway_api_crds() -> Vec<Value> {
    gateway::crds()
}
