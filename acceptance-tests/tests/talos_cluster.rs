//! `infraflux_talos_cluster` through real Terraform against the lab: the stack of `terraform/`
//! (Proxmox VMs → Talos cluster) as users run it, then scaling, patches, drift and reset.

use acceptance_tests::lab::Lab;
use acceptance_tests::{Tf, Work, both_terraforms, root};
use serde_json::Value as Json;

/// Loopback addresses of one test: Talos nodes of tests running at once must not collide.
fn net(tf: &Tf, test: u8) -> impl Fn(u8) -> String {
    let v = if tf.at_least(1, 12) { 15 } else { 10 };
    move |host| format!("127.31.{}.{host}", test * 20 + v)
}

/// The stack's `nodes` output as the state has it.
fn nodes(w: &Work) -> serde_json::Map<String, Json> {
    w.resource("module.cluster.infraflux_talos_cluster.this")["nodes"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// The cluster's Nodes as `name kubeletVersion`, listed with the official Kubernetes Python
/// client and `kubeconfig`.
fn kubernetes_node_versions(w: &Work, kubeconfig: &str) -> Vec<String> {
    w.write("kubeconfig", kubeconfig);
    let py = root().join(".venv/bin/python");
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(
            "import sys, kubernetes as k\n\
             k.config.load_kube_config(sys.argv[1])\n\
             nodes = k.client.CoreV1Api().list_node().items\n\
             print('\\n'.join(sorted(f'{n.metadata.name} {n.status.node_info.kubelet_version}' for n in nodes)))",
        )
        .arg(w.path().join("kubeconfig"))
        .output()
        .expect("run the Kubernetes Python client");
    assert!(
        out.status.success(),
        "kubernetes client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The cluster's Node names (see [`kubernetes_node_versions`]).
fn kubernetes_nodes(w: &Work, kubeconfig: &str) -> Vec<String> {
    kubernetes_node_versions(w, kubeconfig)
        .into_iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

both_terraforms!(stack_create_scale_patch_drift_destroy, |tf: &Tf| {
    let lab = Lab::up();
    let ip = net(tf, 0);
    let cps = [("cp-1", ip(11)), ("cp-2", ip(12)), ("cp-3", ip(13))];
    let w = Work::new(tf);
    w.copy_stack();
    let vars = |workers: &[(&str, String)]| lab.stack_vars(&cps, workers);
    w.write(
        "terraform.tfvars.json",
        &vars(&[("worker-1", ip(21)), ("worker-2", ip(22))]),
    );
    w.init();
    w.apply();

    let r = w.resource("module.cluster.infraflux_talos_cluster.this");
    let n = nodes(&w);
    assert_eq!(n.len(), 5, "{r:#}");
    for (name, node) in &n {
        assert_eq!(node["stage"], "running", "{name}: {node}");
        assert_eq!(node["talos_version"], "v1.13.9", "{name}");
        assert!(
            node["config_hash"]
                .as_str()
                .unwrap_or_default()
                .starts_with("sha256:")
        );
    }
    let etcd: Vec<&str> = ["cp-1", "cp-2", "cp-3"]
        .iter()
        .filter_map(|h| n[*h]["etcd_member_id"].as_str())
        .collect();
    assert_eq!(
        etcd.len(),
        3,
        "every control plane is an etcd member: {n:?}"
    );
    assert_eq!(n["worker-1"]["etcd_member_id"], Json::Null);
    // The lab's etcd agrees on the members.
    for t in lab.talos_nodes() {
        let h = t["hostname"].as_str().unwrap_or_default();
        assert_eq!(t["etcd_member_id"], n[h]["etcd_member_id"], "{t}");
    }
    // The kubeconfig output authenticates against the lab's Kubernetes API.
    let kubeconfig = r["kubeconfig"].as_str().expect("kubeconfig").to_owned();
    assert_eq!(
        kubernetes_nodes(&w, &kubeconfig),
        sorted(&["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"])
    );
    w.assert_plan_empty();

    // Scale workers 2 → 3 → 1: etcd untouched, Nodes follow, removed machines reset.
    w.write(
        "terraform.tfvars.json",
        &vars(&[
            ("worker-1", ip(21)),
            ("worker-2", ip(22)),
            ("worker-3", ip(23)),
        ]),
    );
    w.apply();
    assert_eq!(nodes(&w)["worker-3"]["stage"], "running");
    assert_eq!(kubernetes_nodes(&w, &kubeconfig).len(), 6);
    w.assert_plan_empty();
    w.write("terraform.tfvars.json", &vars(&[("worker-2", ip(22))]));
    w.apply();
    assert_eq!(
        kubernetes_nodes(&w, &kubeconfig),
        sorted(&["cp-1", "cp-2", "cp-3", "worker-2"])
    );
    let n = nodes(&w);
    assert_eq!(n.len(), 4);
    assert_eq!(
        ["cp-1", "cp-2", "cp-3"]
            .iter()
            .filter_map(|h| n[*h]["etcd_member_id"].as_str())
            .collect::<Vec<_>>(),
        etcd,
        "etcd members unchanged"
    );
    w.assert_plan_empty();

    // Drift: a machine reinstalled into maintenance mode is seen and configured again.
    let vmid = lab.talos_node(&ip(22))["vmid"].as_i64().expect("vmid");
    lab.control("POST", &format!("/talos/nodes/{vmid}/maintenance"), None);
    let (code, out) = w.plan_code();
    assert_eq!(
        code,
        2,
        "the reinstalled machine shows as a change:\n{}",
        out.all()
    );
    assert!(out.text().contains("maintenance"), "{}", out.text());
    w.apply();
    assert_eq!(lab.talos_node(&ip(22))["stage"], "running");
    w.assert_plan_empty();

    // Every control plane reinstalled: the cluster's etcd is gone. The apply says so at once
    // instead of waiting for a health check that cannot pass.
    for h in [11, 12, 13] {
        let vmid = lab.talos_node(&ip(h))["vmid"].as_i64().expect("vmid");
        lab.control("POST", &format!("/talos/nodes/{vmid}/maintenance"), None);
    }
    let out = w.apply_fails();
    assert!(
        out.text().contains("every control plane lost its state")
            && out.text().contains("etcd has 0 of 3 members"),
        "{}",
        out.all()
    );

    // Nothing of all this regenerated a secret.
    assert_eq!(
        w.resource("module.cluster.infraflux_talos_cluster.this")["machine_secrets"],
        r["machine_secrets"]
    );

    // Destroy resets every machine, then the VMs go.
    w.destroy();
    lab.assert_only_templates_left();
});

/// Literal machines, no VMs: what plan-time checks need.
fn cluster_only(extra: &str, machines: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    infraflux = {{ source = "infraflux/infraflux" }}
  }}
}}

resource "infraflux_talos_cluster" "this" {{
  name               = "lab"
  endpoint           = "https://127.31.90.11:6443"
  talos_version      = "v1.13.9"
  kubernetes_version = "1.34.1"
{extra}
{machines}
}}
"#
    )
}

