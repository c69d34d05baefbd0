//! One Application's reconciliation: load the target state, run (or continue) a sync
//! operation, compare, and write `status`; or, for an Application being deleted, cascade
//! the deletion behind `resources-finalizer.argocd.argoproj.io`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::client::Client;
use super::health;
use super::repo::{self, Directory, GitRepo};
use super::sync::{self, Progress, Res};
use crate::k8s::ApiServer;
use crate::k8s::store::{self, Kind};

/// The cascade-deletion finalizer (also with a `/foreground` or `/background` suffix).
pub const FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

/// The in-cluster destination's server URL and name.
const IN_CLUSTER: &str = "https://kubernetes.default.svc";

fn now() -> String {
    store::rfc3339(std::time::SystemTime::now())
}

fn str_of<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// Reconcile every Application in `ns`.
pub async fn reconcile_namespace(api: &Arc<ApiServer>, repos: &[GitRepo], ns: &str) {
    let Some(k) = api.store.find("argoproj.io", "v1alpha1", "applications") else {
        return;
    };
    let (apps, _) = api.store.list(k, Some(ns));
    if apps.is_empty() {
        return;
    }
    let mut client = match Client::connect(api.clone(), ns).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("{e}");
            return;
        }
    };
    let persist = persist_resource_health(api, ns);
    for app in apps {
        if app.pointer("/metadata/deletionTimestamp").is_some() {
            finalize(&mut client, api, ns, &app).await;
        } else {
            reconcile(&mut client, api, repos, ns, &app, persist).await;
        }
    }
}

/// `controller.resource.health.persist` of `argocd-cmd-params-cm` (Go's ParseBool; Argo
/// CD 3 defaults it to false: per-resource health lives in the app tree, not in the
/// Application).
fn persist_resource_health(api: &ApiServer, ns: &str) -> bool {
    let Some(cms) = store::kind("configmaps") else {
        return false;
    };
    api.store
        .get(cms, ns, "argocd-cmd-params-cm")
        .ok()
        .and_then(|cm| {
            cm["data"]["controller.resource.health.persist"]
                .as_str()
                .map(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"))
        })
        .unwrap_or(false)
}

fn app_path(ns: &str, name: &str) -> String {
    format!("/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications/{name}")
}

fn item_path(k: &Kind, ns: &str, name: &str) -> String {
    let base = if k.group.is_empty() {
        format!("/api/{}", k.version)
    } else {
        format!("/apis/{}/{}", k.group, k.version)
    };
    if ns.is_empty() {
        format!("{base}/{}/{name}", k.resource)
    } else {
        format!("{base}/namespaces/{ns}/{}/{name}", k.resource)
    }
}

/// An Application being deleted: with our finalizer, delete what it manages and drop the
/// finalizer once all of it is gone; without, its objects are left alone (orphaned).
async fn finalize(client: &mut Client, api: &ApiServer, ns: &str, app: &Value) {
    let name = str_of(app, "/metadata/name");
    let fins: Vec<String> = app["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    let Some(ours) = fins
        .iter()
        .find(|f| *f == FINALIZER || f.starts_with(&format!("{FINALIZER}/")))
        .cloned()
    else {
        return;
    };
    let propagation = if ours.ends_with("/background") {
        "Background"
    } else {
        "Foreground"
    };
    let left = sync::tracked(api, name);
    for (k, obj) in &left {
        if obj.pointer("/metadata/deletionTimestamp").is_none() {
            let path = item_path(
                k,
                str_of(obj, "/metadata/namespace"),
                str_of(obj, "/metadata/name"),
            );
            if let Err(e) = client.delete(&path, propagation).await {
                tracing::debug!("{e}");
            }
        }
    }
    if !left.is_empty() {
        return;
    }
    let rest: Vec<&String> = fins.iter().filter(|f| **f != ours).collect();
    let ops = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": app["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/metadata/finalizers", "value": rest},
    ]);
    if let Err(e) = client.json_patch(&app_path(ns, name), &ops).await {
        tracing::debug!("{e}");
    }
}

