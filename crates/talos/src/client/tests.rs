//! The Talos client against the in-process lab: a PVE VM is cloned and started, the lab boots a
//! simulated Talos node on its address, and the client drives it through its life.

use std::sync::OnceLock;
use std::time::Duration;

use ::time::OffsetDateTime;
use infraflux_lab::talos::TalosOptions;
use infraflux_lab::{Lab, LabOptions};
use infraflux_proxmox::retry::Backoff;
use infraflux_proxmox::{self as pve, Auth, CloneSpec, TlsTrust};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519,
};
use rustls::pki_types::PrivatePkcs8KeyDer;

use super::*;
use crate::pem;
use crate::render::{ClusterSpec, Cni, NodeSpec, Role, TalosVersion, render};
use crate::secrets::MachineSecrets;

const T: Duration = Duration::from_secs(20);

/// RSA-4096 makes generation slow in debug builds: once per test binary.
fn secrets() -> &'static MachineSecrets {
    static SECRETS: OnceLock<MachineSecrets> = OnceLock::new();
    SECRETS.get_or_init(|| MachineSecrets::generate().expect("generate secrets"))
}

fn opts() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
    }
}

async fn lab() -> Lab {
    lab_with(false).await
}

async fn lab_with(legacy_maintenance: bool) -> Lab {
    let opts = LabOptions {
        // An ephemeral port on the node's address: parallel labs never collide.
        talos: TalosOptions {
            port: 0,
            legacy_maintenance,
            ..TalosOptions::default()
        },
        ..LabOptions::default()
    };
    Lab::start(opts).await.expect("lab starts")
}

/// Clones the Talos template, starts it; answers (node address, API endpoint).
async fn boot_node(lab: &Lab) -> (String, String) {
    let info = lab.info();
    let settings = pve::Settings {
        endpoint: info.pve.endpoint.clone(),
        auth: Auth::Token {
            id: info.pve.token_id.clone(),
            secret: info.pve.token_secret.clone(),
        },
        tls: TlsTrust::CaPem(info.ca_cert_pem.clone()),
        max_parallel_tasks_per_node: 4,
        vm_id_range: (100, 999_999_999),
    };
    let popts = pve::ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        retry: Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_millis(200),
            budget: Duration::from_secs(20),
        },
        resources_ttl: Duration::from_secs(5),
        ..pve::ClientOptions::default()
    };
    let c = pve::Client::with_options(&settings, popts).expect("pve client");
    let spec = CloneSpec {
        source_node: "pve1".into(),
        source_vmid: 9000,
        name: Some("talos-cp-1".into()),
        ..CloneSpec::default()
    };
    let vmid = c.clone_and_wait(&spec, T).await.expect("clone");
    c.run_task("start", T, || c.start_vm("pve1", vmid))
        .await
        .expect("start");
    let deadline = std::time::Instant::now() + T;
    loop {
        if let Some(n) = lab.talos().find(&vmid.to_string()) {
            return (n.ip.to_string(), n.endpoint.to_string());
        }
        assert!(std::time::Instant::now() < deadline, "node never booted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn control_plane_config(address: &str) -> String {
    let cluster = ClusterSpec {
        name: "lab".into(),
        endpoint: format!("https://{address}:6443"),
        kubernetes_version: "1.34.1".into(),
        install_disk: "/dev/sda".into(),
        install_image: "ghcr.io/siderolabs/installer:v1.13.9".into(),
        cni: Cni::Flannel,
        vip: None,
        config_patches: vec![],
    };
    let node = NodeSpec {
        role: Role::ControlPlane,
        hostname: "cp-1".into(),
        install_disk: None,
        config_patches: vec![],
    };
    let v = TalosVersion::parse("v1.13.9").expect("version");
    render(&cluster, &node, secrets(), &v).expect("render")
}

/// A client certificate of `role` signed by `ca` (crt, key PEM).
fn client_cert(ca_crt: &str, ca_key: &str, role: &str) -> (String, String) {
    let der = pem::decode_labelled(ca_key, pem::ED25519_PRIVATE_KEY).expect("ca key");
    let key = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), &PKCS_ED25519)
        .expect("ca key pair");
    let ca_der = pem::decode_labelled(ca_crt, pem::CERTIFICATE).expect("ca crt");
    let issuer = Issuer::from_ca_cert_der(&ca_der.into(), key).expect("issuer");
    let k = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, role);
    dn.push(DnType::CommonName, "test");
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&k, &issuer).expect("client cert");
    (
        cert.pem(),
        pem::encode(pem::ED25519_PRIVATE_KEY, &k.serialize_der()),
    )
}

