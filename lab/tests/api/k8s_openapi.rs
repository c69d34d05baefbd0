//! `/openapi/v3` (what `kubectl apply` downloads first) and the apps/v1 defaults the API
//! server fills in.

use serde_json::{Value, json};

use crate::common::T;
use crate::k8s::{get_json, send};
use crate::k8s_apps::{cluster, opts, wait_for};

fn param_names(op: &Value) -> Vec<&str> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_v3_documents_and_apps_defaults() {
    let t = T::with(opts(0)).await;
    let (kube, base, _, _) = cluster(&t, "127.77.45", 651, ("oa-cp", None), true).await;
    let (s, index) = get_json(&kube, &format!("{base}/openapi/v3")).await;
    assert_eq!(s, 200, "{index}");
    let paths = index["paths"].as_object().expect("paths");
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/networking.k8s.io/v1",
        "apis/rbac.authorization.k8s.io/v1",
        "apis/apiextensions.k8s.io/v1",
    ] {
        let url = paths[gv]["serverRelativeURL"].as_str().expect("url");
        assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
    }
    let url = paths["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("url");
    let (s, apps) = get_json(&kube, &format!("{base}{url}")).await;
    assert_eq!(s, 200);
    assert_eq!(apps["openapi"], "3.0.0");
    // kubectl's check: the PATCH operation of the kind declares `fieldValidation`.
    let patch = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "StatefulSet", "version": "v1"})
    );
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedStatefulSet");
    assert_eq!(
        param_names(patch),
        ["dryRun", "fieldManager", "fieldValidation", "force"]
    );
    assert_eq!(
        apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    let (s, _) = crate::k8s::get(
        &kube,
        &format!("{base}/openapi/v3/apis/nope.example.com/v1"),
    )
    .await;
    assert_eq!(s, 404);

    // A CRD's group version appears once Established, with the CRD's schema.
    let crds = format!("{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1beta1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}, "color": {"type": "string", "default": "blue"}}}}}}}]}});
    let (s, made) = send(
        &kube,
        reqwest::Method::POST,
        &crds,
        "application/json",
        &crd,
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let index = wait_for(&kube, &format!("{base}/openapi/v3"), 5, |v| {
        v["paths"].get("apis/example.com/v1beta1").is_some()
    })
    .await;
    let url = index["paths"]["apis/example.com/v1beta1"]["serverRelativeURL"]
        .as_str()
        .expect("url");
    let (_, doc) = get_json(&kube, &format!("{base}{url}")).await;
    let schema = &doc["components"]["schemas"]["com.example.v1beta1.Widget"];
    assert_eq!(
        schema["properties"]["spec"]["properties"]["size"]["type"],
        "integer"
    );
    assert_eq!(
        schema["x-kubernetes-group-version-kind"],
        json!([{"group": "example.com", "kind": "Widget", "version": "v1beta1"}])
    );
    let patch =
        &doc["paths"]["/apis/example.com/v1beta1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert!(param_names(patch).contains(&"fieldValidation"));
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none(),
        "custom resources take no strategic merge patch"
    );

    // Custom objects are pruned and defaulted by the CRD's structural schema; unknown fields
    // are warned about (the default), refused (Strict) or silently dropped (Ignore).
    let widgets = format!("{base}/apis/example.com/v1beta1/namespaces/default/widgets");
    let w = json!({"apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": {"name": "w1"},
        "spec": {"size": 2, "bogus": true}, "extra": 1});
    let r = kube
        .post(&widgets)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&w).expect("json"))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let warnings: Vec<String> = r
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    assert_eq!(
        warnings,
        [
            "299 - \"unknown field \\\"spec.bogus\\\"\"",
            "299 - \"unknown field \\\"extra\\\"\""
        ]
    );
    let made: Value = r.json().await.expect("json");
    assert_eq!(made["spec"], json!({"size": 2, "color": "blue"}));
    assert!(made.get("extra").is_none());
    let (s, e) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{widgets}?fieldValidation=Strict"),
        "application/json",
        &json!({"apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"bogus": 1, "more": 2}}),
    )
    .await;
    assert_eq!((s, e["reason"].as_str()), (400, Some("BadRequest")), "{e}");
    assert_eq!(
        e["message"],
        "Widget in version \"v1beta1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.bogus\", unknown field \"spec.more\""
    );
    // Server-side apply (what kubectl sends with fieldValidation=Strict) and Ignore.
    let r = kube
        .patch(format!("{widgets}/w3?fieldManager=t&fieldValidation=Ignore"))
        .header("Content-Type", "application/apply-patch+yaml")
        .body("apiVersion: example.com/v1beta1\nkind: Widget\nmetadata:\n  name: w3\nspec:\n  size: 5\n  nope: 1\n")
        .send()
        .await
        .expect("apply");
    assert_eq!(r.status().as_u16(), 201);
    assert!(r.headers().get("warning").is_none());
    let applied: Value = r.json().await.expect("json");
    assert_eq!(applied["spec"], json!({"size": 5, "color": "blue"}));
    let r = kube
        .patch(format!("{widgets}/w3?fieldManager=t&fieldValidation=Strict"))
        .header("Content-Type", "application/apply-patch+yaml")
        .body("apiVersion: example.com/v1beta1\nkind: Widget\nmetadata:\n  name: w3\nspec:\n  nope: 1\n")
        .send()
        .await
        .expect("apply");
    assert_eq!(r.status().as_u16(), 400);

    // apps/v1 defaults, as `kubectl rollout status` reads them; a repeated apply does not
    // move the generation.
    let sts = format!("{base}/apis/apps/v1/namespaces/default/statefulsets/db");
    let body = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "redis"}]}}}});
    for round in 0..2 {
        let r = kube
            .patch(format!("{sts}?fieldManager=t"))
            .header("Content-Type", "application/apply-patch+yaml")
            .body(serde_json::to_vec(&body).expect("json"))
            .send()
            .await
            .expect("apply");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["metadata"]["generation"], 1, "round {round}: {v}");
        assert_eq!(
            v["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            (
                v["spec"]["replicas"].as_u64(),
                v["spec"]["podManagementPolicy"].as_str(),
                v["spec"]["revisionHistoryLimit"].as_u64()
            ),
            (Some(1), Some("OrderedReady"), Some(10))
        );
    }
    let deps = format!("{base}/apis/apps/v1/namespaces/default/deployments");
    let (s, d) = send(&kube, reqwest::Method::POST, &deps, "application/json",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})).await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    t.lab.shutdown().await;
}
