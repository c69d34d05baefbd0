//! Typed options of an Argo CD install and how they change the upstream objects: the namespace,
//! the HA variant, the `argocd-server` Service type, the insecure (plain HTTP) server, and extra
//! keys for `argocd-cm` and `argocd-cmd-params-cm`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::{Error, manifest, names, versions};

/// Prefix of the `argocd-cm` keys that hold resource customisations.
pub const RESOURCE_CUSTOMIZATIONS_PREFIX: &str = "resource.customizations.";

/// The kinds of resource customisation `argocd-cm` knows (the key segment after the prefix).
pub const RESOURCE_CUSTOMIZATION_KINDS: &[&str] = &[
    "health",
    "actions",
    "ignoreDifferences",
    "ignoreResourceUpdates",
    "knownTypeFields",
    "useOpenLibs",
];

/// The `argocd-cmd-params-cm` key the insecure option sets.
pub const SERVER_INSECURE_KEY: &str = "server.insecure";

/// How the `argocd-server` Service is exposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServiceType {
    /// Reachable inside the cluster only (the upstream default).
    #[default]
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// An external load balancer (e.g. Cilium LB IPAM).
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceType {
    type Err = Error;

    /// Exactly the Kubernetes spelling, as the API server wants it.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "ClusterIP" => Ok(ServiceType::ClusterIP),
            "NodePort" => Ok(ServiceType::NodePort),
            "LoadBalancer" => Ok(ServiceType::LoadBalancer),
            other => Err(Error::option(
                "server_service_type",
                format!("must be one of ClusterIP, NodePort, LoadBalancer (got {other:?})"),
            )),
        }
    }
}

/// What a user chooses about the install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where Argo CD runs; a DNS-1123 label.
    pub namespace: String,
    /// Install the high-availability manifest variant.
    pub ha: bool,
    /// Type of the `argocd-server` Service.
    pub server_service_type: ServiceType,
    /// Serve the UI and API over plain HTTP (TLS ends at an ingress or gateway).
    pub insecure: bool,
    /// Extra `argocd-cm` keys.
    pub cm: BTreeMap<String, String>,
    /// Extra `argocd-cmd-params-cm` keys.
    pub cmd_params: BTreeMap<String, String>,
    /// Resource customisations: key `health.cert-manager.io_Certificate` (with or without the
    /// `resource.customizations.` prefix) → the value of that `argocd-cm` key.
    pub resource_customizations: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: manifest::UPSTREAM_NAMESPACE.into(),
            ha: false,
            server_service_type: ServiceType::default(),
            insecure: false,
            cm: BTreeMap::new(),
            cmd_params: BTreeMap::new(),
            resource_customizations: BTreeMap::new(),
        }
    }
}

impl Options {
    /// The release URL of the manifest these options install ([`versions::manifest_url`] of the
    /// variant [`Options::ha`] picks).
    pub fn manifest_url(&self, version: &str) -> Result<String, Error> {
        versions::manifest_url(version, self.ha)
    }

    /// The sha256 that manifest must have: `configured` (`manifest_sha256`) or the pinned one
    /// ([`versions::expected_sha256`]).
    pub fn expected_sha256(
        &self,
        version: &str,
        configured: Option<&str>,
    ) -> Result<String, Error> {
        versions::expected_sha256(version, self.ha, configured)
    }

    /// Checks every option; the error names the first that cannot work.
    pub fn validate(&self) -> Result<(), Error> {
        self.argocd_cm_data().map(drop)?;
        self.cmd_params_data().map(drop)?;
        names::dns1123_label(&self.namespace).map_err(|m| Error::option("namespace", m))
    }

