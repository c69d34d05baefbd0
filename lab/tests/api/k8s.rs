//! The Kubernetes side: Talos's `Kubeconfig` stream and the per-cluster API server, driven over
//! real gRPC (tonic) and real HTTPS (reqwest with the cluster's CA and the admin client cert).

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use infraflux_lab::LabOptions;
use infraflux_lab::talos::proto::machine::ApplyConfigurationRequest;
use infraflux_lab::talos::proto::machine::apply_configuration_request::Mode as ApplyMode;
use infraflux_lab::talos::proto::machine::machine_service_client::MachineServiceClient;
use infraflux_lab::talos::{TalosOptions, TalosTiming};
use rcgen::ExtendedKeyUsagePurpose as Eku;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::T;
use crate::talos_kit::{self as kit, Cluster, NodeOpts};

pub fn fast() -> LabOptions {
    LabOptions {
        talos: TalosOptions {
            timing: TalosTiming {
                install_ms: 40,
                reboot_ms: 40,
                ready_ms: 0,
            },
            pod_ready_ms: 0,
            ..TalosOptions::default()
        },
        ..LabOptions::default()
    }
}

pub fn apply(data: &str) -> ApplyConfigurationRequest {
    ApplyConfigurationRequest {
        data: data.as_bytes().to_vec(),
        mode: ApplyMode::Auto as i32,
        dry_run: false,
        try_mode_timeout: None,
    }
}

/// Boot a VM, apply `cfg` in maintenance, wait until the node is ready; an admin client.
pub async fn install(
    t: &T,
    c: &Cluster,
    vmid: u32,
    ip: &str,
    cfg: &str,
) -> MachineServiceClient<Channel> {
    kit::boot_vm(t, vmid, ip).await;
    let ep = kit::endpoint(&kit::wait_stage(t, vmid, "maintenance").await);
    let ch = kit::channel(ep, ip, kit::insecure())
        .await
        .expect("connect");
    kit::machine(ch)
        .apply_configuration(apply(cfg))
        .await
        .expect("apply");
    admin(t, c, vmid, ip).await
}

/// An admin client of a running, ready node.
pub async fn admin(t: &T, c: &Cluster, vmid: u32, ip: &str) -> MachineServiceClient<Channel> {
    let n = kit::wait_node(t, vmid, |n| n["ready"] == true).await;
    let ch = kit::channel(
        kit::endpoint(&n),
        ip,
        kit::mtls(&c.os_ca, Some(&c.os_ca.admin())),
    )
    .await
    .expect("mTLS");
    kit::machine(ch)
}

/// The concatenated bytes of a `Kubeconfig` stream.
pub async fn kubeconfig_bytes(
    m: &mut MachineServiceClient<Channel>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut s = m.kubeconfig(()).await?.into_inner();
    let mut out = Vec::new();
    while let Some(d) = s.message().await? {
        out.extend_from_slice(&d.bytes);
    }
    Ok(out)
}

/// Unpack Talos's archive as Go's archive/tar reads it: (name, mode, content) per entry. Talos
/// does not close its tar writer, so the last entry is neither padded to 512 bytes nor followed
/// by end-of-archive blocks: the archive simply ends after the entry's data.
pub fn untar(gz: &[u8]) -> std::io::Result<Vec<(String, u32, Vec<u8>)>> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut tar)?;
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let octal = |f: &[u8]| -> std::io::Result<u64> {
        let s = std::str::from_utf8(f).map_err(|_| bad("octal"))?;
        let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
        u64::from_str_radix(s, 8).map_err(|_| bad("octal"))
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at < tar.len() {
        let h = tar
            .get(at..at + 512)
            .ok_or_else(|| bad("truncated header"))?;
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let mut sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        sum = sum - h[148..156].iter().map(|&b| u64::from(b)).sum::<u64>() + 8 * u64::from(b' ');
        if sum != octal(&h[148..155])? {
            return Err(bad("checksum"));
        }
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..name_end]).into_owned();
        let mode = octal(&h[100..108])? as u32;
        let size = octal(&h[124..136])? as usize;
        let data = tar
            .get(at + 512..at + 512 + size)
            .ok_or_else(|| bad("truncated entry"))?;
        out.push((name, mode, data.to_vec()));
        at += 512 + size.div_ceil(512) * 512;
    }
    Ok(out)
}

/// The kubeconfig YAML from a control plane (as a JSON value).
pub async fn kubeconfig(m: &mut MachineServiceClient<Channel>) -> Value {
    let bytes = kubeconfig_bytes(m).await.expect("Kubeconfig");
    let entries = untar(&bytes).expect("gzip'd tar");
    assert_eq!(entries.len(), 1, "one entry");
    // Like Talos: header + data, no padding, no end-of-archive blocks.
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_end(&mut raw)
        .expect("gzip");
    assert_eq!(raw.len(), 512 + entries[0].2.len());
    let (name, mode, content) = &entries[0];
    assert_eq!((name.as_str(), *mode), ("kubeconfig", 0o600));
    serde_yaml::from_slice(content).expect("kubeconfig YAML")
}

