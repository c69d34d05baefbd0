//! `infraflux_argocd_bootstrap` through real Terraform against the lab: the stack of
//! `terraform/` (VMs → Talos) with Cilium (Argo CD's pods wait for Ready nodes, as in a real
//! cluster) and Argo CD from the reference install manifest, served by a local HTTP server or
//! read from disk. A wrong digest fails the plan with nothing applied; the install waits for
//! the Deployments; the admin password lands as a bcrypt hash; an empty plan; destroy.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use acceptance_tests::lab::Lab;
use acceptance_tests::{Tf, Work, both_terraforms};
use base64::Engine as _;
use serde_json::Value as Json;

const ADDRESS: &str = "infraflux_argocd_bootstrap.this";
const CILIUM: &str = "infraflux_cilium_install.this";
const MANIFEST: &str = "argocd/install-v3.5.1.yaml";
const PINNED_SHA256: &str = "795a3a972224da6a7f9d32c3e946445f062b60fb46028476715affeb688236e3";

/// Loopback addresses of one test (distinct from the other acceptance tests' blocks).
fn net(tf: &Tf, test: u8) -> impl Fn(u8) -> String {
    let v = if tf.at_least(1, 12) { 5 } else { 0 };
    move |host| format!("127.39.{}.{host}", test * 20 + v)
}