/// What the source yields, or the condition message saying why it cannot be loaded.
struct Target {
    /// One per source (multi-source Applications report them as `revisions`).
    revisions: Vec<String>,
    /// `spec.sources` rather than `spec.source`.
    multi: bool,
    manifests: Vec<Value>,
}

impl Target {
    /// The revision(s) as `status.sync` and `syncResult` carry them: (key, value).
    fn revision_field(&self) -> (&'static str, Value) {
        if self.multi {
            ("revisions", json!(self.revisions))
        } else {
            (
                "revision",
                json!(self.revisions.first().cloned().unwrap_or_default()),
            )
        }
    }
}

/// The Application's sources: `spec.sources` (multi-source) or `spec.source`.
fn sources_of(app: &Value) -> (Vec<Value>, bool) {
    match app["spec"]["sources"].as_array() {
        // Argo CD: `sources`, when not empty, wins over `source`.
        Some(list) if !list.is_empty() => (list.clone(), true),
        _ => (vec![app["spec"]["source"].clone()], false),
    }
}

/// Load the target state of every source; the first that fails names its index, as the
/// controller's `Failed to load target state` condition does.
fn target(repos: &[GitRepo], sources: &[Value], multi: bool) -> Result<Target, String> {
    let mut t = Target {
        revisions: Vec::new(),
        multi,
        manifests: Vec::new(),
    };
    for (i, source) in sources.iter().enumerate() {
        let (revision, manifests) = target_one(repos, source).map_err(|e| {
            format!(
                "Failed to load target state: failed to generate manifest for source {} of {}: rpc error: code = Unknown desc = {e}",
                i + 1,
                sources.len()
            )
        })?;
        t.revisions.push(revision);
        t.manifests.extend(manifests);
    }
    Ok(t)
}

fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.host_str().unwrap_or_default().to_string(),
        // scp-like `git@host:org/repo` or an OCI reference `host/path`.
        Err(_) => {
            let rest = url.split_once('@').map_or(url, |(_, r)| r);
            rest.split([':', '/'])
                .next()
                .unwrap_or_default()
                .to_string()
        }
    }
}

/// Load one source (the repo-server's part): its revision and manifests. A source with
/// only a `ref` (values for another source) yields no manifests.
fn target_one(repos: &[GitRepo], source: &Value) -> Result<(String, Vec<Value>), String> {
    let url = str_of(source, "/repoURL");
    let host = host_of(url);
    let unreachable = format!("dial tcp: lookup {host}: no such host");
    if let Some(chart) = source["chart"].as_str().filter(|c| !c.is_empty()) {
        // The lab renders no charts: its repositories are as unreachable as the internet.
        if url.contains("://") {
            let index = format!("{}/index.yaml", url.trim_end_matches('/'));
            return Err(format!(
                "error fetching chart: failed to fetch chart: looks like \"{url}\" is not a valid chart repository or cannot be reached: Get \"{index}\": {unreachable}"
            ));
        }
        let version = str_of(source, "/targetRevision");
        return Err(format!(
            "error pulling OCI chart: failed to pull OCI chart: failed to do request: Head \"https://{}/v2/{chart}/manifests/{version}\": {unreachable}",
            url.split_once('/').map_or(url, |(h, _)| h)
        ));
    }
    let Some(checkout) = repo::find(repos, url) else {
        let refs = if url.contains("://") {
            format!(
                "Get \"{}/info/refs?service=git-upload-pack\": {unreachable}",
                url.trim_end_matches('/')
            )
        } else {
            unreachable
        };
        return Err(format!("failed to list refs: {refs}"));
    };
    let revision = repo::revision(&checkout.path);
    if source.get("ref").is_some() && source.get("path").is_none() {
        return Ok((revision, Vec::new()));
    }
    let path = str_of(source, "/path");
    let dir = checkout
        .path
        .join(path.trim_start_matches("./").trim_end_matches('/'));
    for (file, what) in [
        ("Chart.yaml", "Helm charts"),
        ("kustomization.yaml", "Kustomize overlays"),
    ] {
        if dir.join(file).is_file() {
            return Err(format!(
                "lab: the lab renders no {what} ({path}/{file}); only directories of plain manifests are applied"
            ));
        }
    }
    let manifests =
        repo::manifests(&checkout.path, path, &Directory::of(source)).map_err(|e| e.to_string())?;
    Ok((revision, manifests))
}