fn b64_text(v: &Value) -> String {
    String::from_utf8(
        B64.decode(v.as_str().expect("base64 string"))
            .expect("base64"),
    )
    .expect("utf8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_stream_roles_and_content() {
    let t = T::with(fast()).await;
    let c = Cluster::with_endpoint("https://127.77.20.10:6443");
    let mut cp = install(
        &t,
        &c,
        401,
        "127.77.20.1",
        &c.node_config("controlplane", &NodeOpts::default()),
    )
    .await;
    let mut worker = install(&t, &c, 402, "127.77.20.2", &c.config("worker")).await;

    // Roles: admin only.
    let n = kit::wait_node(&t, 401, |n| n["ready"] == true).await;
    for org in ["os:reader", "os:operator", "os:etcd:backup"] {
        let who = c.os_ca.client(org, vec![Eku::ClientAuth]);
        let ch = kit::channel(
            kit::endpoint(&n),
            "127.77.20.1",
            kit::mtls(&c.os_ca, Some(&who)),
        )
        .await
        .expect("mTLS");
        let e = kubeconfig_bytes(&mut kit::machine(ch))
            .await
            .expect_err(org);
        assert_eq!(
            (e.code(), e.message()),
            (Code::PermissionDenied, "not authorized"),
            "{org}"
        );
    }
    // A worker has no Kubernetes CA key to hand out.
    let e = kubeconfig_bytes(&mut worker).await.expect_err("worker");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::Unimplemented,
            "kubeconfig is only available on control plane nodes"
        )
    );

    // Talos sends the whole archive as one message.
    let mut s = cp.kubeconfig(()).await.expect("stream").into_inner();
    let first = s.message().await.expect("first").expect("one message");
    assert!(s.message().await.expect("end").is_none());
    assert!(!first.bytes.is_empty());

    let kc = kubeconfig(&mut cp).await;
    assert_eq!(kc["apiVersion"], "v1");
    assert_eq!(kc["kind"], "Config");
    assert_eq!(kc["current-context"], "admin@lab");
    assert_eq!(kc["clusters"][0]["name"], "lab");
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"],
        "https://127.77.20.10:6443"
    );
    assert_eq!(
        b64_text(&kc["clusters"][0]["cluster"]["certificate-authority-data"]),
        c.k8s_ca_pem
    );
    assert_eq!(kc["users"][0]["name"], "admin@lab");
    assert_eq!(kc["contexts"][0]["name"], "admin@lab");
    assert_eq!(kc["contexts"][0]["context"]["namespace"], "default");
    assert_eq!(kc["contexts"][0]["context"]["user"], "admin@lab");

    // The client certificate: CN admin, O system:masters, clientAuth, from the Kubernetes CA,
    // valid for a year from (about) now; its key is SEC1 and matches it.
    let crt_pem = b64_text(&kc["users"][0]["user"]["client-certificate-data"]);
    let key_pem = b64_text(&kc["users"][0]["user"]["client-key-data"]);
    assert!(
        key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"),
        "{key_pem}"
    );
    let der = infraflux_lab::talos::pki::parse_pem("crt", crt_pem.as_bytes())
        .expect("pem")
        .der;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let org: Vec<_> = cert
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    assert_eq!((cn, org), (vec!["admin"], vec!["system:masters"]));
    let eku = cert
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    let ca_der = infraflux_lab::talos::pki::parse_pem("ca", c.k8s_ca_pem.as_bytes())
        .expect("pem")
        .der;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("ca");
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the Kubernetes CA");
    let v = cert.validity();
    let life = v.not_after.timestamp() - v.not_before.timestamp();
    assert_eq!(
        life,
        365 * 24 * 3600 + 10,
        "one year plus the 10 s back-dating"
    );
    let key_der = infraflux_lab::talos::pki::parse_pem("key", key_pem.as_bytes())
        .expect("pem")
        .der;
    let key = rcgen::KeyPair::try_from(key_der.as_slice()).expect("EC key");
    assert_eq!(
        key.public_key_raw(),
        cert.public_key().subject_public_key.data.as_ref()
    );

    // A fresh certificate per call.
    let again = kubeconfig(&mut cp).await;
    assert_ne!(
        again["users"][0]["user"]["client-certificate-data"],
        kc["users"][0]["user"]["client-certificate-data"]
    );
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_lifetime_and_dropped_stream_fault() {
    let t = T::with(fast()).await;
    let c = Cluster::with_endpoint("https://127.77.21.10:6443");
    let cfg = c.node_config(
        "controlplane",
        &NodeOpts {
            cluster_extra: "  adminKubeconfig:\n    certLifetime: 2h\n",
            ..NodeOpts::default()
        },
    );
    let mut cp = install(&t, &c, 411, "127.77.21.1", &cfg).await;
    let kc = kubeconfig(&mut cp).await;
    let crt_pem = b64_text(&kc["users"][0]["user"]["client-certificate-data"]);
    let der = infraflux_lab::talos::pki::parse_pem("crt", crt_pem.as_bytes())
        .expect("pem")
        .der;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    let v = cert.validity();
    assert_eq!(
        v.not_after.timestamp() - v.not_before.timestamp(),
        2 * 3600 + 10
    );

    // Fault: the next stream breaks off after part of the archive; the one after is whole.
    let (status, body) = t
        .control_post("/faults", &serde_json::json!({"drop_kubeconfig_stream": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["drop_kubeconfig_stream"], 1);
    let mut s = cp.kubeconfig(()).await.expect("stream starts").into_inner();
    let part = s.message().await.expect("a first chunk").expect("chunk");
    assert!(untar(&part.bytes).is_err(), "only part of the archive");
    let e = s.message().await.expect_err("the connection drops");
    assert_ne!(e.code(), Code::Ok);
    assert_eq!(t.control_get("/faults").await["drop_kubeconfig_stream"], 0);
    let mut cp = admin(&t, &c, 411, "127.77.21.1").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    kubeconfig(&mut cp).await;
    t.lab.shutdown().await;
}

/// An HTTPS client for the API server: trusts the kubeconfig's CA, presents its client cert.
pub fn kube_client(kc: &Value) -> reqwest::Client {
    let ca = b64_text(&kc["clusters"][0]["cluster"]["certificate-authority-data"]);
    let crt = b64_text(&kc["users"][0]["user"]["client-certificate-data"]);
    let key = b64_text(&kc["users"][0]["user"]["client-key-data"]);
    client_with(&ca, Some(format!("{crt}{key}")))
}

pub fn client_with(ca_pem: &str, identity_pem: Option<String>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA")])
        .timeout(Duration::from_secs(10));
    if let Some(id) = identity_pem {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

/// A client certificate from the cluster's Kubernetes CA with the given CN and O.
fn k8s_user(c: &Cluster, cn: &str, org: &str) -> String {
    let key = rcgen::KeyPair::try_from(c.k8s_key_der.as_slice()).expect("CA key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&c.k8s_ca_pem, key).expect("issuer");
    let cert =
        infraflux_lab::talos::kubeconfig::client_cert(&issuer, cn, org, Duration::from_secs(3600))
            .expect("client cert");
    format!("{}{}", cert.cert_pem, cert.key_pem)
}

pub async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

pub async fn get_json(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let (s, b) = get(c, url).await;
    (
        s,
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{url}: {e}: {b}")),
    )
}

pub async fn send(
    c: &reqwest::Client,
    m: reqwest::Method,
    url: &str,
    ct: &str,
    body: &Value,
) -> (u16, Value) {
    let r = c
        .request(m, url)
        .header("Content-Type", ct)
        .body(serde_json::to_vec(body).expect("json"))
        .send()
        .await
        .expect("request");
    let s = r.status().as_u16();
    let b = r.text().await.expect("body");
    (
        s,
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}")),
    )
}

/// The control document's API servers once `pred` holds (panics after 5 s).
pub async fn wait_k8s(t: &T, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let doc = t.control_get("/k8s").await;
        if pred(&doc["apiservers"]) {
            return doc["apiservers"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "never matched: {doc}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn node_names(c: &reqwest::Client, base: &str) -> Vec<String> {
    let (s, list) = get_json(c, &format!("{base}/api/v1/nodes")).await;
    assert_eq!(s, 200, "{list}");
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["metadata"]["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

pub async fn wait_nodes(c: &reqwest::Client, base: &str, want: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let names = node_names(c, base).await;
        if names == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nodes {names:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_lifecycle_nodes_and_auth() {
    let t = T::with(fast()).await;
    let base = "https://127.77.22.10:6443";
    let c = Cluster::with_endpoint(base);
    let extra = "  apiServer:\n    image: registry.k8s.io/kube-apiserver:v1.33.4\n";
    let cp_cfg = c.node_config(
        "controlplane",
        &NodeOpts {
            hostname: Some("cp-1"),
            cluster_extra: extra,
            ..NodeOpts::default()
        },
    );
    let mut cp = install(&t, &c, 421, "127.77.22.1", &cp_cfg).await;
    let mut worker = install(&t, &c, 422, "127.77.22.2", &c.config("worker")).await;

    // Not bootstrapped: no API server.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        t.control_get("/k8s").await["apiservers"],
        serde_json::json!([])
    );
    let kc = kubeconfig(&mut cp).await;
    let kube = kube_client(&kc);
    assert!(
        kube.get(format!("{base}/readyz")).send().await.is_err(),
        "nothing listens yet"
    );

    cp.bootstrap(infraflux_lab::talos::proto::machine::BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let servers = wait_k8s(&t, |s| s.as_array().is_some_and(|a| a.len() == 1)).await;
    assert_eq!(servers[0]["bound"], base);
    assert_eq!(servers[0]["cluster_name"], "lab");

    // Health and version.
    assert_eq!(
        get(&kube, &format!("{base}/readyz")).await,
        (200, "ok".to_string())
    );
    assert_eq!(
        get(&kube, &format!("{base}/livez")).await,
        (200, "ok".to_string())
    );
    let (s, verbose) = get(&kube, &format!("{base}/readyz?verbose")).await;
    assert_eq!(s, 200);
    assert!(verbose.contains("[+]etcd ok\n"), "{verbose}");
    assert!(verbose.ends_with("readyz check passed\n"), "{verbose}");
    let (s, v) = get_json(&kube, &format!("{base}/version")).await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            v["gitVersion"].as_str(),
            v["major"].as_str(),
            v["minor"].as_str()
        ),
        (Some("v1.33.4"), Some("1"), Some("33"))
    );
    assert_eq!(v["platform"], "linux/amd64");

    // Discovery.
    let (_, apis) = get_json(&kube, &format!("{base}/api")).await;
    assert_eq!(apis["kind"], "APIVersions");
    assert_eq!(apis["versions"], serde_json::json!(["v1"]));
    let (_, v1) = get_json(&kube, &format!("{base}/api/v1")).await;
    assert_eq!(v1["kind"], "APIResourceList");
    let nodes_res = v1["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "nodes")
        .expect("nodes")
        .clone();
    assert_eq!(
        (
            nodes_res["kind"].as_str(),
            nodes_res["namespaced"].as_bool()
        ),
        (Some("Node"), Some(false))
    );
    let (_, groups) = get_json(&kube, &format!("{base}/apis")).await;
    assert_eq!(groups["kind"], "APIGroupList");

    // Nodes: one per kubelet, named by Talos hostname.
    wait_nodes(&kube, base, &["cp-1", "talos-127-77-22-2"]).await;
    let (_, list) = get_json(&kube, &format!("{base}/api/v1/nodes")).await;
    assert_eq!(list["kind"], "NodeList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let (s, n) = get_json(&kube, &format!("{base}/api/v1/nodes/cp-1")).await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(n["kind"], "Node");
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "cp-1");
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(
        n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert_eq!(
        n["status"]["addresses"],
        serde_json::json!([
            {"type": "InternalIP", "address": "127.77.22.1"},
            {"type": "Hostname", "address": "cp-1"}
        ])
    );
    assert_eq!(n["status"]["nodeInfo"]["osImage"], "Talos (v1.13.9)");
    assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.34.1");
    let ready = n["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready")
        .clone();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("True"), Some("KubeletReady")),
        "flannel is Talos's default CNI"
    );
    assert_eq!(
        n["spec"]["taints"],
        serde_json::json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    );
    let (_, w) = get_json(&kube, &format!("{base}/api/v1/nodes/talos-127-77-22-2")).await;
    assert!(w["spec"].get("taints").is_none(), "{w}");
    assert!(
        w["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_none()
    );

    // Server-side printing, as `kubectl get nodes` asks for it.
    let r = kube
        .get(format!("{base}/api/v1/nodes"))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
        .send()
        .await
        .expect("table");
    let tbl: Value = r.json().await.expect("json");
    assert_eq!(
        (tbl["kind"].as_str(), tbl["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let cols: Vec<&str> = tbl["columnDefinitions"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(&cols[..5], ["Name", "Status", "Roles", "Age", "Version"]);
    let row = tbl["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["cells"][0] == "cp-1")
        .expect("cp-1 row")
        .clone();
    assert_eq!(
        (
            row["cells"][1].as_str(),
            row["cells"][2].as_str(),
            row["cells"][4].as_str()
        ),
        (Some("Ready"), Some("control-plane"), Some("v1.34.1"))
    );
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");

    // Selectors.
    let (_, sel) = get_json(
        &kube,
        &format!("{base}/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane"),
    )
    .await;
    assert_eq!(sel["items"].as_array().map(Vec::len), Some(1));
    assert!(
        sel["items"][0].get("kind").is_none(),
        "list items carry no kind"
    );
    let (_, sel) = get_json(
        &kube,
        &format!("{base}/api/v1/nodes?fieldSelector=metadata.name%3Dtalos-127-77-22-2"),
    )
    .await;
    assert_eq!(sel["items"][0]["metadata"]["name"], "talos-127-77-22-2");
    let (s, bad) = get_json(
        &kube,
        &format!("{base}/api/v1/nodes?fieldSelector=spec.nope%3D1"),
    )
    .await;
    assert_eq!((s, bad["reason"].as_str()), (400, Some("BadRequest")));

    // Errors have the real Status shape.
    let (s, nf) = get_json(&kube, &format!("{base}/api/v1/nodes/nope")).await;
    assert_eq!(s, 404);
    assert_eq!(
        nf,
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "nodes \"nope\" not found", "reason": "NotFound",
            "details": {"name": "nope", "kind": "nodes"}, "code": 404
        })
    );

    // Delete a Node: gone until its kubelet registers again (next boot).
    let r = kube
        .delete(format!("{base}/api/v1/nodes/talos-127-77-22-2"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let del: Value = r.json().await.expect("json");
    assert_eq!(
        (del["kind"].as_str(), del["status"].as_str()),
        (Some("Status"), Some("Success"))
    );
    assert_eq!(del["details"]["name"], "talos-127-77-22-2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(node_names(&kube, base).await, ["cp-1"]);
    let r = kube
        .delete(format!("{base}/api/v1/nodes/talos-127-77-22-2"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 404);
    worker
        .reboot(infraflux_lab::talos::proto::machine::RebootRequest::default())
        .await
        .expect("reboot");
    kit::wait_stage(&t, 422, "rebooting").await;
    wait_nodes(&kube, base, &["cp-1", "talos-127-77-22-2"]).await;

    // A powered-off node keeps its Node, Unknown and unreachable; back Ready when it boots.
    let r = t.post("/nodes/pve1/qemu/422/status/stop", &[]).await;
    t.task_ok(r).await;
    let (_, w) = get_json(&kube, &format!("{base}/api/v1/nodes/talos-127-77-22-2")).await;
    let ready = w["status"]["conditions"][3].clone();
    assert_eq!(
        (
            ready["type"].as_str(),
            ready["status"].as_str(),
            ready["reason"].as_str(),
            ready["message"].as_str()
        ),
        (
            Some("Ready"),
            Some("Unknown"),
            Some("NodeStatusUnknown"),
            Some("Kubelet stopped posting node status.")
        )
    );
    assert_eq!(
        w["spec"]["taints"],
        serde_json::json!([
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
        ])
    );
    assert_eq!(
        w["status"]["addresses"][0]["address"], "127.77.22.2",
        "last posted addresses stay"
    );
    let r = t.post("/nodes/pve1/qemu/422/status/start", &[]).await;
    t.task_ok(r).await;
    kit::wait_stage(&t, 422, "running").await;
    let (_, w) = get_json(&kube, &format!("{base}/api/v1/nodes/talos-127-77-22-2")).await;
    assert_eq!(w["status"]["conditions"][3]["status"], "True");

    // Authentication and authorization.
    let anon = client_with(&c.k8s_ca_pem, None);
    assert_eq!(
        get(&anon, &format!("{base}/readyz")).await,
        (200, "ok".to_string())
    );
    let (s, v) = get_json(&anon, &format!("{base}/version")).await;
    assert_eq!((s, v["gitVersion"].as_str()), (200, Some("v1.33.4")));
    let (s, f) = get_json(&anon, &format!("{base}/api/v1/nodes")).await;
    assert_eq!(s, 403);
    assert_eq!(
        f["message"],
        "nodes is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let (s, f) = get_json(&anon, &format!("{base}/api")).await;
    assert_eq!(
        (s, f["message"].as_str()),
        (
            403,
            Some("forbidden: User \"system:anonymous\" cannot get path \"/api\"")
        )
    );
    let other = Cluster::with_endpoint(base);
    let stranger = client_with(
        &c.k8s_ca_pem,
        Some(k8s_user(&other, "admin", "system:masters")),
    );
    let (s, u) = get_json(&stranger, &format!("{base}/api/v1/nodes")).await;
    assert_eq!(s, 401);
    assert_eq!(
        u,
        serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
    );
    let (s, _) = get_json(&stranger, &format!("{base}/version")).await;
    assert_eq!(s, 401, "authentication comes before everything");
    let jane = client_with(&c.k8s_ca_pem, Some(k8s_user(&c, "jane", "dev")));
    let (s, f) = get_json(&jane, &format!("{base}/api/v1/nodes")).await;
    assert_eq!(s, 403);
    assert_eq!(f["reason"], "Forbidden");
    assert_eq!(
        f["message"],
        "nodes is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let (s, f) = get_json(
        &jane,
        &format!("{base}/api/v1/namespaces/default/configmaps/x"),
    )
    .await;
    assert_eq!(
        (s, f["message"].as_str()),
        (
            403,
            Some(
                "configmaps \"x\" is forbidden: User \"jane\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
            )
        )
    );
    let (s, _) = get_json(&jane, &format!("{base}/api/v1")).await;
    assert_eq!(s, 200, "authenticated users may read discovery");

    // Power off the only control plane: the API server goes away; back with it.
    let r = t.post("/nodes/pve1/qemu/421/status/stop", &[]).await;
    t.task_ok(r).await;
    wait_k8s(&t, |s| s.as_array().is_some_and(Vec::is_empty)).await;
    assert!(kube.get(format!("{base}/readyz")).send().await.is_err());
    let r = t.post("/nodes/pve1/qemu/421/status/start", &[]).await;
    t.task_ok(r).await;
    wait_k8s(&t, |s| s.as_array().is_some_and(|a| a.len() == 1)).await;
    assert_eq!(
        get(&kube, &format!("{base}/readyz")).await,
        (200, "ok".to_string())
    );
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_objects_crud_and_cni_none() {
    // The API server comes up a while after Bootstrap.
    let mut opts = fast();
    opts.talos.apiserver_delay_ms = 400;
    let t = T::with(opts).await;
    let base = "https://127.77.23.10:6443";
    let c = Cluster::with_endpoint(base);
    let cfg = c
        .node_config(
            "controlplane",
            &NodeOpts {
                cluster_extra: "  allowSchedulingOnControlPlanes: true\n",
                ..NodeOpts::default()
            },
        )
        .replacen(
            "    dnsDomain: cluster.local\n",
            "    dnsDomain: cluster.local\n    cni:\n      name: none\n",
            1,
        );
    let mut cp = install(&t, &c, 431, "127.77.23.1", &cfg).await;
    cp.bootstrap(infraflux_lab::talos::proto::machine::BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let kube = kube_client(&kubeconfig(&mut cp).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        kube.get(format!("{base}/readyz")).send().await.is_err(),
        "not up yet"
    );
    let servers = wait_k8s(&t, |s| s.as_array().is_some_and(|a| a.len() == 1)).await;
    let key = servers[0]["cluster_key"].as_str().expect("key").to_string();
    wait_nodes(&kube, base, &["talos-127-77-23-1"]).await;

    // No CNI: NotReady with the kubelet's message and the not-ready taint (scheduling on
    // control planes allowed: no control-plane taint).
    let (_, n) = get_json(&kube, &format!("{base}/api/v1/nodes/talos-127-77-23-1")).await;
    let ready = n["status"]["conditions"][3].clone();
    assert_eq!(ready["type"], "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("KubeletNotReady"))
    );
    assert_eq!(
        ready["message"],
        "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"
    );
    assert_eq!(
        n["spec"]["taints"],
        serde_json::json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
    );
    // A CNI install (the seam): Ready.
    let (s, _) = t
        .control_post(
            "/k8s/cni",
            &serde_json::json!({"cluster_key": key, "ready": true}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, n) = get_json(&kube, &format!("{base}/api/v1/nodes/talos-127-77-23-1")).await;
    assert_eq!(n["status"]["conditions"][3]["status"], "True");
    assert!(n["spec"].get("taints").is_none(), "{n}");

    // Namespaces.
    let (_, nss) = get_json(&kube, &format!("{base}/api/v1/namespaces")).await;
    let mut names: Vec<&str> = nss["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let json_ct = "application/json";
    let (s, ns) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{base}/api/v1/namespaces"),
        json_ct,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}),
    )
    .await;
    assert_eq!(s, 201, "{ns}");
    let (s, bad) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{base}/api/v1/namespaces"),
        json_ct,
        &serde_json::json!({"metadata": {"name": "Bad_Name"}}),
    )
    .await;
    assert_eq!((s, bad["reason"].as_str()), (422, Some("Invalid")));
    assert!(bad["message"].as_str().is_some_and(|m| m.starts_with("Namespace \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label")), "{bad}");

    // ConfigMaps: create, conflict on create, read, stale update, patch, delete.
    let cms = format!("{base}/api/v1/namespaces/apps/configmaps");
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "labels": {"app": "x"}}, "data": {"a": "1"}});
    let (s, made) = send(&kube, reqwest::Method::POST, &cms, json_ct, &cm).await;
    assert_eq!(s, 201, "{made}");
    assert_eq!(made["metadata"]["namespace"], "apps");
    assert!(
        made["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(
        made["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let rv1 = made["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let (s, dup) = send(&kube, reqwest::Method::POST, &cms, json_ct, &cm).await;
    assert_eq!(s, 409);
    assert_eq!(
        dup,
        serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"settings\" already exists","reason":"AlreadyExists","details":{"name":"settings","kind":"configmaps"},"code":409})
    );
    let (s, _) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{base}/api/v1/namespaces/nope/configmaps"),
        json_ct,
        &cm,
    )
    .await;
    assert_eq!(s, 404);
    let mut next = made.clone();
    next["data"]["a"] = serde_json::json!("2");
    let (s, upd) = send(
        &kube,
        reqwest::Method::PUT,
        &format!("{cms}/settings"),
        json_ct,
        &next,
    )
    .await;
    assert_eq!(s, 200, "{upd}");
    assert_ne!(
        upd["metadata"]["resourceVersion"].as_str(),
        Some(rv1.as_str())
    );
    let (s, conflict) = send(
        &kube,
        reqwest::Method::PUT,
        &format!("{cms}/settings"),
        json_ct,
        &next,
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(conflict["reason"], "Conflict");
    assert_eq!(
        conflict["message"],
        "Operation cannot be fulfilled on configmaps \"settings\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let (s, patched) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/settings"),
        "application/merge-patch+json",
        &serde_json::json!({"data": {"b": "3", "a": null}}),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["data"], serde_json::json!({"b": "3"}));
    let (s, jp) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/settings"),
        "application/json-patch+json",
        &serde_json::json!([{"op": "add", "path": "/data/c", "value": "4"}]),
    )
    .await;
    assert_eq!((s, jp["data"]["c"].as_str()), (200, Some("4")));
    let (s, unsup) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/settings"),
        "text/plain",
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(
        (s, unsup["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    // Server-side apply: fieldManager required; creates when absent.
    let (s, _) = send(&kube, reqwest::Method::PATCH, &format!("{cms}/applied"), "application/apply-patch+yaml", &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"x": "y"}})).await;
    assert_eq!(s, 422);
    let (s, applied) = send(&kube, reqwest::Method::PATCH, &format!("{cms}/applied?fieldManager=infraflux&force=true"), "application/apply-patch+yaml", &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"x": "y"}})).await;
    assert_eq!((s, applied["data"]["x"].as_str()), (201, Some("y")));
    let mf = &applied["metadata"]["managedFields"][0];
    assert_eq!(
        (
            mf["manager"].as_str(),
            mf["operation"].as_str(),
            mf["fieldsType"].as_str()
        ),
        (Some("infraflux"), Some("Apply"), Some("FieldsV1"))
    );
    assert_eq!(mf["fieldsV1"], serde_json::json!({"f:data": {"f:x": {}}}));
    // Another manager changing an owned field: 409 with Kubernetes' message, unless forced.
    let ssa = "application/apply-patch+yaml";
    let other = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"x": "z"}});
    let (s, c409) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/applied?fieldManager=other"),
        ssa,
        &other,
    )
    .await;
    assert_eq!(s, 409, "{c409}");
    assert_eq!(c409["reason"], "Conflict");
    assert_eq!(
        c409["message"],
        "Apply failed with 1 conflict: conflict with \"infraflux\": .data.x"
    );
    assert_eq!(
        c409["details"]["causes"][0],
        serde_json::json!({"reason": "FieldManagerConflict", "message": "conflict with \"infraflux\"", "field": ".data.x"})
    );
    let (s, forced) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/applied?fieldManager=other&force=true"),
        ssa,
        &other,
    )
    .await;
    assert_eq!((s, forced["data"]["x"].as_str()), (200, Some("z")));
    // infraflux no longer owns x: applying without it keeps other's value.
    let mine = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"w": "1"}});
    let (s, now) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/applied?fieldManager=infraflux"),
        ssa,
        &mine,
    )
    .await;
    assert_eq!(
        (s, now["data"].clone()),
        (200, serde_json::json!({"w": "1", "x": "z"}))
    );
    // A plain patch makes its manager the owner of what it changed.
    send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/applied?fieldManager=editor"),
        "application/merge-patch+json",
        &serde_json::json!({"data": {"w": "2"}}),
    )
    .await;
    let (s, c409) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/applied?fieldManager=infraflux"),
        ssa,
        &mine,
    )
    .await;
    assert_eq!(
        (s, c409["message"].as_str()),
        (
            409,
            Some("Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.w")
        )
    );
    // Dropping a field from one's apply removes it when nobody else owns it.
    let (s, _) = send(&kube, reqwest::Method::PATCH, &format!("{cms}/applied?fieldManager=other"), ssa, &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}})).await;
    assert_eq!(s, 200);
    let (_, cm) = get_json(&kube, &format!("{cms}/applied")).await;
    assert_eq!(cm["data"], serde_json::json!({"w": "2"}));
    let (s, sel) = get_json(&kube, &format!("{cms}?labelSelector=app%3Dx")).await;
    assert_eq!(
        (
            s,
            sel["kind"].as_str(),
            sel["items"].as_array().map(Vec::len)
        ),
        (200, Some("ConfigMapList"), Some(1))
    );
    let r = kube
        .delete(format!("{cms}/settings"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let (s, _) = get_json(&kube, &format!("{cms}/settings")).await;
    assert_eq!(s, 404);
    // Protobuf bodies, as kubectl sends them for `create` (encoded here by hand, field by
    // field, from k8s.io/api's generated.proto numbers).
    fn pb(tag: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 128);
        let mut out = vec![(tag << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let entry = |k: &str, v: &str| [pb(1, k.as_bytes()), pb(2, v.as_bytes())].concat();
    let meta = [pb(1, b"from-proto"), pb(11, &entry("a", "b"))].concat();
    let raw = [pb(1, &meta), pb(2, &entry("k", "v"))].concat();
    let unknown = [
        pb(1, &[pb(1, b"v1"), pb(2, b"ConfigMap")].concat()),
        pb(2, &raw),
    ]
    .concat();
    let body = [b"k8s\0".as_slice(), &unknown].concat();
    let r = kube
        .post(&cms)
        .header("Content-Type", "application/vnd.kubernetes.protobuf")
        .header("Accept", "application/vnd.kubernetes.protobuf, */*")
        .body(body)
        .send()
        .await
        .expect("protobuf create");
    assert_eq!(r.status().as_u16(), 201);
    let made: Value = r.json().await.expect("json answer");
    assert_eq!(made["data"], serde_json::json!({"k": "v"}));
    assert_eq!(made["metadata"]["labels"], serde_json::json!({"a": "b"}));
    assert_eq!(made["metadata"]["namespace"], "apps");
    let r = kube
        .post(&cms)
        .header("Content-Type", "application/vnd.kubernetes.protobuf")
        .body(b"not protobuf".to_vec())
        .send()
        .await
        .expect("bad protobuf");
    assert_eq!(r.status().as_u16(), 400);

    // Defaulting: a Secret without a type is Opaque.
    let (s, sec) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{base}/api/v1/namespaces/apps/secrets"),
        json_ct,
        &serde_json::json!({"metadata": {"name": "s"}, "data": {"p": "cQ=="}}),
    )
    .await;
    assert_eq!((s, sec["type"].as_str()), (201, Some("Opaque")));

    // Deleting the namespace removes what is in it.
    let r = kube
        .delete(format!("{base}/api/v1/namespaces/apps"))
        .send()
        .await
        .expect("delete ns");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"]["phase"], "Terminating");
    let (s, _) = get_json(&kube, &format!("{cms}/applied")).await;
    assert_eq!(s, 404);
    t.lab.shutdown().await;
}

/// The project's venv Python (installed by `make tools`: scripts/requirements.txt pins the
/// official `kubernetes` client). Missing → the test fails: the setup always installs it.
/// Run `script` with the project's Python (which has the official Kubernetes client), with
/// `args` after it: its stdout lines. Panics with its output if it fails.
pub async fn python(script: &'static str, args: &[&std::ffi::OsStr]) -> Vec<String> {
    let py = venv_python();
    let args: Vec<std::ffi::OsString> = args.iter().map(|a| a.to_os_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(py)
            .arg("-c")
            .arg(script)
            .args(&args)
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

pub fn venv_python() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `make tools` (scripts/install-tools.sh)",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_reads_the_cluster() {
    let t = T::with(fast()).await;
    let base = "https://127.77.24.10:6443";
    let c = Cluster::with_endpoint(base);
    let cfg = c.node_config(
        "controlplane",
        &NodeOpts {
            hostname: Some("py-cp"),
            ..NodeOpts::default()
        },
    );
    let mut cp = install(&t, &c, 441, "127.77.24.1", &cfg).await;
    cp.bootstrap(infraflux_lab::talos::proto::machine::BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let bytes = kubeconfig_bytes(&mut cp).await.expect("Kubeconfig");
    let (_, _, yaml) = untar(&bytes).expect("archive").remove(0);
    let kube = kube_client(&serde_yaml::from_slice(&yaml).expect("yaml"));
    wait_nodes(&kube, base, &["py-cp"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, &yaml).expect("write");
    let script = r#"
import sys
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()
print("nodes=" + ",".join(sorted(n.metadata.name for n in v1.list_node().items)))
print("ns=" + ",".join(sorted(n.metadata.name for n in v1.list_namespace().items)))
node = v1.read_node("py-cp")
print("ready=" + [c.status for c in node.status.conditions if c.type == "Ready"][0])
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="from-python"), data={"k": "v"})
v1.create_namespaced_config_map("default", cm)
print("cm=" + v1.read_namespaced_config_map("from-python", "default").data["k"])
try:
    v1.read_node("nope")
except ApiException as e:
    print("missing=%d" % e.status)
print("version=" + client.VersionApi().get_code().git_version)
from kubernetes import watch
seen = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(v1.list_namespace, timeout_seconds=1)]
print("watched=" + ",".join("%s:%s" % s for s in sorted(seen)))
"#;
    let lines = python(script, &[path.as_os_str()]).await;
    assert_eq!(
        lines,
        [
            "nodes=py-cp",
            "ns=default,kube-node-lease,kube-public,kube-system",
            "ready=True",
            "cm=v",
            "missing=404",
            "version=v1.34.1",
            "watched=ADDED:default,ADDED:kube-node-lease,ADDED:kube-public,ADDED:kube-system",
        ]
    );
    t.lab.shutdown().await;
}

/// Reads JSON lines from a watch response.
struct Lines {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Lines {
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("a JSON event"));
            }
            match tokio::time::timeout(Duration::from_secs(5), self.resp.chunk()).await {
                Ok(Ok(Some(c))) => self.buf.extend_from_slice(&c),
                Ok(_) => return None,
                Err(_) => panic!("no watch event within 5 s"),
            }
        }
    }
}

