//! apid's `node`/`nodes` routing between the lab's Talos nodes, over real gRPC.

use infraflux_lab::talos::proto::cosi::resource::GetRequest;
use infraflux_lab::talos::proto::machine::{EtcdMemberListRequest, RebootRequest};
use rcgen::ExtendedKeyUsagePurpose as Eku;
use tonic::Code;

use crate::common::T;
use crate::k8s::{fast, install};
use crate::talos_kit::{self as kit, Cluster, NodeOpts};

/// A request carrying gRPC metadata.
fn with<M>(md: &[(&'static str, &str)], msg: M) -> tonic::Request<M> {
    let mut r = tonic::Request::new(msg);
    for (k, v) in md {
        r.metadata_mut()
            .append(*k, v.parse().expect("metadata value"));
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_metadata_routes_calls_as_apid_does() {
    let t = T::with(fast()).await;
    let c = Cluster::with_endpoint("https://127.77.61.10:6443");
    let cp_cfg = c.node_config(
        "controlplane",
        &NodeOpts {
            hostname: Some("cp-1"),
            ..NodeOpts::default()
        },
    );
    let mut cp = install(&t, &c, 471, "127.77.61.1", &cp_cfg).await;
    let worker_cfg = c.node_config(
        "worker",
        &NodeOpts {
            install_image: Some("ghcr.io/siderolabs/installer:v1.13.10"),
            ..NodeOpts::default()
        },
    );
    install(&t, &c, 472, "127.77.61.2", &worker_cfg).await;
    let other = Cluster::with_endpoint("https://127.77.61.20:6443");
    install(
        &t,
        &other,
        473,
        "127.77.61.3",
        &other.config("controlplane"),
    )
    .await;
    let worker = ("node", "127.77.61.2");

    // One-to-one: the worker answers, unchanged (its version, its own refusal).
    let v = cp
        .version(with(&[worker], ()))
        .await
        .expect("Version")
        .into_inner();
    assert_eq!(v.messages.len(), 1);
    assert_eq!(
        v.messages[0].version.as_ref().map(|v| v.tag.as_str()),
        Some("v1.13.10")
    );
    assert!(v.messages[0].metadata.is_none(), "{v:?}");
    let e = cp
        .etcd_member_list(with(&[worker], EtcdMemberListRequest::default()))
        .await
        .expect_err("a worker runs no etcd");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::Unimplemented,
            "member list is only available on control plane nodes"
        )
    );

    // One-to-many: answers merged in order, each tagged with its target; a dead target is a
    // message carrying its error.
    let md = [
        ("nodes", "127.77.61.1"),
        ("nodes", "127.77.61.2"),
        ("nodes", "127.77.61.99"),
    ];
    let v = cp
        .version(with(&md, ()))
        .await
        .expect("Version")
        .into_inner();
    let got: Vec<(String, String, String)> = v
        .messages
        .iter()
        .map(|m| {
            let md = m.metadata.clone().unwrap_or_default();
            let tag = m
                .version
                .as_ref()
                .map(|v| v.tag.clone())
                .unwrap_or_default();
            (md.hostname, tag, md.error)
        })
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0],
        ("127.77.61.1".into(), "v1.13.9".into(), String::new())
    );
    assert_eq!(
        got[1],
        ("127.77.61.2".into(), "v1.13.10".into(), String::new())
    );
    assert_eq!(got[2].0, "127.77.61.99");
    assert!(
        got[2]
            .2
            .starts_with("rpc error: code = Unavailable desc = connection error")
            && got[2]
                .2
                .contains("dial tcp 127.77.61.99:50000: connect: connection refused"),
        "{got:?}"
    );
    let status = v.messages[2]
        .metadata
        .as_ref()
        .and_then(|m| m.status.clone());
    assert_eq!(status.map(|s| s.code), Some(Code::Unavailable as i32));
    let e = kit::cosi(cp_channel(&t, &c, "os:admin").await)
        .get(with(&[("nodes", "127.77.61.2")], GetRequest::default()))
        .await
        .expect_err("COSI is one-to-one only");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "one-2-many proxying is not supported for method /cosi.resource.State/Get"
        )
    );
    let e = cp
        .version(with(
            &[("node", "127.77.61.2"), ("node", "127.77.61.1")],
            (),
        ))
        .await
        .expect_err("two node values");
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "node metadata must be single-valued")
    );

    // The caller's roles travel with the call: a reader reads the worker through the control
    // plane but cannot reboot it.
    let mut reader = kit::machine(cp_channel(&t, &c, "os:reader").await);
    let v = reader
        .version(with(&[worker], ()))
        .await
        .expect("reader Version");
    assert_eq!(v.into_inner().messages.len(), 1);
    let boots = kit::wait_node(&t, 472, |n| n["ready"] == true).await["boots"].clone();
    let e = reader
        .reboot(with(&[worker], RebootRequest::default()))
        .await
        .expect_err("a reader cannot reboot");
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "not authorized")
    );
    assert_eq!(kit::wait_node(&t, 472, |_| true).await["boots"], boots);
    // Only apid's impersonator certificate may name roles.
    let e = cp
        .version(with(&[("talos-role", "os:reader")], ()))
        .await
        .expect_err("talos-role from an admin");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("impersonator role"), "{}", e.message());

    // A node of another cluster does not trust this one's certificates.
    let e = cp
        .version(with(&[("node", "127.77.61.3")], ()))
        .await
        .expect_err("other cluster");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.message().contains("authentication handshake failed"),
        "{}",
        e.message()
    );

    // Maintenance mode forwards nothing; naming the node itself is served locally.
    kit::boot_vm(&t, 474, "127.77.61.4").await;
    let ep = kit::endpoint(&kit::wait_stage(&t, 474, "maintenance").await);
    let mut m = kit::machine(
        kit::channel(ep, "127.77.61.4", kit::insecure())
            .await
            .expect("connect"),
    );
    let e = m
        .version(with(&[("node", "127.77.61.1")], ()))
        .await
        .expect_err("maintenance");
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "no request forwarding")
    );
    m.version(with(&[("node", "127.77.61.4")], ()))
        .await
        .expect("itself");
}

/// A channel to the control plane 471 with a client certificate of role `org`.
async fn cp_channel(t: &T, c: &Cluster, org: &str) -> tonic::transport::Channel {
    let n = kit::wait_node(t, 471, |n| n["ready"] == true).await;
    let who = c.os_ca.client(org, vec![Eku::ClientAuth]);
    kit::channel(
        kit::endpoint(&n),
        "127.77.61.1",
        kit::mtls(&c.os_ca, Some(&who)),
    )
    .await
    .expect("mTLS")
}