/// A client configuration from a CA the node does not know.
fn foreign_client_configuration() -> ClientConfiguration {
    let key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "talos");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = p.self_signed(&key).expect("ca");
    let key_pem = pem::encode(pem::ED25519_PRIVATE_KEY, &key.serialize_der());
    let (crt, k) = client_cert(&ca.pem(), &key_pem, "os:admin");
    ClientConfiguration {
        ca: ca.pem(),
        crt,
        key: k,
    }
}

/// No error text may carry key material or tokens.
fn assert_no_secrets(text: &str) {
    let s = secrets();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(!text.contains(&s.trustd_token), "{text}");
    assert!(!text.contains(&s.bootstrap_token), "{text}");
}

async fn bootstrap_when_ready(c: &TalosClient) -> Bootstrap {
    let deadline = std::time::Instant::now() + T;
    loop {
        match c.bootstrap().await {
            Ok(b) => return b,
            Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("bootstrap: {e}"),
        }
    }
}

#[tokio::test]
async fn talos_client_maintenance_to_bootstrapped_and_back() {
    let _ = secrets();
    let lab = lab().await;
    let (address, endpoint) = boot_node(&lab).await;
    let never = std::future::pending::<()>;
    let mut errors = Vec::new();

    // Maintenance: unverified TLS, no client cert; Version and MachineStatus answer.
    let m = TalosClient::maintenance(&endpoint, opts()).expect("client");
    m.wait_for_stage(Stage::Maintenance, false, T, never())
        .await
        .expect("maintenance");
    let e = m
        .wait_for_stage(Stage::Running, false, Duration::from_millis(300), never())
        .await
        .expect_err("stays in maintenance");
    assert!(matches!(e, TalosError::WaitTimeout { .. }), "{e:?}");
    assert!(
        e.to_string().ends_with(
            "did not reach stage running within 300ms (last seen: stage maintenance, ready false)"
        ),
        "{e}"
    );
    let v = m.version().await.expect("version");
    assert_eq!(v.tag, "v1.13.9");
    assert_eq!(v.platform.as_deref(), Some("nocloud"));
    assert!(!m.service_list().await.expect("services").is_empty());
    // Maintenance has no Bootstrap: typed "not authorized".
    let e = m
        .bootstrap()
        .await
        .expect_err("no bootstrap in maintenance");
    assert!(matches!(e, TalosError::NotAuthorized { .. }), "{e:?}");
    assert!(e.to_string().contains("maintenance mode"), "{e}");
    errors.push(e.to_string());

    // An invalid config: rejected with Talos's reason, naming the node.
    let e = m
        .apply_configuration(
            b"version: v1alpha1\nmachine:\n  type: nonsense\n",
            ApplyMode::Auto,
            false,
        )
        .await
        .expect_err("invalid config");
    assert!(matches!(e, TalosError::ConfigRejected { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "node {address}: configuration rejected: decode error: /machine/type"
        )),
        "{msg}"
    );
    assert!(msg.contains("configuration rejected:"), "{msg}");
    errors.push(msg);

    // mTLS before the node runs: the maintenance cert is not from the OS CA.
    let creds = secrets()
        .admin_client(OffsetDateTime::now_utc(), ::time::Duration::hours(1))
        .expect("admin cert");
    let a = TalosClient::authenticated(&endpoint, &creds, opts()).expect("client");
    let e = a
        .version()
        .await
        .expect_err("maintenance cert is not trusted");
    assert!(matches!(e, TalosError::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("maintenance mode"), "{e}");
    errors.push(e.to_string());

    // A valid config: dry run first (nothing changes), then for real.
    let config = control_plane_config(&address);
    m.apply_configuration(config.as_bytes(), ApplyMode::Auto, true)
        .await
        .expect("dry run");
    let st = m.machine_status().await.expect("status");
    assert_eq!(st.stage, Stage::Maintenance, "dry run changed nothing");
    let details = m
        .apply_configuration(config.as_bytes(), ApplyMode::Auto, false)
        .await
        .expect("apply");
    eprintln!("mode_details: {details:?}");

    // Installing, rebooting (connections refused/waiting), then RUNNING over mTLS.
    let st = a
        .wait_for_stage(Stage::Running, true, T, never())
        .await
        .expect("running");
    assert!(st.ready);

    assert_eq!(bootstrap_when_ready(&a).await, Bootstrap::Bootstrapped);
    assert_eq!(
        a.bootstrap().await.expect("second bootstrap"),
        Bootstrap::AlreadyBootstrapped
    );
    let members = a.etcd_member_list().await.expect("members");
    assert_eq!(members.len(), 1, "{members:?}");
    assert!(!members[0].is_learner);

    // Proxying: the `node` header names this node; apid (and the lab) forwards the call to it.
    let via = a.via(address.clone());
    assert_eq!(via.version().await.expect("via").tag, "v1.13.9");

    // A reader: reads work, Bootstrap is refused with a typed error.
    let (crt, key) = client_cert(&secrets().os_ca.crt, &secrets().os_ca.key, "os:reader");
    let reader = ClientConfiguration {
        ca: secrets().os_ca.crt.clone(),
        crt,
        key,
    };
    let r = TalosClient::authenticated(&endpoint, &reader, opts()).expect("reader");
    r.version().await.expect("reader reads");
    let e = r.bootstrap().await.expect_err("reader cannot bootstrap");
    assert!(matches!(e, TalosError::NotAuthorized { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("not authorized: the client certificate's role"),
        "{e}"
    );
    errors.push(e.to_string());

    // A CA the node does not know: the server cert fails verification.
    let f = TalosClient::authenticated(&endpoint, &foreign_client_configuration(), opts())
        .expect("foreign");
    let e = f.version().await.expect_err("unknown CA");
    assert!(matches!(e, TalosError::Tls { .. }), "{e:?}");
    errors.push(e.to_string());

    // Our CA trusted, but a client certificate from elsewhere: the node refuses it.
    let foreign = foreign_client_configuration();
    let stranger = ClientConfiguration {
        ca: secrets().os_ca.crt.clone(),
        crt: foreign.crt,
        key: foreign.key,
    };
    let s = TalosClient::authenticated(&endpoint, &stranger, opts()).expect("stranger");
    let e = s.version().await.expect_err("client cert refused");
    assert!(matches!(e, TalosError::Tls { .. }), "{e:?}");
    assert!(
        e.to_string().contains("refused the client certificate"),
        "{e}"
    );
    errors.push(e.to_string());

    // Reset: back to maintenance with a blank disk.
    a.reset(ResetOptions {
        graceful: false,
        reboot: true,
        wipe: WipeMode::All,
    })
    .await
    .expect("reset");
    m.wait_for_stage(Stage::Maintenance, false, T, never())
        .await
        .expect("maintenance again");
    assert_eq!(m.version().await.expect("version").tag, "v1.13.9");

    for e in &errors {
        eprintln!("error text: {e}");
        assert_no_secrets(e);
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn talos_legacy_maintenance_service() {
    let _ = secrets();
    let lab = lab_with(true).await;
    let (address, endpoint) = boot_node(&lab).await;
    let m = TalosClient::maintenance(&endpoint, opts()).expect("client");
    m.wait_for_stage(Stage::Maintenance, false, T, std::future::pending())
        .await
        .expect("maintenance");
    // Talos <= 1.12: no Version in maintenance.
    let e = m.version().await.expect_err("unimplemented");
    assert!(matches!(e, TalosError::Unimplemented { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("API is not implemented in maintenance mode"),
        "{e}"
    );
    // Bad bytes: Unknown "failed to parse config" is still a rejected configuration.
    let e = m
        .apply_configuration(b"machine: [", ApplyMode::Auto, false)
        .await
        .expect_err("invalid");
    assert!(matches!(e, TalosError::ConfigRejected { .. }), "{e:?}");
    assert!(e.to_string().contains("failed to parse config"), "{e}");
    m.apply_configuration(
        control_plane_config(&address).as_bytes(),
        ApplyMode::Auto,
        false,
    )
    .await
    .expect("apply");
    let creds = secrets()
        .admin_client(OffsetDateTime::now_utc(), ::time::Duration::hours(1))
        .expect("admin cert");
    let a = TalosClient::authenticated(&endpoint, &creds, opts()).expect("client");
    a.wait_for_stage(Stage::Running, false, T, std::future::pending())
        .await
        .expect("running");
    lab.shutdown().await;
}

#[tokio::test]
async fn talos_unreachable_names_address_and_time() {
    // Port 1 on loopback: connection refused.
    let c = TalosClient::maintenance("127.0.0.1:1", opts()).expect("client");
    let e = c.version().await.expect_err("nothing listens");
    assert!(matches!(e, TalosError::Unreachable { .. }), "{e:?}");
    assert!(e.is_retryable());
    let msg = e.to_string();
    assert!(
        msg.starts_with("node 127.0.0.1: version: node unreachable at 127.0.0.1:1 after "),
        "{msg}"
    );
}

#[tokio::test]
async fn talos_wait_for_stage_times_out_and_cancels() {
    let c = TalosClient::maintenance("127.0.0.1:1", opts()).expect("client");
    let e = c
        .wait_for_stage(
            Stage::Running,
            false,
            Duration::from_millis(600),
            std::future::pending(),
        )
        .await
        .expect_err("times out");
    // Never reachable: said so, with the whole wait.
    let msg = e.to_string();
    assert!(matches!(e, TalosError::Unreachable { .. }), "{e:?}");
    assert!(
        msg.starts_with(
            "node 127.0.0.1: waiting for stage: node unreachable at 127.0.0.1:1 after 600ms"
        ),
        "{msg}"
    );

    let e = c
        .wait_for_stage(Stage::Running, false, T, async {})
        .await
        .expect_err("cancelled");
    assert!(matches!(e, TalosError::Cancelled { .. }), "{e:?}");
}

#[tokio::test]
async fn talos_node_header_is_sent_when_proxying() {
    let c = TalosClient::maintenance("10.0.0.11", opts()).expect("client");
    assert_eq!(c.endpoint(), "10.0.0.11:50000");
    let req = c.request((), "version").expect("request");
    assert!(req.metadata().get("node").is_none());
    let via = c.via("10.0.0.12");
    assert_eq!(via.node_label(), "10.0.0.12");
    let req = via.request((), "version").expect("request");
    assert_eq!(
        req.metadata().get("node").and_then(|v| v.to_str().ok()),
        Some("10.0.0.12")
    );
    let e = c
        .via("bad\nnode")
        .request((), "version")
        .expect_err("invalid");
    assert!(matches!(e, TalosError::Config(_)), "{e:?}");
}

#[test]
fn talos_endpoints_parse() {
    for (input, want) in [
        ("10.0.0.11", "10.0.0.11:50000"),
        ("10.0.0.11:50001", "10.0.0.11:50001"),
        ("node-1.lan", "node-1.lan:50000"),
        ("node-1.lan:1234", "node-1.lan:1234"),
        ("fd00::1", "[fd00::1]:50000"),
        ("[fd00::1]:50000", "[fd00::1]:50000"),
    ] {
        let (h, p) = split_endpoint(input).expect(input);
        assert_eq!(host_port(&h, p), want);
    }
    assert!(split_endpoint("").is_err());
    assert!(split_endpoint("host:port").is_err());
}

#[test]
fn talos_bad_client_configuration_names_the_field_not_the_key() {
    let bad = ClientConfiguration {
        ca: "not pem".into(),
        crt: String::new(),
        key: "-----BEGIN ED25519 PRIVATE KEY-----\nc2VjcmV0\n-----END ED25519 PRIVATE KEY-----\n"
            .into(),
    };
    let e = TalosClient::authenticated("10.0.0.11", &bad, opts()).expect_err("bad");
    let msg = e.to_string();
    assert!(msg.contains("client_configuration.ca"), "{msg}");
    assert!(!msg.contains("c2VjcmV0"), "{msg}");
}
