//! What the resource keeps between runs: the certificates (private state, never shown) and the
//! inventory (state: object key → hash of the object as built).

use std::collections::BTreeMap;

use infraflux_cilium::{CertKey, Certificates, Manifests, Options, object_hash};
use serde_json::{Value as Json, json};
use tfplugin::Value;
use tfplugin::framework::resource::Private;

/// Private-state key of the certificates.
const CERTS: &str = "certificates";
/// Private-state key of the `rotate_certificates` value the certificates were made under.
const ROTATION: &str = "rotation";

pub use crate::resources::kube_common::key;

/// The inventory value of built objects: key → hash.
pub fn inventory_of(objects: &[Json]) -> BTreeMap<String, String> {
    objects.iter().map(|o| (key(o), object_hash(o))).collect()
}

pub use crate::resources::kube_common::{engine_inventory, inventory_map, inventory_value};

/// The objects built with two different placeholder certificate sets: the keys whose hash
/// differs are the ones the real certificates decide. Cheap: no key is generated.
pub fn plan_without_certs(options: &Options) -> Option<(BTreeMap<String, String>, Vec<String>)> {
    let placeholder = |tag: &str| {
        let ck = |what: &str| CertKey {
            cert_pem: format!("{tag}-{what}-cert"),
            key_pem: format!("{tag}-{what}-key"),
        };
        Certificates {
            ca: ck("ca"),
            hubble_server: ck("server"),
            hubble_relay_client: ck("client"),
        }
    };
    let a = inventory_of(
        &infraflux_cilium::build(options, &placeholder("a"))
            .ok()?
            .objects,
    );
    let b = inventory_of(
        &infraflux_cilium::build(options, &placeholder("b"))
            .ok()?
            .objects,
    );
    let unknown = a
        .iter()
        .filter(|(k, h)| b.get(*k) != Some(*h))
        .map(|(k, _)| k.clone())
        .collect();
    Some((a, unknown))
}

/// The certificates kept in private state, with the `rotate_certificates` value they were made
/// under.
pub fn certs(private: &Private) -> Option<(Certificates, Json)> {
    let c = private.get(CERTS)?;
    let ck = |name: &str| {
        Some(CertKey {
            cert_pem: c[name]["cert"].as_str()?.to_string(),
            key_pem: c[name]["key"].as_str()?.to_string(),
        })
    };
    let certs = Certificates {
        ca: ck("ca")?,
        hubble_server: ck("hubble_server")?,
        hubble_relay_client: ck("hubble_relay_client")?,
    };
    Some((certs, private.get(ROTATION).cloned().unwrap_or(Json::Null)))
}

/// Keeps `certs` (made under `rotation`) in private state.
pub fn keep_certs(private: &mut Private, certs: &Certificates, rotation: &Value) {
    let ck = |c: &CertKey| json!({"cert": c.cert_pem, "key": c.key_pem});
    private.insert(
        CERTS.to_string(),
        json!({
            "ca": ck(&certs.ca),
            "hubble_server": ck(&certs.hubble_server),
            "hubble_relay_client": ck(&certs.hubble_relay_client),
        }),
    );
    private.insert(ROTATION.to_string(), rotation_json(rotation));
}

/// `rotate_certificates` as kept in private state.
pub fn rotation_json(v: &Value) -> Json {
    v.as_str()
        .map_or(Json::Null, |s| Json::String(s.to_string()))
}

/// The kept certificates when they still hold for the configuration's `rotate_certificates`.
pub fn current_certs(private: &Private, rotation: &Value) -> Option<Certificates> {
    let (certs, made_under) = certs(private)?;
    (made_under == rotation_json(rotation)).then_some(certs)
}

/// The built manifests' YAML, or the error as text.
pub fn rendered(manifests: &Manifests) -> Result<String, String> {
    manifests.rendered_manifests().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::kube_common::object_ref;

    #[test]
    fn keys_name_the_object_and_parse_back() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                        "metadata": {"name": "cilium", "namespace": "kube-system"}});
        assert_eq!(key(&ds), "apps/v1 DaemonSet kube-system/cilium");
        let r = object_ref(&key(&ds)).expect("parses");
        assert_eq!((r.group.as_str(), r.version.as_str()), ("apps", "v1"));
        assert_eq!(r.namespace.as_deref(), Some("kube-system"));
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cilium-secrets"}});
        let r = object_ref(&key(&ns)).expect("parses");
        assert_eq!(
            (r.group.as_str(), r.kind.as_str(), r.namespace),
            ("", "Namespace", None)
        );
    }

    #[test]
    fn only_certificate_bearing_objects_are_unknown_before_the_certificates_exist() {
        let (inv, unknown) = plan_without_certs(&Options::default()).expect("builds");
        assert!(inv.contains_key("apps/v1 DaemonSet kube-system/cilium"));
        assert!(!unknown.is_empty());
        assert!(
            unknown.iter().all(|k| k.starts_with("v1 Secret ")),
            "{unknown:?}"
        );
        assert!(unknown.len() < inv.len() / 4);
    }

    #[test]
    fn certificates_survive_private_state_and_rotation_invalidates_them() {
        let certs = Certificates::generate(time::OffsetDateTime::now_utc()).expect("certs");
        let mut private = Private::new();
        keep_certs(&mut private, &certs, &Value::from("r1"));
        assert_eq!(current_certs(&private, &Value::from("r1")), Some(certs));
        assert_eq!(current_certs(&private, &Value::from("r2")), None);
        assert_eq!(current_certs(&private, &Value::Null), None);
    }
}