const ONE_CP: &str =
    "  control_plane {\n    hostname = \"cp-1\"\n    address  = \"127.31.90.11\"\n  }\n";

both_terraforms!(bad_input_fails_at_plan_naming_the_attribute, |tf: &Tf| {
    let w = Work::new(tf);
    w.config(&cluster_only("", ONE_CP));
    w.init();
    for (extra, machines, want) in [
        (
            "  config_patches = [\"machine:\\n  kubelet: [\\n\"]\n",
            ONE_CP,
            "cluster config_patches[0]",
        ),
        (
            "  config_patches = [\"[{\\\"op\\\": \\\"remove\\\", \\\"path\\\": \\\"/machine/nope\\\"}]\"]\n",
            ONE_CP,
            "/machine/nope",
        ),
        (
            "  endpoint = \"127.31.90.11:6443\"\n",
            ONE_CP,
            "must be https://HOST:PORT",
        ),
        (
            "",
            "  control_plane {\n    hostname = \"cp-1\"\n    address  = \"127.31.90.11\"\n  }\n  worker {\n    hostname = \"w-1\"\n    address  = \"127.31.90.11\"\n  }\n",
            "both have address 127.31.90.11",
        ),
        (
            "",
            "  worker {\n    hostname = \"w-1\"\n    address  = \"127.31.90.21\"\n  }\n",
            "at least one control_plane",
        ),
        (
            "  install {\n    image = \"ghcr.io/siderolabs/installer:v1.12.0\"\n  }\n",
            ONE_CP,
            "tag is v1.12.0",
        ),
    ] {
        // `endpoint` appears twice in HCL when overridden: replace instead.
        let hcl = if extra.contains("endpoint") {
            cluster_only("", machines).replace("https://127.31.90.11:6443", "127.31.90.11:6443")
        } else {
            cluster_only(extra, machines)
        };
        w.config(&hcl);
        let out = w.fails(&["plan", "-no-color", "-input=false"]);
        assert!(
            out.text().contains(want),
            "want {want:?} in:\n{}",
            out.text()
        );
    }
});

