//! The upstream Argo CD v3.5.1 install manifest from the reference fixtures, through this crate:
//! digest, object count, namespace rewrite, never-prune list and the CRD sizes that force
//! server-side apply. Skips (saying so) where the fixtures are absent; fails in CI.

use infraflux_argocd::{manifest, versions};
use serde_json::Value;

const FIXTURE: &str = "argocd/install-v3.5.1.yaml";

fn fixture() -> Option<Vec<u8>> {
    let path = infraflux_reference::path(FIXTURE)?;
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

#[test]
fn the_pinned_digest_is_the_fixtures() {
    let Some(bytes) = fixture() else { return };
    let pinned = versions::known("v3.5.1").unwrap();
    versions::verify(&bytes, pinned.manifest_sha256).unwrap();
    let expected = versions::expected_sha256("v3.5.1", false, None).unwrap();
    assert_eq!(versions::sha256_hex(&bytes), expected);
    // One changed byte is refused.
    let mut tampered = bytes.clone();
    tampered.push(b'\n');
    let e = versions::verify(&tampered, pinned.manifest_sha256).unwrap_err();
    assert!(matches!(e, infraflux_argocd::Error::Sha256Mismatch { .. }));
}

#[test]
fn it_holds_59_objects() {
    let Some(bytes) = fixture() else { return };
    let objects = manifest::parse_bytes(&bytes).unwrap();
    assert_eq!(objects.len(), 59);
    let refs: std::collections::BTreeSet<_> =
        objects.iter().filter_map(manifest::ObjectRef::of).collect();
    assert_eq!(refs.len(), 59, "every object is distinct");
}

#[test]
fn the_namespace_rewrite_covers_every_namespaced_object_and_binding_subject() {
    let Some(bytes) = fixture() else { return };
    let mut objects = manifest::parse_bytes(&bytes).unwrap();
    let upstream_subjects = objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding")
        .flat_map(|o| o["subjects"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["namespace"] == manifest::UPSTREAM_NAMESPACE)
        .count();
    assert_eq!(
        upstream_subjects, 3,
        "the fixture's ClusterRoleBindings name argocd"
    );

    manifest::set_namespace(&mut objects, "platform-gitops");
    let mut namespaced = 0;
    for o in &objects {
        let kind = o["kind"].as_str().unwrap();
        if manifest::is_cluster_scoped(kind) {
            assert!(o["metadata"].get("namespace").is_none(), "{kind}");
        } else {
            namespaced += 1;
            assert_eq!(o["metadata"]["namespace"], "platform-gitops", "{kind}");
        }
        for s in o["subjects"].as_array().into_iter().flatten() {
            assert_ne!(
                s["namespace"],
                manifest::UPSTREAM_NAMESPACE,
                "{kind} subject {s}"
            );
        }
    }
    // 3 CRDs, 3 ClusterRoles and 3 ClusterRoleBindings are cluster-scoped.
    assert_eq!(namespaced, 59 - 9);
    // Nothing anywhere still says "namespace: argocd".
    let text = serde_json::to_string(&objects).unwrap();
    assert!(!text.contains(r#""namespace":"argocd""#));
}

#[test]
fn the_redis_secret_is_never_pruned_and_is_not_in_the_manifest() {
    let Some(bytes) = fixture() else { return };
    let objects = manifest::parse_bytes(&bytes).unwrap();
    let spared = manifest::never_prune("argocd");
    assert!(
        spared
            .iter()
            .any(|r| r.kind == "Secret" && r.name == "argocd-redis")
    );
    for r in &spared {
        assert!(
            manifest::find(&objects, &r.kind, &r.name).is_none(),
            "{r} is made in the cluster, not by the manifest"
        );
    }
    // Readiness waits on the six Deployments and the controller's StatefulSet.
    let workloads: Vec<String> = manifest::workloads(&objects)
        .iter()
        .map(|r| format!("{}/{}", r.kind, r.name))
        .collect();
    assert_eq!(
        workloads,
        [
            "Deployment/argocd-applicationset-controller",
            "Deployment/argocd-dex-server",
            "Deployment/argocd-notifications-controller",
            "Deployment/argocd-redis",
            "Deployment/argocd-repo-server",
            "Deployment/argocd-server",
            "StatefulSet/argocd-application-controller",
        ]
    );
    // The init container that makes it is there.
    let redis = manifest::find(&objects, "Deployment", "argocd-redis").unwrap();
    let init = serde_json::to_string(&redis["spec"]["template"]["spec"]["initContainers"]).unwrap();
    assert!(init.contains("secret-init"), "{init}");
}

#[test]
fn the_applicationset_crd_is_over_the_annotation_limit() {
    let Some(bytes) = fixture() else { return };
    let objects = manifest::parse_bytes(&bytes).unwrap();
    let crd = manifest::find(
        &objects,
        "CustomResourceDefinition",
        "applicationsets.argoproj.io",
    )
    .unwrap();
    let size = serde_json::to_vec(crd).unwrap().len();
    eprintln!("applicationsets.argoproj.io: {size} bytes of JSON");
    assert!(size > 262_144, "{size} bytes");
    let app_crd = manifest::find(
        &objects,
        "CustomResourceDefinition",
        "applications.argoproj.io",
    );
    assert!(app_crd.is_some_and(Value::is_object));
}