    /// The keys this crate writes into `argocd-cm`: [`Options::cm`] and the resource
    /// customisations under their full key names.
    pub fn argocd_cm_data(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut data = BTreeMap::new();
        for (k, v) in &self.cm {
            names::config_map_key(k).map_err(|m| Error::option(format!("cm[{k:?}]"), m))?;
            data.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.resource_customizations {
            let option = || format!("resource_customizations[{k:?}]");
            let rest = k.strip_prefix(RESOURCE_CUSTOMIZATIONS_PREFIX).unwrap_or(k);
            let kind = rest.split('.').next().unwrap_or_default();
            if !RESOURCE_CUSTOMIZATION_KINDS.contains(&kind) || rest.len() == kind.len() {
                return Err(Error::option(
                    option(),
                    format!(
                        "must be <kind>.<group_Kind> (or <kind>.all) with <kind> one of {}, e.g. \
                         \"health.cert-manager.io_Certificate\"",
                        RESOURCE_CUSTOMIZATION_KINDS.join(", ")
                    ),
                ));
            }
            let full = format!("{RESOURCE_CUSTOMIZATIONS_PREFIX}{rest}");
            names::config_map_key(&full).map_err(|m| Error::option(option(), m))?;
            if data.insert(full.clone(), v.clone()).is_some() {
                return Err(Error::option(
                    option(),
                    format!("argocd-cm key {full:?} is also set in `cm`; set it in one place"),
                ));
            }
        }
        Ok(data)
    }

    /// The keys this crate writes into `argocd-cmd-params-cm`: [`Options::cmd_params`] and
    /// `server.insecure: "true"` when [`Options::insecure`].
    pub fn cmd_params_data(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut data = BTreeMap::new();
        for (k, v) in &self.cmd_params {
            names::config_map_key(k).map_err(|m| Error::option(format!("cmd_params[{k:?}]"), m))?;
            data.insert(k.clone(), v.clone());
        }
        if self.insecure {
            match data.get(SERVER_INSECURE_KEY).map(String::as_str) {
                None | Some("true") => {}
                Some(other) => {
                    return Err(Error::option(
                        "insecure",
                        format!(
                            "is true but cmd_params sets {SERVER_INSECURE_KEY:?} to {other:?}; \
                             remove that key"
                        ),
                    ));
                }
            }
            data.insert(SERVER_INSECURE_KEY.into(), "true".into());
        }
        Ok(data)
    }

    /// Applies the options to the upstream objects: validates them, moves every object into
    /// [`Options::namespace`] ([`manifest::set_namespace`]), merges the extra keys into the
    /// ConfigMaps' `data` (a key given here wins over the manifest's) and sets the type of the
    /// `argocd-server` Service.
    pub fn apply(&self, objects: &mut [Value]) -> Result<(), Error> {
        self.validate()?;
        manifest::set_namespace(objects, &self.namespace);
        merge_data(objects, "argocd-cm", &self.argocd_cm_data()?, "cm")?;
        merge_data(
            objects,
            "argocd-cmd-params-cm",
            &self.cmd_params_data()?,
            "cmd_params",
        )?;
        let service = manifest::find_mut(objects, "Service", "argocd-server").ok_or(
            Error::MissingObject {
                kind: "Service",
                name: "argocd-server",
                option: "server_service_type",
            },
        )?;
        // Always explicit, so moving back to ClusterIP is a change server-side apply makes.
        service["spec"]["type"] = Value::String(self.server_service_type.as_str().into());
        Ok(())
    }
}

/// Merges `data` into the ConfigMap `name`; nothing to merge needs no ConfigMap.
fn merge_data(
    objects: &mut [Value],
    name: &'static str,
    data: &BTreeMap<String, String>,
    option: &'static str,
) -> Result<(), Error> {
    if data.is_empty() {
        return Ok(());
    }
    let cm = manifest::find_mut(objects, "ConfigMap", name).ok_or(Error::MissingObject {
        kind: "ConfigMap",
        name,
        option,
    })?;
    let Some(cm) = cm.as_object_mut() else {
        return Ok(());
    };
    let existing = cm
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !existing.is_object() {
        *existing = Value::Object(Map::new());
    }
    if let Some(existing) = existing.as_object_mut() {
        for (k, v) in data {
            existing.insert(k.clone(), Value::String(v.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upstream() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "argocd-cmd-params-cm"}, "data": {"keep": "me"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "argocd-server"},
                   "spec": {"ports": [{"port": 80}]}}),
        ]
    }

