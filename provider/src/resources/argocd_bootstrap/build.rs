//! The objects of an install, built from the settings and the verified manifest: the
//! Namespace, the manifest's objects (the admin password merged into its own `argocd-secret`),
//! repository credential Secrets, the root Application and its AppProject. The admin password's
//! hash is kept in private state so an unchanged password rebuilds the same object.

use std::collections::BTreeMap;

use infraflux_argocd::{admin, manifest};
use infraflux_kube::object_hash;
use serde_json::{Value as Json, json};
use tfplugin::Diagnostic;
use tfplugin::framework::resource::Private;

use super::options::{Settings, diagnostic};
use crate::resources::kube_common::key;

/// Private-state key of the admin password's hash and time.
const ADMIN: &str = "admin";

/// The admin password as Argo CD stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// bcrypt hash.
    pub hash: String,
    /// When it was set (RFC 3339).
    pub mtime: String,
}

/// The admin hash kept in private state.
pub fn kept_admin(private: &Private) -> Option<Admin> {
    let a = private.get(ADMIN)?;
    Some(Admin {
        hash: a["hash"].as_str()?.to_string(),
        mtime: a["mtime"].as_str()?.to_string(),
    })
}

/// Keeps `admin` in private state.
pub fn keep_admin(private: &mut Private, admin: &Admin) {
    private.insert(
        ADMIN.to_string(),
        json!({"hash": admin.hash, "mtime": admin.mtime}),
    );
}

/// The kept hash when it is the hash of `password`.
pub fn admin_for(private: &Private, password: &str) -> Option<Admin> {
    kept_admin(private).filter(|a| admin::password_matches(password, &a.hash))
}

/// A stand-in for the hash before it exists (plan of a new or changed password): a valid
/// bcrypt shape, never applied.
pub fn placeholder_admin() -> Admin {
    Admin {
        hash: format!("$2a$10${}", "a".repeat(53)),
        mtime: "1970-01-01T00:00:00Z".into(),
    }
}

/// The inventory key of the `argocd-secret` object.
pub fn admin_secret_key(settings: &Settings) -> String {
    format!(
        "v1 Secret {}/{}",
        settings.options.namespace,
        admin::ADMIN_SECRET_NAME
    )
}