/// A status condition, keeping the transition time of an identical old one.
fn condition(old: &Value, ty: &str, message: &str) -> Value {
    let same = old["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == ty && c["message"] == message)
            .cloned()
    });
    same.unwrap_or_else(|| json!({"type": ty, "message": message, "lastTransitionTime": now()}))
}

fn sync_options(app: &Value, op: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for list in [
        &app["spec"]["syncPolicy"]["syncOptions"],
        &op["sync"]["syncOptions"],
    ] {
        out.extend(
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.as_str().map(str::to_string)),
        );
    }
    out
}

/// The automated sync policy, when on: (prune, selfHeal, allowEmpty).
fn automated(app: &Value) -> Option<(bool, bool, bool)> {
    let a = app["spec"]["syncPolicy"].get("automated")?;
    if a.is_null() || a["enabled"] == json!(false) {
        return None;
    }
    let flag = |k: &str| a[k].as_bool().unwrap_or(false);
    Some((flag("prune"), flag("selfHeal"), flag("allowEmpty")))
}

/// Reconcile one Application that is not being deleted.
async fn reconcile(
    client: &mut Client,
    api: &ApiServer,
    repos: &[GitRepo],
    ns: &str,
    app: &Value,
    persist: bool,
) {
    let name = str_of(app, "/metadata/name").to_string();
    let old = &app["status"];
    let (sources, multi) = sources_of(app);
    let source = if multi {
        json!(sources)
    } else {
        sources[0].clone()
    };
    let dest = &app["spec"]["destination"];
    let dest_ns = str_of(dest, "/namespace");
    let mut conditions = Vec::new();
    let server = str_of(dest, "/server");
    let dest_name = str_of(dest, "/name");
    let dest_ok = match (server, dest_name) {
        ("", "") => false,
        (s, "") => s.trim_end_matches('/') == IN_CLUSTER,
        ("", n) => n == "in-cluster",
        _ => false,
    };
    let loaded = if !dest_ok {
        let msg = match (server, dest_name) {
            ("", "") => "Destination server missing from app spec".to_string(),
            (s, n) if !s.is_empty() && !n.is_empty() => {
                "application destination can't have both name and server defined".to_string()
            }
            (s, "") => format!("there are no clusters with this URL: {s}"),
            (_, n) => format!("there are no clusters with this name: {n}"),
        };
        conditions.push(condition(old, "InvalidSpecError", &msg));
        None
    } else {
        match target(repos, &sources, multi) {
            Ok(t) => Some(t),
            Err(msg) => {
                conditions.push(condition(old, "ComparisonError", &msg));
                None
            }
        }
    };
    let mut op_state = old["operationState"].clone();
    let mut clear_operation = false;
    let resources = match &loaded {
        None => sync::resources(api, &name, dest_ns, &[]),
        Some(t) => {
            let res = sync::resources(api, &name, dest_ns, &t.manifests);
            let op = next_operation(app, &res, t, &mut conditions, old);
            match op {
                Some(op) => {
                    clear_operation = app.get("operation").is_some_and(|o| !o.is_null());
                    op_state = run_operation(client, api, app, op, res, t, &source, dest_ns).await;
                    if op_state["phase"] == "Running" {
                        clear_operation = false;
                    }
                    sync::resources(api, &name, dest_ns, &t.manifests)
                }
                None => res,
            }
        }
    };
    let view = View {
        ns,
        source: &source,
        dest,
        loaded: loaded.as_ref(),
        persist,
        old,
    };
    let status = status_doc(&view, &resources, op_state, conditions);
    write_status(client, ns, app, status, clear_operation).await;
}

