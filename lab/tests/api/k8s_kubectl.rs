//! Real kubectl 1.32 against a lab cluster: what kubectl users type works as on a real Talos
//! cluster (protobuf bodies decoded whole, server-side dry runs leave the store alone).

use std::path::Path;

use serde_json::{Value, json};

use crate::common::T;
use crate::k8s::{get_json, send};
use crate::k8s_apps::{cluster, opts};

/// `kubectl --kubeconfig <kc> <args>`: exit success, stdout, stderr.
pub async fn kubectl(kc: &Path, args: &[&str]) -> (bool, String, String) {
    let (kc, args): (_, Vec<String>) =
        (kc.to_owned(), args.iter().map(|a| a.to_string()).collect());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kc)
            .args(args)
            .output()
    })
    .await
    .expect("join")
    .expect("kubectl on PATH");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A one-node lab cluster and a kubeconfig file for it.
async fn setup(t: &T, net: &str, vmid: u32) -> (reqwest::Client, String, tempfile::TempDir) {
    let (kube, base, yaml, _) = cluster(t, net, vmid, ("cp1", None), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kubeconfig"), &yaml).expect("write kubeconfig");
    (kube, base, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_and_expose_send_protobuf_that_is_decoded_whole() {
    let t = T::with(opts(100)).await;
    let (kube, base, dir) = setup(&t, "127.77.91", 911).await;
    let kc = dir.path().join("kubeconfig");

    // kubectl's typed clients send protobuf (-v=8 shows the request headers).
    let (ok, out, err) = kubectl(
        &kc,
        &["create", "deployment", "web", "--image=nginx", "-v=8"],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl create sent protobuf: {err}"
    );
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let (ok, out, err) = kubectl(&kc, &["expose", "deployment", "web", "--port=80"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("service/web exposed"), "{out}");

    let (_, svc) = get_json(
        &kube,
        &format!("{base}/api/v1/namespaces/default/services/web"),
    )
    .await;
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}), "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP", "{svc}");

    let (_, d) = get_json(
        &kube,
        &format!("{base}/apis/apps/v1/namespaces/default/deployments/web"),
    )
    .await;
    assert_eq!(d["metadata"]["labels"], json!({"app": "web"}), "{d}");
    assert_eq!(d["spec"]["replicas"], 1, "{d}");
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}}),
        "{d}"
    );
    let tmpl = &d["spec"]["template"];
    assert_eq!(tmpl["metadata"]["labels"], json!({"app": "web"}), "{d}");
    let c = &tmpl["spec"]["containers"][0];
    assert_eq!(
        (&c["name"], &c["image"]),
        (&json!("nginx"), &json!("nginx")),
        "{d}"
    );
    // Zero-valued non-pointer omitempty fields are not invented by the protobuf decoding.
    assert!(tmpl["spec"].get("hostNetwork").is_none(), "{d}");
    assert_eq!(c["resources"], json!({}), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_of_custom_kinds_are_refused_with_415() {
    let t = T::with(opts(100)).await;
    let (kube, base, _dir) = setup(&t, "127.77.92", 921).await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    });
    let (s, v) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"),
        "application/json",
        &crd,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let url = format!("{base}/apis/example.com/v1/namespaces/default/widgets");
    let mut served: Value = Value::Null;
    for _ in 0..50 {
        let r = kube.get(&url).send().await.expect("get");
        if r.status() == 200 {
            served = json!(true);
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(served, json!(true), "the CRD's resource is served");
    let r = kube
        .post(&url)
        .header("Content-Type", "application/vnd.kubernetes.protobuf")
        .body(b"k8s\0\x0a\x00".to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 415);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["reason"], "UnsupportedMediaType", "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("application/json") && !m.contains("protobuf")),
        "{v}"
    );
    let (_, list) = get_json(&kube, &url).await;
    assert_eq!(list["items"], json!([]), "nothing was stored");
}

