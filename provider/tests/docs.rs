//! The Registry pages under docs/ are what the schemas, templates/ and examples/ make of them:
//! a description changed in the schema without `make docs` fails here.

use std::path::PathBuf;

#[test]
fn docs_match_the_schema() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let provider = terraform_provider_infraflux::InfraFlux::default();
    let pages = tfplugin::framework::docs::pages(&provider, "InfraFlux", &root)
        .unwrap_or_else(|e| panic!("generating the docs: {e}"));
    let stale: Vec<String> = pages
        .iter()
        .filter(|(path, text)| {
            std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(text.as_str())
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        stale.is_empty(),
        "these pages differ from the schema; run `make docs` and commit: {stale:?}"
    );
}

#[test]
fn every_generated_page_has_an_example() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let provider = terraform_provider_infraflux::InfraFlux::default();
    let pages = tfplugin::framework::docs::pages(&provider, "InfraFlux", &root)
        .unwrap_or_else(|e| panic!("generating the docs: {e}"));
    for (path, text) in pages {
        assert!(
            text.contains("```terraform"),
            "{} shows no example",
            path.display()
        );
    }
}