/// Serves `file` to every GET on a loopback port for the life of the test; counts requests.
struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn serve(file: &Path) -> Server {
    let body = std::fs::read(file).expect("read the manifest");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/install.yaml",
        listener.local_addr().expect("address")
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            // The request line and headers, up to the blank line.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    Server { url, hits }
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

fn assert_absent(kc: &Path, args: &[&str]) {
    let (found, out, err) = kubectl(kc, args);
    assert!(
        !found && err.contains("NotFound"),
        "{args:?} still there: {out}{err}"
    );
}

/// Cilium on the stack's cluster (one operator replica: the lab's cluster is small).
const CILIUM_TF: &str = "resource \"infraflux_cilium_install\" \"this\" {\n  kubeconfig = module.cluster.kubeconfig\n  operator {\n    replicas = 1\n  }\n}\n";

/// Argo CD on the stack's cluster after Cilium, with `body` as its options.
fn argocd_tf(body: &str) -> String {
    format!(
        "resource \"infraflux_argocd_bootstrap\" \"this\" {{\n  kubeconfig = module.cluster.kubeconfig\n  depends_on = [infraflux_cilium_install.this]\n{body}\n}}\n"
    )
}

/// The stack (one control plane, one worker: Argo CD's pods do not tolerate the control-plane
/// taint) with Cilium applied; the kubeconfig written to `kubeconfig`.
fn cluster_with_cilium(w: &Work, lab: &Lab, ip: &dyn Fn(u8) -> String) -> PathBuf {
    w.copy_stack();
    w.write(
        "terraform.tfvars.json",
        &lab.stack_vars(&[("cp-1", ip(11))], &[("worker-1", ip(21))]),
    );
    w.write("cilium.tf", CILIUM_TF);
    w.init();
    w.apply();
    let kc = w.path().join("kubeconfig");
    let r = w.resource(CILIUM);
    w.write("kubeconfig", r["kubeconfig"].as_str().expect("kubeconfig"));
    kc
}

/// The bcrypt hash in `argocd-secret` (namespace `ns`).
fn admin_hash(kc: &Path, ns: &str) -> String {
    let b64 = kubectl_ok(
        kc,
        &[
            "get",
            "secret",
            "argocd-secret",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.admin\\.password}",
        ],
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .expect("base64 hash");
    String::from_utf8(raw).expect("utf-8 hash")
}

fn assert_deployments_available(kc: &Path, ns: &str) {
    let out = kubectl_ok(
        kc,
        &[
            "get",
            "deployments",
            "-n",
            ns,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Available\")].status}{\"\\n\"}{end}",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 6, "Argo CD Deployments: {out}");
    for l in lines {
        assert!(l.ends_with(" True"), "not Available: {l}");
    }
}

both_terraforms!(
    wrong_digest_install_password_repository_destroy,
    |tf: &Tf| {
        let Some(file) = infraflux_reference::path(MANIFEST) else {
            return;
        };
        let server = serve(&file);
        let lab = Lab::up();
        let ip = net(tf, 0);
        let w = Work::new(tf);
        let kc = cluster_with_cilium(&w, &lab, &ip);

        // A wrong digest fails the plan, naming both, and nothing reaches the cluster.
        let wrong = "0".repeat(64);
        w.write(
            "argocd.tf",
            &argocd_tf(&format!(
                "  manifest_url = \"{}\"\n  manifest_sha256 = \"{wrong}\"",
                server.url
            )),
        );
        let o = w.fails(&["apply", "-auto-approve", "-no-color", "-input=false"]);
        let text = o.all();
        assert!(
            text.contains(&wrong) && text.contains(PINNED_SHA256),
            "{text}"
        );
        assert!(text.contains("manifest_sha256"), "{text}");
        assert_absent(&kc, &["get", "namespace", "argocd"]);
        assert!(server.hits.load(Ordering::SeqCst) >= 1);

        // The pinned digest: installed, awaited, password hashed, repository registered.
        let body = format!(
            "  manifest_url = \"{}\"\n  admin_password = \"s3cret-Passw0rd\"\n  insecure = true\n  cm = {{\n    \"timeout.reconciliation\" = \"120s\"\n  }}\n  repository {{\n    url = \"https://git.example.com/platform.git\"\n    username = \"bot\"\n    password = \"token-1\"\n  }}\n  root_app {{\n    repo_url = \"https://git.example.com/platform.git\"\n  }}\n  on_destroy {{\n    keep_applications = true\n  }}",
            server.url
        );
        w.write("argocd.tf", &argocd_tf(&body));
        w.apply();
        assert_deployments_available(&kc, "argocd");
        let ready = kubectl_ok(
            &kc,
            &[
                "get",
                "statefulset",
                "argocd-application-controller",
                "-n",
                "argocd",
                "-o",
                "jsonpath={.status.readyReplicas}",
            ],
        );
        assert_eq!(ready, "1");
        let hash = admin_hash(&kc, "argocd");
        assert!(
            infraflux_argocd::admin::password_matches("s3cret-Passw0rd", &hash),
            "{hash}"
        );
        // The ApplicationSet CRD (over the annotation limit) went server-side.
        let crd = kubectl_ok(
            &kc,
            &[
                "get",
                "crd",
                "applicationsets.argoproj.io",
                "--show-managed-fields",
                "-o",
                "json",
            ],
        );
        let crd: Json = serde_json::from_str(&crd).expect("CRD JSON");
        assert!(
            crd["metadata"]["annotations"]
                .get("kubectl.kubernetes.io/last-applied-configuration")
                .is_none()
        );
        assert!(
            crd["metadata"]["managedFields"]
                .as_array()
                .is_some_and(|m| m
                    .iter()
                    .any(|f| f["manager"] == "infraflux" && f["operation"] == "Apply")),
            "{:#}",
            crd["metadata"]["managedFields"]
        );
        // The repository Secret, labelled for Argo CD.
        let secrets = kubectl_ok(
            &kc,
            &[
                "get",
                "secrets",
                "-n",
                "argocd",
                "-l",
                "argocd.argoproj.io/secret-type=repository",
                "-o",
                "jsonpath={.items[*].data.url}",
            ],
        );
        let url = base64::engine::general_purpose::STANDARD
            .decode(secrets.trim())
            .expect("one repository Secret");
        assert_eq!(url, b"https://git.example.com/platform.git");
        kubectl_ok(
            &kc,
            &["get", "applications.argoproj.io", "root", "-n", "argocd"],
        );
        let r = w.resource(ADDRESS);
        assert_eq!(r["server_address"], "argocd-server.argocd.svc:80");
        assert_eq!(r["id"], "argocd/argocd");
        let inv = r["inventory"].as_object().expect("inventory");
        assert!(inv.contains_key(
            "apiextensions.k8s.io/v1 CustomResourceDefinition applicationsets.argoproj.io"
        ));
        assert!(inv.contains_key("argoproj.io/v1alpha1 Application argocd/root"));
        w.assert_plan_empty();

        // Drift: an owned argocd-cm key edited → refresh shows it, apply restores it.
        kubectl_ok(
            &kc,
            &[
                "patch",
                "cm",
                "argocd-cm",
                "-n",
                "argocd",
                "--type=merge",
                "-p",
                "{\"data\":{\"timeout.reconciliation\":\"5s\"}}",
            ],
        );
        let plan = w.plan_json();
        let before = plan["resource_changes"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["address"] == ADDRESS))
            .map(|r| r["change"]["before"]["inventory"]["v1 ConfigMap argocd/argocd-cm"].clone())
            .unwrap_or_default();
        assert!(
            before
                .as_str()
                .is_some_and(|v| v.contains("drifted: .data.timeout.reconciliation")),
            "{before}"
        );
        w.apply();
        let v = kubectl_ok(
            &kc,
            &[
                "get",
                "cm",
                "argocd-cm",
                "-n",
                "argocd",
                "-o",
                "jsonpath={.data.timeout\\.reconciliation}",
            ],
        );
        assert_eq!(v, "120s");
        w.assert_plan_empty();

        // A changed password changes only argocd-secret.
        w.write(
            "argocd.tf",
            &argocd_tf(&body.replace("s3cret-Passw0rd", "an0ther-Passw0rd")),
        );
        w.apply();
        let hash = admin_hash(&kc, "argocd");
        assert!(infraflux_argocd::admin::password_matches(
            "an0ther-Passw0rd",
            &hash
        ));
        w.assert_plan_empty();

        // Destroy: the root Application goes first (without its finalizer: there is no
        // application controller in the lab yet), then Argo CD.
        w.ok(&[
            "destroy",
            "-auto-approve",
            "-no-color",
            "-input=false",
            &format!("-target={ADDRESS}"),
        ]);
        assert_absent(&kc, &["get", "namespace", "argocd"]);
        assert_absent(&kc, &["get", "crd", "applications.argoproj.io"]);
        assert_absent(&kc, &["get", "clusterrole", "argocd-server"]);
        w.destroy();
    }
);

both_terraforms!(air_gapped_generated_password, |tf: &Tf| {
    let Some(file) = infraflux_reference::path(MANIFEST) else {
        return;
    };
    let lab = Lab::up();
    let ip = net(tf, 1);
    let w = Work::new(tf);
    let kc = cluster_with_cilium(&w, &lab, &ip);
    w.write(
        "argocd.tf",
        &argocd_tf(&format!(
            "  manifest_path = \"{}\"\n  namespace = \"gitops\"",
            file.display()
        )),
    );
    w.apply();
    assert_deployments_available(&kc, "gitops");
    let r = w.resource(ADDRESS);
    let password = r["admin_password"].as_str().expect("generated password");
    assert_eq!(password.len(), 32);
    assert!(infraflux_argocd::admin::password_matches(
        password,
        &admin_hash(&kc, "gitops")
    ));
    assert_eq!(r["server_address"], "argocd-server.gitops.svc:443");
    // The ClusterRoleBindings name the ServiceAccounts where they are.
    let subjects = kubectl_ok(
        &kc,
        &[
            "get",
            "clusterrolebinding",
            "argocd-server",
            "-o",
            "jsonpath={.subjects[*].namespace}",
        ],
    );
    assert_eq!(subjects, "gitops");
    w.assert_plan_empty();
    // The generated password stays.
    w.apply();
    assert_eq!(
        w.resource(ADDRESS)["admin_password"].as_str(),
        Some(password)
    );
    w.ok(&[
        "destroy",
        "-auto-approve",
        "-no-color",
        "-input=false",
        &format!("-target={ADDRESS}"),
    ]);
    assert_absent(&kc, &["get", "namespace", "gitops"]);
    assert_absent(&kc, &["get", "clusterrolebinding", "argocd-server"]);
    w.destroy();
});

/// Polls `kubectl <args>` until it succeeds (the lab's application controller syncs every
/// 100 ms; this waits for an outcome, it does not time one).
fn eventually(kc: &Path, args: &[&str]) -> String {
    for _ in 0..600 {
        let (ok, out, _) = kubectl(kc, args);
        if ok {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("kubectl {args:?} never succeeded");
}

both_terraforms!(
    root_application_orphaned_or_cascaded_on_destroy,
    |tf: &Tf| {
        let Some(file) = infraflux_reference::path(MANIFEST) else {
            return;
        };
        // A platform repository with one component: a Namespace and a ConfigMap.
        let repo = tempfile::tempdir().expect("tempdir");
        let apps = repo.path().join("gitops/argocd/apps/demo");
        std::fs::create_dir_all(&apps).expect("mkdir");
        std::fs::write(
        apps.join("application.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n  namespace: demo\ndata:\n  hello: world\n",
    )
    .expect("write");
        let url = "https://git.example.com/platform.git";
        let lab = Lab::up_with(&["--git-repo", &format!("{url}={}", repo.path().display())]);
        let ip = net(tf, 2);
        let w = Work::new(tf);
        let kc = cluster_with_cilium(&w, &lab, &ip);
        let body = |keep: bool| {
            format!(
                "  manifest_path = \"{}\"\n  root_app {{\n    repo_url = \"{url}\"\n  }}\n  on_destroy {{\n    keep_applications = {keep}\n  }}\n  timeouts {{\n    delete = \"20s\"\n  }}",
                file.display()
            )
        };
        let destroy_argocd = || {
            w.ok(&[
                "destroy",
                "-auto-approve",
                "-no-color",
                "-input=false",
                &format!("-target={ADDRESS}"),
            ]);
        };

        // keep_applications: the root Application goes without its finalizer; the workloads stay.
        w.write("argocd.tf", &argocd_tf(&body(true)));
        w.apply();
        eventually(&kc, &["get", "configmap", "demo", "-n", "demo"]);
        w.assert_plan_empty();
        destroy_argocd();
        assert_absent(&kc, &["get", "namespace", "argocd"]);
        kubectl_ok(&kc, &["get", "configmap", "demo", "-n", "demo"]);

        // Default: the root Application is deleted while the controller runs; it deletes what
        // the Application deployed, then Argo CD goes.
        w.write("argocd.tf", &argocd_tf(&body(false)));
        w.apply();
        let sync_status = || {
            kubectl(
                &kc,
                &[
                    "get",
                    "applications.argoproj.io",
                    "root",
                    "-n",
                    "argocd",
                    "-o",
                    "jsonpath={.status.sync.status}",
                ],
            )
            .1
        };
        let mut status = sync_status();
        for _ in 0..600 {
            if status == "Synced" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            status = sync_status();
        }
        assert_eq!(status, "Synced");
        // Without a running application controller nobody removes the finalizer: destroy
        // stops within its timeout and says which finalizer holds the Application.
        // (A patch: the lab serves no scale subresource.)
        let scale = |n: &str| {
            let patch = format!("{{\"spec\":{{\"replicas\":{n}}}}}");
            kubectl_ok(
                &kc,
                &[
                    "patch",
                    "statefulset",
                    "argocd-application-controller",
                    "-n",
                    "argocd",
                    "--type=merge",
                    "-p",
                    &patch,
                ],
            );
        };
        scale("0");
        let o = w.fails(&[
            "destroy",
            "-auto-approve",
            "-no-color",
            "-input=false",
            &format!("-target={ADDRESS}"),
        ]);
        let text = o.all();
        assert!(
            text.contains("resources-finalizer.argocd.argoproj.io")
                && text.contains("keep_applications"),
            "{text}"
        );
        kubectl_ok(&kc, &["get", "namespace", "argocd"]);
        scale("1");
        destroy_argocd();
        assert_absent(&kc, &["get", "configmap", "demo", "-n", "demo"]);
        assert_absent(&kc, &["get", "namespace", "argocd"]);
        w.destroy();
    }
);
