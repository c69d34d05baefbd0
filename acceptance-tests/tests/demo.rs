//! `make demo`'s script end to end (without waiting for Ctrl-C): the README's first command
//! must work on a fresh checkout.

use std::process::Command;

use acceptance_tests::{bin_dir, root};
use serde_json::Value as Json;

#[test]
fn demo_applies_the_stack_to_the_lab_and_cleans_up() {
    let dir = tempfile::Builder::new()
        .prefix("infraflux-demo-")
        .tempdir()
        .expect("tempdir");
    let demo = dir.path().join("demo");
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(root().join("scripts/demo.sh"))
            .args(args)
            .env("INFRAFLUX_DEMO_DIR", &demo)
            .env("INFRAFLUX_BIN_DIR", bin_dir())
            .env("INFRAFLUX_DEMO_WAIT", "0")
            // Addresses of its own, so a developer's `make demo` can run beside the tests.
            .env(
                "TF_VAR_control_planes",
                r#"{"cp-1":"127.33.0.11","cp-2":"127.33.0.12","cp-3":"127.33.0.13"}"#,
            )
            .env(
                "TF_VAR_workers",
                r#"{"worker-1":"127.33.0.21","worker-2":"127.33.0.22"}"#,
            )
            .output()
            .expect("run scripts/demo.sh")
    };
    let out = run(&[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let nodes: Option<Json> = std::fs::read(demo.join("nodes.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let kubeconfig = std::fs::read_to_string(demo.join("kubeconfig")).unwrap_or_default();
    // Whatever happened, stop the lab.
    let down = run(&["down"]);
    assert!(out.status.success(), "make demo failed:\n{text}");
    assert!(text.contains("etcd members: 3"), "{text}");
    let nodes = nodes.expect("nodes.json");
    let running = nodes
        .as_object()
        .map(|m| m.values().filter(|n| n["stage"] == "running").count());
    assert_eq!(running, Some(5), "{nodes:#}");
    assert!(
        kubeconfig.contains("current-context: admin@infraflux"),
        "{kubeconfig}"
    );
    assert!(down.status.success(), "demo down failed");
    assert!(!demo.exists(), "demo-down removes the demo directory");
}
