//! Argo CD's application controller, simulated: an app-of-apps from a local checkout syncs
//! in sync-wave order and reports sync, health and resources; automated prune and
//! self-heal; a Helm source reports the unreachable repository; deletion cascades behind
//! the resources finalizer (and waits while the controller does not run).

use std::time::Duration;

use infraflux_lab::k8s::controllers::argocd::GitRepo;
use serde_json::{Value, json};

use crate::common::T;
use crate::k8s::{get_json, send};
use crate::k8s_apps::{cluster, opts, wait_for};

const REPO: &str = "https://git.example/platform.git";

/// A lab cluster with the Application CRD (`crds`, else a minimal one derived from the
/// install manifest's facts) and a ready application-controller StatefulSet in `argocd`.
struct Argo {
    t: T,
    kube: reqwest::Client,
    base: String,
    repo: tempfile::TempDir,
}

impl Argo {
    async fn start(net: &str, vmid: u32, pod_ready_ms: u64, crds: Option<Vec<Value>>) -> Argo {
        let repo = tempfile::tempdir().expect("tmp");
        let mut o = opts(pod_ready_ms);
        o.git_repos = vec![GitRepo {
            url: REPO.into(),
            path: repo.path().to_path_buf(),
        }];
        let t = T::with(o).await;
        let (kube, base, _, _) = cluster(&t, net, vmid, ("argo-cp", None), true).await;
        let a = Argo {
            t,
            kube,
            base,
            repo,
        };
        a.post(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}),
        )
        .await;
        for crd in crds.unwrap_or_else(|| vec![minimal_crd()]) {
            let name = crd["metadata"]["name"].as_str().expect("name").to_string();
            a.post(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                crd,
            )
            .await;
            a.wait(
                &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
                |c| {
                    c["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|x| x["type"] == "Established" && x["status"] == "True")
                    })
                },
            )
            .await;
        }
        a.controller().await;
        a
    }

    /// The application controller's StatefulSet, waited for until ready.
    async fn controller(&self) {
        self.post(
            "/apis/apps/v1/namespaces/argocd/statefulsets",
            json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "argocd-application-controller", "namespace": "argocd"},
                "spec": {
                    "replicas": 1, "serviceName": "argocd-application-controller",
                    "selector": {"matchLabels": {"app.kubernetes.io/name": "argocd-application-controller"}},
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/name": "argocd-application-controller"}},
                        "spec": {"containers": [{"name": "argocd-application-controller", "image": "quay.io/argoproj/argocd:v3.5.1"}]}
                    }
                }
            }),
        )
        .await;
        self.wait(
            "/apis/apps/v1/namespaces/argocd/statefulsets/argocd-application-controller",
            |s| s["status"]["readyReplicas"] == 1,
        )
        .await;
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = send(
            &self.kube,
            reqwest::Method::POST,
            &format!("{}{path}", self.base),
            "application/json",
            &body,
        )
        .await;
        assert_eq!(s, 201, "POST {path}: {v}");
        v
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        get_json(&self.kube, &format!("{}{path}", self.base)).await
    }

    async fn wait(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(&self.kube, &format!("{}{path}", self.base), 15, pred).await
    }

    /// Wait until `path` answers 404.
    async fn gone(&self, path: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (s, v) = self.get(path).await;
            if s == 404 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never went: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn delete(&self, path: &str) {
        let r = self
            .kube
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .expect("delete");
        assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
    }

    /// Keep per-resource health in the Application (Argo CD 3 does not by default).
    async fn persist_health(&self) {
        self.post(
            "/api/v1/namespaces/argocd/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "argocd-cmd-params-cm", "namespace": "argocd"},
                "data": {"controller.resource.health.persist": "true"}}),
        )
        .await;
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.repo.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.repo.path().join(rel)).expect("rm");
    }

    /// The rv of each ADDED event of `collection` since `rv` (a watch that ends after 1 s).
    async fn added(&self, collection: &str, rv: &str) -> Vec<(String, u64)> {
        let url = format!(
            "{}{collection}?watch=1&resourceVersion={rv}&timeoutSeconds=1",
            self.base
        );
        let text = self
            .kube
            .get(url)
            .send()
            .await
            .expect("watch")
            .text()
            .await
            .expect("body");
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["type"] == "ADDED")
            .map(|e| {
                let name = e["object"]["metadata"]["name"].as_str().unwrap_or_default();
                let rv = e["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                (name.to_string(), rv)
            })
            .collect()
    }
}

