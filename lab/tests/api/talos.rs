//! Simulated Talos nodes driven with a real tonic client over TLS / mutual TLS (Ed25519).

use infraflux_lab::LabOptions;
use infraflux_lab::talos::proto::cosi::resource::{GetRequest, ListRequest};
use infraflux_lab::talos::proto::machine::apply_configuration_request::Mode as ApplyMode;
use infraflux_lab::talos::proto::machine::{
    ApplyConfigurationRequest, BootstrapRequest, EtcdMemberListRequest, RebootRequest, ResetRequest,
};
use infraflux_lab::talos::proto::talos::resource::definitions::enums::RuntimeMachineStage;
use infraflux_lab::talos::proto::talos::resource::definitions::runtime::MachineStatusSpec;
use infraflux_lab::talos::{TalosOptions, TalosTiming, config};
use prost::Message;
use rcgen::ExtendedKeyUsagePurpose as Eku;
use sha2::Digest;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::T;
use crate::talos_kit::{self as kit, Ca, Cluster};

fn opts(legacy: bool, ready_ms: u64) -> LabOptions {
    opts_with(
        legacy,
        TalosTiming {
            install_ms: 60,
            reboot_ms: 40,
            ready_ms,
        },
    )
}

fn opts_with(legacy: bool, timing: TalosTiming) -> LabOptions {
    LabOptions {
        talos: TalosOptions {
            legacy_maintenance: legacy,
            timing,
            ..TalosOptions::default()
        },
        ..LabOptions::default()
    }
}

fn apply(data: &str) -> ApplyConfigurationRequest {
    ApplyConfigurationRequest {
        data: data.as_bytes().to_vec(),
        mode: ApplyMode::Auto as i32,
        dry_run: false,
        try_mode_timeout: None,
    }
}

async fn stage_of(ch: Channel) -> (RuntimeMachineStage, bool) {
    let r = kit::cosi(ch)
        .get(GetRequest {
            namespace: "runtime".into(),
            r#type: "MachineStatuses.runtime.talos.dev".into(),
            id: "machine".into(),
            options: None,
        })
        .await
        .expect("MachineStatus")
        .into_inner();
    let spec = r.resource.and_then(|r| r.spec).expect("spec");
    let s = MachineStatusSpec::decode(spec.proto_spec.as_slice()).expect("proto spec");
    (
        RuntimeMachineStage::try_from(s.stage).expect("stage"),
        s.status.is_some_and(|s| s.ready),
    )
}

/// `cfg` with the OS CA key line of `other`.
fn swap_os_key(cfg: &str, other: &str) -> String {
    let key = |c: &str| {
        c.lines()
            .find(|l| l.starts_with("    key: "))
            .map(str::to_string)
            .expect("key line")
    };
    cfg.replacen(&key(cfg), &key(other), 1)
}

#[test]
fn fixtures_pass_talos_schema() {
    let c = Cluster::new();
    for ty in ["controlplane", "worker"] {
        let cfg =
            config::parse(c.config(ty).as_bytes(), "v1.13.9").expect("fixture is a valid config");
        assert_eq!(cfg.machine_type, ty);
    }
    // Talos 1.14's contract: the same cluster from its documents.
    let old = config::parse(c.config("controlplane").as_bytes(), "v1.13.9").expect("1.13");
    for ty in ["controlplane", "worker"] {
        let cfg = config::parse(c.config_v1_14(ty, "n-1").as_bytes(), "v1.14.0")
            .expect("fixture is a valid 1.14 config");
        assert_eq!(cfg.machine_type, ty);
        assert_eq!(cfg.cluster_key, old.cluster_key);
        assert_eq!(cfg.endpoint, old.endpoint);
        assert_eq!(cfg.cluster_name, "lab");
        assert_eq!(cfg.hostname.as_deref(), Some("n-1"));
        assert_eq!(cfg.install_version().as_deref(), Some("v1.14.0"));
        assert_eq!(cfg.str_at("/cluster/network/cni/name"), Some("none"));
        assert_eq!(
            cfg.str_at("/cluster/ca/crt"),
            old.str_at("/cluster/ca/crt"),
            "the Kubernetes CA, re-encoded as v1alpha1 has it"
        );
    }
    let cp = config::parse(c.config_v1_14("controlplane", "n").as_bytes(), "v1.14.0").expect("cp");
    assert_eq!(cp.k8s_ca(), old.k8s_ca());
    // A 1.13-contract config does not decode on 1.14.
    let e =
        config::parse(c.config("controlplane").as_bytes(), "v1.14.0").expect_err("1.13 on 1.14");
    let e = e.to_string();
    assert!(
        e.starts_with("decode error: ")
            && e.contains("/cluster: Additional properties are not allowed"),
        "{e}"
    );
}