/// Ephemeral resources and write-only arguments need Terraform ≥ 1.11: current Terraform only.
#[test]
fn ephemeral_credentials_stay_out_of_state() {
    let tf = &Tf::v1_15();
    let lab = Lab::up();
    let ip = net(tf, 1);
    let w = Work::new(tf);
    w.copy_stack();
    w.write(
        "terraform.tfvars.json",
        &lab.stack_vars(&[("cp-1", ip(11))], &[]),
    );
    // The fresh kubeconfig goes to a write-only argument of the test provider, which keeps
    // only its hash: proof that it was issued, and that it never reached state.
    w.write(
        "versions.tf",
        "terraform {\n  required_providers {\n    infraflux = { source = \"infraflux/infraflux\" }\n    tftest    = { source = \"infraflux/tftest\" }\n  }\n}\n",
    );
    w.write(
        "credentials.tf",
        &format!(
            r#"
provider "tftest" {{
  dir = {:?}
}}

ephemeral "infraflux_talos_credentials" "admin" {{
  machine_secrets = module.cluster.machine_secrets
  cluster_name    = var.cluster_name
  endpoint        = module.cluster.endpoint
  talos_endpoints = [var.control_planes["cp-1"]]
}}

resource "tftest_thing" "consumer" {{
  name                = "kubeconfig"
  password_wo         = ephemeral.infraflux_talos_credentials.admin.kubeconfig
  password_wo_version = 1
}}
"#,
            w.path().join("tftest-store")
        ),
    );
    w.init();
    w.apply();
    let consumer = w.resource("tftest_thing.consumer");
    assert!(consumer["password_hash"].is_string(), "{consumer:#}");
    let state: Json = serde_json::from_str(&w.raw_state()).expect("state JSON");
    let types: Vec<&str> = state["resources"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["type"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        !types.contains(&"infraflux_talos_credentials"),
        "ephemeral resources never reach state: {types:?}"
    );
    assert!(
        consumer["password_wo"].is_null(),
        "write-only values stay out of state"
    );
    let state = state.to_string();
    assert!(
        !state.contains("system:masters"),
        "no kubeconfig of the ephemeral resource in state"
    );
}

/// Pieces of every secret the cluster holds: tokens, random secrets, key PEM bodies.
fn secret_fragments(r: &Json) -> Vec<String> {
    let secrets: Json =
        serde_json::from_str(r["machine_secrets"].as_str().unwrap_or("{}")).expect("secrets");
    let mut out: Vec<String> = [
        "bootstrap_token",
        "trustd_token",
        "secretbox_encryption_secret",
        "cluster_secret",
    ]
    .iter()
    .filter_map(|k| secrets[*k].as_str().map(str::to_owned))
    .collect();
    // A line from the middle of each private key's PEM.
    let keys = ["os_ca", "etcd_ca", "kubernetes_ca", "aggregator_ca"]
        .iter()
        .filter_map(|k| secrets[*k]["key"].as_str().map(str::to_owned))
        .chain(secrets["service_account_key"].as_str().map(str::to_owned))
        .chain(r["client_configuration"]["key"].as_str().map(str::to_owned));
    for pem in keys {
        if let Some(line) = pem.lines().nth(1) {
            out.push(line.to_owned());
        }
    }
    assert!(out.len() >= 10, "found the secrets: {out:?}");
    out
}

both_terraforms!(no_key_or_token_in_trace_logs, |tf: &Tf| {
    let lab = Lab::up();
    let ip = net(tf, 2);
    let mut w = Work::new(tf);
    w.copy_stack();
    w.write(
        "terraform.tfvars.json",
        &lab.stack_vars(&[("cp-1", ip(11))], &[("worker-1", ip(21))]),
    );
    w.init();
    w.set_env("TF_LOG", "trace");
    let out = w.apply();
    let r = w.resource("module.cluster.infraflux_talos_cluster.this");
    let ours: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("terraform-provider-infraflux"))
        .collect();
    assert!(
        ours.iter().any(|l| l.contains("infraflux_talos_cluster")),
        "the provider logged the cluster's apply:\n{}",
        ours.join("\n")
    );
    for secret in secret_fragments(&r) {
        assert!(
            !out.stderr.contains(&secret),
            "a secret fragment leaked into TF_LOG=trace output"
        );
    }
    w.destroy();
});

