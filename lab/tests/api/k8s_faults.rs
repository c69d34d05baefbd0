//! Fault: an API server that restarts (`POST /k8s/restart`): connections are refused while it
//! is down, open watches end, and it comes back with the same store; a retrying client (the
//! official Python client with urllib3 retries) rides it out.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::T;
use crate::k8s::{get_json, kube_client, send, venv_python};
use crate::k8s_apps::{cluster, opts};

/// The official Python client while the API server is down: without retries a read fails
/// to connect; with urllib3 retries it waits the restart out and reads the object.
const RETRYING_READ: &str = r#"
import sys, urllib3
from kubernetes import client, config
c = client.Configuration()
config.load_kube_config(sys.argv[1], client_configuration=c)
c.retries = 0
try:
    client.CoreV1Api(client.ApiClient(c)).read_namespaced_config_map("survivor", "default")
    print("refused=no", flush=True)
except urllib3.exceptions.MaxRetryError as e:
    print("refused=" + ("yes" if isinstance(e.reason, urllib3.exceptions.NewConnectionError) else repr(e.reason)), flush=True)
c.retries = urllib3.util.Retry(total=300, connect=300, read=0, backoff_factor=0.02, backoff_max=0.05)
cm = client.CoreV1Api(client.ApiClient(c)).read_namespaced_config_map("survivor", "default")
print("data=" + cm.data["k"])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_fault() {
    let t = T::with(opts(0)).await;
    let (kube, base, yaml, key) = cluster(&t, "127.77.44", 641, ("rs-cp", None), true).await;
    let cms = format!("{base}/api/v1/namespaces/default/configmaps");
    let (s, made) = send(
        &kube,
        reqwest::Method::POST,
        &cms,
        "application/json",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "survivor"}, "data": {"k": "v"}}),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let rv = made["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();

    // An open watch, past its initial ADDED.
    let mut w = kube
        .get(format!("{cms}?watch=1"))
        .send()
        .await
        .expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(5), w.chunk())
        .await
        .expect("an event")
        .expect("chunk")
        .expect("data");
    let ev: Value = serde_json::from_slice(&first).expect("json");
    assert_eq!(ev["type"], "ADDED");

    // Unknown cluster → 404; bad body → 400.
    let (s, _) = t
        .control_post(
            "/k8s/restart",
            &json!({"cluster_key": "nope", "down_ms": 1}),
        )
        .await;
    assert_eq!(s.as_u16(), 404);
    let (s, _) = t
        .control_post("/k8s/restart", &json!({"cluster_key": key}))
        .await;
    assert_eq!(s.as_u16(), 400);

    let (s, r) = t
        .control_post(
            "/k8s/restart",
            &json!({"cluster_key": key, "down_ms": 60000}),
        )
        .await;
    assert_eq!(s.as_u16(), 200, "{r}");

    // The official Python client, started at once: a read without retries is refused
    // (reported on the first line), then a retrying read waits for the server.
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, &yaml).expect("write");
    let py = venv_python();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<String>();
    let python = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, Read};
        let mut child = std::process::Command::new(py)
            .arg("-c")
            .arg(RETRYING_READ)
            .arg(&kc)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python runs");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        let _ = first_tx.send(line.trim().to_string());
        let mut rest = String::new();
        out.read_to_string(&mut rest).expect("read");
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read");
        (child.wait().expect("wait").success(), rest, err)
    });

    // The watch ends (the stream breaks off or finishes).
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match w.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => return "finished",
                Err(_) => return "broken",
            }
        }
    })
    .await
    .expect("the watch ends when the server goes");
    assert!(matches!(end, "finished" | "broken"));

    // While down: connection refused (a fresh client, no pooled connection).
    let fresh = kube_client(&serde_yaml::from_slice(&yaml).expect("yaml"));
    let e = fresh
        .get(format!("{base}/version"))
        .send()
        .await
        .expect_err("refused while down");
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(t.control_get("/k8s").await["apiservers"], json!([]));

    // Python saw the refusal; the outage ends now (a repeated restart only moves its end).
    let first = tokio::time::timeout(Duration::from_secs(30), first_rx)
        .await
        .expect("python reports")
        .expect("a first line");
    assert_eq!(first, "refused=yes");
    let (s, _) = t
        .control_post("/k8s/restart", &json!({"cluster_key": key, "down_ms": 0}))
        .await;
    assert_eq!(s.as_u16(), 200);
    let (ok, rest, err) = python.await.expect("join");
    assert!(ok, "python failed: {rest}\n{err}");
    assert_eq!(rest.lines().collect::<Vec<_>>(), ["data=v"]);

    // Same store: same uid, and a watch resumes from the old resourceVersion.
    let (s, again) = get_json(&kube, &format!("{cms}/survivor")).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["metadata"]["uid"], made["metadata"]["uid"]);
    let r = kube
        .get(format!(
            "{cms}?watch=1&resourceVersion={rv}&timeoutSeconds=1"
        ))
        .send()
        .await
        .expect("watch again");
    assert_eq!(r.status().as_u16(), 200);
    let (s, _) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/survivor"),
        "application/merge-patch+json",
        &json!({"data": {"k": "w"}}),
    )
    .await;
    assert_eq!(s, 200);
    let body = r.text().await.expect("body");
    let ev: Value = serde_json::from_str(body.lines().next().expect("an event")).expect("json");
    assert_eq!(
        (ev["type"].as_str(), ev["object"]["data"]["k"].as_str()),
        (Some("MODIFIED"), Some("w"))
    );
    t.lab.shutdown().await;
}

