//! etcd membership as explicit state, and Talos upgrades, driven over real gRPC.

use std::time::Duration;

use infraflux_lab::talos::proto::cosi::resource::GetRequest;
use infraflux_lab::talos::proto::machine::machine_service_client::MachineServiceClient;
use infraflux_lab::talos::proto::machine::{
    BootstrapRequest, EtcdLeaveClusterRequest, EtcdMemberListRequest, EtcdRemoveMemberByIdRequest,
    RebootRequest, ResetRequest, UpgradeRequest,
};
use rcgen::ExtendedKeyUsagePurpose as Eku;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::T;
use crate::k8s::{admin, fast, install};
use crate::talos_kit::{self as kit, Cluster, NodeOpts};

async fn members(m: &mut MachineServiceClient<Channel>) -> Vec<(u64, String)> {
    let r = m
        .etcd_member_list(EtcdMemberListRequest::default())
        .await
        .expect("EtcdMemberList")
        .into_inner();
    let mut v: Vec<(u64, String)> = r.messages[0]
        .members
        .iter()
        .map(|m| (m.id, m.hostname.clone()))
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

/// The `GET /talos/etcd` cluster once `pred` holds (panics after 5 s).
async fn wait_etcd(t: &T, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let doc = t.control_get("/talos/etcd").await;
        if let Some(c) = doc["clusters"]
            .as_array()
            .and_then(|a| a.first())
            .filter(|c| pred(c))
        {
            return c.clone();
        }
        assert!(std::time::Instant::now() < deadline, "never matched: {doc}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn upgrade(image: &str) -> UpgradeRequest {
    UpgradeRequest {
        image: image.into(),
        ..UpgradeRequest::default()
    }
}

async fn version(m: &mut MachineServiceClient<Channel>) -> String {
    m.version(()).await.expect("Version").into_inner().messages[0]
        .version
        .clone()
        .expect("version")
        .tag
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_leave_remove_stale_and_upgrade_checks() {
    // Upgrades long enough to be seen.
    let mut opts = fast();
    opts.talos.timing.install_ms = 200;
    let t = T::with(opts).await;
    let c = Cluster::with_endpoint("https://127.77.25.10:6443");
    let mut cps = Vec::new();
    for (i, vmid) in [451u32, 452, 453].into_iter().enumerate() {
        let ip = format!("127.77.25.{}", i + 1);
        let cfg = c.node_config(
            "controlplane",
            &NodeOpts {
                hostname: Some(&format!("cp-{}", i + 1)),
                ..NodeOpts::default()
            },
        );
        cps.push(install(&t, &c, vmid, &ip, &cfg).await);
    }
    let mut worker = install(&t, &c, 454, "127.77.25.4", &c.config("worker")).await;

    cps[0]
        .bootstrap(BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    // The other control planes join on their own.
    wait_etcd(&t, |c| {
        c["members"].as_array().is_some_and(|m| m.len() == 3)
    })
    .await;
    let list = members(&mut cps[1]).await;
    let hosts: Vec<&str> = list.iter().map(|(_, h)| h.as_str()).collect();
    assert_eq!(hosts, ["cp-1", "cp-2", "cp-3"]);
    let nodes = t.control_get("/talos/nodes").await;
    let node3 = nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["vmid"] == 453)
        .expect("453")
        .clone();
    let id3 = list[2].0;
    assert_eq!(node3["etcd_member_id"], format!("{id3:016x}"));
    assert_eq!(node3["hostname"], "cp-3");

    // Workers run no etcd; roles as Talos has them.
    let e = worker
        .etcd_member_list(EtcdMemberListRequest::default())
        .await
        .expect_err("worker");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::Unimplemented,
            "member list is only available on control plane nodes"
        )
    );
    let e = worker
        .etcd_leave_cluster(EtcdLeaveClusterRequest::default())
        .await
        .expect_err("worker");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::Unimplemented,
            "etcd leave is only available on control plane nodes"
        )
    );
    let n1 = kit::wait_node(&t, 451, |n| n["ready"] == true).await;
    for org in ["os:reader", "os:operator"] {
        let who = c.os_ca.client(org, vec![Eku::ClientAuth]);
        let ch = kit::channel(
            kit::endpoint(&n1),
            "127.77.25.1",
            kit::mtls(&c.os_ca, Some(&who)),
        )
        .await
        .expect("mTLS");
        let mut m = kit::machine(ch);
        members(&mut m).await;
        let e = m
            .etcd_leave_cluster(EtcdLeaveClusterRequest::default())
            .await
            .expect_err(org);
        assert_eq!(
            (e.code(), e.message()),
            (Code::PermissionDenied, "not authorized")
        );
        let e = m
            .etcd_remove_member_by_id(EtcdRemoveMemberByIdRequest { member_id: id3 })
            .await
            .expect_err(org);
        assert_eq!(e.code(), Code::PermissionDenied);
    }

    // Unknown member IDs.
    let e = cps[0]
        .etcd_remove_member_by_id(EtcdRemoveMemberByIdRequest { member_id: 42 })
        .await
        .expect_err("unknown");
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: member not found")
    );

    // Leave (on the leaving node): out of the list, its etcd stops; a reboot joins it again.
    cps[2]
        .etcd_leave_cluster(EtcdLeaveClusterRequest::default())
        .await
        .expect("leave");
    assert_eq!(members(&mut cps[0]).await.len(), 2);
    let e = cps[2]
        .etcd_member_list(EtcdMemberListRequest::default())
        .await
        .expect_err("left");
    assert_eq!(e.code(), Code::FailedPrecondition);
    cps[2]
        .reboot(RebootRequest::default())
        .await
        .expect("reboot");
    kit::wait_stage(&t, 453, "rebooting").await;
    wait_etcd(&t, |c| {
        c["members"]
            .as_array()
            .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["healthy"] == true))
    })
    .await;

    // A destroyed VM leaves a stale member behind; upgrades refuse until it is removed.
    let r = t.post("/nodes/pve1/qemu/453/status/stop", &[]).await;
    t.task_ok(r).await;
    let r = t.delete("/nodes/pve1/qemu/453", &[]).await;
    t.task_ok(r).await;
    let e3 = wait_etcd(&t, |c| {
        c["members"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["healthy"] == false))
    })
    .await;
    assert_eq!(e3["quorum"], true);
    assert_eq!(members(&mut cps[0]).await.len(), 3, "still listed");
    let e = cps[0]
        .upgrade(upgrade("ghcr.io/siderolabs/installer:v1.13.10"))
        .await
        .expect_err("unhealthy member");
    assert_eq!(e.code(), Code::Unknown);
    assert_eq!(
        e.message(),
        format!(
            "error validating etcd for upgrade: etcd member {id3:016x} is not healthy; all members must be healthy to perform an upgrade: context deadline exceeded"
        )
    );
    cps[1]
        .etcd_remove_member_by_id(EtcdRemoveMemberByIdRequest { member_id: id3 })
        .await
        .expect("remove stale");
    assert_eq!(members(&mut cps[0]).await.len(), 2);
    let e = cps[1]
        .etcd_remove_member_by_id(EtcdRemoveMemberByIdRequest { member_id: id3 })
        .await
        .expect_err("twice");
    assert_eq!(e.code(), Code::NotFound);
    let e = cps[0]
        .upgrade(upgrade("ghcr.io/siderolabs/installer:v1.13.10"))
        .await
        .expect_err("two members");
    assert_eq!(
        e.message(),
        "error validating etcd for upgrade: etcd member count(2) is insufficient to maintain quorum if upgrade commences"
    );

    // A graceful reset leaves etcd first; a single healthy member may upgrade.
    cps[1]
        .reset(ResetRequest {
            graceful: true,
            reboot: true,
            ..ResetRequest::default()
        })
        .await
        .expect("reset");
    kit::wait_stage(&t, 452, "maintenance").await;
    let list = members(&mut cps[0]).await;
    assert_eq!(
        list.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>(),
        ["cp-1"]
    );
    let r = cps[0]
        .upgrade(upgrade("ghcr.io/siderolabs/installer:v1.13.10"))
        .await
        .expect("upgrade")
        .into_inner();
    assert_eq!(r.messages[0].ack, "Upgrade request received");
    kit::wait_stage(&t, 451, "upgrading").await;
    let n = kit::wait_node(&t, 451, |n| {
        n["stage"] == "running" && n["talos_version"] == "v1.13.10"
    })
    .await;
    assert_eq!(n["bootstrapped"], true);
    let mut cp1 = admin(&t, &c, 451, "127.77.25.1").await;
    assert_eq!(version(&mut cp1).await, "v1.13.10");
    assert_eq!(
        members(&mut cp1).await.len(),
        1,
        "etcd data survives an upgrade"
    );
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_follow_the_install_image_and_upgrades() {
    let t = T::with(fast()).await;
    let c = Cluster::with_endpoint("https://127.77.26.10:6443");
    kit::boot_vm(&t, 461, "127.77.26.1").await;
    let n = kit::wait_stage(&t, 461, "maintenance").await;
    assert_eq!(
        n["talos_version"], "v1.13.9",
        "maintenance runs the boot media's version"
    );
    let cfg = c.node_config(
        "controlplane",
        &NodeOpts {
            install_image: Some("factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.13.8"),
            ..NodeOpts::default()
        },
    );
    let ch = kit::channel(kit::endpoint(&n), "127.77.26.1", kit::insecure())
        .await
        .expect("connect");
    kit::machine(ch)
        .apply_configuration(crate::k8s::apply(&cfg))
        .await
        .expect("apply");
    let mut m = admin(&t, &c, 461, "127.77.26.1").await;
    assert_eq!(version(&mut m).await, "v1.13.8");
    assert_eq!(
        kit::wait_stage(&t, 461, "running").await["talos_version"],
        "v1.13.8"
    );
    let n = kit::wait_node(&t, 461, |n| n["ready"] == true).await;
    let cosi = kit::cosi(
        kit::channel(
            kit::endpoint(&n),
            "127.77.26.1",
            kit::mtls(&c.os_ca, Some(&c.os_ca.admin())),
        )
        .await
        .expect("mTLS"),
    )
    .get(GetRequest {
        namespace: "runtime".into(),
        r#type: "Versions.runtime.talos.dev".into(),
        id: "version".into(),
        options: None,
    })
    .await
    .expect("COSI Version")
    .into_inner();
    assert_eq!(
        cosi.resource.and_then(|r| r.spec).expect("spec").yaml_spec,
        "version: v1.13.8\n"
    );

    // Roles and bad images.
    let op = c.os_ca.client("os:operator", vec![Eku::ClientAuth]);
    let och = kit::channel(
        kit::endpoint(&n),
        "127.77.26.1",
        kit::mtls(&c.os_ca, Some(&op)),
    )
    .await
    .expect("mTLS");
    let e = kit::machine(och)
        .upgrade(upgrade("ghcr.io/siderolabs/installer:v1.13.10"))
        .await
        .expect_err("operator");
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "not authorized")
    );
    let e = m
        .upgrade(upgrade("Not An Image"))
        .await
        .expect_err("bad image");
    assert_eq!(e.code(), Code::Unknown);
    assert!(
        e.message()
            .starts_with("error validating installer image \"Not An Image\": "),
        "{}",
        e.message()
    );

    // A control plane whose etcd does not run refuses unless forced.
    let e = m
        .upgrade(upgrade("ghcr.io/siderolabs/installer:v1.13.10"))
        .await
        .expect_err("no etcd");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::Unknown,
            "failed to create etcd client: etcd is not running on this node"
        )
    );

    // Staged: nothing changes until the next reboot.
    let mut staged = upgrade("ghcr.io/siderolabs/installer:v1.13.10");
    staged.stage = true;
    staged.force = true;
    m.upgrade(staged).await.expect("staged upgrade");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(version(&mut m).await, "v1.13.8");
    m.reboot(RebootRequest::default()).await.expect("reboot");
    kit::wait_stage(&t, 461, "rebooting").await;
    kit::wait_node(&t, 461, |n| {
        n["stage"] == "running" && n["talos_version"] == "v1.13.10"
    })
    .await;
    // An image tag that is no version: the node reports the lab's default.
    let mut m = admin(&t, &c, 461, "127.77.26.1").await;
    let mut forced = upgrade("registry.local:5000/installer:latest");
    forced.force = true;
    m.upgrade(forced).await.expect("upgrade");
    kit::wait_node(&t, 461, |n| {
        n["stage"] == "running" && n["talos_version"] == "v1.13.9"
    })
    .await;
    t.lab.shutdown().await;
}