/// A node validates with the schema of the Talos it runs: a document kind new in 1.14 is
/// refused by 1.13 and accepted by 1.14.
#[test]
fn schema_follows_the_running_version() {
    let c = Cluster::new();
    let extra = "---\napiVersion: v1alpha1\nkind: KernelModuleConfig\nname: br_netfilter\n";
    let old = format!("{}{extra}", c.config("worker"));
    let e = config::parse(old.as_bytes(), "v1.13.9").expect_err("unknown in 1.13");
    assert!(
        e.to_string()
            .contains("unknown document: apiVersion=\"v1alpha1\" kind=\"KernelModuleConfig\""),
        "{e}"
    );
    let new = format!("{}{extra}", c.config_v1_14("worker", "w"));
    config::parse(new.as_bytes(), "v1.14.0").expect("a 1.14 document");
    config::parse(new.as_bytes(), "v1.15.1").expect("later releases use the newest schema");
}

/// A Talos 1.14 cluster from multi-document configs: installs, bootstraps, serves Kubernetes
/// at `KubeClusterConfig.endpoint`, and its kubelets register under their hostnames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talos_1_14_cluster_from_documents() {
    let mut o = crate::k8s::fast();
    o.talos.version = "v1.14.0".into();
    let t = T::with(o).await;
    let c = Cluster::with_endpoint("https://127.77.62.10:6443");
    let cp_cfg = c.config_v1_14("controlplane", "cp-1");
    let mut cp = crate::k8s::install(&t, &c, 481, "127.77.62.1", &cp_cfg).await;
    let w_cfg = c.config_v1_14("worker", "w-1");
    crate::k8s::install(&t, &c, 482, "127.77.62.2", &w_cfg).await;
    cp.bootstrap(BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let server = loop {
        let k = t.control_get("/k8s").await;
        let s = k["apiservers"].get(0).cloned().unwrap_or_default();
        if s["nodes"].as_array().is_some_and(|n| n.len() == 2) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never registered: {k}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(server["endpoint"], "https://127.77.62.10:6443");
    assert_eq!(server["nodes"], serde_json::json!(["cp-1", "w-1"]));
    let n = kit::wait_node(&t, 482, |n| n["ready"] == true).await;
    assert_eq!(n["talos_version"], "v1.14.0");
    assert_eq!(n["hostname"], "w-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_mode_api() {
    let t = T::with(opts(false, 0)).await;
    kit::boot_vm(&t, 301, "127.77.1.1").await;
    let n = kit::wait_stage(&t, 301, "maintenance").await;
    assert_eq!(n["address"], "127.77.1.1");
    let ep = kit::endpoint(&n);
    let ch = kit::channel(ep, "127.77.1.1", kit::insecure())
        .await
        .expect("TLS without client cert");

    let v = kit::machine(ch.clone()).version(()).await.expect("Version");
    let info = v.into_inner().messages[0].version.clone().expect("version");
    assert_eq!(info.tag, "v1.13.9");
    let svcs = kit::machine(ch.clone())
        .service_list(())
        .await
        .expect("ServiceList");
    assert!(!svcs.into_inner().messages[0].services.is_empty());
    assert_eq!(
        stage_of(ch.clone()).await.0,
        RuntimeMachineStage::MachineStageMaintenance
    );
    let mut list = kit::cosi(ch.clone())
        .list(ListRequest {
            namespace: "runtime".into(),
            r#type: "Versions.runtime.talos.dev".into(),
            options: None,
        })
        .await
        .expect("List")
        .into_inner();
    let first = list.message().await.expect("stream").expect("one item");
    assert_eq!(
        first.resource.and_then(|r| r.spec).expect("spec").yaml_spec,
        "version: v1.13.9\n"
    );

    // Everyone is a reader: admin APIs are denied.
    let mut m = kit::machine(ch.clone());
    let denied = [
        m.bootstrap(BootstrapRequest::default()).await.err(),
        m.reboot(RebootRequest::default()).await.err(),
        m.reset(ResetRequest::default()).await.err(),
        m.kubeconfig(()).await.err(),
    ];
    for e in denied {
        let e = e.expect("denied");
        assert_eq!(
            (e.code(), e.message()),
            (Code::PermissionDenied, "not authorized")
        );
    }

    // Invalid configs: the reason comes back as InvalidArgument.
    let c = Cluster::new();
    let cases = [
        ("version: [", "decode error: "),
        (
            "version: v1alpha1\nmachine:\n  bogus: 1\n",
            "decode error: ",
        ),
        (
            &c.config_with("controlplane", "PRIVATE KEY", "abcdef.0123456789abcdef"),
            "ED25519 PRIVATE KEY",
        ),
        (
            &c.config_with(
                "controlplane",
                "ED25519 PRIVATE KEY",
                "ABCDEF.0123456789abcdef",
            ),
            "invalid token format",
        ),
        (
            &c.config("controlplane")
                .replace(&c.endpoint, &c.endpoint.replace("https://", "http://")),
            "decode error: ",
        ),
    ];
    let mismatched = swap_os_key(
        &c.config("controlplane"),
        &Cluster::new().config("controlplane"),
    );
    let cases: Vec<(&str, &str)> = cases
        .iter()
        .map(|(a, b)| (&**a, *b))
        .chain([(&*mismatched, "does not match")])
        .collect();
    for (cfg, want) in cases {
        let e = m
            .apply_configuration(apply(cfg))
            .await
            .expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(
            e.message().contains(want),
            "{want:?} not in {:?}",
            e.message()
        );
    }
    // A dry run of a valid config changes nothing.
    let mut dry = apply(&c.config("controlplane"));
    dry.dry_run = true;
    m.apply_configuration(dry).await.expect("dry run");
    assert_eq!(
        stage_of(ch).await.0,
        RuntimeMachineStage::MachineStageMaintenance
    );
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_run_bootstrap_reset() {
    // Slow enough to see INSTALLING and a not-yet-ready RUNNING.
    let t = T::with(opts_with(
        false,
        TalosTiming {
            install_ms: 300,
            reboot_ms: 40,
            ready_ms: 800,
        },
    ))
    .await;
    let c = Cluster::new();
    let ip = "127.77.2.1";
    kit::boot_vm(&t, 302, ip).await;
    let ep = kit::endpoint(&kit::wait_stage(&t, 302, "maintenance").await);
    let ch = kit::channel(ep, ip, kit::insecure())
        .await
        .expect("connect");
    let cfg = c.config("controlplane");
    let r = kit::machine(ch.clone())
        .apply_configuration(apply(&cfg))
        .await
        .expect("apply")
        .into_inner();
    assert_eq!(r.messages[0].mode, ApplyMode::Reboot as i32);
    assert_eq!(
        stage_of(ch).await.0,
        RuntimeMachineStage::MachineStageInstalling
    );
    let n = kit::wait_stage(&t, 302, "running").await;
    assert_eq!(
        n["config_hash"],
        hex::encode(sha2::Sha256::digest(cfg.as_bytes()))
    );

    let admin = c.os_ca.admin();
    let ep = kit::endpoint(&n);
    let ch = kit::channel(ep, ip, kit::mtls(&c.os_ca, Some(&admin)))
        .await
        .expect("mTLS as admin");
    let mut m = kit::machine(ch.clone());
    // Too early: etcd does not wait for bootstrap yet.
    let e = m
        .bootstrap(BootstrapRequest::default())
        .await
        .expect_err("not ready");
    assert_eq!(e.code(), Code::FailedPrecondition);

    // Mutual TLS now: no cert, another CA, or a wrong EKU are refused at the handshake.
    let other = Ca::new("other");
    let both = c
        .os_ca
        .client("os:admin", vec![Eku::ClientAuth, Eku::ServerAuth]);
    let cases = [
        (kit::mtls(&c.os_ca, None), "CertificateRequired"),
        (kit::mtls(&c.os_ca, Some(&other.admin())), "UnknownCA"),
        (kit::mtls(&c.os_ca, Some(&both)), ""),
    ];
    for (tls, alert) in cases {
        let err = match kit::channel(ep, ip, tls).await {
            Err(e) => e,
            Ok(ch) => match kit::machine(ch).version(()).await {
                Ok(_) => panic!("a call without a valid client cert succeeded"),
                Err(s) => format!("{s:?}"),
            },
        };
        assert!(
            err.contains("transport error") || err.contains("Transport"),
            "{err}"
        );
        // Whether the client reads the server's alert before the close is a race.
        assert!(
            !err.contains("alert") || err.contains(alert),
            "{alert} not in {err}"
        );
    }

    m.version(()).await.expect("Version over mTLS");
    let (stage, _) = stage_of(ch.clone()).await;
    assert_eq!(stage, RuntimeMachineStage::MachineStageRunning);
    let mc = kit::cosi(ch.clone())
        .get(GetRequest {
            namespace: "config".into(),
            r#type: "MachineConfigs.config.talos.dev".into(),
            id: "v1alpha1".into(),
            options: None,
        })
        .await
        .expect("MachineConfig")
        .into_inner();
    assert_eq!(
        mc.resource.and_then(|r| r.spec).expect("spec").yaml_spec,
        cfg
    );

    // A reader may look but not bootstrap.
    let reader = c.os_ca.client("os:reader", vec![Eku::ClientAuth]);
    let rch = kit::channel(ep, ip, kit::mtls(&c.os_ca, Some(&reader)))
        .await
        .expect("mTLS as reader");
    kit::machine(rch.clone())
        .version(())
        .await
        .expect("reader reads");
    let e = kit::machine(rch.clone())
        .bootstrap(BootstrapRequest::default())
        .await
        .expect_err("reader");
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "not authorized")
    );
    let e = kit::cosi(rch)
        .get(GetRequest {
            namespace: "config".into(),
            r#type: "MachineConfigs.config.talos.dev".into(),
            id: "v1alpha1".into(),
            options: None,
        })
        .await
        .expect_err("sensitive");
    assert_eq!(e.code(), Code::PermissionDenied);

    kit::wait_node(&t, 302, |n| n["ready"] == true).await;
    m.bootstrap(BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let e = m
        .bootstrap(BootstrapRequest::default())
        .await
        .expect_err("twice");
    assert_eq!(
        (e.code(), e.message()),
        (Code::AlreadyExists, "etcd data directory is not empty")
    );
    let members = m
        .etcd_member_list(EtcdMemberListRequest::default())
        .await
        .expect("EtcdMemberList")
        .into_inner();
    assert_eq!(members.messages[0].members.len(), 1);
    assert_eq!(
        kit::wait_stage(&t, 302, "running").await["bootstrapped"],
        true
    );

    // Reset: back to maintenance, disk wiped.
    m.reset(ResetRequest::default()).await.expect("Reset");
    let n = kit::wait_stage(&t, 302, "maintenance").await;
    assert_eq!(n["bootstrapped"], false);
    assert!(n["config_hash"].is_null());
    let ch = kit::channel(kit::endpoint(&n), ip, kit::insecure())
        .await
        .expect("insecure again");
    kit::machine(ch)
        .version(())
        .await
        .expect("maintenance Version");
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cycle_and_maintenance_fault() {
    // Reboots long enough to be seen.
    let t = T::with(opts_with(
        false,
        TalosTiming {
            install_ms: 60,
            reboot_ms: 200,
            ready_ms: 0,
        },
    ))
    .await;
    let c = Cluster::new();
    let ip = "127.77.3.1";
    kit::boot_vm(&t, 303, ip).await;
    let ep = kit::endpoint(&kit::wait_stage(&t, 303, "maintenance").await);
    let ch = kit::channel(ep, ip, kit::insecure())
        .await
        .expect("connect");
    kit::machine(ch)
        .apply_configuration(apply(&c.config("controlplane")))
        .await
        .expect("apply");
    kit::wait_stage(&t, 303, "running").await;

    // Power off: the node goes away; power on: the installed node boots to running.
    let r = t.post("/nodes/pve1/qemu/303/status/stop", &[]).await;
    t.task_ok(r).await;
    let doc = t.control_get("/talos/nodes").await;
    assert!(
        doc["nodes"].as_array().is_some_and(|a| a.is_empty()),
        "{doc}"
    );
    let r = t.post("/nodes/pve1/qemu/303/status/start", &[]).await;
    t.task_ok(r).await;
    let n = kit::wait_stage(&t, 303, "running").await;
    let admin = c.os_ca.admin();
    let ch = kit::channel(kit::endpoint(&n), ip, kit::mtls(&c.os_ca, Some(&admin)))
        .await
        .expect("mTLS");
    kit::machine(ch)
        .version(())
        .await
        .expect("running after power cycle");

    // An operator may reboot; the node comes back running with its config.
    let operator = c.os_ca.client("os:operator", vec![Eku::ClientAuth]);
    let och = kit::channel(kit::endpoint(&n), ip, kit::mtls(&c.os_ca, Some(&operator)))
        .await
        .expect("mTLS");
    kit::machine(och.clone())
        .reboot(RebootRequest::default())
        .await
        .expect("Reboot");
    kit::wait_stage(&t, 303, "rebooting").await;
    kit::wait_stage(&t, 303, "running").await;
    let e = kit::machine(och)
        .reset(ResetRequest::default())
        .await
        .expect_err("operator reset");
    assert_eq!(e.code(), Code::PermissionDenied);

    // Fault: the node reboots into maintenance.
    let (status, body) = t
        .control_post(
            "/talos/nodes/127.77.3.1/maintenance",
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    kit::wait_stage(&t, 303, "maintenance").await;
    let (status, _) = t
        .control_post("/talos/nodes/999/maintenance", &serde_json::json!({}))
        .await;
    assert_eq!(status, 404);
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_maintenance_service() {
    let t = T::with(opts(true, 0)).await;
    let ip = "127.77.4.1";
    kit::boot_vm(&t, 304, ip).await;
    let ep = kit::endpoint(&kit::wait_stage(&t, 304, "maintenance").await);
    let ch = kit::channel(ep, ip, kit::insecure())
        .await
        .expect("connect");
    let mut m = kit::machine(ch);
    let e = m.version(()).await.expect_err("legacy Version");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::Unimplemented,
            "API is not implemented in maintenance mode"
        )
    );
    let e = m
        .bootstrap(BootstrapRequest::default())
        .await
        .expect_err("legacy Bootstrap");
    assert_eq!(e.code(), Code::Unimplemented);
    let e = m
        .apply_configuration(apply("version: ["))
        .await
        .expect_err("bad bytes");
    assert_eq!(e.code(), Code::Unknown);
    assert!(
        e.message().starts_with("failed to parse config: "),
        "{}",
        e.message()
    );
    m.apply_configuration(apply(&Cluster::new().config("controlplane")))
        .await
        .expect("legacy apply");
    kit::wait_stage(&t, 304, "running").await;
    t.lab.shutdown().await;
}

/// A worker installed before any control plane of its cluster has a config serves nothing
/// (its apid waits for trustd to issue its certificate), then answers over mTLS once one has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_waits_for_a_control_plane_to_issue_its_certificate() {
    let t = T::with(opts(false, 0)).await;
    let c = Cluster::new();
    let install = |vmid: u32, ip: &'static str, cfg: String| {
        let t = &t;
        async move {
            kit::boot_vm(t, vmid, ip).await;
            let ep = kit::endpoint(&kit::wait_stage(t, vmid, "maintenance").await);
            let ch = kit::channel(ep, ip, kit::insecure())
                .await
                .expect("connect");
            kit::machine(ch)
                .apply_configuration(apply(&cfg))
                .await
                .expect("apply");
        }
    };
    install(321, "127.77.63.2", c.config("worker")).await;
    let n = kit::wait_node(&t, 321, |n| n["stage"] == "running").await;
    let admin = c.os_ca.admin();
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        kit::channel(
            kit::endpoint(&n),
            "127.77.63.2",
            kit::mtls(&c.os_ca, Some(&admin)),
        ),
    )
    .await;
    assert!(
        !matches!(early, Ok(Ok(_))),
        "no certificate can be issued yet, so no TLS session"
    );
    install(322, "127.77.63.1", c.config("controlplane")).await;
    let ch = kit::channel(
        kit::endpoint(&n),
        "127.77.63.2",
        kit::mtls(&c.os_ca, Some(&admin)),
    )
    .await
    .expect("mTLS once a control plane can issue the certificate");
    kit::machine(ch).version(()).await.expect("Version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_and_a_worker() {
    let t = T::with(opts(false, 0)).await;
    let c = Cluster::new();
    let nodes = [
        (311, "127.77.5.1", "controlplane"),
        (312, "127.77.5.2", "controlplane"),
        (313, "127.77.5.3", "worker"),
    ];
    for (vmid, ip, ty) in nodes {
        kit::boot_vm(&t, vmid, ip).await;
        let ep = kit::endpoint(&kit::wait_stage(&t, vmid, "maintenance").await);
        let ch = kit::channel(ep, ip, kit::insecure())
            .await
            .expect("connect");
        kit::machine(ch)
            .apply_configuration(apply(&c.config(ty)))
            .await
            .expect("apply");
    }
    let admin = c.os_ca.admin();
    let mut clients = Vec::new();
    for (vmid, ip, _) in nodes {
        let n = kit::wait_node(&t, vmid, |n| n["ready"] == true).await;
        // The worker's server cert chains to the OS CA too (trustd, simulated).
        let ch = kit::channel(kit::endpoint(&n), ip, kit::mtls(&c.os_ca, Some(&admin)))
            .await
            .expect("mTLS");
        clients.push(kit::machine(ch));
    }
    let e = clients[0]
        .etcd_member_list(EtcdMemberListRequest::default())
        .await
        .expect_err("before bootstrap");
    assert_eq!(e.code(), Code::FailedPrecondition);
    clients[0]
        .bootstrap(BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    // The other control plane joined: its etcd has data.
    let e = clients[1]
        .bootstrap(BootstrapRequest::default())
        .await
        .expect_err("joined");
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = clients[2]
        .bootstrap(BootstrapRequest::default())
        .await
        .expect_err("worker");
    assert_eq!(e.code(), Code::FailedPrecondition);
    let members = clients[1]
        .etcd_member_list(EtcdMemberListRequest::default())
        .await
        .expect("members")
        .into_inner();
    let mut hosts: Vec<String> = members.messages[0]
        .members
        .iter()
        .map(|m| m.hostname.clone())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["talos-127-77-5-1", "talos-127-77-5-2"]);
    let svcs = clients[0]
        .service_list(())
        .await
        .expect("ServiceList")
        .into_inner();
    let etcd = svcs.messages[0]
        .services
        .iter()
        .find(|s| s.id == "etcd")
        .expect("etcd service");
    assert_eq!(etcd.state, "Running");
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_dhcp_address_when_ipconfig_is_not_loopback() {
    let t = T::with(opts(false, 0)).await;
    t.clone_template(305, "dhcp").await;
    t.put(
        "/nodes/pve1/qemu/305/config",
        &[("ipconfig0", "ip=10.0.0.5/24,gw=10.0.0.1")],
    )
    .await
    .ok();
    let r = t.post("/nodes/pve1/qemu/305/status/start", &[]).await;
    t.task_ok(r).await;
    let n = kit::wait_stage(&t, 305, "maintenance").await;
    assert_eq!(n["address"], "127.10.1.49");
    let ifs = t
        .get("/nodes/pve1/qemu/305/agent/network-get-interfaces", &[])
        .await
        .ok()
        .clone();
    assert_eq!(
        ifs["result"][1]["ip-addresses"][0]["ip-address"],
        "127.10.1.49"
    );
    let ch = kit::channel(kit::endpoint(&n), "127.10.1.49", kit::insecure())
        .await
        .expect("connect");
    kit::machine(ch).version(()).await.expect("Version");
    // Destroying the VM stops the node.
    let r = t.post("/nodes/pve1/qemu/305/status/stop", &[]).await;
    t.task_ok(r).await;
    let r = t.delete("/nodes/pve1/qemu/305", &[]).await;
    t.task_ok(r).await;
    let doc = t.control_get("/talos/nodes").await;
    assert_eq!(doc["nodes"], serde_json::json!([]));
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_address_fails_the_start_instead_of_moving_the_node() {
    let t = T::with(opts(false, 0)).await;
    // Another process (another lab, another demo) holds the address the VM is given.
    let other = std::net::TcpListener::bind("127.77.50.1:50000").expect("bind");
    t.clone_template(306, "taken").await;
    t.put(
        "/nodes/pve1/qemu/306/config",
        &[("ipconfig0", "ip=127.77.50.1/8")],
    )
    .await
    .ok();
    let r = t.post("/nodes/pve1/qemu/306/status/start", &[]).await;
    let upid = r.ok().as_str().expect("UPID").to_string();
    let st = t.wait_task(&upid).await;
    let status = st["exitstatus"].as_str().unwrap_or_default();
    assert!(
        status.contains("127.77.50.1:50000") && status.contains("another lab"),
        "{st}"
    );
    let doc = t.control_get("/talos/nodes").await;
    assert_eq!(
        doc["nodes"],
        serde_json::json!([]),
        "no node listens elsewhere"
    );
    let st = t.get("/nodes/pve1/qemu/306/status/current", &[]).await;
    assert_eq!(st.ok()["status"], "stopped");

    // Once the address is free the VM starts, and a restart keeps the node's own address.
    drop(other);
    let r = t.post("/nodes/pve1/qemu/306/status/start", &[]).await;
    t.task_ok(r).await;
    let n = kit::wait_stage(&t, 306, "maintenance").await;
    assert_eq!(kit::endpoint(&n).to_string(), "127.77.50.1:50000");
    let r = t.post("/nodes/pve1/qemu/306/status/reboot", &[]).await;
    t.task_ok(r).await;
    let n = kit::wait_node(&t, 306, |n| n["stage"] == "maintenance").await;
    assert_eq!(kit::endpoint(&n).to_string(), "127.77.50.1:50000");
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dhcp_vm_leases_the_next_free_address_when_another_lab_holds_its_own() {
    let t = T::with(opts(false, 0)).await;
    // Another lab's VM 308 holds the address the pool offers VM 308 first.
    let _other = std::net::TcpListener::bind("127.10.1.52:50000").expect("bind");
    t.clone_template(308, "dhcp-taken").await;
    let r = t.post("/nodes/pve1/qemu/308/status/start", &[]).await;
    t.task_ok(r).await;
    let n = kit::wait_stage(&t, 308, "maintenance").await;
    assert_eq!(n["address"], "127.11.1.52");
    // The guest agent reports the lease, and a restart keeps it.
    let ifs = t
        .get("/nodes/pve1/qemu/308/agent/network-get-interfaces", &[])
        .await
        .ok()
        .clone();
    assert_eq!(
        ifs["result"][1]["ip-addresses"][0]["ip-address"],
        "127.11.1.52"
    );
    for action in ["stop", "start"] {
        let r = t
            .post(&format!("/nodes/pve1/qemu/308/status/{action}"), &[])
            .await;
        t.task_ok(r).await;
    }
    let n = kit::wait_stage(&t, 308, "maintenance").await;
    assert_eq!(n["address"], "127.11.1.52");
    t.lab.shutdown().await;
}
