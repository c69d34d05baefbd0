//! The builders against the upstream v3.5.1 manifest: options applied to the real objects, the
//! root Application and an AppProject checked against the manifest's CRDs, the admin patch
//! against the manifest's `argocd-secret`. Skips where the reference fixtures are absent; fails
//! in CI.

use infraflux_argocd::root_app::{AppProject, Destination, IN_CLUSTER_SERVER, RootApplication};
use infraflux_argocd::{Error, Options, ServiceType, admin, install_objects, manifest, schema};
use serde_json::{Value, json};

fn fixture() -> Option<Vec<u8>> {
    let path = infraflux_reference::path("argocd/install-v3.5.1.yaml")?;
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

fn crd<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    manifest::find(objects, "CustomResourceDefinition", name).unwrap()
}

#[test]
fn options_change_the_real_objects() {
    let Some(bytes) = fixture() else { return };
    let digest = infraflux_argocd::versions::sha256_hex(&bytes);
    let mut o = Options {
        namespace: "gitops".into(),
        server_service_type: ServiceType::NodePort,
        insecure: true,
        ..Options::default()
    };
    o.cm.insert("url".into(), "https://cd.example.com".into());
    o.resource_customizations.insert(
        "health.cert-manager.io_Certificate".into(),
        "hs = {}".into(),
    );
    let objects = install_objects(&bytes, &digest, &o).unwrap();
    assert_eq!(objects.len(), 59);
    let cm = manifest::find(&objects, "ConfigMap", "argocd-cm").unwrap();
    assert_eq!(cm["metadata"]["namespace"], "gitops");
    assert_eq!(cm["data"]["url"], "https://cd.example.com");
    assert_eq!(
        cm["data"]["resource.customizations.health.cert-manager.io_Certificate"],
        "hs = {}"
    );
    let params = manifest::find(&objects, "ConfigMap", "argocd-cmd-params-cm").unwrap();
    assert_eq!(params["data"]["server.insecure"], "true");
    let svc = manifest::find(&objects, "Service", "argocd-server").unwrap();
    assert_eq!(svc["spec"]["type"], "NodePort");
    // The ports stay the manifest's.
    assert!(
        svc["spec"]["ports"]
            .as_array()
            .is_some_and(|p| p.len() == 2)
    );
}

#[test]
fn nothing_is_built_from_a_manifest_with_the_wrong_digest() {
    let Some(bytes) = fixture() else { return };
    let e = install_objects(&bytes, &"0".repeat(64), &Options::default()).unwrap_err();
    assert!(matches!(e, Error::Sha256Mismatch { .. }), "{e}");
}

#[test]
fn the_root_application_fits_the_application_crd() {
    let Some(bytes) = fixture() else { return };
    let objects = manifest::parse_bytes(&bytes).unwrap();
    let app = RootApplication::new("https://git.example.com/infraflux.git")
        .build()
        .unwrap();
    schema::validate(&app, crd(&objects, "applications.argoproj.io")).unwrap();
    // The check has teeth on the real schema: a misspelt field and a wrong type are caught.
    let mut typo = app.clone();
    typo["spec"]["syncPolicy"]["automated"]["selfheal"] = json!(true);
    let e = schema::validate(&typo, crd(&objects, "applications.argoproj.io")).unwrap_err();
    assert!(
        e.to_string()
            .contains(".spec.syncPolicy.automated.selfheal"),
        "{e}"
    );
    let mut no_dest = app;
    no_dest["spec"]
        .as_object_mut()
        .unwrap()
        .remove("destination");
    let e = schema::validate(&no_dest, crd(&objects, "applications.argoproj.io")).unwrap_err();
    assert!(
        e.to_string().contains(".spec.destination: is required"),
        "{e}"
    );
}

#[test]
fn the_app_project_fits_the_appproject_crd() {
    let Some(bytes) = fixture() else { return };
    let objects = manifest::parse_bytes(&bytes).unwrap();
    let project = AppProject {
        name: "platform".into(),
        namespace: "argocd".into(),
        description: Some("InfraFlux platform".into()),
        source_repos: vec!["https://git.example.com/infraflux.git".into()],
        destinations: vec![Destination {
            server: IN_CLUSTER_SERVER.into(),
            namespace: "*".into(),
        }],
        allow_cluster_resources: true,
    }
    .build()
    .unwrap();
    schema::validate(&project, crd(&objects, "appprojects.argoproj.io")).unwrap();
}

#[test]
fn the_admin_patch_names_the_manifests_secret() {
    let Some(bytes) = fixture() else { return };
    let objects = manifest::parse_bytes(&bytes).unwrap();
    let secret = manifest::find(&objects, "Secret", admin::ADMIN_SECRET_NAME).unwrap();
    // The manifest leaves data to Argo CD (and to our patch).
    assert!(secret.get("data").is_none());
    let hash = admin::hash_password("pw").unwrap();
    let patch = admin::admin_secret_patch("argocd", &hash, "2026-01-01T00:00:00Z").unwrap();
    assert_eq!(patch["apiVersion"], secret["apiVersion"]);
    assert_eq!(patch["metadata"]["name"], secret["metadata"]["name"]);
}