/// The store's resourceVersion (a list's) and the configmap's data and resourceVersion.
async fn cm_state(kube: &reqwest::Client, base: &str, name: &str) -> (String, Value, Value) {
    let (_, list) = get_json(
        kube,
        &format!("{base}/api/v1/namespaces/default/configmaps"),
    )
    .await;
    let (_, cm) = get_json(
        kube,
        &format!("{base}/api/v1/namespaces/default/configmaps/{name}"),
    )
    .await;
    (
        list["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string(),
        cm["data"].clone(),
        cm["metadata"].clone(),
    )
}

/// `dryRun=All` on update, every patch type and delete answers what the write would give
/// and changes nothing: not the object, not the resourceVersion, no watch event. Driven by
/// real `kubectl --dry-run=server` and by direct HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_dry_runs_change_nothing() {
    use reqwest::Method;
    let t = T::with(opts(100)).await;
    let (kube, base, dir) = setup(&t, "127.77.93", 931).await;
    let kc = dir.path().join("kubeconfig");
    let cms = format!("{base}/api/v1/namespaces/default/configmaps");
    let (s, _) = send(&kube, Method::POST, &cms, "application/json",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}})).await;
    assert_eq!(s, 201);
    let (s, _) = send(&kube, Method::POST, &cms, "application/json",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/keep"]}})).await;
    assert_eq!(s, 201);
    let before = cm_state(&kube, &base, "cfg").await;
    let held_before = cm_state(&kube, &base, "held").await.2;

    // kubectl apply --server-side --dry-run=server: the would-be object, nothing stored.
    let manifest = dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k: applied\n",
    )
    .expect("write");
    let m = manifest.to_str().expect("path");
    let (ok, out, err) = kubectl(
        &kc,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            m,
            "-o",
            "json",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let shown: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(shown["data"], json!({"k": "applied"}), "{shown}");
    assert_eq!(
        shown["metadata"]["resourceVersion"],
        before.2["resourceVersion"]
    );
    assert_eq!(cm_state(&kube, &base, "cfg").await, before);
    let (ok, out, err) = kubectl(
        &kc,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            m,
        ],
    )
    .await;
    assert!(
        ok && out.contains("configmap/cfg serverside-applied (server dry run)"),
        "{out}{err}"
    );
    // … also for an object that does not exist yet.
    let fresh = manifest.with_file_name("fresh.yaml");
    std::fs::write(
        &fresh,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fresh\n",
    )
    .expect("write");
    let (ok, out, err) = kubectl(
        &kc,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            fresh.to_str().expect("path"),
            "-o",
            "json",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let shown: Value = serde_json::from_str(&out).expect("json");
    assert!(shown["metadata"]["uid"].is_string(), "{shown}");
    assert!(
        shown["metadata"].get("resourceVersion").is_none(),
        "{shown}"
    );
    let (s, _) = get_json(&kube, &format!("{cms}/fresh")).await;
    assert_eq!(s, 404);
    // kubectl delete --dry-run=server (DeleteOptions.dryRun in the body).
    let (ok, out, err) = kubectl(&kc, &["delete", "configmap", "cfg", "--dry-run=server"]).await;
    assert!(
        ok && out.contains("configmap \"cfg\" deleted (server dry run)"),
        "{out}{err}"
    );
    assert_eq!(cm_state(&kube, &base, "cfg").await, before);

    // Direct HTTP: PUT, merge patch, JSON patch, apply and DELETE with dryRun=All.
    let mut put = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": before.2.clone(), "data": {"k": "put"}});
    put["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("managedFields");
    let (s, v) = send(
        &kube,
        Method::PUT,
        &format!("{cms}/cfg?dryRun=All"),
        "application/json",
        &put,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"], json!({"k": "put"}));
    assert_eq!(
        v["metadata"]["resourceVersion"],
        before.2["resourceVersion"]
    );
    let patches = [
        (
            "application/merge-patch+json",
            json!({"data": {"k": "merged"}}),
            "merged",
        ),
        (
            "application/strategic-merge-patch+json",
            json!({"data": {"k": "smp"}}),
            "smp",
        ),
        (
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/data/k", "value": "jp"}]),
            "jp",
        ),
    ];
    for (ct, p, want) in patches {
        let (s, v) = send(
            &kube,
            Method::PATCH,
            &format!("{cms}/cfg?dryRun=All"),
            ct,
            &p,
        )
        .await;
        assert_eq!(s, 200, "{ct}: {v}");
        assert_eq!(v["data"]["k"], want, "{ct}");
    }
    let (s, v) = send(&kube, Method::PATCH, &format!("{cms}/cfg?dryRun=All&fieldManager=t&force=true"),
        "application/apply-patch+yaml",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "ssa"}})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["k"], "ssa");
    let (s, v) = send(
        &kube,
        Method::DELETE,
        &format!("{cms}/cfg?dryRun=All"),
        "application/json",
        &json!({}),
    )
    .await;
    assert_eq!((s, &v["status"]), (200, &json!("Success")), "{v}");
    assert_eq!(v["details"]["name"], "cfg");
    // An object finalizers hold: answered marked, stays unmarked.
    let (s, v) = send(
        &kube,
        Method::DELETE,
        &format!("{cms}/held?dryRun=All"),
        "application/json",
        &json!({}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["metadata"]["deletionTimestamp"].is_string(), "{v}");
    let (s, v) = send(
        &kube,
        Method::DELETE,
        &format!("{cms}?dryRun=All"),
        "application/json",
        &json!({}),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    assert_eq!(cm_state(&kube, &base, "cfg").await, before);
    assert_eq!(cm_state(&kube, &base, "held").await.2, held_before);
    // No watch event since: a watch from the resourceVersion before sees nothing.
    let body = kube
        .get(format!(
            "{cms}?watch=1&resourceVersion={}&timeoutSeconds=1",
            before.0
        ))
        .send()
        .await
        .expect("watch")
        .text()
        .await
        .expect("body");
    assert_eq!(body.trim(), "", "events after dry runs");
}

/// `default/kubernetes` exists once the API server runs (ClusterIP = the first IP of the
/// service CIDR, `https` 443 → the API server's port 6443) and comes back after a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_service_is_there_as_kubectl_shows_it() {
    let t = T::with(opts(100)).await;
    let (kube, base, dir) = setup(&t, "127.77.95", 951).await;
    let kc = dir.path().join("kubeconfig");
    let svc_url = format!("{base}/api/v1/namespaces/default/services/kubernetes");
    let (ok, out, err) = kubectl(&kc, &["get", "svc"]).await;
    assert!(ok, "{out}{err}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(
        lines[1][..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
    let (ok, out, err) = kubectl(&kc, &["get", "svc", "kubernetes", "-o", "json"]).await;
    assert!(ok, "{out}{err}");
    let svc: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        svc["metadata"]["labels"],
        json!({"component": "apiserver", "provider": "kubernetes"})
    );
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    let (ok, out, err) = kubectl(&kc, &["delete", "svc", "kubernetes"]).await;
    assert!(ok, "{out}{err}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (s, v) = get_json(&kube, &svc_url).await;
        if s == 200 {
            assert_ne!(v["metadata"]["uid"], svc["metadata"]["uid"], "made again");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never made again");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
