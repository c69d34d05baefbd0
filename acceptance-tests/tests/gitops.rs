//! The GitOps tree (`gitops/argocd/`) checked as Argo CD, Helm and the API server would see it:
//! `scripts/check_gitops.py` (YAML, Application and CRD schemas, chart values, Cilium policies,
//! promtool, dashboards, Talos patches), and its unit tests, which break a copy of the tree once
//! per check to prove each check can fail.
//!
//! Checks that need `../shared/reference` or promtool skip with a message outside CI and fail
//! in CI (the checker follows the same rule as `infraflux-reference`).

use std::io::Write;
use std::process::{Command, Output};

use acceptance_tests::root;

fn python() -> std::path::PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `make tools` (scripts/install-tools.sh)",
        p.display()
    );
    p
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(python())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run the venv's python");
    // Skip notices go straight to the file descriptor, past the harness's capture, so a skip
    // is always seen.
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if line.contains("skipped") {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
    out
}

#[test]
fn the_gitops_tree_passes_every_check() {
    let out = run(&["scripts/check_gitops.py"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check_gitops.py failed:\n{stdout}");
    assert!(
        stdout.contains("check_gitops: 0 error(s)"),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn every_gitops_check_fails_on_a_broken_tree() {
    let out = run(&["-m", "unittest", "scripts/test_check_gitops.py"]);
    assert!(
        out.status.success(),
        "the checker's unit tests failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