/// The Application CRD reduced to what the controller needs (group, names, scope, the one
/// served version `v1alpha1`, no status subresource — as in the install manifest).
fn minimal_crd() -> Value {
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "applications.argoproj.io"},
        "spec": {
            "group": "argoproj.io", "scope": "Namespaced",
            "names": {"kind": "Application", "listKind": "ApplicationList", "plural": "applications", "singular": "application", "shortNames": ["app", "apps"]},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true, "subresources": {},
                "schema": {"openAPIV3Schema": {
                    "type": "object", "required": ["metadata", "spec"],
                    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": open, "status": open, "operation": open}
                }}
            }]
        }
    })
}

fn app_path(name: &str) -> String {
    format!("/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/{name}")
}

const APPS: &str = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications";

/// An Application of `REPO` at `path` into `dest_ns`, automated as `automated` says.
fn application(name: &str, path: &str, dest_ns: &str, automated: Value, finalizer: bool) -> Value {
    let mut a = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": REPO, "targetRevision": "HEAD", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": dest_ns},
            "syncPolicy": {"automated": automated, "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"]}
        }
    });
    if finalizer {
        a["metadata"]["finalizers"] = json!(["resources-finalizer.argocd.argoproj.io"]);
    }
    a
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).expect("yaml")
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.29}]
";

fn config_map(name: &str, wave: Option<i64>) -> String {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    if let Some(w) = wave {
        cm["metadata"]["annotations"] = json!({"argocd.argoproj.io/sync-wave": w.to_string()});
    }
    yaml(&cm)
}

fn resource<'a>(app: &'a Value, kind: &str, name: &str) -> &'a Value {
    app["status"]["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["kind"] == kind && r["name"] == name))
        .unwrap_or(&Value::Null)
}

fn synced_healthy(a: &Value) -> bool {
    a["status"]["sync"]["status"] == "Synced"
        && a["status"]["health"]["status"] == "Healthy"
        && a["status"]["operationState"]["phase"] == "Succeeded"
}