/// The operation to run now, if any: one requested in `operation`, one still Running, or
/// an automated sync as Argo CD's auto-sync decides it.
fn next_operation(
    app: &Value,
    res: &[Res],
    t: &Target,
    conditions: &mut Vec<Value>,
    old: &Value,
) -> Option<Value> {
    let last = &old["operationState"];
    if let Some(op) = app.get("operation").filter(|o| o["sync"].is_object()) {
        let mut op = op.clone();
        let (key, value) = t.revision_field();
        if op["sync"][key].is_null() || op["sync"][key] == json!("") {
            op["sync"][key] = value;
        }
        return Some(json!({"operation": op, "phase": "Running", "startedAt": now()}));
    }
    if last["phase"] == "Running" {
        return Some(last.clone());
    }
    let (prune, self_heal, allow_empty) = automated(app)?;
    let out_of_sync: Vec<&Res> = res.iter().filter(|r| !r.synced()).collect();
    if out_of_sync.is_empty() {
        return None;
    }
    let (key, revision) = t.revision_field();
    let attempted = last["syncResult"][key] == revision;
    let succeeded = last["phase"] == "Succeeded";
    if attempted && (!self_heal || !succeeded) {
        if !succeeded {
            // The revisions print as Go prints a []string.
            let msg = format!(
                "Failed last sync attempt to [{}]: {}",
                t.revisions.join(" "),
                last["message"].as_str().unwrap_or_default()
            );
            conditions.push(condition(old, "SyncError", &msg));
        }
        return None;
    }
    let heal = if attempted {
        Some(self_heal_attempt(last)?)
    } else {
        None
    };
    // Only extra resources and no pruning allowed: nothing a sync would change.
    if !prune && out_of_sync.iter().all(|r| r.desired.is_none()) {
        return None;
    }
    if prune && !allow_empty && t.manifests.is_empty() && !res.is_empty() {
        let msg = format!(
            "Skipping sync attempt to {}: auto-sync will wipe out all resources",
            t.revisions.join(",")
        );
        conditions.push(condition(old, "SyncError", &msg));
        return None;
    }
    let mut op = json!({
        "sync": {key: revision, "prune": prune},
        "initiatedBy": {"automated": true},
    });
    if let Some(opts) = app["spec"]["syncPolicy"]["syncOptions"].as_array() {
        op["sync"]["syncOptions"] = json!(opts);
    }
    if let Some(n) = heal {
        op["sync"]["autoHealAttemptsCount"] = json!(n);
    }
    if app["spec"]["syncPolicy"]["retry"].is_object() {
        op["retry"] = app["spec"]["syncPolicy"]["retry"].clone();
    }
    Some(json!({"operation": op, "phase": "Running", "startedAt": now()}))
}

/// A self-heal of an already synced revision, throttled as the controller's default
/// backoff does (`controller.self.heal.backoff.*`: 2 s, factor 3, cap 300 s, the count
/// restarting after a 330 s cool-down): the attempt number, or None while it must wait.
fn self_heal_attempt(last: &Value) -> Option<i64> {
    let ago = last["finishedAt"].as_str().and_then(seconds_ago);
    let mut prev = last["operation"]["sync"]["autoHealAttemptsCount"]
        .as_i64()
        .unwrap_or(0);
    if ago.is_some_and(|s| s > 330) {
        prev = 0;
    }
    let delay = if prev <= 0 {
        0
    } else {
        (2 * 3i64.saturating_pow((prev - 1).min(10) as u32)).min(300)
    };
    if ago.is_some_and(|s| s < delay) {
        return None;
    }
    Some(prev + 1)
}

