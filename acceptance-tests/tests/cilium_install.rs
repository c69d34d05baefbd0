//! `infraflux_cilium_install` through real Terraform against the lab: the stack of `terraform/`
//! (VMs → Talos with no CNI) plus Cilium, as users compose it. Plan before the cluster exists,
//! bad options refused at plan naming the attribute, install → nodes Ready, an empty plan,
//! option changes naming exactly the objects they touch, drift restored, pruning, destroy.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use acceptance_tests::lab::Lab;
use acceptance_tests::{Tf, Work, both_terraforms};
use serde_json::Value as Json;

/// Loopback addresses of one test (distinct from the other acceptance tests' blocks).
fn net(tf: &Tf, test: u8) -> impl Fn(u8) -> String {
    let v = if tf.at_least(1, 12) { 5 } else { 0 };
    move |host| format!("127.37.{}.{host}", test * 20 + v)
}

const ADDRESS: &str = "infraflux_cilium_install.this";

/// `cilium.tf` beside the stack: Cilium on the stack's cluster, with `body` as extra options.
fn cilium_tf(body: &str) -> String {
    format!(
        "resource \"infraflux_cilium_install\" \"this\" {{\n  kubeconfig = module.cluster.kubeconfig\n  operator {{\n    replicas = 1\n  }}\n{body}\n}}\n"
    )
}

