//! Test helper: one in-process lab with a single-node Talos cluster whose Kubernetes API
//! server the engine talks to, and the admin kubeconfig Talos hands out.

#![allow(dead_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use infraflux_kube::{Client, Engine, Kubeconfig};
use infraflux_lab::talos::{TalosOptions, TalosTiming};
use infraflux_lab::{Lab, LabOptions};
use infraflux_proxmox::retry::Backoff;
use infraflux_proxmox::{self as pve, Auth, CloneSpec, TlsTrust};
use infraflux_talos::client::{ApplyMode, ClientOptions, Stage, TalosClient};
use infraflux_talos::render::{ClusterSpec, Cni, NodeSpec, Role, TalosVersion, render};
use infraflux_talos::secrets::MachineSecrets;

pub const T: Duration = Duration::from_secs(30);
pub const LABEL: (&str, &str) = ("infraflux.dev/inventory", "test");

/// RSA-4096 generation is slow in debug builds: once per test binary.
fn secrets() -> &'static MachineSecrets {
    static S: OnceLock<MachineSecrets> = OnceLock::new();
    S.get_or_init(|| MachineSecrets::generate().expect("secrets"))
}

pub struct Cluster {
    pub lab: Lab,
    pub kubeconfig: String,
    pub server: String,
}

impl Cluster {
    /// A running cluster; `cni: Flannel` gives Ready nodes, `Cilium` NotReady ones.
    pub async fn start(cni: Cni) -> Cluster {
        let lab = Lab::start(LabOptions {
            talos: TalosOptions {
                port: 0,
                timing: TalosTiming {
                    install_ms: 20,
                    reboot_ms: 20,
                    ready_ms: 0,
                },
                pod_ready_ms: 20,
                ..TalosOptions::default()
            },
            ..LabOptions::default()
        })
        .await
        .expect("lab starts");
        let (address, endpoint) = boot_node(&lab).await;
        let opts = ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            unreachable_limit: None,
        };
        let m = TalosClient::maintenance(&endpoint, opts.clone()).expect("maintenance client");
        let never = std::future::pending::<()>;
        m.wait_for_stage(Stage::Maintenance, false, T, never())
            .await
            .expect("maintenance");
        m.apply_configuration(config(&address, cni).as_bytes(), ApplyMode::Auto, false)
            .await
            .expect("apply config");
        let creds = secrets()
            .admin_client(
                ::time::OffsetDateTime::now_utc(),
                ::time::Duration::hours(1),
            )
            .expect("admin cert");
        let a = TalosClient::authenticated(&endpoint, &creds, opts).expect("client");
        a.wait_for_stage(Stage::Running, true, T, never())
            .await
            .expect("running");
        let deadline = Instant::now() + T;
        loop {
            match a.bootstrap().await {
                Ok(_) => break,
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("bootstrap: {e}"),
            }
        }
        let kubeconfig = a.kubeconfig().await.expect("kubeconfig");
        // Parallel labs may share the node address: the API server then listens elsewhere.
        let server = loop {
            let doc = lab.k8s().snapshot();
            if let Some(b) = doc["apiservers"][0]["bound"].as_str() {
                break b.to_string();
            }
            assert!(Instant::now() < deadline, "no API server: {doc}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let endpoint_server = format!("https://{address}:6443");
        let kubeconfig = kubeconfig.replace(&endpoint_server, &server);
        let c = Cluster {
            lab,
            kubeconfig,
            server,
        };
        let client = c.client();
        while let Err(e) = client.readyz().await {
            assert!(Instant::now() < deadline, "never ready: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c
    }

    pub fn client(&self) -> Client {
        let k = Kubeconfig::parse(&self.kubeconfig).expect("kubeconfig parses");
        Client::new(&k, Duration::from_secs(5)).expect("client")
    }

    pub fn engine(&self) -> Engine {
        Engine::new(self.client(), "infraflux-test", LABEL)
    }

    pub async fn shutdown(self) {
        self.lab.shutdown().await;
    }
}

fn config(address: &str, cni: Cni) -> String {
    let cluster = ClusterSpec {
        name: "lab".into(),
        endpoint: format!("https://{address}:6443"),
        kubernetes_version: "1.34.1".into(),
        install_disk: "/dev/sda".into(),
        install_image: "ghcr.io/siderolabs/installer:v1.13.9".into(),
        cni,
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

/// A VMID range start unique to this test (and unlikely to be another process's): the
/// node's DHCP address derives from its VMID, and the API server binds that address.
fn vmid_base() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    10_000 + ((std::process::id() % 400 + n) % 500) * 100
}

/// Clones the Talos template and starts it; (node address, Talos API endpoint).
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
        vm_id_range: {
            let first = vmid_base();
            (first, first + 50)
        },
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
    let deadline = Instant::now() + T;
    loop {
        if let Some(n) = lab.talos().find(&vmid.to_string()) {
            return (n.ip.to_string(), n.endpoint.to_string());
        }
        assert!(Instant::now() < deadline, "node never booted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn quiet(_: &str) {}
pub fn keep_none(_: &infraflux_kube::ObjectRef) -> bool {
    false
}