    #[test]
    fn service_types_parse_exactly_and_errors_name_the_option() {
        assert_eq!(
            "LoadBalancer".parse::<ServiceType>().unwrap(),
            ServiceType::LoadBalancer
        );
        let e = "loadbalancer"
            .parse::<ServiceType>()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("server_service_type: must be one of ClusterIP, NodePort, LoadBalancer"),
            "{e}"
        );
    }

    #[test]
    fn defaults_change_only_the_namespace_and_the_service_type() {
        let mut objects = upstream();
        Options::default().apply(&mut objects).unwrap();
        assert!(objects[0].get("data").is_none());
        assert_eq!(objects[1]["data"], json!({"keep": "me"}));
        assert_eq!(objects[2]["spec"]["type"], "ClusterIP");
        assert!(
            objects
                .iter()
                .all(|o| o["metadata"]["namespace"] == "argocd")
        );
    }

    #[test]
    fn options_reach_their_objects() {
        let mut o = Options {
            namespace: "gitops".into(),
            server_service_type: ServiceType::LoadBalancer,
            insecure: true,
            ..Options::default()
        };
        o.cm.insert("url".into(), "https://cd.example.com".into());
        o.cmd_params
            .insert("reposerver.parallelism.limit".into(), "4".into());
        o.resource_customizations.insert(
            "health.cert-manager.io_Certificate".into(),
            "hs = {}".into(),
        );
        o.resource_customizations.insert(
            "resource.customizations.ignoreDifferences.all".into(),
            "jsonPointers: []".into(),
        );
        let mut objects = upstream();
        o.apply(&mut objects).unwrap();
        assert_eq!(
            objects[0]["data"],
            json!({
                "resource.customizations.health.cert-manager.io_Certificate": "hs = {}",
                "resource.customizations.ignoreDifferences.all": "jsonPointers: []",
                "url": "https://cd.example.com",
            })
        );
        assert_eq!(
            objects[1]["data"],
            json!({"keep": "me", "reposerver.parallelism.limit": "4", "server.insecure": "true"})
        );
        assert_eq!(objects[2]["spec"]["type"], "LoadBalancer");
        assert_eq!(objects[2]["metadata"]["namespace"], "gitops");
    }

    #[test]
    fn bad_options_are_named() {
        let cases: Vec<(Options, &str)> = vec![
            (
                Options {
                    namespace: "Argo_CD".into(),
                    ..Options::default()
                },
                "namespace: ",
            ),
            (
                Options {
                    cm: [("bad key".into(), "x".into())].into(),
                    ..Options::default()
                },
                "cm[\"bad key\"]: ",
            ),
            (
                Options {
                    cmd_params: [("a/b".into(), "x".into())].into(),
                    ..Options::default()
                },
                "cmd_params[\"a/b\"]: ",
            ),
            (
                Options {
                    resource_customizations: [("colour.apps_Deployment".into(), "x".into())].into(),
                    ..Options::default()
                },
                "resource_customizations[\"colour.apps_Deployment\"]: must be",
            ),
            (
                Options {
                    resource_customizations: [("health".into(), "x".into())].into(),
                    ..Options::default()
                },
                "resource_customizations[\"health\"]: must be",
            ),
            (
                Options {
                    cm: [("resource.customizations.health.x_Y".into(), "a".into())].into(),
                    resource_customizations: [("health.x_Y".into(), "b".into())].into(),
                    ..Options::default()
                },
                "also set in `cm`",
            ),
            (
                Options {
                    insecure: true,
                    cmd_params: [(SERVER_INSECURE_KEY.into(), "false".into())].into(),
                    ..Options::default()
                },
                "insecure: is true but cmd_params",
            ),
        ];
        for (o, want) in cases {
            let e = o.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{want} not in {e}");
            assert!(o.apply(&mut upstream()).is_err());
        }
    }

    #[test]
    fn ha_picks_the_ha_manifest_and_its_digest() {
        let ha = Options {
            ha: true,
            ..Options::default()
        };
        assert!(
            ha.manifest_url("v3.5.1")
                .unwrap()
                .ends_with("/manifests/ha/install.yaml")
        );
        assert!(
            ha.expected_sha256("v3.5.1", None).is_err(),
            "HA v3.5.1 is not pinned"
        );
        let plain = Options::default();
        assert!(
            plain
                .manifest_url("v3.5.1")
                .unwrap()
                .ends_with("/v3.5.1/manifests/install.yaml")
        );
        assert_eq!(
            plain.expected_sha256("v3.5.1", None).unwrap(),
            versions::KNOWN_VERSIONS[0].manifest_sha256
        );
    }

    #[test]
    fn a_missing_object_is_named_with_the_option_that_needs_it() {
        let mut objects = upstream();
        objects.remove(2);
        let e = Options::default()
            .apply(&mut objects)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Service \"argocd-server\"") && e.contains("server_service_type"),
            "{e}"
        );
        let o = Options {
            cm: [("url".into(), "x".into())].into(),
            ..Options::default()
        };
        let e = o.apply(&mut upstream()[1..]).unwrap_err().to_string();
        assert!(
            e.contains("ConfigMap \"argocd-cm\"") && e.contains("option cm"),
            "{e}"
        );
    }
}