/// One VM from the Talos image at `ip`.
fn talos_vm(name: &str, ip: &str) -> String {
    format!(
        r#"
resource "infraflux_proxmox_vm" "{name}" {{
  node = "pve1"
  name = "{name}"
  disk "scsi0" {{
    storage     = "local-lvm"
    import_from = "local:import/talos-nocloud-amd64.raw"
    size_gb     = 10
  }}
  network "net0" {{
    bridge = "vmbr0"
  }}
  initialization {{
    ip_config "ipconfig0" {{
      ipv4_address = "{ip}/8"
      ipv4_gateway = "127.0.0.1"
    }}
  }}
}}
"#
    )
}

both_terraforms!(
    failed_create_converges_through_slow_install_early_bootstrap_dropped_stream,
    |tf: &Tf| {
        let lab = Lab::up();
        let ip = net(tf, 3);
        let w = Work::new(tf);
        let hcl = |worker_ip: &str| {
            format!(
                r#"{provider}{cp}{worker}
resource "infraflux_talos_cluster" "this" {{
  name               = "faults"
  endpoint           = "https://{cp_ip}:6443"
  talos_version      = "v1.13.9"
  kubernetes_version = "1.34.1"
  control_plane {{
    hostname = "cp-1"
    address  = "{cp_ip}"
  }}
  worker {{
    hostname = "worker-1"
    address  = "{worker_ip}"
  }}
  timeouts {{
    create = "30s"
  }}
  depends_on = [infraflux_proxmox_vm.cp-1, infraflux_proxmox_vm.worker-1]
}}
"#,
                provider = lab.provider(None),
                cp = talos_vm("cp-1", &ip(11)),
                worker = talos_vm("worker-1", &ip(21)),
                cp_ip = ip(11),
            )
        };
        // The worker's address is wrong: nothing answers there.
        w.config(&hcl(&ip(99)));
        w.init();
        let out = w.apply_fails();
        let text = out.text();
        assert!(
            text.contains(&format!("Talos machine worker-1 ({})", ip(99)))
                && text.contains("apply configuration failed"),
            "the error names the machine and the phase:\n{text}"
        );
        // What the failed create configured is in state (secrets included), tainted.
        let r = w.resource("infraflux_talos_cluster.this");
        assert!(
            r["machine_secrets"]
                .as_str()
                .is_some_and(|s| s.contains("os_ca"))
        );
        assert_eq!(r["nodes"]["cp-1"]["stage"], "running", "{r:#}");

        // The next apply, address fixed, converges — through a slow install, a bootstrap that
        // is not available yet, and a Kubeconfig stream that breaks off half-way.
        lab.control(
            "POST",
            "/faults",
            Some(&serde_json::json!({
                "drop_kubeconfig_stream": 1,
                "bootstrap_not_ready": 2,
                "slow_talos_install_ms": 1500,
            })),
        );
        w.config(&hcl(&ip(21)));
        let out = w.apply();
        assert!(
            out.text()
                .contains("infraflux_talos_cluster.this is tainted, so must be replaced"),
            "{}",
            out.text()
        );
        let faults = lab.control("GET", "/faults", None);
        assert_eq!(
            (
                &faults["drop_kubeconfig_stream"],
                &faults["bootstrap_not_ready"]
            ),
            (&Json::from(0), &Json::from(0)),
            "the stream dropped and bootstrap was refused: {faults}\n{}",
            out.text()
        );
        let r = w.resource("infraflux_talos_cluster.this");
        assert!(
            r["kubeconfig"]
                .as_str()
                .is_some_and(|k| k.contains("admin@faults"))
        );
        assert_eq!(r["nodes"]["worker-1"]["stage"], "running");
        w.assert_plan_empty();
        w.destroy();
        lab.assert_only_templates_left();
    }
);