/// Seconds since a `YYYY-MM-DDTHH:MM:SSZ` timestamp.
fn seconds_ago(ts: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| ts.get(r).and_then(|s| s.parse::<u8>().ok());
    let year: i32 = ts.get(0..4)?.parse().ok()?;
    let month = time::Month::try_from(n(5..7)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, n(8..10)?).ok()?;
    let t = time::Time::from_hms(n(11..13)?, n(14..16)?, n(17..19)?).ok()?;
    let at = time::PrimitiveDateTime::new(date, t).assume_utc();
    Some((time::OffsetDateTime::now_utc() - at).whole_seconds())
}

/// One pass of a sync operation; returns the new `operationState`.
#[allow(clippy::too_many_arguments)]
async fn run_operation(
    client: &mut Client,
    api: &ApiServer,
    app: &Value,
    mut state: Value,
    res: Vec<Res>,
    t: &Target,
    source: &Value,
    dest_ns: &str,
) -> Value {
    let op = state["operation"].clone();
    let opts = sync_options(app, &op);
    if opts.iter().any(|o| o == "CreateNamespace=true") && !dest_ns.is_empty() {
        let nss = store::kind("namespaces").expect("namespaces is served");
        if api.store.get(nss, "", dest_ns).is_err() {
            let ns_obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": dest_ns}});
            if let Err(e) = client
                .apply(&format!("/api/v1/namespaces/{dest_ns}"), &ns_obj)
                .await
            {
                tracing::debug!("{e}");
            }
        }
    }
    let prune = op["sync"]["prune"].as_bool().unwrap_or(false);
    let progress = sync::run(client, api, res, prune).await;
    let (phase, message, results) = match progress {
        Progress::Running(m, r) => ("Running", m, r),
        Progress::Succeeded(r) => (
            "Succeeded",
            "successfully synced (all tasks run)".to_string(),
            r,
        ),
        Progress::Failed(m, r) => ("Failed", m, r),
    };
    let retry_limit = op["retry"]["limit"].as_i64().unwrap_or(0);
    let retries = state["retryCount"].as_i64().unwrap_or(0);
    let (key, revision) = t.revision_field();
    let source_key = if t.multi { "sources" } else { "source" };
    state["syncResult"] = json!({"resources": results, key: revision, source_key: source});
    if phase == "Failed" && (retry_limit < 0 || retries < retry_limit) {
        // Retried at the next pass (the real controller waits its backoff first).
        state["phase"] = json!("Running");
        state["retryCount"] = json!(retries + 1);
        state["message"] = json!(format!("{message}. Retrying attempt #{}", retries + 1));
        return state;
    }
    state["phase"] = json!(phase);
    state["message"] = json!(message);
    if phase != "Running" {
        state["finishedAt"] = json!(now());
    }
    state
}

/// What the status document is made from, besides the resources.
struct View<'a> {
    ns: &'a str,
    source: &'a Value,
    dest: &'a Value,
    loaded: Option<&'a Target>,
    /// Per-resource health in `status.resources[]` (`controller.resource.health.persist`).
    persist: bool,
    /// The status as it was.
    old: &'a Value,
}