/// The endpoint's address is held by another process: the API server is served nowhere else
/// (no other listener, nothing in `apiservers`), `GET /k8s` lists the cluster under `failed`
/// naming the address, and once the address is free the server starts there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_endpoint_address_is_retried_never_moved() {
    use crate::k8s::{fast, install};
    use crate::talos_kit::Cluster;
    let t = T::with(fast()).await;
    let base = "https://127.77.46.10:6443";
    let other = std::net::TcpListener::bind("127.77.46.10:6443").expect("bind");
    let c = Cluster::with_endpoint(base);
    let mut cp = install(&t, &c, 661, "127.77.46.1", &c.config("controlplane")).await;
    cp.bootstrap(infraflux_lab::talos::proto::machine::BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let doc = loop {
        let doc = t.control_get("/k8s").await;
        if doc["failed"].as_array().is_some_and(|a| !a.is_empty()) {
            break doc;
        }
        assert!(std::time::Instant::now() < deadline, "no failure: {doc}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(doc["apiservers"], json!([]), "served elsewhere: {doc}");
    let f = &doc["failed"][0];
    assert_eq!(f["endpoint"], base);
    assert_eq!(f["state"], "failed");
    let err = f["error"].as_str().expect("error");
    assert!(
        err.contains("cannot listen on 127.77.46.10:6443") && err.contains("another lab"),
        "{err}"
    );
    // Still retried, still not served anywhere: the failure persists across reconciles.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let doc = t.control_get("/k8s").await;
    assert_eq!(doc["apiservers"], json!([]));
    assert_eq!(doc["failed"][0]["endpoint"], base);

    drop(other);
    let servers = crate::k8s::wait_k8s(&t, |s| s.as_array().is_some_and(|a| a.len() == 1)).await;
    assert_eq!(servers[0]["bound"], base);
    assert_eq!(t.control_get("/k8s").await["failed"], json!([]));
    let kc = crate::k8s::kubeconfig(&mut cp).await;
    let kube = kube_client(&kc);
    let (s, _) = get_json(&kube, &format!("{base}/api/v1/namespaces/default")).await;
    assert_eq!(s, 200);
    t.lab.shutdown().await;
}