both_terraforms!(patch_without_reboot_then_rolling_upgrade, |tf: &Tf| {
    let lab = Lab::up();
    let ip = net(tf, 4);
    let w = Work::new(tf);
    w.copy_stack();
    let cps = [("cp-1", ip(11)), ("cp-2", ip(12)), ("cp-3", ip(13))];
    w.write(
        "terraform.tfvars.json",
        &lab.stack_vars(&cps, &[("worker-1", ip(21))]),
    );
    w.init();
    w.apply();
    let before = nodes(&w);

    // A patch Talos applies live: the plan says so per machine, and nothing reboots.
    w.write(
        "patch.auto.tfvars.json",
        r#"{"config_patches": ["machine:\n  sysctls:\n    net.core.somaxconn: \"65535\"\n"]}"#,
    );
    let (code, out) = w.plan_code();
    assert_eq!(code, 2, "{}", out.all());
    let text = out.text();
    for h in ["cp-1", "cp-2", "cp-3", "worker-1"] {
        assert!(
            text.contains(&format!("Talos machine {h} ("))
                && text.contains("applies without a reboot"),
            "the plan previews {h}:\n{text}"
        );
    }
    let boots: Vec<Json> = lab
        .talos_nodes()
        .iter()
        .map(|n| n["boots"].clone())
        .collect();
    w.apply();
    let after: Vec<Json> = lab
        .talos_nodes()
        .iter()
        .map(|n| n["boots"].clone())
        .collect();
    assert_eq!(boots, after, "a live-applicable patch reboots nothing");
    let n = nodes(&w);
    assert_ne!(n["cp-1"]["config_hash"], before["cp-1"]["config_hash"]);
    w.assert_plan_empty();

    // Talos upgrade: one machine at a time, each back on the new version.
    w.write(
        "version.auto.tfvars.json",
        r#"{"talos_version": "v1.13.10"}"#,
    );
    w.apply();
    for (name, node) in nodes(&w) {
        assert_eq!(node["talos_version"], "v1.13.10", "{name}");
    }
    for (t, before) in lab.talos_nodes().iter().zip(&after) {
        assert_eq!(t["talos_version"], "v1.13.10", "{t}");
        assert!(
            t["boots"].as_u64() > before.as_u64(),
            "an upgrade reboots each machine (so the boot count above means something): {t}"
        );
    }
    w.assert_plan_empty();

    // Kubernetes version: the new kubelet images reach every machine, control planes first.
    w.write(
        "kubernetes.auto.tfvars.json",
        r#"{"kubernetes_version": "1.34.2"}"#,
    );
    w.apply();
    let kubeconfig = w.resource("module.cluster.infraflux_talos_cluster.this")["kubeconfig"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let versions = kubernetes_node_versions(&w, &kubeconfig);
    assert_eq!(versions.len(), 4, "{versions:?}");
    assert!(
        versions.iter().all(|v| v.ends_with(" v1.34.2")),
        "{versions:?}"
    );
    w.assert_plan_empty();
    w.destroy();
});

both_terraforms!(
    removing_a_reinstalled_control_plane_removes_its_etcd_member,
    |tf: &Tf| {
        let lab = Lab::up();
        let ip = net(tf, 5);
        let w = Work::new(tf);
        w.copy_stack();
        let cps = [("cp-1", ip(11)), ("cp-2", ip(12)), ("cp-3", ip(13))];
        w.write("terraform.tfvars.json", &lab.stack_vars(&cps, &[]));
        w.init();
        w.apply();
        let members = |lab: &Lab| -> Vec<String> {
            let mut v: Vec<String> = lab
                .talos_nodes()
                .iter()
                .filter_map(|t| t["etcd_member_id"].as_str().map(str::to_owned))
                .collect();
            v.sort();
            v
        };
        assert_eq!(members(&lab).len(), 3);
        let gone = nodes(&w)["cp-3"]["etcd_member_id"].clone();

        // cp-3 is reinstalled (blank, in maintenance mode): it cannot leave etcd itself.
        let vmid = lab.talos_node(&ip(13))["vmid"].as_i64().expect("vmid");
        lab.control("POST", &format!("/talos/nodes/{vmid}/maintenance"), None);
        let etcd = lab.control("GET", "/talos/etcd", None);
        assert!(
            etcd.to_string().contains(gone.as_str().unwrap_or("-")),
            "its member is stale in etcd: {etcd}"
        );
        w.write("terraform.tfvars.json", &lab.stack_vars(&cps[..2], &[]));
        w.apply();
        let etcd = lab.control("GET", "/talos/etcd", None);
        assert!(
            !etcd.to_string().contains(gone.as_str().unwrap_or("-")),
            "the remaining control planes removed its member: {etcd}"
        );
        assert_eq!(nodes(&w).len(), 2);
        w.assert_plan_empty();
    }
);

both_terraforms!(adopting_a_running_cluster_by_its_secrets, |tf: &Tf| {
    let lab = Lab::up();
    let ip = net(tf, 6);
    // A cluster made elsewhere (here: by another state).
    let first = Work::new(tf);
    first.copy_stack();
    first.write(
        "terraform.tfvars.json",
        &lab.stack_vars(&[("cp-1", ip(11))], &[("worker-1", ip(21))]),
    );
    first.init();
    first.apply();
    let secrets = first.resource("module.cluster.infraflux_talos_cluster.this")["machine_secrets"]
        .as_str()
        .expect("secrets")
        .to_owned();
    let boots: Vec<Json> = lab
        .talos_nodes()
        .iter()
        .map(|n| n["boots"].clone())
        .collect();

    // A new state declares the same cluster and gives its secrets once.
    let w = Work::new(tf);
    w.write("secrets.json", &secrets);
    w.config(&format!(
        r#"terraform {{
  required_providers {{
    infraflux = {{ source = "infraflux/infraflux" }}
  }}
}}

resource "infraflux_talos_cluster" "adopted" {{
  name               = "infraflux"
  endpoint           = "https://{cp}:6443"
  talos_version      = "v1.13.9"
  kubernetes_version = "1.34.1"
  machine_secrets_wo = file("${{path.module}}/secrets.json")
  control_plane {{
    hostname = "cp-1"
    address  = "{cp}"
  }}
  worker {{
    hostname = "worker-1"
    address  = "{worker}"
  }}
}}
"#,
        cp = ip(11),
        worker = ip(21),
    ));
    w.init();
    if !tf.at_least(1, 11) {
        // Write-only arguments need Terraform ≥ 1.11: older ones would store the secrets.
        let out = w.fails(&["plan", "-no-color", "-input=false"]);
        assert!(
            out.text().contains("machine_secrets_wo is write-only")
                && out.text().contains("Terraform 1.11 or later"),
            "{}",
            out.text()
        );
        return;
    }
    w.apply();
    let r = w.resource("infraflux_talos_cluster.adopted");
    assert_eq!(
        r["machine_secrets"],
        secrets.as_str(),
        "the given secrets are used as they are"
    );
    assert!(r["machine_secrets_wo"].is_null());
    let after: Vec<Json> = lab
        .talos_nodes()
        .iter()
        .map(|n| n["boots"].clone())
        .collect();
    assert_eq!(boots, after, "adoption reinstalls and reboots nothing");
    assert_eq!(
        kubernetes_nodes(&w, r["kubeconfig"].as_str().unwrap_or_default()),
        sorted(&["cp-1", "worker-1"])
    );
    w.assert_plan_empty();
});

