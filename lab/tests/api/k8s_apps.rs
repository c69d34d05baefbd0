//! Installing real manifests into a lab cluster: the rendered Cilium chart (its agent brings
//! the pod network up, its operator taints and untaints Nodes) and Argo CD's install manifest
//! (StatefulSet, NetworkPolicies, CRDs), applied document by document with server-side apply
//! by the official Python client; workloads roll out after `pod_ready_ms`.

use std::time::{Duration, Instant};

use infraflux_lab::LabOptions;
use infraflux_lab::talos::{TalosOptions, TalosTiming};
use serde_json::{Value, json};

use crate::common::T;
use crate::k8s::{
    get_json, install, kube_client, kubeconfig_bytes, python, send, untar, wait_k8s, wait_nodes,
};
use crate::talos_kit::{Cluster, NodeOpts};

pub fn opts(pod_ready_ms: u64) -> LabOptions {
    LabOptions {
        talos: TalosOptions {
            timing: TalosTiming {
                install_ms: 40,
                reboot_ms: 40,
                ready_ms: 0,
            },
            pod_ready_ms,
            ..TalosOptions::default()
        },
        ..LabOptions::default()
    }
}

/// A cluster at `net`.10:6443 with a control plane (`net`.1) and, if named, a worker
/// (`net`.2); `cni: none` unless `flannel`. The admin client, base URL, kubeconfig YAML and
/// cluster key.
pub async fn cluster(
    t: &T,
    net: &str,
    vmid: u32,
    names: (&str, Option<&str>),
    flannel: bool,
) -> (reqwest::Client, String, Vec<u8>, String) {
    let base = format!("https://{net}.10:6443");
    let c = Cluster::with_endpoint(&base);
    let cfg = |ty: &str, host: &str| {
        // A one-node cluster lets workloads onto its control plane.
        let cluster_extra = if names.1.is_none() {
            "  allowSchedulingOnControlPlanes: true\n"
        } else {
            ""
        };
        let cfg = c.node_config(
            ty,
            &NodeOpts {
                hostname: Some(host),
                cluster_extra,
                ..NodeOpts::default()
            },
        );
        if flannel {
            cfg
        } else {
            cfg.replacen(
                "    dnsDomain: cluster.local\n",
                "    dnsDomain: cluster.local\n    cni:\n      name: none\n",
                1,
            )
        }
    };
    let mut cp = install(
        t,
        &c,
        vmid,
        &format!("{net}.1"),
        &cfg("controlplane", names.0),
    )
    .await;
    if let Some(w) = names.1 {
        install(t, &c, vmid + 1, &format!("{net}.2"), &cfg("worker", w)).await;
    }
    cp.bootstrap(infraflux_lab::talos::proto::machine::BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let bytes = kubeconfig_bytes(&mut cp).await.expect("Kubeconfig");
    let (_, _, yaml) = untar(&bytes).expect("archive").remove(0);
    let kube = kube_client(&serde_yaml::from_slice(&yaml).expect("yaml"));
    let servers = wait_k8s(t, |s| s.as_array().is_some_and(|a| !a.is_empty())).await;
    let key = servers
        .as_array()
        .and_then(|a| a.iter().find(|s| s["endpoint"] == base.as_str()))
        .and_then(|s| s["cluster_key"].as_str())
        .expect("key")
        .to_string();
    let mut want: Vec<&str> = vec![names.0];
    want.extend(names.1);
    want.sort();
    wait_nodes(&kube, &base, &want).await;
    (kube, base, yaml, key)
}

/// Server-side apply of every YAML document of `manifest` with the official Python client's
/// DynamicClient (discovery finds each kind; namespaced documents without a namespace go to
/// `namespace`; Namespaces and CRDs go first, as Helm orders an install). Prints how many were applied and the names of documents PyYAML cannot parse.
const APPLY: &str = r#"
import re, sys, yaml
from kubernetes import client, config, dynamic
config.load_kube_config(sys.argv[1])
dyn = dynamic.DynamicClient(client.ApiClient(), cache_file=sys.argv[4])
text = open(sys.argv[2]).read()
docs, unparsable = [], []
for part in re.split(r"(?m)^---[ \t]*$", text):
    try:
        doc = yaml.safe_load(part)
    except yaml.YAMLError:
        m = re.search(r"(?m)^  name: (\S+)", part)
        unparsable.append(m.group(1) if m else "?")
        continue
    if doc:
        docs.append(doc)
# As Helm installs: Namespaces first, then CRDs, then the rest in order.
first = {"Namespace": 0, "CustomResourceDefinition": 1}
docs.sort(key=lambda d: first.get(d["kind"], 2))
applied = 0
for doc in docs:
    res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    ns = None
    if res.namespaced:
        ns = doc.get("metadata", {}).get("namespace") or sys.argv[3]
    out = dyn.server_side_apply(res, body=doc, namespace=ns, field_manager="infraflux", force_conflicts=True)
    assert out.metadata.name == doc["metadata"]["name"], out
    applied += 1
print("applied=%d" % applied)
print("unparsable=" + ",".join(unparsable))
"#;

async fn python_apply(yaml: &[u8], manifest: std::path::PathBuf, ns: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, yaml).expect("write");
    let cache = dir.path().join("discovery.json");
    python(
        APPLY,
        &[
            kc.as_os_str(),
            manifest.as_os_str(),
            ns.as_ref(),
            cache.as_os_str(),
        ],
    )
    .await
}

