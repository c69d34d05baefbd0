//! gitops/argocd/bootstrap/root.yaml (the root Application for clusters bootstrapped without
//! Terraform) must stay the object the builder makes, so both paths give the same platform.

use infraflux_argocd::manifest;
use infraflux_argocd::root_app::{Retry, RootApplication};

#[test]
fn the_bootstrap_file_is_what_the_builder_makes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../gitops/argocd/bootstrap/root.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let file = manifest::parse(&text).unwrap();
    assert_eq!(file.len(), 1);
    let spec = &file[0]["spec"];
    // The file's repository, revision and retry are its own choices; everything else must match.
    let mut root = RootApplication::new(spec["source"]["repoURL"].as_str().unwrap());
    root.target_revision = spec["source"]["targetRevision"].as_str().unwrap().into();
    let backoff = &spec["syncPolicy"]["retry"]["backoff"];
    root.retry = Retry {
        limit: spec["syncPolicy"]["retry"]["limit"].as_u64().unwrap() as u32,
        duration: backoff["duration"].as_str().unwrap().into(),
        factor: backoff["factor"].as_u64().unwrap() as u32,
        max_duration: backoff["maxDuration"].as_str().unwrap().into(),
    };
    assert_eq!(root.build().unwrap(), file[0]);
}
