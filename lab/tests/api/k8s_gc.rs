//! Deletion propagation: `propagationPolicy` (DeleteOptions body or query) Orphan, Background
//! (the default) and Foreground, with the garbage collector's finalizers and its background
//! collection of dependents whose owners are gone.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::T;
use crate::k8s::{get_json, send};
use crate::k8s_apps::{cluster, opts};

struct Api {
    kube: reqwest::Client,
    cms: String,
}

impl Api {
    /// Create a ConfigMap with owner references (`(owner, blockOwnerDeletion)`) and
    /// finalizers; its uid.
    async fn cm(&self, name: &str, owners: &[(&Value, bool)], finalizers: &[&str]) -> Value {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(o, block)| {
                let mut r = json!({"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]});
                if *block {
                    r["blockOwnerDeletion"] = json!(true);
                }
                r
            })
            .collect();
        let mut meta = json!({"name": name});
        if !refs.is_empty() {
            meta["ownerReferences"] = json!(refs);
        }
        if !finalizers.is_empty() {
            meta["finalizers"] = json!(finalizers);
        }
        let (s, v) = send(
            &self.kube,
            reqwest::Method::POST,
            &self.cms,
            "application/json",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    async fn delete(&self, name: &str, query: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.kube.delete(format!("{}/{name}{query}", self.cms));
        if let Some(b) = body {
            r = r
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&b).expect("json"));
        }
        let r = r.send().await.expect("delete");
        let s = r.status().as_u16();
        (s, r.json().await.expect("json"))
    }

    async fn get(&self, name: &str) -> (u16, Value) {
        get_json(&self.kube, &format!("{}/{name}", self.cms)).await
    }

    /// Until `name` is gone (panics after 5 s).
    async fn gone(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (s, v) = self.get(name).await;
            if s == 404 {
                return;
            }
            assert!(Instant::now() < deadline, "{name} is still there: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_propagation_and_garbage_collection() {
    let t = T::with(opts(0)).await;
    let (kube, base, yaml, _) = cluster(&t, "127.77.43", 631, ("gc-cp", None), true).await;
    let api = Api {
        kube,
        cms: format!("{base}/api/v1/namespaces/default/configmaps"),
    };

    // Background (the default): the owner goes at once, its dependents a moment later.
    let owner = api.cm("owner", &[], &[]).await;
    api.cm("dep-a", &[(&owner, true)], &[]).await;
    api.cm("dep-b", &[(&owner, false)], &[]).await;
    let (s, st) = api.delete("owner", "", None).await;
    assert_eq!((s, st["status"].as_str()), (200, Some("Success")), "{st}");
    api.gone("dep-a").await;
    api.gone("dep-b").await;

    // Orphan (DeleteOptions body): the owner is marked with the `orphan` finalizer; the
    // collector drops the dependents' references, then the finalizer, and the owner goes.
    let owner = api.cm("owner2", &[], &[]).await;
    api.cm("kept", &[(&owner, true)], &[]).await;
    let (s, marked) = api
        .delete(
            "owner2",
            "",
            Some(
                json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{marked}");
    assert_eq!(marked["metadata"]["finalizers"], json!(["orphan"]));
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    api.gone("owner2").await;
    let (s, kept) = api.get("kept").await;
    assert_eq!(s, 200);
    assert!(kept["metadata"].get("ownerReferences").is_none(), "{kept}");
    // The legacy `orphanDependents=true` query means the same.
    let owner = api.cm("owner3", &[], &[]).await;
    api.cm("kept2", &[(&owner, false)], &[]).await;
    let (s, marked) = api.delete("owner3", "?orphanDependents=true", None).await;
    assert_eq!(
        (s, &marked["metadata"]["finalizers"]),
        (200, &json!(["orphan"]))
    );
    api.gone("owner3").await;
    assert_eq!(api.get("kept2").await.0, 200);

    // Foreground (query): the owner waits, marked with `foregroundDeletion`, until its
    // blocking dependents are gone; non-blocking ones are deleted without being waited for.
    let owner = api.cm("fg", &[], &[]).await;
    api.cm("blocker", &[(&owner, true)], &["example.com/hold"])
        .await;
    api.cm("loose", &[(&owner, false)], &[]).await;
    let (s, marked) = api
        .delete("fg", "?propagationPolicy=Foreground", None)
        .await;
    assert_eq!(s, 200, "{marked}");
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    api.gone("loose").await;
    // The blocker is being deleted (in the foreground itself) but its own finalizer holds it…
    let deadline = Instant::now() + Duration::from_secs(5);
    let blocker = loop {
        let (_, b) = api.get("blocker").await;
        if b["metadata"]["deletionTimestamp"].is_string() {
            break b;
        }
        assert!(Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // (Its own `foregroundDeletion`, having no dependents, is dropped at once.)
    assert_eq!(blocker["metadata"]["finalizers"][0], "example.com/hold");
    // … and so the owner waits (the collector pass that marked the blocker saw it blocking,
    // and every later pass sees it still there).
    let (s, fg) = api.get("fg").await;
    assert_eq!(s, 200, "the owner waits for its blocking dependent");
    assert!(fg["metadata"]["deletionTimestamp"].is_string());
    let (s, p) = send(
        &api.kube,
        reqwest::Method::PATCH,
        &format!("{}/blocker", api.cms),
        "application/json-patch+json",
        &json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    api.gone("blocker").await;
    api.gone("fg").await;

    // Two owners, one deleted: the dependent stays with the other reference.
    let a = api.cm("own-a", &[], &[]).await;
    let b = api.cm("own-b", &[], &[]).await;
    api.cm("shared", &[(&a, false), (&b, false)], &[]).await;
    api.delete("own-a", "", None).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, v) = api.get("shared").await;
        assert_eq!(s, 200, "{v}");
        let refs = v["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if refs.len() == 1 {
            assert_eq!(refs[0]["name"], "own-b");
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An owner of a kind the server does not serve cannot be looked up: the dependent stays.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "00000000-0000-4000-8000-000000000001"}});
    api.cm("pod-owned", &[(&pod, false)], &[]).await;
    // A dependent of an owner that never existed (by uid) is collected.
    let ghost = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "own-b", "uid": "00000000-0000-4000-8000-000000000002"}});
    api.cm("orphaned", &[(&ghost, false)], &[]).await;
    api.gone("orphaned").await;
    assert_eq!(api.get("pod-owned").await.0, 200);

    // Invalid options, worded as the real validation.
    let (s, e) = api
        .delete("own-b", "?propagationPolicy=Sideways", None)
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        e["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
    );
    let (s, e) = api
        .delete(
            "own-b",
            "",
            Some(json!({"propagationPolicy": "Orphan", "orphanDependents": true})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        e["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \"Orphan\": orphanDependents and deletionPropagation cannot be both set"
    );
    assert_eq!(api.get("own-b").await.0, 200);

    // The official Python client sends DeleteOptions in the body.
    let owner = api.cm("py-owner", &[], &[]).await;
    api.cm("py-dep", &[(&owner, true)], &[]).await;
    let fg = api.cm("py-fg", &[], &[]).await;
    api.cm("py-fg-dep", &[(&fg, true)], &[]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, &yaml).expect("write");
    let script = r#"
import sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()
o = v1.delete_namespaced_config_map("py-owner", "default", body=client.V1DeleteOptions(propagation_policy="Orphan"))
# The answer is the marked ConfigMap, not a Status: the client hands it back as a dict.
print("orphan=" + ",".join(o["metadata"]["finalizers"]))
f = v1.delete_namespaced_config_map("py-fg", "default", propagation_policy="Foreground")
print("foreground=" + ",".join(f["metadata"]["finalizers"]))
"#;
    let lines = crate::k8s::python(script, &[kc.as_os_str()]).await;
    assert_eq!(lines, ["orphan=orphan", "foreground=foregroundDeletion"]);
    api.gone("py-owner").await;
    api.gone("py-fg").await;
    api.gone("py-fg-dep").await;
    let (s, kept) = api.get("py-dep").await;
    assert_eq!(s, 200);
    assert!(kept["metadata"].get("ownerReferences").is_none(), "{kept}");
    t.lab.shutdown().await;
}