// Talos 1.14's multi-document contract end to end: the lab's machines boot Talos 1.14 and
// validate with its schema, the provider renders the Kube*Config documents for them.
both_terraforms!(stack_on_talos_1_14, |tf: &Tf| {
    let lab = Lab::up_with(&["--talos-version", "v1.14.0"]);
    let ip = net(tf, 7);
    let w = Work::new(tf);
    w.copy_stack();
    w.write(
        "terraform.tfvars.json",
        &lab.stack_vars(&[("cp-1", ip(11))], &[("worker-1", ip(21))]),
    );
    w.write(
        "version.auto.tfvars.json",
        r#"{"talos_version": "v1.14.0"}"#,
    );
    w.init();
    w.apply();
    for (name, node) in nodes(&w) {
        assert_eq!(node["talos_version"], "v1.14.0", "{name}");
        assert_eq!(node["stage"], "running", "{name}");
    }
    for t in lab.talos_nodes() {
        assert_eq!(t["talos_version"], "v1.14.0", "{t}");
    }
    let kubeconfig = w.resource("module.cluster.infraflux_talos_cluster.this")["kubeconfig"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        kubernetes_nodes(&w, &kubeconfig),
        sorted(&["cp-1", "worker-1"])
    );
    w.assert_plan_empty();
    w.destroy();
});
