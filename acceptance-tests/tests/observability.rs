//! Logs and debugging through real Terraform: our lines reach `TF_LOG` with levels, never
//! carry a secret, and `--debug` gives a working `TF_REATTACH_PROVIDERS`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use acceptance_tests::{Tf, Work, bin_dir, both_terraforms};

fn config(store: &std::path::Path, body: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    tftest = {{ source = \"infraflux/tftest\" }}\n  }}\n}}\nprovider \"tftest\" {{\n  dir = {store:?}\n}}\n{body}\n"
    )
}

both_terraforms!(trace_logs_show_our_lines_but_no_secret, |tf: &Tf| {
    let store = tempfile::tempdir().unwrap();
    let mut w = Work::new(tf);
    let wo = if tf.at_least(1, 11) {
        "  password_wo = \"wo-secret-9f2c\"\n  password_wo_version = 1\n"
    } else {
        ""
    };
    w.config(&config(
        store.path(),
        &format!("resource \"tftest_thing\" \"a\" {{\n  name   = \"logs\"\n  secret = \"sensitive-7d1e\"\n{wo}}}"),
    ));
    w.init();
    w.set_env("TF_LOG", "trace");
    let o = w.apply();
    // go-plugin relays our stderr lines, tagged with the plugin's name.
    let ours: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.contains("terraform-provider-tftest"))
        .collect();
    assert!(
        ours.iter()
            .any(|l| l.contains("[DEBUG]") && l.contains("apply") && l.contains("op=create")),
        "our debug lines reach TF_LOG with their level and fields:\n{}",
        ours.join("\n")
    );
    for secret in ["sensitive-7d1e", "wo-secret-9f2c"] {
        assert!(
            !ours.iter().any(|l| l.contains(secret)),
            "{secret} leaked into a provider log line"
        );
    }
    assert!(!w.raw_state().contains("wo-secret-9f2c"));
});

#[test]
fn debug_mode_prints_a_reattach_line_that_terraform_accepts() {
    let store = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin_dir().join("terraform-provider-tftest"))
        .arg("--debug")
        .env("TFTEST_DIR", store.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reattach = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(v) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS=") {
            reattach = v.trim_matches('\'').to_owned();
            break;
        }
    }
    let parsed: serde_json::Value = serde_json::from_str(&reattach).expect("reattach JSON");
    assert_eq!(
        parsed["registry.terraform.io/infraflux/tftest"]["ProtocolVersion"],
        6
    );

    let mut w = Work::new(&Tf::v1_15());
    w.config(&config(
        store.path(),
        "resource \"tftest_thing\" \"a\" {\n  name = \"attached\"\n}",
    ));
    w.set_env("TF_REATTACH_PROVIDERS", reattach);
    w.init();
    w.apply();
    assert_eq!(w.resource("tftest_thing.a")["name"], "attached");
    let _ = child.kill();
    let _ = child.wait();
}