/// Every object to apply, in no particular order (the engine orders them).
pub fn objects(
    settings: &Settings,
    manifest_bytes: &[u8],
    admin_secret: &Admin,
) -> Result<Vec<Json>, Diagnostic> {
    let ns = settings.options.namespace.as_str();
    let mut objects = vec![manifest::namespace_object(ns)];
    objects.extend(
        infraflux_argocd::install_objects(manifest_bytes, &settings.sha256, &settings.options)
            .map_err(|e| diagnostic(&e, settings.sha256_from))?,
    );
    let patch = admin::admin_secret_patch(ns, &admin_secret.hash, &admin_secret.mtime)
        .map_err(|e| diagnostic(&e, "admin_password"))?;
    // Into the manifest's own argocd-secret: one object of that name in the set.
    let secret =
        manifest::find_mut(&mut objects, "Secret", admin::ADMIN_SECRET_NAME).ok_or_else(|| {
            Diagnostic::error(
                "Not an Argo CD install manifest",
                format!(
                    "The install manifest has no Secret {}; check version, manifest_url or \
                     manifest_path.",
                    admin::ADMIN_SECRET_NAME
                ),
            )
        })?;
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    if let (Some(data), Some(add)) = (secret["data"].as_object_mut(), patch["data"].as_object()) {
        data.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (i, r) in settings.repositories.iter().enumerate() {
        let s = r.to_secret(ns).map_err(|e| {
            let mut d = diagnostic(&e, "");
            d.path = Some(tfplugin::AttributePath::attr("repository").push_index(i));
            d
        })?;
        objects.push(s);
    }
    if let Some(p) = &settings.project {
        objects.push(p.build().map_err(|e| diagnostic(&e, "root_app.project"))?);
    }
    if let Some(app) = &settings.root_app {
        objects.push(app.build().map_err(|e| diagnostic(&e, "root_app"))?);
    }
    Ok(objects)
}

/// Key → hash of each object.
pub fn inventory_of(objects: &[Json]) -> BTreeMap<String, String> {
    objects.iter().map(|o| (key(o), object_hash(o))).collect()
}

/// Whether an inventory key names an Argo CD Application.
pub fn is_application(key: &str) -> bool {
    key.starts_with("argoproj.io/") && key.split(' ').nth(1) == Some("Application")
}

/// Whether the engine must spare `r` when pruning (objects Argo CD makes itself).
pub fn never_prune(namespace: &str, r: &infraflux_kube::ObjectRef) -> bool {
    let k = crate::resources::kube_common::key_of(r);
    manifest::never_prune(namespace).iter().any(|n| {
        let nk = match &n.namespace {
            Some(ns) => format!("{} {} {ns}/{}", n.api_version, n.kind, n.name),
            None => format!("{} {} {}", n.api_version, n.kind, n.name),
        };
        nk == k
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use tfplugin::Value;

    fn settings(attrs: &[(&str, Value)]) -> Settings {
        let mut c = Value::object(attrs.iter().cloned());
        for a in [
            "version",
            "manifest_url",
            "manifest_sha256",
            "manifest_path",
            "namespace",
            "ha",
            "server_service_type",
            "insecure",
            "cm",
            "cmd_params",
            "resource_customizations",
            "repository",
            "root_app",
        ] {
            if c.attr(a).is_null() {
                c.set_attr(a, Value::Null);
            }
        }
        super::super::options::settings(&c)
            .expect("valid")
            .expect("known")
    }

    #[test]
    fn the_admin_hash_is_kept_only_for_its_password() {
        let mut private = Private::new();
        assert_eq!(admin_for(&private, "pw"), None);
        let a = Admin {
            hash: admin::hash_password("pw").expect("hash"),
            mtime: "2026-01-01T00:00:00Z".into(),
        };
        keep_admin(&mut private, &a);
        assert_eq!(admin_for(&private, "pw"), Some(a));
        assert_eq!(admin_for(&private, "other"), None);
    }

    #[test]
    fn the_reference_manifest_builds_with_the_password_in_its_own_secret() {
        let Some(yaml) = infraflux_reference::read("argocd/install-v3.5.1.yaml") else {
            return;
        };
        let root = Value::object([
            ("repo_url", Value::from("https://git.example.com/p.git")),
            ("target_revision", Value::Null),
            ("path", Value::Null),
            ("project", Value::Null),
            ("name", Value::Null),
        ]);
        let s = settings(&[("namespace", Value::from("gitops")), ("root_app", root)]);
        let a = Admin {
            hash: admin::hash_password("pw").expect("hash"),
            mtime: "2026-01-01T00:00:00Z".into(),
        };
        let built = objects(&s, yaml.as_bytes(), &a).expect("builds");
        let inv = inventory_of(&built);
        assert_eq!(inv.len(), built.len(), "every object once");
        assert!(inv.contains_key("v1 Namespace gitops"));
        assert!(inv.contains_key("argoproj.io/v1alpha1 Application gitops/root"));
        let secrets: Vec<&Json> = built
            .iter()
            .filter(|o| o["kind"] == "Secret" && o["metadata"]["name"] == "argocd-secret")
            .collect();
        assert_eq!(secrets.len(), 1);
        let hash = base64::engine::general_purpose::STANDARD
            .decode(
                secrets[0]["data"][admin::PASSWORD_KEY]
                    .as_str()
                    .expect("key"),
            )
            .expect("base64");
        assert!(admin::password_matches(
            "pw",
            std::str::from_utf8(&hash).expect("utf-8")
        ));
        assert_eq!(
            secrets[0]["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "argocd"
        );
        // Only the admin Secret's hash depends on the password.
        let other = objects(&s, yaml.as_bytes(), &placeholder_admin()).expect("builds");
        let changed: Vec<String> = inventory_of(&other)
            .into_iter()
            .filter(|(k, h)| inv.get(k) != Some(h))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(changed, [admin_secret_key(&s)]);
    }

    #[test]
    fn argocd_redis_is_never_pruned_and_applications_are_recognised() {
        let r = crate::resources::kube_common::object_ref("v1 Secret argocd/argocd-redis")
            .expect("ref");
        assert!(never_prune("argocd", &r));
        let r = crate::resources::kube_common::object_ref("v1 Secret argocd/argocd-secret")
            .expect("ref");
        assert!(!never_prune("argocd", &r));
        assert!(is_application(
            "argoproj.io/v1alpha1 Application argocd/root"
        ));
        assert!(!is_application(
            "argoproj.io/v1alpha1 AppProject argocd/root"
        ));
    }
}