/// The `status` document.
fn status_doc(
    view: &View<'_>,
    resources: &[Res],
    op_state: Value,
    conditions: Vec<Value>,
) -> Value {
    let View {
        ns,
        source,
        dest,
        loaded,
        persist,
        old,
    } = *view;
    let mut sorted: Vec<&Res> = resources.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.group, &a.kind, &a.namespace, &a.name).cmp(&(&b.group, &b.kind, &b.namespace, &b.name))
    });
    let healths: Vec<Option<health::Health>> = sorted.iter().map(|r| r.health()).collect();
    let items: Vec<Value> = sorted
        .iter()
        .zip(&healths)
        .map(|(r, h)| {
            let mut v = json!({"version": r.version, "kind": r.kind, "name": r.name});
            if !r.group.is_empty() {
                v["group"] = json!(r.group);
            }
            if !r.namespace.is_empty() {
                v["namespace"] = json!(r.namespace);
            }
            v["status"] = json!(match (loaded, r.synced()) {
                (None, _) => "Unknown",
                (_, true) => "Synced",
                _ => "OutOfSync",
            });
            if let Some(h) = h.as_ref().filter(|_| persist) {
                v["health"] = h.to_json();
            }
            if r.desired.is_none() {
                v["requiresPruning"] = json!(true);
            }
            if r.wave != 0 {
                v["syncWave"] = json!(r.wave);
            }
            v
        })
        .collect();
    let app_health = health::aggregate(
        sorted
            .iter()
            .zip(&healths)
            .map(|(r, h)| (r.group.as_str(), r.kind.as_str(), h.as_ref())),
    );
    let sync_status = match loaded {
        None => "Unknown",
        Some(_) if resources.iter().all(Res::synced) => "Synced",
        Some(_) => "OutOfSync",
    };
    let source_key = if source.is_array() {
        "sources"
    } else {
        "source"
    };
    let mut sync =
        json!({"status": sync_status, "comparedTo": {source_key: source, "destination": dest}});
    if let Some(t) = loaded {
        let (key, revision) = t.revision_field();
        sync[key] = revision;
    }
    // The transition time moves only when the health status does.
    let since = match old["health"]["lastTransitionTime"].as_str() {
        Some(t) if old["health"]["status"] == app_health => t.to_string(),
        _ => now(),
    };
    let mut status = json!({
        "sync": sync,
        "health": {"status": app_health, "lastTransitionTime": since},
        "resources": items,
        "controllerNamespace": ns,
        "reconciledAt": now(),
    });
    let source_type = |s: &Value| {
        if s["chart"].as_str().is_some_and(|c| !c.is_empty()) {
            "Helm"
        } else {
            "Directory"
        }
    };
    match source.as_array() {
        Some(list) if loaded.is_some() || list.iter().any(|s| source_type(s) == "Helm") => {
            status["sourceTypes"] = json!(list.iter().map(source_type).collect::<Vec<_>>());
        }
        None if loaded.is_some() || source_type(source) == "Helm" => {
            status["sourceType"] = json!(source_type(source));
        }
        _ => {}
    }
    if !persist {
        status["resourceHealthSource"] = json!("appTree");
    }
    if !op_state.is_null() {
        status["operationState"] = op_state;
    }
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    status
}

/// Write `status` when anything but `reconciledAt` changed (the real controller also
/// refreshes `reconciledAt` every `timeout.reconciliation`; the lab does not, so that an
/// idle lab does not churn resourceVersions). `clear_operation` removes a finished
/// `operation` request.
async fn write_status(
    client: &mut Client,
    ns: &str,
    app: &Value,
    mut status: Value,
    clear_operation: bool,
) {
    let old = &app["status"];
    let mut cmp = old.clone();
    if let Some(m) = cmp.as_object_mut() {
        m.insert("reconciledAt".into(), status["reconciledAt"].clone());
    }
    if cmp == status && !clear_operation {
        return;
    }
    if cmp == status {
        status["reconciledAt"] = old["reconciledAt"].clone();
    }
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": app["metadata"]["resourceVersion"]}),
        json!({"op": "add", "path": "/status", "value": status}),
    ];
    if clear_operation {
        ops.push(json!({"op": "remove", "path": "/operation"}));
    }
    let name = str_of(app, "/metadata/name");
    match client.json_patch(&app_path(ns, name), &json!(ops)).await {
        Ok(a) if !a.ok() => tracing::debug!(name, "status not written: {}", a.message()),
        Err(e) => tracing::debug!("{e}"),
        _ => {}
    }
}
