use serde_json::json;

use super::*;

fn v(major: u32, minor: u32) -> TalosVersion {
    TalosVersion {
        major,
        minor,
        patch: 0,
    }
}

#[test]
fn talos_versions_are_release_tags_of_supported_minors() {
    assert_eq!(
        talos_version("v1.13.9"),
        Ok(v(1, 13)).map(|t| TalosVersion { patch: 9, ..t })
    );
    assert!(talos_version("v1.14.0-rc.1").is_ok());
    let e = talos_version("1.13.9").expect_err("no v");
    assert!(e.contains("use \"v1.13.9\""), "{e}");
    let e = talos_version("v1.9.0").expect_err("old");
    assert!(
        e.contains("not supported") && e.contains("v1.13 and v1.14"),
        "{e}"
    );
    for bad in [
        "",
        "v",
        "v1.13",
        "v1.13.9.1",
        "latest",
        "v1.13.x",
        "v1.13.9-",
    ] {
        assert!(talos_version(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn secrets_accept_every_contract_from_1_7() {
    assert!(secrets_talos_version("v1.7.0").is_ok());
    assert!(secrets_talos_version("v1.14.2").is_ok());
    assert!(secrets_talos_version("v1.6.9").is_err());
    assert!(secrets_talos_version("v1.15.0").is_err());
    assert!(secrets_talos_version("1.13.9").is_err());
}

#[test]
fn kubernetes_versions_are_1_x_and_within_talos_range() {
    assert!(kubernetes_version("1.34.1").is_ok());
    assert!(kubernetes_version("v1.34.1").is_ok());
    for bad in ["garbage", "1.34", "2.0.0", "", "1.34.1 "] {
        assert!(kubernetes_version(bad).is_err(), "{bad:?} accepted");
    }
    assert!(kubernetes_for_talos("1.31.0", v(1, 13)).is_ok());
    assert!(kubernetes_for_talos("1.36.4", v(1, 13)).is_ok());
    let e = kubernetes_for_talos("1.30.9", v(1, 13)).expect_err("too old");
    assert!(e.contains("1.31 to 1.36"), "{e}");
    assert!(kubernetes_for_talos("1.37.0", v(1, 13)).is_err());
    assert!(kubernetes_for_talos("1.37.0", v(1, 14)).is_ok());
    assert!(kubernetes_for_talos("garbage", v(1, 14)).is_err());
}

#[test]
fn names_addresses_endpoints() {
    assert!(cluster_name("homelab-1").is_ok());
    for bad in ["Bad Name!", "", "-a", "a-", "UPPER", &"a".repeat(64)] {
        assert!(cluster_name(bad).is_err(), "{bad:?} accepted");
    }
    for ok in [
        "10.0.0.11",
        "10.0.0.11:50001",
        "node-1.lan",
        "[::1]:50000",
        "::1",
    ] {
        assert!(machine_address(ok).is_ok(), "{ok:?} refused");
    }
    for bad in [
        "",
        "10.0.0.300",
        "10.0.0.11:0",
        "not an address",
        "host:port",
        "a..b",
    ] {
        assert!(machine_address(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        endpoint("https://10.0.0.10:6443/"),
        Ok(("10.0.0.10".into(), 6443))
    );
    assert_eq!(
        endpoint("https://[fd00::1]:6443"),
        Ok(("fd00::1".into(), 6443))
    );
    for bad in [
        "10.0.0.10:6443",
        "https://10.0.0.10",
        "https://:6443",
        "https://a b:6443",
    ] {
        assert!(endpoint(bad).is_err(), "{bad:?} accepted");
    }
    assert!(interface_name("eth0").is_ok());
    assert!(interface_name("eth 0").is_err());
    assert!(interface_name("averyveryverylongname").is_err());
    assert!(install_disk("/dev/nvme0n1").is_ok());
    assert!(install_disk("sda").is_err());
    assert!(install_disk("/dev/").is_err());
}

#[test]
fn documents_name_the_broken_field() {
    let good = json!({
        "machine": {"type": "worker", "install": {"disk": "/dev/sda"}},
        "cluster": {
            "clusterName": "lab",
            "controlPlane": {"endpoint": "https://10.0.0.10:6443"},
            "network": {"podSubnets": ["10.244.0.0/16"], "serviceSubnets": ["10.96.0.0/12"]}
        }
    });
    assert_eq!(documents(std::slice::from_ref(&good), "worker"), Ok(()));

    let mut bad = good.clone();
    bad["cluster"]["network"]["podSubnets"] = json!(["not-a-cidr"]);
    let p = documents(&[bad], "worker").expect_err("bad CIDR");
    assert_eq!(p.path, "/cluster/network/podSubnets/0");
    assert!(p.problem.contains("not a CIDR"), "{p:?}");

    let mut bad = good.clone();
    bad["machine"]["type"] = json!("controlplane");
    let p = documents(&[bad], "worker").expect_err("role changed");
    assert_eq!(p.path, "/machine/type");

    let net = json!({"kind": "KubeNetworkConfig", "serviceSubnets": ["10.96.0.0/33"]});
    let p = documents(&[good.clone(), net], "worker").expect_err("bad prefix");
    assert_eq!(p.path, "KubeNetworkConfig/serviceSubnets/0");

    let vip = json!({"kind": "Layer2VIPConfig", "name": "vip", "link": "eth0"});
    let p = documents(&[good, vip], "worker").expect_err("VIP not an IP");
    assert_eq!(p.path, "Layer2VIPConfig/name");
}