/// The repository for the app-of-apps: `root/` holds the child Application (and a values
/// file the include glob skips), `web/` a Deployment and two ConfigMaps, one in wave 1.
fn app_of_apps(a: &Argo) {
    let mut child = application(
        "web",
        "web",
        "web",
        json!({"prune": true, "selfHeal": true}),
        true,
    );
    if let Some(m) = child["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    a.write("root/web/application.yaml", &yaml(&child));
    a.write("root/web/values.yaml", "replicas: 3\n");
    a.write("web/deploy.yaml", DEPLOYMENT);
    a.write("web/early.yaml", &config_map("early", None));
    a.write("web/late.yaml", &config_map("late", Some(1)));
}

fn root() -> Value {
    let mut r = application(
        "root",
        "root",
        "argocd",
        json!({"prune": true, "selfHeal": true}),
        true,
    );
    r["spec"]["source"]["directory"] =
        json!({"recurse": true, "include": "{project.yaml,*/application.yaml}"});
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_of_apps_syncs_in_wave_order_with_health_and_resources() {
    let a = Argo::start("127.77.70", 701, 1500, None).await;
    a.persist_health().await;
    app_of_apps(&a);
    let (_, list) = a.get(APPS).await;
    let rv0 = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    a.post(APPS, root()).await;
    // The Deployment (wave 0) takes 1.5 s to become ready: wave 1 waits for it.
    let waiting = a
        .wait(&app_path("web"), |w| {
            w["status"]["operationState"]["phase"] == "Running"
        })
        .await;
    assert_eq!(
        waiting["status"]["operationState"]["message"],
        "waiting for healthy state of apps/Deployment/web",
        "{waiting}"
    );
    let (s, _) = a.get("/api/v1/namespaces/web/configmaps/late").await;
    assert_eq!(s, 404, "wave 1 is applied before wave 0 is healthy");
    assert_eq!(
        resource(&waiting, "Deployment", "web")["health"]["status"],
        "Progressing"
    );
    assert_eq!(waiting["status"]["health"]["status"], "Progressing");

    let web = a.wait(&app_path("web"), synced_healthy).await;
    let st = &web["status"];
    assert_eq!(
        st["sync"]["revision"].as_str().map(str::len),
        Some(40),
        "{st}"
    );
    assert_eq!(st["sourceType"], "Directory");
    assert!(st.get("resourceHealthSource").is_none(), "{st}");
    assert!(st["health"]["lastTransitionTime"].is_string(), "{st}");
    assert!(
        st["reconciledAt"].is_string() && st.get("conditions").is_none(),
        "{st}"
    );
    assert_eq!(
        resource(&web, "Deployment", "web"),
        &json!({"version": "v1", "kind": "Deployment", "name": "web", "group": "apps", "namespace": "web", "status": "Synced", "health": {"status": "Healthy"}})
    );
    assert_eq!(
        resource(&web, "ConfigMap", "late"),
        &json!({"version": "v1", "kind": "ConfigMap", "name": "late", "namespace": "web", "status": "Synced", "syncWave": 1})
    );
    assert_eq!(st["resources"].as_array().map(Vec::len), Some(3), "{st}");
    let results = st["operationState"]["syncResult"]["resources"]
        .as_array()
        .expect("results");
    assert!(
        results.iter().any(|r| r["kind"] == "Deployment"
            && r["status"] == "Synced"
            && r["message"] == "deployment.apps/web serverside-applied"),
        "{results:?}"
    );
    assert_eq!(
        st["operationState"]["operation"]["initiatedBy"]["automated"],
        true
    );

    // The root app manages the child Application (no health: no built-in check for it).
    let root = a.wait(&app_path("root"), synced_healthy).await;
    assert_eq!(
        root["status"]["resources"],
        json!([{"version": "v1alpha1", "kind": "Application", "name": "web", "group": "argoproj.io", "namespace": "argocd", "status": "Synced"}])
    );

    // Server-side applied by argocd-controller, tracked by annotation, namespace created.
    let (_, dep) = a.get("/apis/apps/v1/namespaces/web/deployments/web").await;
    assert_eq!(
        dep["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "web:apps/Deployment:web/web"
    );
    assert!(
        dep["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|m| m
                .iter()
                .any(|f| f["manager"] == "argocd-controller" && f["operation"] == "Apply")),
        "{dep}"
    );

    // Creation order: early (ConfigMap) before web (Deployment) in wave 0, late in wave 1.
    let cms = a.added("/api/v1/namespaces/web/configmaps", &rv0).await;
    let deps = a
        .added("/apis/apps/v1/namespaces/web/deployments", &rv0)
        .await;
    let rv = |v: &[(String, u64)], n: &str| {
        v.iter()
            .find(|(name, _)| name == n)
            .map(|(_, r)| *r)
            .expect(n)
    };
    let (early, web_rv, late) = (rv(&cms, "early"), rv(&deps, "web"), rv(&cms, "late"));
    assert!(
        early < web_rv && web_rv < late,
        "early {early}, web {web_rv}, late {late}"
    );
    a.t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automated_prune_and_self_heal() {
    let a = Argo::start("127.77.71", 711, 50, None).await;
    a.write("cms/a.yaml", &config_map("a", None));
    a.write("cms/b.yaml", &config_map("b", None));
    a.post(
        APPS,
        application(
            "cms",
            "cms",
            "cms",
            json!({"prune": true, "selfHeal": true}),
            false,
        ),
    )
    .await;
    let keep = application("keep", "cms", "keep", json!({}), false);
    a.post(APPS, keep).await;
    a.wait(&app_path("cms"), synced_healthy).await;
    a.wait(&app_path("keep"), synced_healthy).await;

    // Drift: self-heal re-applies the source's value.
    let (s, v) = send(
        &a.kube,
        reqwest::Method::PATCH,
        &format!("{}/api/v1/namespaces/cms/configmaps/a", a.base),
        "application/merge-patch+json",
        &json!({"data": {"k": "drifted"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    a.wait("/api/v1/namespaces/cms/configmaps/a", |c| {
        c["data"]["k"] == "v"
    })
    .await;
    let healed = a
        .wait(&app_path("cms"), |c| {
            c["status"]["operationState"]["operation"]["sync"]["autoHealAttemptsCount"] == 1
                && synced_healthy(c)
        })
        .await;
    assert_eq!(
        healed["status"]["operationState"]["operation"]["initiatedBy"]["automated"],
        true
    );
    // Without selfHeal the same drift stays and the app is OutOfSync.
    let (s, _) = send(
        &a.kube,
        reqwest::Method::PATCH,
        &format!("{}/api/v1/namespaces/keep/configmaps/a", a.base),
        "application/merge-patch+json",
        &json!({"data": {"k": "drifted"}}),
    )
    .await;
    assert_eq!(s, 200);
    let keep = a
        .wait(&app_path("keep"), |k| {
            k["status"]["sync"]["status"] == "OutOfSync"
        })
        .await;
    assert_eq!(resource(&keep, "ConfigMap", "a")["status"], "OutOfSync");

    // Removed from the source: pruned (prune: true) or kept and flagged (no prune). A new
    // revision: the app without selfHeal syncs again too, restoring its drifted object.
    a.remove("cms/b.yaml");
    a.gone("/api/v1/namespaces/cms/configmaps/b").await;
    let cms = a
        .wait(&app_path("cms"), |c| {
            synced_healthy(c) && c["status"]["resources"].as_array().map(Vec::len) == Some(1)
        })
        .await;
    assert!(
        cms["status"]["operationState"]["syncResult"]["resources"]
            .as_array()
            .is_some_and(|r| r
                .iter()
                .any(|x| x["name"] == "b" && x["status"] == "Pruned" && x["message"] == "pruned")),
        "{cms}"
    );
    let keep = a
        .wait(&app_path("keep"), |k| {
            k["status"]["operationState"]["phase"] == "Succeeded"
                && resource(k, "ConfigMap", "b")["requiresPruning"] == true
        })
        .await;
    assert_eq!(keep["status"]["sync"]["status"], "OutOfSync", "{keep}");
    assert_eq!(resource(&keep, "ConfigMap", "b")["status"], "OutOfSync");
    let (s, _) = a.get("/api/v1/namespaces/keep/configmaps/b").await;
    assert_eq!(s, 200, "not pruned without prune");
    let (_, cm) = a.get("/api/v1/namespaces/keep/configmaps/a").await;
    assert_eq!(cm["data"]["k"], "v");
    a.t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_and_unknown_repositories_report_comparison_errors() {
    let a = Argo::start("127.77.72", 721, 50, None).await;
    let mut helm = application("cilium", "", "kube-system", json!({"prune": true}), false);
    helm["spec"]["source"] = json!({"repoURL": "https://helm.cilium.io/", "chart": "cilium", "targetRevision": "1.18.4"});
    a.post(APPS, helm).await;
    let mut git = application("elsewhere", "apps", "default", json!({}), false);
    git["spec"]["source"]["repoURL"] = json!("https://github.com/example/unknown.git");
    a.post(APPS, git).await;
    let prefix = "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = ";
    for (name, rest) in [
        (
            "cilium",
            "error fetching chart: failed to fetch chart: looks like \"https://helm.cilium.io/\" is not a valid chart repository or cannot be reached: Get \"https://helm.cilium.io/index.yaml\": dial tcp: lookup helm.cilium.io: no such host",
        ),
        (
            "elsewhere",
            "failed to list refs: Get \"https://github.com/example/unknown.git/info/refs?service=git-upload-pack\": dial tcp: lookup github.com: no such host",
        ),
    ] {
        let app = a
            .wait(&app_path(name), |x| {
                x["status"]["sync"]["status"] == "Unknown"
            })
            .await;
        let conds = app["status"]["conditions"].as_array().expect("conditions");
        assert_eq!(conds.len(), 1, "{app}");
        assert_eq!(conds[0]["type"], "ComparisonError");
        assert_eq!(conds[0]["message"], format!("{prefix}{rest}"));
        assert!(
            app["status"].get("operationState").is_none(),
            "no sync is attempted"
        );
    }
    // A kind the cluster does not serve: the sync fails before applying anything, and
    // auto-sync does not try the same revision again.
    a.write("broken/cm.yaml", &config_map("before", None));
    a.write(
        "broken/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n",
    );
    a.post(
        APPS,
        application("broken", "broken", "broken", json!({}), false),
    )
    .await;
    let b = a
        .wait(&app_path("broken"), |x| {
            x["status"]["conditions"][0]["type"] == "SyncError"
        })
        .await;
    let op = &b["status"]["operationState"];
    assert_eq!(op["phase"], "Failed", "{b}");
    assert_eq!(
        op["message"],
        "one or more synchronization tasks are not valid"
    );
    assert_eq!(
        op["syncResult"]["resources"][0]["message"],
        "The Kubernetes API could not find example.com/Widget for requested resource broken/w. Make sure the \"Widget\" CRD is installed on the destination cluster."
    );
    let rev = b["status"]["sync"]["revision"].as_str().expect("revision");
    assert_eq!(
        b["status"]["conditions"][0]["message"],
        format!(
            "Failed last sync attempt to [{rev}]: one or more synchronization tasks are not valid"
        )
    );
    let (s, _) = a.get("/api/v1/namespaces/broken/configmaps/before").await;
    assert_eq!(s, 404, "nothing is applied when a task is invalid");
    let (_, helm) = a.get(&app_path("cilium")).await;
    assert_eq!(helm["status"]["sourceType"], "Helm");
    // Multi-source: the chart with values from a `ref` source; the failing source is named.
    let mut multi = application("multi", "", "kube-system", json!({}), false);
    multi["spec"]["sources"] = json!([
        {"repoURL": "https://helm.cilium.io", "chart": "cilium", "targetRevision": "1.18.4", "helm": {"valueFiles": ["$values/cilium/values.yaml"]}},
        {"repoURL": REPO, "targetRevision": "HEAD", "ref": "values"},
    ]);
    if let Some(spec) = multi["spec"].as_object_mut() {
        spec.remove("source");
    }
    a.post(APPS, multi).await;
    let m = a
        .wait(&app_path("multi"), |x| {
            x["status"]["sync"]["status"] == "Unknown"
        })
        .await;
    let msg = m["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        msg.starts_with("Failed to load target state: failed to generate manifest for source 1 of 2: rpc error: code = Unknown desc = error fetching chart:"),
        "{msg}"
    );
    assert_eq!(m["status"]["sourceTypes"], json!(["Helm", "Directory"]));
    // Two directory sources of the lab's repository: both applied, revisions per source.
    a.write("one/a.yaml", &config_map("one", None));
    a.write("two/b.yaml", &config_map("two", None));
    let mut both = application("both", "", "both", json!({"prune": true}), false);
    both["spec"]["sources"] = json!([
        {"repoURL": REPO, "targetRevision": "HEAD", "path": "one"},
        {"repoURL": REPO, "targetRevision": "HEAD", "path": "two"},
    ]);
    a.post(APPS, both).await;
    let b = a.wait(&app_path("both"), synced_healthy).await;
    let revs = &b["status"]["sync"]["revisions"];
    assert_eq!(revs.as_array().map(Vec::len), Some(2), "{b}");
    assert_eq!(
        &b["status"]["operationState"]["syncResult"]["revisions"],
        revs
    );
    assert_eq!(
        &b["status"]["operationState"]["operation"]["sync"]["revisions"],
        revs
    );
    assert_eq!(b["status"]["resources"].as_array().map(Vec::len), Some(2));
    assert!(b["status"]["sync"]["comparedTo"]["sources"].is_array());
    a.t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizer_cascades_orphans_without_and_waits_for_the_controller() {
    let a = Argo::start("127.77.73", 731, 50, None).await;
    app_of_apps(&a);
    a.write("solo/cm.yaml", &config_map("solo", None));
    a.post(APPS, root()).await;
    a.post(APPS, application("solo", "solo", "solo", json!({}), false))
        .await;
    a.wait(&app_path("web"), synced_healthy).await;
    a.wait(&app_path("root"), synced_healthy).await;
    a.wait(&app_path("solo"), synced_healthy).await;

    // No finalizer: the Application goes at once, its objects stay.
    a.delete(&app_path("solo")).await;
    a.gone(&app_path("solo")).await;
    let (s, _) = a.get("/api/v1/namespaces/solo/configmaps/solo").await;
    assert_eq!(s, 200, "orphaned");

    // No running controller: the finalizer holds the Application.
    a.delete("/apis/apps/v1/namespaces/argocd/statefulsets/argocd-application-controller")
        .await;
    a.gone("/apis/apps/v1/namespaces/argocd/statefulsets/argocd-application-controller")
        .await;
    a.delete(&app_path("root")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, held) = a.get(&app_path("root")).await;
    assert_eq!(s, 200, "{held}");
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let (s, _) = a.get(&app_path("web")).await;
    assert_eq!(s, 200);

    // The controller back: the child Application, its objects, then the root go.
    a.controller().await;
    a.gone(&app_path("root")).await;
    a.gone(&app_path("web")).await;
    for p in [
        "/apis/apps/v1/namespaces/web/deployments/web",
        "/api/v1/namespaces/web/configmaps/early",
        "/api/v1/namespaces/web/configmaps/late",
    ] {
        a.gone(p).await;
    }
    // The namespace CreateNamespace made is not the Application's to delete.
    let (s, _) = a.get("/api/v1/namespaces/web").await;
    assert_eq!(s, 200);
    a.t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_sync_through_the_operation_field() {
    let a = Argo::start("127.77.75", 751, 50, None).await;
    a.write("web/deploy.yaml", DEPLOYMENT);
    let mut manual = application("manual", "web", "manual", Value::Null, false);
    manual["spec"]["syncPolicy"] = json!({"syncOptions": ["CreateNamespace=true"]});
    a.post(APPS, manual).await;
    // Not automated: compared, not applied; the missing Deployment makes the app Missing.
    let app = a
        .wait(&app_path("manual"), |m| {
            m["status"]["sync"]["status"] == "OutOfSync"
        })
        .await;
    assert_eq!(app["status"]["health"]["status"], "Missing", "{app}");
    // Argo CD 3's default: per-resource health is not kept in the Application.
    assert_eq!(app["status"]["resourceHealthSource"], "appTree");
    assert_eq!(
        resource(&app, "Deployment", "web"),
        &json!({"version": "v1", "kind": "Deployment", "name": "web", "group": "apps", "namespace": "manual", "status": "OutOfSync"})
    );
    assert!(app["status"].get("operationState").is_none());
    // What `argocd app sync` writes: the controller runs it, then removes `operation`.
    let (s, v) = send(
        &a.kube,
        reqwest::Method::PATCH,
        &format!("{}{}", a.base, app_path("manual")),
        "application/merge-patch+json",
        &json!({"operation": {"initiatedBy": {"username": "admin"}, "sync": {"syncStrategy": {"hook": {}}}}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let done = a
        .wait(&app_path("manual"), |m| {
            synced_healthy(m) && m.get("operation").is_none()
        })
        .await;
    let op = &done["status"]["operationState"];
    assert_eq!(op["operation"]["initiatedBy"]["username"], "admin");
    assert_eq!(
        op["operation"]["sync"]["revision"],
        done["status"]["sync"]["revision"]
    );
    assert_eq!(op["message"], "successfully synced (all tasks run)");
    assert!(op["finishedAt"].is_string() && op["startedAt"].is_string());
    a.t.lab.shutdown().await;
}

/// Status as the controller writes it passes the real Application CRD's schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fits_the_install_manifests_crds() {
    let Some(text) = infraflux_reference::read("argocd/install-v3.5.1.yaml") else {
        return;
    };
    let crds: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| <Value as serde::Deserialize>::deserialize(d).ok())
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 3);
    let a = Argo::start("127.77.74", 741, 50, Some(crds)).await;
    a.persist_health().await;
    app_of_apps(&a);
    a.post(APPS, root()).await;
    let web = a.wait(&app_path("web"), synced_healthy).await;
    assert_eq!(
        resource(&web, "Deployment", "web")["health"]["status"],
        "Healthy"
    );
    a.wait(&app_path("root"), synced_healthy).await;
    a.t.lab.shutdown().await;
}