async fn watch(c: &reqwest::Client, url: &str) -> Lines {
    let resp = c.get(url).send().await.expect("watch");
    assert_eq!(resp.status().as_u16(), 200);
    Lines {
        resp,
        buf: Vec::new(),
    }
}

fn ev(v: &Value) -> (String, String) {
    (
        v["type"].as_str().unwrap_or_default().to_string(),
        v["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches() {
    let t = T::with(fast()).await;
    let base = "https://127.77.28.10:6443";
    let c = Cluster::with_endpoint(base);
    let cfg = c
        .node_config(
            "controlplane",
            &NodeOpts {
                hostname: Some("w-cp"),
                ..NodeOpts::default()
            },
        )
        .replacen(
            "    dnsDomain: cluster.local\n",
            "    dnsDomain: cluster.local\n    cni:\n      name: none\n",
            1,
        );
    let mut cp = install(&t, &c, 481, "127.77.28.1", &cfg).await;
    cp.bootstrap(infraflux_lab::talos::proto::machine::BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let kube = kube_client(&kubeconfig(&mut cp).await);
    let servers = wait_k8s(&t, |s| s.as_array().is_some_and(|a| a.len() == 1)).await;
    let key = servers[0]["cluster_key"].as_str().expect("key").to_string();
    wait_nodes(&kube, base, &["w-cp"]).await;
    let json_ct = "application/json";
    let cms = format!("{base}/api/v1/namespaces/default/configmaps");

    // From now: existing objects first (ADDED), then changes in order.
    send(
        &kube,
        reqwest::Method::POST,
        &cms,
        json_ct,
        &serde_json::json!({"metadata": {"name": "one"}}),
    )
    .await;
    let mut w = watch(&kube, &format!("{cms}?watch=1")).await;
    assert_eq!(
        ev(&w.next().await.expect("event")),
        ("ADDED".into(), "one".into())
    );
    send(
        &kube,
        reqwest::Method::POST,
        &cms,
        json_ct,
        &serde_json::json!({"metadata": {"name": "two"}}),
    )
    .await;
    send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/two"),
        "application/merge-patch+json",
        &serde_json::json!({"data": {"a": "b"}}),
    )
    .await;
    kube.delete(format!("{cms}/one"))
        .send()
        .await
        .expect("delete");
    let got = [w.next().await, w.next().await, w.next().await].map(|e| ev(&e.expect("event")));
    assert_eq!(
        got,
        [
            ("ADDED".into(), "two".into()),
            ("MODIFIED".into(), "two".into()),
            ("DELETED".into(), "one".into())
        ]
    );

    // From a list's resourceVersion: only what came after it.
    let (_, list) = get_json(&kube, &cms).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    send(
        &kube,
        reqwest::Method::POST,
        &cms,
        json_ct,
        &serde_json::json!({"metadata": {"name": "three"}}),
    )
    .await;
    let mut w = watch(&kube, &format!("{cms}?watch=true&resourceVersion={rv}")).await;
    assert_eq!(
        ev(&w.next().await.expect("event")),
        ("ADDED".into(), "three".into())
    );

    // A Node's status change (the CNI comes up) reaches a watch as MODIFIED, with a new
    // resourceVersion (what `kubectl wait --for=condition=Ready` needs).
    let (_, n) = get_json(
        &kube,
        &format!("{base}/api/v1/nodes?fieldSelector=metadata.name%3Dw-cp"),
    )
    .await;
    let rv = n["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let node_rv = n["items"][0]["metadata"]["resourceVersion"].clone();
    let mut w = watch(
        &kube,
        &format!(
            "{base}/api/v1/nodes?watch=1&fieldSelector=metadata.name%3Dw-cp&resourceVersion={rv}"
        ),
    )
    .await;
    t.control_post(
        "/k8s/cni",
        &serde_json::json!({"cluster_key": key, "ready": true}),
    )
    .await;
    let e = w.next().await.expect("event");
    assert_eq!(ev(&e), ("MODIFIED".into(), "w-cp".into()));
    assert_eq!(e["object"]["status"]["conditions"][3]["status"], "True");
    assert_ne!(e["object"]["metadata"]["resourceVersion"], node_rv);
    assert_eq!(e["object"]["kind"], "Node");

    // timeoutSeconds ends the stream.
    let mut w = watch(
        &kube,
        &format!("{cms}?watch=1&timeoutSeconds=1&labelSelector=none%3Dx"),
    )
    .await;
    assert!(w.next().await.is_none());
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_groups_and_workload_status() {
    let t = T::with(fast()).await;
    let base = "https://127.77.29.10:6443";
    let c = Cluster::with_endpoint(base);
    let cfg = c
        .node_config(
            "controlplane",
            &NodeOpts {
                hostname: Some("g-cp"),
                cluster_extra: "  allowSchedulingOnControlPlanes: true\n",
                ..NodeOpts::default()
            },
        )
        .replacen(
            "    dnsDomain: cluster.local\n",
            "    dnsDomain: cluster.local\n    cni:\n      name: none\n",
            1,
        );
    let mut cp = install(&t, &c, 491, "127.77.29.1", &cfg).await;
    cp.bootstrap(infraflux_lab::talos::proto::machine::BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let kube = kube_client(&kubeconfig(&mut cp).await);
    let servers = wait_k8s(&t, |s| s.as_array().is_some_and(|a| a.len() == 1)).await;
    let key = servers[0]["cluster_key"].as_str().expect("key").to_string();
    wait_nodes(&kube, base, &["g-cp"]).await;

    // Discovery of the groups.
    let (_, groups) = get_json(&kube, &format!("{base}/apis")).await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "apps",
            "networking.k8s.io",
            "rbac.authorization.k8s.io",
            "apiextensions.k8s.io"
        ]
    );
    assert_eq!(
        groups["groups"][0]["preferredVersion"],
        serde_json::json!({"groupVersion": "apps/v1", "version": "v1"})
    );
    let (_, apps) = get_json(&kube, &format!("{base}/apis/apps/v1")).await;
    assert_eq!(apps["groupVersion"], "apps/v1");
    let res: Vec<&str> = apps["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(res, ["daemonsets", "deployments", "statefulsets"]);
    let (s, g) = get_json(&kube, &format!("{base}/apis/apps")).await;
    assert_eq!((s, g["kind"].as_str()), (200, Some("APIGroup")));
    let (s, _) = get_json(&kube, &format!("{base}/apis/nope.example.com/v1")).await;
    assert_eq!(s, 404);

    // A Deployment waits for the pod network; a host-network agent DaemonSet does not.
    let json_ct = "application/json";
    let deps = format!("{base}/apis/apps/v1/namespaces/default/deployments");
    let dep = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (s, made) = send(&kube, reqwest::Method::POST, &deps, json_ct, &dep).await;
    assert_eq!(s, 201, "{made}");
    assert_eq!(
        (
            made["apiVersion"].as_str(),
            made["metadata"]["generation"].as_u64()
        ),
        (Some("apps/v1"), Some(1))
    );
    let (_, d) = get_json(&kube, &format!("{deps}/web")).await;
    assert_eq!(
        d["status"]["conditions"][0],
        serde_json::json!({
        "type": "Available", "status": "False", "lastUpdateTime": d["metadata"]["creationTimestamp"], "lastTransitionTime": d["metadata"]["creationTimestamp"],
        "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."})
    );
    assert_eq!(d["status"]["unavailableReplicas"], 2);
    let dss = format!("{base}/apis/apps/v1/namespaces/kube-system/daemonsets");
    let agent = serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists"}], "containers": [{"name": "a", "image": "agent"}]}}}});
    let (s, _) = send(&kube, reqwest::Method::POST, &dss, json_ct, &agent).await;
    assert_eq!(s, 201);
    let (_, a) = get_json(&kube, &format!("{dss}/agent")).await;
    assert_eq!(
        (
            a["status"]["desiredNumberScheduled"].as_u64(),
            a["status"]["numberReady"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let plain = serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "plain"},
        "spec": {"selector": {"matchLabels": {"app": "p"}}, "template": {"metadata": {"labels": {"app": "p"}}, "spec": {"containers": [{"name": "p", "image": "p"}]}}}});
    send(&kube, reqwest::Method::POST, &dss, json_ct, &plain).await;
    let (_, p) = get_json(&kube, &format!("{dss}/plain")).await;
    assert_eq!(
        p["status"]["desiredNumberScheduled"], 0,
        "not-ready:NoSchedule is not tolerated"
    );

    // The CNI comes up: the Deployment becomes available, seen by a watch.
    let (_, list) = get_json(&kube, &deps).await;
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("DeploymentList"), Some("apps/v1"))
    );
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let mut w = watch(&kube, &format!("{deps}?watch=1&resourceVersion={rv}")).await;
    t.control_post(
        "/k8s/cni",
        &serde_json::json!({"cluster_key": key, "ready": true}),
    )
    .await;
    let e = w.next().await.expect("event");
    assert_eq!(ev(&e), ("MODIFIED".into(), "web".into()));
    assert_eq!(e["object"]["status"]["readyReplicas"], 2);
    assert_eq!(e["object"]["status"]["conditions"][0]["status"], "True");

    // Spec changes bump the generation; the controller observes it.
    let (s, p) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{deps}/web"),
        "application/merge-patch+json",
        &serde_json::json!({"spec": {"replicas": 3}}),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (
            p["metadata"]["generation"].as_u64(),
            p["status"]["observedGeneration"].as_u64()
        ),
        (Some(2), Some(2))
    );

    // Errors and RBAC texts name the group.
    let (s, nf) = get_json(&kube, &format!("{deps}/nope")).await;
    assert_eq!(s, 404);
    assert_eq!(nf["message"], "deployments.apps \"nope\" not found");
    assert_eq!(
        nf["details"],
        serde_json::json!({"name": "nope", "group": "apps", "kind": "deployments"})
    );
    let jane = client_with(&c.k8s_ca_pem, Some(k8s_user(&c, "jane", "dev")));
    let (s, f) = get_json(&jane, &deps).await;
    assert_eq!(
        (s, f["message"].as_str()),
        (
            403,
            Some(
                "deployments.apps is forbidden: User \"jane\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"default\""
            )
        )
    );
    let crs = format!("{base}/apis/rbac.authorization.k8s.io/v1/clusterroles");
    let (s, cr) = send(&kube, reqwest::Method::POST, &crs, json_ct, &serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})).await;
    assert_eq!(
        (s, cr["apiVersion"].as_str()),
        (201, Some("rbac.authorization.k8s.io/v1"))
    );
    let r = kube
        .delete(format!("{crs}/reader"))
        .send()
        .await
        .expect("delete");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["details"]["group"], "rbac.authorization.k8s.io");
    t.lab.shutdown().await;
}

