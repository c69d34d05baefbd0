//! The engine against the lab's Kubernetes API server (a single-node Talos cluster).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Cluster, LABEL, T, keep_none, quiet};
use infraflux_kube::{
    Client, DriftKind, Engine, Error, Inventory, InventoryEntry, Kubeconfig, ObjectRef, object_hash,
};
use infraflux_talos::render::Cni;
use serde_json::{Value, json};

const NS: &str = "infraflux-test";

fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
}

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}})
}

fn widget() -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": NS}, "spec": {"size": 3}})
}

fn config_map(name: &str, x: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS}, "data": {"x": x}})
}

fn deployment(name: &str, node_selector: Option<&str>) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"tolerations": [{"key": "node-role.kubernetes.io/control-plane",
                            "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}});
    if let Some(sel) = node_selector {
        d["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": sel});
    }
    d
}

fn refs(inv: &Inventory) -> Vec<String> {
    inv.entries.iter().map(|e| e.object.to_string()).collect()
}

fn r(group: &str, kind: &str, ns: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        namespace: ns.map(String::from),
        name: name.into(),
    }
}

async fn live(e: &Engine, o: &ObjectRef) -> Value {
    e.get(o)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{o} exists"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_orders_waits_for_crds_and_repeats_without_change() {
    let c = Cluster::start(Cni::Flannel).await;
    let e = c.engine();
    // Deliberately out of order: the custom object needs its CRD Established and discovered.
    let objects = vec![
        deployment("web", None),
        widget(),
        config_map("a", "1"),
        crd(),
        namespace(),
    ];
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |m: &str| seen.lock().unwrap().push(m.to_string());
    let inv = e
        .apply(&objects, &Inventory::default(), &keep_none, &progress)
        .await
        .expect("apply");
    assert_eq!(
        refs(&inv),
        [
            "Namespace infraflux-test",
            "CustomResourceDefinition widgets.example.com",
            "ConfigMap infraflux-test/a",
            "Deployment infraflux-test/web",
            "Widget infraflux-test/w",
        ]
    );
    assert!(
        seen.lock()
            .unwrap()
            .contains(&"CustomResourceDefinition widgets.example.com established".to_string())
    );
    // Rolled out first: the Deployment's status (and resourceVersion) then stays put.
    e.wait_ready(&inv, T, &quiet).await.expect("ready");
    let mut versions = Vec::new();
    for entry in &inv.entries {
        let given = objects
            .iter()
            .find(|o| ObjectRef::from_object(o).expect("ref") == entry.object)
            .expect("given");
        assert_eq!(
            entry.hash,
            object_hash(given),
            "hash of the manifest as given"
        );
        let o = live(&e, &entry.object).await;
        assert_eq!(
            o["metadata"]["labels"][LABEL.0], LABEL.1,
            "{}",
            entry.object
        );
        let managers: Vec<&str> = o["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .filter(|m| m["operation"] == "Apply")
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert_eq!(managers, ["infraflux-test"], "{}", entry.object);
        versions.push(o["metadata"]["resourceVersion"].clone());
    }
    assert_eq!(live(&e, &inv.entries[4].object).await["spec"]["size"], 3);

    // Again: the same inventory and nothing written.
    let again = e
        .apply(&objects, &inv, &keep_none, &quiet)
        .await
        .expect("second apply");
    assert_eq!(again, inv);
    for (entry, rv) in inv.entries.iter().zip(&versions) {
        assert_eq!(
            &live(&e, &entry.object).await["metadata"]["resourceVersion"],
            rv,
            "{}",
            entry.object
        );
    }
    e.wait_nodes(None, T, &quiet).await.expect("nodes ready");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_what_is_gone_unless_kept() {
    let c = Cluster::start(Cni::Flannel).await;
    let e = c.engine();
    let first = vec![
        namespace(),
        config_map("a", "1"),
        config_map("b", "1"),
        config_map("c", "1"),
    ];
    let inv = e
        .apply(&first, &Inventory::default(), &keep_none, &quiet)
        .await
        .expect("apply");
    let keep_c = |o: &ObjectRef| o.name == "c";
    let inv = e
        .apply(&first[..2], &inv, &keep_c, &quiet)
        .await
        .expect("shrink");
    assert_eq!(
        refs(&inv),
        [
            "Namespace infraflux-test",
            "ConfigMap infraflux-test/a",
            "ConfigMap infraflux-test/c"
        ]
    );
    let cm = |n: &str| r("", "ConfigMap", Some(NS), n);
    assert!(e.get(&cm("b")).await.expect("get").is_none(), "b pruned");
    assert!(e.get(&cm("c")).await.expect("get").is_some(), "c kept");
    assert!(e.get(&cm("a")).await.expect("get").is_some());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_reports_missing_and_changed_fields() {
    let c = Cluster::start(Cni::Flannel).await;
    let e = c.engine();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": NS}, "data": {"k": "dg=="}});
    // (`data`, not `stringData`: the lab keeps `stringData` of JSON bodies as sent.)
    let desired = vec![namespace(), config_map("a", "1"), secret];
    let inv = e
        .apply(&desired, &Inventory::default(), &keep_none, &quiet)
        .await
        .expect("apply");
    let none = e.drift(&desired).await.expect("drift");
    assert!(none.is_empty(), "{none:?}");

    // Out of band: another manager takes .data.x over; the Secret is deleted.
    let intruder = Engine::new(c.client(), "kubectl-edit", LABEL);
    intruder
        .apply(
            &[config_map("a", "changed")],
            &Inventory::default(),
            &keep_none,
            &quiet,
        )
        .await
        .expect("edit");
    let secret_ref = Inventory {
        entries: vec![inv.entries[2].clone()],
    };
    assert_eq!(secret_ref.entries[0].object.kind, "Secret");
    intruder
        .delete(&secret_ref, T, &quiet)
        .await
        .expect("delete secret");

    let drift = e.drift(&desired).await.expect("drift");
    assert_eq!(drift.len(), 2, "{drift:?}");
    assert_eq!(drift[0].object.to_string(), "ConfigMap infraflux-test/a");
    assert_eq!(
        drift[0].kind,
        DriftKind::Changed {
            fields: vec![".data.x".into()]
        }
    );
    assert_eq!(drift[1].object.to_string(), "Secret infraflux-test/s");
    assert_eq!(drift[1].kind, DriftKind::Missing);

    // Applying again repairs it.
    e.apply(&desired, &inv, &keep_none, &quiet)
        .await
        .expect("repair");
    assert!(e.drift(&desired).await.expect("drift").is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_rebuilds_and_delete_waits_until_gone() {
    let c = Cluster::start(Cni::Flannel).await;
    let e = c.engine();
    let objects = vec![namespace(), crd(), widget(), config_map("a", "1")];
    let inv = e
        .apply(&objects, &Inventory::default(), &keep_none, &quiet)
        .await
        .expect("apply");

    let imported = c.engine().import().await.expect("import");
    let set = |i: &Inventory| -> BTreeSet<ObjectRef> {
        i.entries.iter().map(|e| e.object.clone()).collect()
    };
    assert_eq!(set(&imported), set(&inv));
    assert_eq!(
        imported.entries[0].object.kind, "Namespace",
        "in apply order"
    );
    assert!(imported.entries.iter().all(|e| e.hash.is_empty()));

    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |m: &str| seen.lock().unwrap().push(m.to_string());
    e.delete(&imported, T, &progress).await.expect("delete");
    for entry in &inv.entries {
        assert!(
            e.get(&entry.object).await.expect("get").is_none(),
            "{} gone",
            entry.object
        );
    }
    let seen = seen.into_inner().unwrap();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("deleting Widget infraflux-test/w")
    );
    assert!(
        seen.contains(&"deleted Namespace infraflux-test".to_string()),
        "{seen:?}"
    );
    // Deleting again: everything already gone is fine.
    e.delete(&inv, T, &quiet).await.expect("delete again");
    assert!(e.import().await.expect("import").entries.is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_object_and_keep_the_inventory() {
    let c = Cluster::start(Cni::Flannel).await;
    let e = c.engine();
    let previous = Inventory {
        entries: vec![InventoryEntry {
            object: r("", "ConfigMap", Some(NS), "old"),
            hash: "h".into(),
        }],
    };
    // A kind nobody serves: Invalid naming the object, after the Namespace was applied.
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g", "namespace": NS}});
    let err = e
        .apply(&[gadget, namespace()], &previous, &keep_none, &quiet)
        .await
        .expect_err("unknown kind");
    assert!(
        matches!(&err.error, Error::Invalid { object, .. } if object == "Gadget infraflux-test/g"),
        "{:?}",
        err.error
    );
    assert_eq!(
        refs(&err.inventory),
        ["Namespace infraflux-test", "ConfigMap infraflux-test/old"]
    );

    // The API server's own validation (422): Invalid with its message.
    let mut bad = crd();
    bad["metadata"]["name"] = json!("gadgets.example.com");
    let err = e
        .apply(&[bad], &Inventory::default(), &keep_none, &quiet)
        .await
        .expect_err("name does not match the CRD");
    match &err.error {
        Error::Invalid { object, message } => {
            assert_eq!(object, "CustomResourceDefinition gadgets.example.com");
            assert!(
                message.contains("metadata.name: Invalid value"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.error.is_transient());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_time_out_naming_what_is_stuck() {
    let c = Cluster::start(Cni::Flannel).await;
    let e = c.engine();
    let inv = e
        .apply(
            &[namespace(), deployment("stuck", Some("no-such-node"))],
            &Inventory::default(),
            &keep_none,
            &quiet,
        )
        .await
        .expect("apply");
    let err = e
        .wait_ready(&inv, Duration::from_millis(800), &quiet)
        .await
        .expect_err("never available");
    match &err {
        Error::Timeout {
            waited_for,
            last_seen,
        } => {
            assert_eq!(waited_for, "Deployment infraflux-test/stuck");
            assert!(
                last_seen.starts_with("0 of 1 replicas available"),
                "{last_seen}"
            );
        }
        other => panic!("{other:?}"),
    }

    let err = e
        .wait_nodes(
            Some("node-role.kubernetes.io/control-plane"),
            Duration::from_millis(500),
            &quiet,
        )
        .await
        .expect_err("the control plane keeps its taint");
    assert_eq!(
        err.to_string(),
        "timed out waiting for Node cp-1: tainted node-role.kubernetes.io/control-plane:NoSchedule"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_nodes_names_a_node_that_is_not_ready() {
    let c = Cluster::start(Cni::Cilium).await;
    let e = c.engine();
    let err = e
        .wait_nodes(None, Duration::from_millis(500), &quiet)
        .await
        .expect_err("no CNI: NotReady");
    match &err {
        Error::Timeout {
            waited_for,
            last_seen,
        } => {
            assert_eq!(waited_for, "Node cp-1");
            assert!(
                last_seen.starts_with("Ready=False (KubeletNotReady"),
                "{last_seen}"
            );
        }
        other => panic!("{other:?}"),
    }
    let nodes = c.client().nodes().await.expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert!(!nodes[0].ready);
    assert!(c.client().delete_node("cp-1").await.expect("delete node"));
    assert!(!c.client().delete_node("cp-1").await.expect("absent"));
    c.shutdown().await;
}

#[tokio::test]
async fn unreachable_and_wrong_kubeconfigs_are_typed() {
    let text = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";
    let k = Kubeconfig::parse(text).expect("parses");
    assert_eq!(k.server(), "https://127.0.0.1:1");
    let client = Client::new(&k, Duration::from_secs(2)).expect("client");
    let err = client.readyz().await.expect_err("nothing listens");
    assert!(
        matches!(&err, Error::Unreachable { server, .. } if server == "https://127.0.0.1:1"),
        "{err:?}"
    );
    assert!(err.is_transient());
    eprintln!("unreachable: {err}");
    assert!(err.to_string().contains("https://127.0.0.1:1"), "{err}");

    let previous = Inventory {
        entries: vec![InventoryEntry {
            object: r("", "ConfigMap", Some(NS), "a"),
            hash: "h".into(),
        }],
    };
    let e = Engine::new(client, "infraflux-test", LABEL);
    let err = e
        .apply(&[config_map("a", "1")], &previous, &keep_none, &quiet)
        .await
        .expect_err("unreachable");
    assert!(
        matches!(err.error, Error::Unreachable { .. }),
        "{:?}",
        err.error
    );
    assert_eq!(err.inventory, previous);

    for (bad, field) in [
        (
            text.replace("https://127.0.0.1:1", "ftp://h"),
            "clusters[c].cluster.server",
        ),
        (
            text.replace("current-context: x", "current-context: y"),
            "contexts has no entry named \"y\"",
        ),
        (
            text.replace("cluster: c,", "cluster: d,"),
            "clusters has no entry named \"d\"",
        ),
        (
            text.replace("user: {}", "user: {client-certificate-data: eA==}"),
            "users[u].user.client-certificate-data holds no PEM CERTIFICATE",
        ),
    ] {
        let err = Kubeconfig::parse(&bad).expect_err(field);
        assert!(matches!(err, Error::Kubeconfig(_)), "{err:?}");
        assert!(err.to_string().contains(field), "{err} / {field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_of_another_cluster_is_refused() {
    let c = Cluster::start(Cni::Flannel).await;
    // The right server with an untrusted client certificate: 401 → Forbidden.
    let k = Kubeconfig::parse(&c.kubeconfig).expect("kubeconfig");
    let anonymous = c
        .kubeconfig
        .lines()
        .filter(|l| !l.trim_start().starts_with("client-"))
        .collect::<Vec<_>>()
        .join("\n");
    let anon = Kubeconfig::parse(&anonymous).expect("parses");
    let err = Client::new(&anon, Duration::from_secs(5))
        .expect("client")
        .nodes()
        .await
        .expect_err("anonymous cannot list nodes");
    assert!(
        matches!(&err, Error::Forbidden { verb, .. } if verb == "get"),
        "{err:?}"
    );
    Client::new(&k, Duration::from_secs(5))
        .expect("client")
        .nodes()
        .await
        .expect("admin lists nodes");

    // A CA that did not sign the server's certificate (the lab's PVE CA): TLS, not transient.
    let doc: Value = serde_norway::from_str(&c.kubeconfig).expect("yaml");
    let ca = doc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("ca")
        .to_string();
    let other = B64.encode(&c.lab.info().ca_cert_pem);
    let wrong = Kubeconfig::parse(&c.kubeconfig.replace(&ca, &other)).expect("parses");
    let err = Client::new(&wrong, Duration::from_secs(5))
        .expect("client")
        .readyz()
        .await
        .expect_err("untrusted server certificate");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    eprintln!("untrusted CA: {err}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains(&c.server), "{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_rides_out_a_short_api_server_restart() {
    let c = Cluster::start(Cni::Flannel).await;
    let e = c.engine();
    let key = c.lab.k8s().snapshot()["apiservers"][0]["cluster_key"]
        .as_str()
        .expect("cluster key")
        .to_string();
    // Down for 500 ms: the first attempts are refused, a retry gets through.
    assert!(c.lab.k8s().restart(&key, 500).await);
    let inv = e
        .apply(
            &[namespace(), config_map("a", "1")],
            &Inventory::default(),
            &keep_none,
            &quiet,
        )
        .await
        .expect("apply retried through the outage");
    assert_eq!(inv.entries.len(), 2);
    assert!(e.get(&inv.entries[1].object).await.expect("get").is_some());
    c.shutdown().await;
}