/// `kubectl --kubeconfig <kc> <args>` → (success, stdout, stderr).
fn kubectl(kc: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .output()
        .expect("kubectl on PATH");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn kubectl_ok(kc: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(kc, args);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

/// The planned `inventory` of the Cilium resource and its change actions.
fn planned(w: &Work) -> (Vec<String>, BTreeMap<String, Json>, BTreeMap<String, Json>) {
    let plan = w.plan_json();
    let rc = plan["resource_changes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["address"] == ADDRESS))
        .cloned()
        .unwrap_or_else(|| panic!("no change for {ADDRESS}: {plan:#}"));
    let actions = rc["change"]["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let map = |v: &Json| -> BTreeMap<String, Json> {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let before = map(&rc["change"]["before"]["inventory"]);
    let mut after = map(&rc["change"]["after"]["inventory"]);
    for (k, unknown) in map(&rc["change"]["after_unknown"]["inventory"]) {
        if unknown == Json::Bool(true) {
            after.insert(k, Json::String("(known after apply)".into()));
        }
    }
    (actions, before, after)
}

/// Keys whose value differs between two inventories (added, removed or changed).
fn changed(before: &BTreeMap<String, Json>, after: &BTreeMap<String, Json>) -> Vec<String> {
    let mut keys: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

both_terraforms!(
    plan_needs_no_cluster_and_bad_options_fail_at_plan,
    |tf: &Tf| {
        let lab = Lab::up();
        let ip = net(tf, 0);
        let w = Work::new(tf);
        w.copy_stack();
        w.write(
            "terraform.tfvars.json",
            &lab.stack_vars(&[("cp-1", ip(11))], &[]),
        );
        w.write("cilium.tf", &cilium_tf(""));
        w.init();
        // No VM, no cluster, kubeconfig unknown: the plan still lists every object.
        let (actions, _, after) = planned(&w);
        assert_eq!(actions, ["create"]);
        for k in [
            "apps/v1 DaemonSet kube-system/cilium",
            "apps/v1 Deployment kube-system/cilium-operator",
            "v1 ConfigMap kube-system/cilium-config",
            "apps/v1 DaemonSet kube-system/cilium-envoy",
        ] {
            let v = after
                .get(k)
                .unwrap_or_else(|| panic!("{k} not planned: {after:#?}"));
            assert!(v.as_str().is_some_and(|h| h.len() == 64), "{k}: {v}");
        }
        // The TLS Secrets depend on certificates made at the first apply.
        assert_eq!(
            after.get("v1 Secret kube-system/hubble-server-certs"),
            Some(&Json::String("(known after apply)".into()))
        );
        assert!(lab.talos_nodes().is_empty(), "plan touched the lab");

        // Wrong options: refused at plan, naming the attribute and what to do.
        let bad = [
            (
                "routing {\n    mode = \"native\"\n  }",
                "routing.native_cidr",
            ),
            (
                "routing {\n    mode = \"native\"\n    native_cidr = \"10.42.0.1/16\"\n  }",
                "host bits",
            ),
            ("l7_proxy = false\n  ingress_controller {}", "l7_proxy"),
            (
                "load_balancer {\n    mode = \"magic\"\n  }",
                "load_balancer",
            ),
        ];
        for (body, expect) in bad {
            w.write("cilium.tf", &cilium_tf(body));
            let o = w.fails(&["plan", "-no-color", "-input=false"]);
            assert!(o.all().contains(expect), "{body}: {}", o.all());
        }
    }
);

both_terraforms!(install_drift_change_prune_destroy, |tf: &Tf| {
    let lab = Lab::up();
    let ip = net(tf, 1);
    let w = Work::new(tf);
    w.copy_stack();
    w.write(
        "terraform.tfvars.json",
        &lab.stack_vars(&[("cp-1", ip(11))], &[("worker-1", ip(21))]),
    );
    let hubble = |ui: bool| format!("  hubble {{\n    relay = true\n    ui = {ui}\n  }}");
    w.write("cilium.tf", &cilium_tf(&hubble(false)));
    w.init();
    w.apply();

    let r = w.resource(ADDRESS);
    assert_eq!(r["cilium_version"], "1.20.0");
    let kc = w.path().join("kubeconfig");
    w.write("kubeconfig", r["kubeconfig"].as_str().expect("kubeconfig"));
    // Nodes are Ready once the agents run; the operator removed its taint.
    let nodes = kubectl_ok(
        &kc,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status} {.spec.taints}{\"\\n\"}{end}",
        ],
    );
    for line in nodes.lines() {
        assert!(line.contains(" True"), "node not Ready: {line}");
        assert!(!line.contains("agent-not-ready"), "taint left: {line}");
    }
    // Our objects, applied server-side by field manager `infraflux`.
    let managers = kubectl_ok(
        &kc,
        &[
            "get",
            "cm",
            "cilium-config",
            "-n",
            "kube-system",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    );
    assert!(
        managers.split_whitespace().any(|m| m == "infraflux"),
        "{managers}"
    );
    let ca = r["hubble_ca_cert"].as_str().unwrap_or_default().to_owned();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    w.assert_plan_empty();

    // Turning the Hubble UI on names exactly the objects it adds; nothing else changes.
    w.write("cilium.tf", &cilium_tf(&hubble(true)));
    let (actions, before, after) = planned(&w);
    assert_eq!(actions, ["update"]);
    let diff = changed(&before, &after);
    assert!(!diff.is_empty());
    assert!(
        diff.iter().all(|k| k.contains("hubble-ui")),
        "only hubble-ui objects change: {diff:#?}"
    );
    w.apply();
    kubectl_ok(
        &kc,
        &["get", "deployment", "hubble-ui", "-n", "kube-system"],
    );
    assert_eq!(
        w.resource(ADDRESS)["hubble_ca_cert"],
        Json::String(ca.clone())
    );
    w.assert_plan_empty();

    // Drift: an owned key edited, a ConfigMap deleted → the plan shows both → apply restores.
    kubectl_ok(
        &kc,
        &[
            "patch",
            "cm",
            "cilium-config",
            "-n",
            "kube-system",
            "--type=merge",
            "-p",
            "{\"data\":{\"enable-hubble\":\"false\"}}",
        ],
    );
    kubectl_ok(
        &kc,
        &["delete", "cm", "hubble-relay-config", "-n", "kube-system"],
    );
    let (actions, before, after) = planned(&w);
    assert_eq!(actions, ["update"]);
    let drifted = before["v1 ConfigMap kube-system/cilium-config"]
        .as_str()
        .unwrap_or_default();
    assert!(
        drifted.contains("drifted: .data.enable-hubble"),
        "{drifted}"
    );
    assert_eq!(
        changed(&before, &after),
        [
            "v1 ConfigMap kube-system/cilium-config",
            "v1 ConfigMap kube-system/hubble-relay-config"
        ]
    );
    w.apply();
    kubectl_ok(
        &kc,
        &["get", "cm", "hubble-relay-config", "-n", "kube-system"],
    );
    let v = kubectl_ok(
        &kc,
        &[
            "get",
            "cm",
            "cilium-config",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.data.enable-hubble}",
        ],
    );
    assert_eq!(v, "true");
    w.assert_plan_empty();

    // A lost state is rebuilt by import from the labels and the certificate Secrets.
    w.ok(&["state", "rm", ADDRESS]);
    let kc_path = kc.to_string_lossy().into_owned();
    w.ok(&["import", "-no-color", "-input=false", ADDRESS, &kc_path]);
    let imported = w.resource(ADDRESS);
    assert_eq!(imported["hubble_ca_cert"], Json::String(ca.clone()));
    let (code, out) = w.plan_code();
    assert_eq!(
        code, 2,
        "an imported install is re-applied once:\n{}",
        out.stdout
    );
    w.apply();
    assert_eq!(
        w.resource(ADDRESS)["hubble_ca_cert"],
        Json::String(ca.clone())
    );
    w.assert_plan_empty();

    // Without the L7 proxy the envoy objects are pruned.
    w.write(
        "cilium.tf",
        &cilium_tf(&format!("{}\n  l7_proxy = false", hubble(true))),
    );
    w.apply();
    let (found, _, err) = kubectl(&kc, &["get", "ds", "cilium-envoy", "-n", "kube-system"]);
    assert!(
        !found && err.contains("NotFound"),
        "cilium-envoy still there: {err}"
    );
    w.assert_plan_empty();

    // Destroy removes every object it made (the cluster stays until the full destroy).
    w.ok(&[
        "destroy",
        "-auto-approve",
        "-no-color",
        "-input=false",
        &format!("-target={ADDRESS}"),
    ]);
    for (kind, name) in [
        ("ds", "cilium"),
        ("deployment", "cilium-operator"),
        ("cm", "cilium-config"),
    ] {
        let (found, _, err) = kubectl(&kc, &["get", kind, name, "-n", "kube-system"]);
        assert!(
            !found && err.contains("NotFound"),
            "{kind} {name} left: {err}"
        );
    }
    w.destroy();
});

both_terraforms!(
    unreachable_api_fails_fast_and_an_outage_mid_apply_is_ridden_out,
    |tf: &Tf| {
        // Agents that take 3 s to become ready: the outage below falls inside the apply.
        let lab = Lab::up_with(&["--pod-ready-ms", "3000"]);
        let ip = net(tf, 2);
        let mut w = Work::new(tf);
        w.copy_stack();
        w.write(
            "terraform.tfvars.json",
            &lab.stack_vars(&[("cp-1", ip(11))], &[("worker-1", ip(21))]),
        );
        w.init();
        w.apply();
        let kubeconfig = w.resource("module.cluster.infraflux_talos_cluster.this")["kubeconfig"]
            .as_str()
            .expect("kubeconfig")
            .to_owned();
        let kc = w.path().join("kubeconfig");
        w.write("kubeconfig", &kubeconfig);

        // A kubeconfig naming an address nothing listens on: one error naming it, at once, and
        // nothing in state.
        let server = format!("https://{}:6443", ip(11));
        w.write(
        "cilium.tf",
        &cilium_tf("").replace(
            "kubeconfig = module.cluster.kubeconfig",
            &format!("kubeconfig = replace(module.cluster.kubeconfig, \"{server}\", \"https://127.0.0.1:1\")"),
        ),
    );
        let o = w.apply_fails();
        assert!(o.all().contains("https://127.0.0.1:1"), "{}", o.all());
        assert!(o.all().contains("kubeconfig"), "{}", o.all());
        assert!(!w.state_addresses().iter().any(|a| a == ADDRESS));

        // The API server goes away for 3 s while the objects are applied: the apply waits it
        // out, and TF_LOG=trace never shows the certificates' keys.
        w.write("cilium.tf", &cilium_tf(""));
        w.set_env("TF_LOG", "trace");
        // Into files: TF_LOG=trace would fill a pipe nobody reads while we wait.
        let file = |name: &str| std::fs::File::create(w.path().join(name)).expect("log file");
        let mut child = w
            .command(&["apply", "-auto-approve", "-no-color", "-input=false"])
            .stdout(file("apply.out"))
            .stderr(file("apply.log"))
            .spawn()
            .expect("terraform apply");
        let started = std::time::Instant::now();
        while !kubectl(&kc, &["get", "sa", "cilium", "-n", "kube-system"]).0 {
            let running = child.try_wait().ok().flatten().is_none();
            assert!(
                running && started.elapsed().as_secs() < 120,
                "Cilium objects never appeared (apply running: {running})"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let servers = lab.control("GET", "/k8s", None);
        let key = servers["apiservers"][0]["cluster_key"].clone();
        let r = lab.control(
            "POST",
            "/k8s/restart",
            Some(&serde_json::json!({"cluster_key": key, "down_ms": 3000})),
        );
        assert_ne!(r, Json::Null, "restart accepted: {servers}");
        let outage = std::time::Instant::now();
        let status = child.wait().expect("apply ran");
        let read = |name: &str| std::fs::read_to_string(w.path().join(name)).unwrap_or_default();
        let (stdout, stderr) = (read("apply.out"), read("apply.log"));
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("Error") || l.contains("error"))
            .rev()
            .take(20)
            .collect();
        assert!(
            status.success(),
            "apply after the outage:\n{stdout}\n{}",
            errors.join("\n")
        );
        assert!(
            outage.elapsed() >= std::time::Duration::from_millis(2500),
            "the apply ended {:?} after the outage began: it did not overlap",
            outage.elapsed()
        );
        w.assert_plan_empty();
        let nodes = kubectl_ok(
            &kc,
            &[
                "get",
                "nodes",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
            ],
        );
        assert_eq!(
            nodes.split_whitespace().collect::<Vec<_>>(),
            ["True", "True"]
        );
        let certs = kubectl_ok(
            &kc,
            &[
                "get",
                "secret",
                "cilium-ca",
                "-n",
                "kube-system",
                "-o",
                "jsonpath={.data.ca\\.key}",
            ],
        );
        assert!(certs.len() > 100);
        assert!(
            !stderr.contains(&certs[..64]),
            "the CA key leaked into TF_LOG=trace output"
        );
        assert!(
            !stderr.contains("BEGIN RSA PRIVATE KEY"),
            "a private key leaked into TF_LOG"
        );
        w.destroy();
    }
);