/// A cluster of one control plane at `ip` (…1) with its endpoint (…10); the admin client
/// and the kubeconfig YAML.
async fn one_node_cluster(
    t: &T,
    net: &str,
    vmid: u32,
    host: &str,
) -> (reqwest::Client, String, Vec<u8>) {
    let base = format!("https://{net}.10:6443");
    let c = Cluster::with_endpoint(&base);
    let cfg = c.node_config(
        "controlplane",
        &NodeOpts {
            hostname: Some(host),
            ..NodeOpts::default()
        },
    );
    let mut cp = install(t, &c, vmid, &format!("{net}.1"), &cfg).await;
    cp.bootstrap(infraflux_lab::talos::proto::machine::BootstrapRequest::default())
        .await
        .expect("Bootstrap");
    let bytes = kubeconfig_bytes(&mut cp).await.expect("Kubeconfig");
    let (_, _, yaml) = untar(&bytes).expect("archive").remove(0);
    let kube = kube_client(&serde_yaml::from_slice(&yaml).expect("yaml"));
    wait_nodes(&kube, &base, &[host]).await;
    (kube, base, yaml)
}

fn crd(plural: &str, kind: &str, scope: &str, short: &[&str]) -> Value {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": {"plural": plural, "kind": kind, "shortNames": short},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

/// The CRD once its conditions are set (panics after 3 s).
async fn wait_crd(kube: &reqwest::Client, base: &str, name: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (s, v) = get_json(
            kube,
            &format!("{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        if v["status"]["conditions"].is_array() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "no conditions: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cond<'a>(crd: &'a Value, t: &str) -> &'a Value {
    crd["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_definitions() {
    use serde_json::json;
    let t = T::with(fast()).await;
    let (kube, base, yaml) = one_node_cluster(&t, "127.77.30", 501, "crd-cp").await;
    let json_ct = "application/json";
    let crds = format!("{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
    let widgets = format!("{base}/apis/example.com/v1/namespaces/default/widgets");

    // Discovery serves apiextensions; no custom resource yet: the real 404.
    let (_, d) = get_json(&kube, &format!("{base}/apis/apiextensions.k8s.io/v1")).await;
    assert_eq!(d["resources"][0]["name"], "customresourcedefinitions");
    assert_eq!(d["resources"][0]["shortNames"], json!(["crd", "crds"]));
    let (s, e) = get_json(&kube, &widgets).await;
    assert_eq!(
        (s, e["message"].as_str()),
        (
            404,
            Some("the server could not find the requested resource")
        )
    );

    // The name must be <plural>.<group>.
    let mut bad = crd("widgets", "Widget", "Namespaced", &["wd"]);
    bad["metadata"]["name"] = json!("foo.example.com");
    let (s, e) = send(&kube, reqwest::Method::POST, &crds, json_ct, &bad).await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        e["message"],
        "CustomResourceDefinition.apiextensions.k8s.io \"foo.example.com\" is invalid: metadata.name: Invalid value: \"foo.example.com\": must be spec.names.plural+\".\"+spec.group"
    );
    assert_eq!(e["details"]["causes"][0]["field"], "metadata.name");

    // Created: nothing accepted yet; a moment later NamesAccepted and Established.
    let (s, made) = send(
        &kube,
        reqwest::Method::POST,
        &crds,
        json_ct,
        &crd("widgets", "Widget", "Namespaced", &["wd"]),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    assert!(made["status"]["conditions"].is_null(), "{made}");
    assert_eq!(made["status"]["storedVersions"], json!(["v1"]));
    let est = wait_crd(&kube, &base, "widgets.example.com").await;
    assert_eq!(
        (
            cond(&est, "NamesAccepted")["status"].as_str(),
            cond(&est, "NamesAccepted")["reason"].as_str()
        ),
        (Some("True"), Some("NoConflicts"))
    );
    assert_eq!(
        (
            cond(&est, "Established")["status"].as_str(),
            cond(&est, "Established")["reason"].as_str()
        ),
        (Some("True"), Some("InitialNamesAccepted"))
    );
    assert_eq!(est["status"]["acceptedNames"]["kind"], "Widget");
    assert_eq!(est["status"]["acceptedNames"]["singular"], "widget");
    assert_eq!(est["status"]["acceptedNames"]["listKind"], "WidgetList");

    // A PUT of the CRD without status (kubectl replace) keeps the status: status is a
    // subresource.
    let mut put = crd("widgets", "Widget", "Namespaced", &["wd"]);
    put["metadata"]["resourceVersion"] = est["metadata"]["resourceVersion"].clone();
    put["metadata"]["labels"] = json!({"team": "a"});
    let (s, replaced) = send(
        &kube,
        reqwest::Method::PUT,
        &format!("{crds}/widgets.example.com"),
        json_ct,
        &put,
    )
    .await;
    assert_eq!(s, 200, "{replaced}");
    assert_eq!(replaced["status"], est["status"]);
    assert_eq!(replaced["metadata"]["labels"]["team"], "a");

    // Discovery: the group last, its resource with kind, scope, verbs and short names.
    let (_, groups) = get_json(&kube, &format!("{base}/apis")).await;
    let last = groups["groups"].as_array().expect("groups").last().cloned();
    assert_eq!(
        last,
        Some(json!({"name": "example.com",
            "versions": [{"groupVersion": "example.com/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"}}))
    );
    let (_, rl) = get_json(&kube, &format!("{base}/apis/example.com/v1")).await;
    assert_eq!(rl["groupVersion"], "example.com/v1");
    assert_eq!(
        rl["resources"][0],
        json!({"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget",
            "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            "shortNames": ["wd"]})
    );
    let (s, g) = get_json(&kube, &format!("{base}/apis/example.com")).await;
    assert_eq!((s, g["kind"].as_str()), (200, Some("APIGroup")));

    // Custom objects: create, get, list with a label selector, apply, update, delete.
    for (name, tier) in [("a", "gold"), ("b", "silver")] {
        let (s, w) = send(
            &kube,
            reqwest::Method::POST,
            &widgets,
            json_ct,
            &json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": name, "labels": {"tier": tier}}, "spec": {"size": 3}}),
        )
        .await;
        assert_eq!(s, 201, "{w}");
        assert_eq!(w["metadata"]["namespace"], "default");
        assert_eq!(w["metadata"]["generation"], 1);
    }
    let (s, w) = get_json(&kube, &format!("{widgets}/a")).await;
    assert_eq!(
        (s, w["kind"].as_str(), w["apiVersion"].as_str()),
        (200, Some("Widget"), Some("example.com/v1"))
    );
    let (s, l) = get_json(&kube, &format!("{widgets}?labelSelector=tier%3Dgold")).await;
    assert_eq!((s, l["kind"].as_str()), (200, Some("WidgetList")));
    assert_eq!(l["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(l["items"][0]["metadata"]["name"], "a");
    let (_, all) = get_json(&kube, &format!("{base}/apis/example.com/v1/widgets")).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    let (s, e) = get_json(&kube, &format!("{widgets}/nope")).await;
    assert_eq!(
        (s, e["message"].as_str()),
        (404, Some("widgets.example.com \"nope\" not found"))
    );
    let (s, ap) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{widgets}/c?fieldManager=tf"),
        "application/apply-patch+yaml",
        &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "c"}, "spec": {"size": 1}}),
    )
    .await;
    assert_eq!(s, 201, "{ap}");
    assert_eq!(ap["metadata"]["managedFields"][0]["manager"], "tf");
    let (s, up) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{widgets}/a"),
        "application/merge-patch+json",
        &json!({"spec": {"size": 5}}),
    )
    .await;
    assert_eq!((s, up["metadata"]["generation"].as_i64()), (200, Some(2)));
    let (s, dup) = send(
        &kube,
        reqwest::Method::POST,
        &widgets,
        json_ct,
        &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "a"}}),
    )
    .await;
    assert_eq!(
        (s, dup["message"].as_str()),
        (409, Some("widgets.example.com \"a\" already exists"))
    );
    // A watch sees custom objects.
    let mut w = watch(&kube, &format!("{widgets}?watch=1&timeoutSeconds=2")).await;
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(ev(&w.next().await.expect("event")));
    }
    names.sort();
    assert_eq!(names[0], ("ADDED".to_string(), "a".to_string()));

    // Names another CRD of the group holds: NamesAccepted=False, not Established.
    let (s, _) = send(&kube, reqwest::Method::POST, &crds, json_ct, &{
        let mut c = crd("gizmos", "Widget", "Namespaced", &[]);
        c["spec"]["names"]["singular"] = json!("gizmo");
        c
    })
    .await;
    assert_eq!(s, 201);
    let c2 = wait_crd(&kube, &base, "gizmos.example.com").await;
    assert_eq!(
        (
            cond(&c2, "NamesAccepted")["status"].as_str(),
            cond(&c2, "NamesAccepted")["reason"].as_str(),
            cond(&c2, "NamesAccepted")["message"].as_str()
        ),
        (
            Some("False"),
            Some("KindConflict"),
            Some("\"Widget\" is already in use")
        )
    );
    assert_eq!(cond(&c2, "Established")["status"], "False");
    let (s, _) = get_json(
        &kube,
        &format!("{base}/apis/example.com/v1/namespaces/default/gizmos"),
    )
    .await;
    assert_eq!(s, 404);

    // A cluster-scoped CRD.
    let (s, _) = send(
        &kube,
        reqwest::Method::POST,
        &crds,
        json_ct,
        &crd("realms", "Realm", "Cluster", &[]),
    )
    .await;
    assert_eq!(s, 201);
    wait_crd(&kube, &base, "realms.example.com").await;
    let (s, r) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{base}/apis/example.com/v1/realms"),
        json_ct,
        &json!({"apiVersion": "example.com/v1", "kind": "Realm", "metadata": {"name": "r1"}}),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert!(r["metadata"].get("namespace").is_none());
    let (s, _) = get_json(
        &kube,
        &format!("{base}/apis/example.com/v1/namespaces/default/realms"),
    )
    .await;
    assert_eq!(s, 404);
    let (_, rl) = get_json(&kube, &format!("{base}/apis/example.com/v1")).await;
    let served: Vec<(String, bool)> = rl["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["namespaced"] == true,
            )
        })
        .collect();
    assert_eq!(
        served,
        [("realms".to_string(), false), ("widgets".to_string(), true)]
    );

    // Several versions: served ones in discovery (GA first), one stored object read in the
    // version asked for; an unserved version is not there.
    let multi = |storage_beta: bool, scope: &str| {
        json!({
            "metadata": {"name": "things.multi.example.org"},
            "spec": {
                "group": "multi.example.org",
                "scope": scope,
                "names": {"plural": "things", "kind": "Thing"},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": storage_beta},
                    {"name": "v1", "served": true, "storage": true},
                    {"name": "v1alpha1", "served": false, "storage": false},
                ],
            },
        })
    };
    let (s, e) = send(
        &kube,
        reqwest::Method::POST,
        &crds,
        json_ct,
        &multi(true, "Namespaced"),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("must have exactly one version marked as storage version")),
        "{e}"
    );
    let (s, e) = send(
        &kube,
        reqwest::Method::POST,
        &crds,
        json_ct,
        &multi(false, ""),
    )
    .await;
    assert_eq!(
        (s, e["message"].as_str()),
        (
            422,
            Some(
                "CustomResourceDefinition.apiextensions.k8s.io \"things.multi.example.org\" is invalid: spec.scope: Required value"
            )
        )
    );
    let (s, made) = send(
        &kube,
        reqwest::Method::POST,
        &crds,
        json_ct,
        &multi(false, "Namespaced"),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    assert_eq!(made["status"]["storedVersions"], json!(["v1"]));
    wait_crd(&kube, &base, "things.multi.example.org").await;
    let (_, groups) = get_json(&kube, &format!("{base}/apis")).await;
    let g = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "multi.example.org")
        .cloned()
        .expect("group listed");
    assert_eq!(
        g["versions"],
        json!([
            {"groupVersion": "multi.example.org/v1", "version": "v1"},
            {"groupVersion": "multi.example.org/v1beta1", "version": "v1beta1"},
        ])
    );
    assert_eq!(g["preferredVersion"]["version"], "v1");
    let things = |v: &str| format!("{base}/apis/multi.example.org/{v}/namespaces/default/things");
    let (s, t1) = send(
        &kube,
        reqwest::Method::POST,
        &things("v1beta1"),
        json_ct,
        &json!({"apiVersion": "multi.example.org/v1beta1", "kind": "Thing", "metadata": {"name": "t"}}),
    )
    .await;
    assert_eq!(
        (s, t1["apiVersion"].as_str()),
        (201, Some("multi.example.org/v1beta1"))
    );
    let (s, t2) = get_json(&kube, &format!("{}/t", things("v1"))).await;
    assert_eq!(
        (s, t2["apiVersion"].as_str()),
        (200, Some("multi.example.org/v1"))
    );
    assert_eq!(t2["metadata"]["uid"], t1["metadata"]["uid"]);
    let (s, _) = get_json(&kube, &things("v1alpha1")).await;
    assert_eq!(s, 404);
    let (s, _) = get_json(&kube, &format!("{base}/apis/multi.example.org/v1alpha1")).await;
    assert_eq!(s, 404);

    // The official Python client: create a CRD, wait for Established, custom objects.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, &yaml).expect("write");
    let script = r#"