/// GET `url` until `pred` holds (panics after `secs` with the last answer).
pub async fn wait_for(
    kube: &reqwest::Client,
    url: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (s, v) = get_json(kube, url).await;
        if s == 200 && pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{url} never matched: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn condition<'a>(o: &'a Value, t: &str) -> &'a Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
        .unwrap_or(&Value::Null)
}

fn ready(node: &Value) -> &str {
    condition(node, "Ready")["status"].as_str().unwrap_or("")
}

fn agent_taint(node: &Value) -> bool {
    node["spec"]["taints"].as_array().is_some_and(|ts| {
        ts.contains(&json!({"key": "node.cilium.io/agent-not-ready", "effect": "NoSchedule"}))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cilium_manifest_readies_nodes_and_its_operator_taints() {
    // The real chart's render for the Talos preset with Hubble relay and UI (37 objects).
    let Some(render) = infraflux_reference::path("cilium/golden/hubble.yaml") else {
        return;
    };
    let t = T::with(opts(150)).await;
    let (kube, base, yaml, _) =
        cluster(&t, "127.77.40", 601, ("cil-cp", Some("cil-w")), false).await;
    let nodes = format!("{base}/api/v1/nodes");
    let (_, list) = get_json(&kube, &nodes).await;
    for n in list["items"].as_array().expect("items") {
        assert_eq!(ready(n), "False", "cni: none: {n}");
    }

    let out = python_apply(&yaml, render, "kube-system").await;
    assert_eq!(out, ["applied=37", "unparsable="]);

    // Each node's agent pod turns ready: the pod network is up, the node Ready; the operator
    // posts NetworkUnavailable=False and leaves no agent-not-ready taint.
    for n in ["cil-cp", "cil-w"] {
        let node = wait_for(&kube, &format!("{nodes}/{n}"), 15, |v| {
            ready(v) == "True" && condition(v, "NetworkUnavailable")["reason"] == "CiliumIsUp"
        })
        .await;
        assert_eq!(
            condition(&node, "NetworkUnavailable")["message"],
            "Cilium is running on this node"
        );
        assert_eq!(condition(&node, "NetworkUnavailable")["status"], "False");
        assert_eq!(
            condition(&node, "Ready")["lastHeartbeatTime"],
            condition(&node, "Ready")["lastTransitionTime"]
        );
        assert!(!agent_taint(&node), "{node}");
    }
    let ds = format!("{base}/apis/apps/v1/namespaces/kube-system/daemonsets");
    let agent = wait_for(&kube, &format!("{ds}/cilium"), 5, |d| {
        d["status"]["numberReady"] == 2
    })
    .await;
    assert_eq!(agent["status"]["desiredNumberScheduled"], 2);
    // Two operator replicas, one per node (required anti-affinity), both on the host network.
    let deps = format!("{base}/apis/apps/v1/namespaces/kube-system/deployments");
    wait_for(&kube, &format!("{deps}/cilium-operator"), 5, |d| {
        d["status"]["readyReplicas"] == 2
    })
    .await;
    for d in ["hubble-relay", "hubble-ui"] {
        wait_for(&kube, &format!("{deps}/{d}"), 5, |d| {
            d["status"]["readyReplicas"] == 1
        })
        .await;
    }

    // The worker goes down: its agent is scheduled but not ready, so the operator (still
    // running on the control plane) taints it. (A second later, so that the Ready condition's
    // transition time, in whole seconds, visibly moves.)
    let (_, w) = get_json(&kube, &format!("{nodes}/cil-w")).await;
    let ready_since = condition(&w, "Ready")["lastTransitionTime"]
        .as_str()
        .expect("time")
        .to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = t.post("/nodes/pve1/qemu/602/status/stop", &[]).await;
    t.task_ok(r).await;
    let w = wait_for(&kube, &format!("{nodes}/cil-w"), 10, agent_taint).await;
    assert_eq!(ready(&w), "Unknown");
    let down_since = condition(&w, "Ready")["lastTransitionTime"]
        .as_str()
        .expect("time");
    assert!(down_since > ready_since.as_str(), "{ready_since} → {w}");
    let (_, cp) = get_json(&kube, &format!("{nodes}/cil-cp")).await;
    assert!(!agent_taint(&cp), "{cp}");
    let op = wait_for(&kube, &format!("{deps}/cilium-operator"), 5, |d| {
        d["status"]["readyReplicas"] == 1
    })
    .await;
    assert_eq!(op["status"]["unavailableReplicas"], 1);

    // It comes back: the agent turns ready again and the taint goes.
    let r = t.post("/nodes/pve1/qemu/602/status/start", &[]).await;
    t.task_ok(r).await;
    let w = wait_for(&kube, &format!("{nodes}/cil-w"), 10, |v| {
        ready(v) == "True" && !agent_taint(v)
    })
    .await;
    assert_eq!(condition(&w, "NetworkUnavailable")["reason"], "CiliumIsUp");
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_without_operator_and_rollout_delay() {
    let t = T::with(opts(300)).await;
    let (kube, base, _, key) = cluster(&t, "127.77.41", 611, ("roll-cp", None), false).await;
    let node_url = format!("{base}/api/v1/nodes/roll-cp");
    let ct = "application/json";
    let ds = format!("{base}/apis/apps/v1/namespaces/kube-system/daemonsets");
    let agent = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cilium"},
        "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}}, "template": {"metadata": {"labels": {"k8s-app": "cilium"}},
        "spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists"}], "containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.20.0"}]}}}});
    let (s, made) = send(&kube, reqwest::Method::POST, &ds, ct, &agent).await;
    assert_eq!(s, 201, "{made}");
    // Scheduled at once, ready only after pod_ready_ms.
    assert_eq!(
        (
            made["status"]["desiredNumberScheduled"].as_u64(),
            made["status"]["numberReady"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let (_, n) = get_json(&kube, &node_url).await;
    assert_eq!(ready(&n), "False");
    let started = Instant::now();
    let n = wait_for(&kube, &node_url, 5, |v| ready(v) == "True").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    // No operator: nobody posts NetworkUnavailable or taints.
    assert!(condition(&n, "NetworkUnavailable").is_null(), "{n}");
    assert!(!agent_taint(&n));

    // A Deployment and an OrderedReady StatefulSet roll out after the delay too.
    let deps = format!("{base}/apis/apps/v1/namespaces/default/deployments");
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (s, d) = send(&kube, reqwest::Method::POST, &deps, ct, &dep).await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["status"]["unavailableReplicas"], 2);
    wait_for(&kube, &format!("{deps}/web"), 5, |d| {
        d["status"]["readyReplicas"] == 2 && d["status"]["availableReplicas"] == 2
    })
    .await;
    let sts = format!("{base}/apis/apps/v1/namespaces/default/statefulsets");
    let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "redis"}]}}}});
    let (s, st) = send(&kube, reqwest::Method::POST, &sts, ct, &set).await;
    assert_eq!(s, 201, "{st}");
    assert_eq!(st["metadata"]["generation"], 1);
    let status = &st["status"];
    assert_eq!(
        (
            status["replicas"].as_u64(),
            status["currentReplicas"].as_u64(),
            status["availableReplicas"].as_u64(),
            status.get("readyReplicas")
        ),
        (Some(1), Some(1), Some(0), None),
        "OrderedReady: one pod at a time: {st}"
    );
    let rev = status["currentRevision"].as_str().expect("revision");
    assert!(rev.starts_with("db-") && rev.len() == 13, "{rev}");
    assert_eq!(status["updateRevision"], status["currentRevision"]);
    let done = wait_for(&kube, &format!("{sts}/db"), 5, |s| {
        s["status"]["readyReplicas"] == 2
    })
    .await;
    assert_eq!(
        (
            done["status"]["replicas"].as_u64(),
            done["status"]["updatedReplicas"].as_u64(),
            done["status"]["availableReplicas"].as_u64(),
            done["status"]["observedGeneration"].as_u64()
        ),
        (Some(2), Some(2), Some(2), Some(1))
    );
    // kubectl's columns.
    let r = kube
        .get(&sts)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .expect("table");
    let table: Value = r.json().await.expect("json");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(cols, ["Name", "Ready", "Age"]);
    assert_eq!(table["rows"][0]["cells"][1], "2/2");

    // The control seam still works: the pod network down again (agent deleted, seam off) …
    let r = kube
        .delete(format!("{ds}/cilium"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    wait_for(&kube, &node_url, 5, |v| ready(v) == "False").await;
    // … and up through `POST /k8s/cni`.
    t.control_post("/k8s/cni", &json!({"cluster_key": key, "ready": true}))
        .await;
    wait_for(&kube, &node_url, 5, |v| ready(v) == "True").await;
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_install_manifest_applies_and_rolls_out() {
    let Some(manifest) = infraflux_reference::path("argocd/install-v3.5.1.yaml") else {
        return;
    };
    let t = T::with(opts(50)).await;
    let (kube, base, yaml, _) = cluster(&t, "127.77.42", 621, ("argo-cp", None), true).await;
    // One node that allows scheduling on its control plane, flannel: Ready.
    let (s, ns) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{base}/api/v1/namespaces"),
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}),
    )
    .await;
    assert_eq!(s, 201, "{ns}");
    let out = python_apply(&yaml, manifest.clone(), "argocd").await;
    assert_eq!(out, ["applied=59", "unparsable="]);
    // Applying again changes nothing and still succeeds.
    let (_, before) = get_json(
        &kube,
        &format!("{base}/api/v1/namespaces/argocd/configmaps"),
    )
    .await;
    let out = python_apply(&yaml, manifest, "argocd").await;
    assert_eq!(out, ["applied=59", "unparsable="]);
    let (_, after) = get_json(
        &kube,
        &format!("{base}/api/v1/namespaces/argocd/configmaps"),
    )
    .await;
    assert_eq!(before["items"], after["items"]);

    let netpols = format!("{base}/apis/networking.k8s.io/v1/namespaces/argocd/networkpolicies");
    let (s, np) = get_json(&kube, &netpols).await;
    assert_eq!(s, 200, "{np}");
    assert_eq!(np["kind"], "NetworkPolicyList");
    assert_eq!(np["items"].as_array().map(Vec::len), Some(7));
    let r = kube
        .get(format!("{netpols}/argocd-redis-network-policy"))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .expect("table");
    let table: Value = r.json().await.expect("json");
    assert_eq!(
        table["rows"][0]["cells"][1],
        "app.kubernetes.io/name=argocd-redis"
    );
    let (_, groups) = get_json(&kube, &format!("{base}/apis/networking.k8s.io/v1")).await;
    assert_eq!(groups["resources"][0]["shortNames"], json!(["netpol"]));

    // Every workload rolls out.
    let apps = format!("{base}/apis/apps/v1/namespaces/argocd");
    for d in [
        "argocd-applicationset-controller",
        "argocd-dex-server",
        "argocd-notifications-controller",
        "argocd-redis",
        "argocd-repo-server",
        "argocd-server",
    ] {
        let dep = wait_for(&kube, &format!("{apps}/deployments/{d}"), 10, |v| {
            v["status"]["readyReplicas"] == 1
        })
        .await;
        assert_eq!(condition(&dep, "Available")["status"], "True", "{dep}");
    }
    let sts = wait_for(
        &kube,
        &format!("{apps}/statefulsets/argocd-application-controller"),
        10,
        |v| v["status"]["readyReplicas"] == 1,
    )
    .await;
    assert_eq!(sts["status"]["availableReplicas"], 1);
    // The CRDs are Established.
    for crd in [
        "applications.argoproj.io",
        "applicationsets.argoproj.io",
        "appprojects.argoproj.io",
    ] {
        let c = wait_for(
            &kube,
            &format!("{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"),
            5,
            |v| condition(v, "Established")["status"] == "True",
        )
        .await;
        assert_eq!(c["metadata"]["name"], crd);
    }
    t.lab.shutdown().await;
}