import sys, time
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
ext = client.ApiextensionsV1Api()
ext.create_custom_resource_definition({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.stable.example.com"},
    "spec": {"group": "stable.example.com", "scope": "Namespaced",
             "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
for _ in range(100):
    c = ext.read_custom_resource_definition("crontabs.stable.example.com")
    if any(x.type == "Established" and x.status == "True" for x in (c.status.conditions or [])):
        break
    time.sleep(0.05)
print("established=" + c.status.accepted_names.kind)
co = client.CustomObjectsApi()
co.create_namespaced_custom_object("stable.example.com", "v1", "default", "crontabs",
    {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "nightly"}, "spec": {"cronSpec": "0 0 * * *"}})
items = co.list_namespaced_custom_object("stable.example.com", "v1", "default", "crontabs")["items"]
print("crontabs=" + ",".join(i["metadata"]["name"] + ":" + i["spec"]["cronSpec"] for i in items))
"#;
    let lines = python(script, &[path.as_os_str()]).await;
    assert_eq!(lines, ["established=CronTab", "crontabs=nightly:0 0 * * *"]);

    // Deleting the CRD: marked with the cleanup finalizer and Terminating; no new objects; its
    // objects go (one held by its own finalizer holds the CRD), then the CRD and its
    // discovery entry.
    let (s, _) = send(
        &kube,
        reqwest::Method::POST,
        &widgets,
        json_ct,
        &json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .await;
    assert_eq!(s, 201);
    let crd_url = format!("{crds}/widgets.example.com");
    let r = kube.delete(&crd_url).send().await.expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let marked: Value = r.json().await.expect("json");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["customresourcecleanup.apiextensions.k8s.io"])
    );
    assert_eq!(
        (
            cond(&marked, "Terminating")["status"].as_str(),
            cond(&marked, "Terminating")["reason"].as_str()
        ),
        (Some("True"), Some("InstanceDeletionPending"))
    );
    let (s, e) = send(
        &kube,
        reqwest::Method::POST,
        &widgets,
        json_ct,
        &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "late"}}),
    )
    .await;
    assert_eq!(
        (s, e["reason"].as_str(), e["message"].as_str()),
        (
            405,
            Some("MethodNotAllowed"),
            Some("create not allowed while custom resource definition is terminating")
        )
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while get_json(&kube, &format!("{widgets}/a")).await.0 != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "objects never deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, held) = get_json(&kube, &format!("{widgets}/held")).await;
    assert_eq!(s, 200);
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let (s, c) = get_json(&kube, &crd_url).await;
    assert_eq!(s, 200);
    assert_eq!(
        cond(&c, "Terminating")["reason"],
        "InstanceDeletionInProgress"
    );
    let (s, _) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{widgets}/held"),
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(s, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (s, _) = get_json(&kube, &crd_url).await;
        if s == 404 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the CRD never went");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, e) = get_json(&kube, &format!("{widgets}/a")).await;
    assert_eq!(
        (s, e["message"].as_str()),
        (
            404,
            Some("the server could not find the requested resource")
        )
    );
    // The names it held are free: the refused CRD is accepted now.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (_, c2) = get_json(&kube, &format!("{crds}/gizmos.example.com")).await;
        if cond(&c2, "Established")["status"] == "True" {
            assert_eq!(cond(&c2, "NamesAccepted")["reason"], "NoConflicts");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gizmos never accepted: {c2}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, rl) = get_json(&kube, &format!("{base}/apis/example.com/v1")).await;
    let served: Vec<&str> = rl["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(served, ["gizmos", "realms"]);
    let r = kube
        .delete(format!("{crds}/gizmos.example.com"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while get_json(&kube, &format!("{crds}/gizmos.example.com"))
        .await
        .0
        != 404
    {
        assert!(std::time::Instant::now() < deadline, "gizmos never went");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Recreated: the old objects do not come back.
    let (s, _) = send(
        &kube,
        reqwest::Method::POST,
        &crds,
        json_ct,
        &crd("widgets", "Widget", "Namespaced", &["wd"]),
    )
    .await;
    assert_eq!(s, 201);
    wait_crd(&kube, &base, "widgets.example.com").await;
    let (s, l) = get_json(&kube, &widgets).await;
    assert_eq!((s, l["items"].as_array().map(Vec::len)), (200, Some(0)));
    t.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_lifecycle_and_finalizers() {
    use serde_json::json;
    let t = T::with(fast()).await;
    let (kube, base, _) = one_node_cluster(&t, "127.77.31", 511, "ns-cp").await;
    let json_ct = "application/json";
    let (s, _) = send(
        &kube,
        reqwest::Method::POST,
        &format!("{base}/api/v1/namespaces"),
        json_ct,
        &json!({"metadata": {"name": "doomed"}}),
    )
    .await;
    assert_eq!(s, 201);
    // A live namespace: Active, with the kubernetes finalizer and its name label.
    let (_, live) = get_json(&kube, &format!("{base}/api/v1/namespaces/doomed")).await;
    assert_eq!(live["status"]["phase"], "Active");
    assert_eq!(live["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        live["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "doomed"
    );
    let cms = format!("{base}/api/v1/namespaces/doomed/configmaps");
    for (name, fin) in [("plain", json!([])), ("held", json!(["example.com/hold"]))] {
        let (s, _) = send(
            &kube,
            reqwest::Method::POST,
            &cms,
            json_ct,
            &json!({"metadata": {"name": name, "finalizers": fin}}),
        )
        .await;
        assert_eq!(s, 201);
    }

    // An object with finalizers: DELETE marks it, clearing the finalizers removes it.
    let dcm = format!("{base}/api/v1/namespaces/default/configmaps");
    let (s, _) = send(
        &kube,
        reqwest::Method::POST,
        &dcm,
        json_ct,
        &json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}),
    )
    .await;
    assert_eq!(s, 201);
    let r = kube
        .delete(format!("{dcm}/f"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let marked: Value = r.json().await.expect("json");
    assert_eq!(marked["kind"], "ConfigMap");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let (s, still) = get_json(&kube, &format!("{dcm}/f")).await;
    assert_eq!(s, 200);
    assert_eq!(
        still["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );
    let (s, _) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{dcm}/f"),
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = get_json(&kube, &format!("{dcm}/f")).await;
    assert_eq!(s, 404);

    // Deleting a namespace: Terminating with the kubernetes finalizer; its objects go (those
    // with finalizers are marked); nothing new may be created in it.
    let ns_url = format!("{base}/api/v1/namespaces/doomed");
    let (_, before) = get_json(&kube, &ns_url).await;
    let mut events = watch(
        &kube,
        &format!(
            "{base}/api/v1/namespaces?watch=1&fieldSelector=metadata.name%3Ddoomed&resourceVersion={}",
            before["metadata"]["resourceVersion"].as_str().expect("rv")
        ),
    )
    .await;
    let r = kube.delete(&ns_url).send().await.expect("delete ns");
    assert_eq!(r.status().as_u16(), 200);
    let ns: Value = r.json().await.expect("json");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    let (s, _) = get_json(&kube, &format!("{cms}/plain")).await;
    assert_eq!(s, 404);
    let (s, held) = get_json(&kube, &format!("{cms}/held")).await;
    assert_eq!(s, 200);
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let (s, e) = send(
        &kube,
        reqwest::Method::POST,
        &cms,
        json_ct,
        &json!({"metadata": {"name": "late"}}),
    )
    .await;
    assert_eq!((s, e["reason"].as_str()), (403, Some("Forbidden")));
    assert_eq!(
        e["message"],
        "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    let (s, _) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/late2?fieldManager=tf"),
        "application/apply-patch+yaml",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late2"}}),
    )
    .await;
    assert_eq!(s, 403);
    // The held object keeps the namespace.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s, ns) = get_json(&kube, &ns_url).await;
    assert_eq!(
        (s, ns["status"]["phase"].as_str()),
        (200, Some("Terminating"))
    );
    let (s, _) = send(
        &kube,
        reqwest::Method::PATCH,
        &format!("{cms}/held"),
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(s, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (s, _) = get_json(&kube, &ns_url).await;
        if s == 404 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "namespace never went");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A watch saw it: Terminating (MODIFIED), then DELETED.
    let m = events.next().await.expect("event");
    assert_eq!(ev(&m), ("MODIFIED".to_string(), "doomed".to_string()));
    assert_eq!(m["object"]["status"]["phase"], "Terminating");
    let d = events.next().await.expect("event");
    assert_eq!(ev(&d), ("DELETED".to_string(), "doomed".to_string()));
    t.lab.shutdown().await;
}
