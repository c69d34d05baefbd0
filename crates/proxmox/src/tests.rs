//! The client against the in-process lab (a simulated PVE that validates every request
//! against the official API schema).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infraflux_lab::faults::FaultsPatch;
use infraflux_lab::pve::PveTiming;
use infraflux_lab::{Lab, LabInfo, LabOptions};

use super::*;
use crate::retry::Backoff;
use crate::settings::{Auth, Settings, TlsTrust};
use crate::types::ipv4_addresses;

const T: Duration = Duration::from_secs(20);

async fn lab_with(timing: PveTiming) -> Lab {
    let opts = LabOptions {
        timing,
        ..LabOptions::default()
    };
    Lab::start(opts).await.expect("lab starts")
}

async fn lab() -> Lab {
    // Short lock waits keep lock-timeout tests fast; PVE's own are 1-10 s.
    lab_with(PveTiming {
        lock_wait_ms: 100,
        ..PveTiming::default()
    })
    .await
}

fn settings(info: &LabInfo, auth: Auth, tls: TlsTrust) -> Settings {
    Settings {
        endpoint: info.pve.endpoint.clone(),
        auth,
        tls,
        max_parallel_tasks_per_node: 4,
        vm_id_range: (100, 999_999_999),
    }
}

fn token(info: &LabInfo) -> Auth {
    Auth::Token {
        id: info.pve.token_id.clone(),
        secret: info.pve.token_secret.clone(),
    }
}

fn fast() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        retry: Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_millis(200),
            budget: Duration::from_secs(20),
        },
        resources_ttl: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

fn client_for(info: &LabInfo, auth: Auth) -> Client {
    Client::with_options(
        &settings(info, auth, TlsTrust::CaPem(info.ca_cert_pem.clone())),
        fast(),
    )
    .expect("client")
}

fn client(lab: &Lab) -> Client {
    client_for(lab.info(), token(lab.info()))
}

fn faults(lab: &Lab, p: FaultsPatch) {
    lab.pve().faults.patch(&p);
}

fn route_count(lab: &Lab, route: &str) -> u64 {
    lab.pve()
        .counters()
        .by_route
        .get(route)
        .copied()
        .unwrap_or(0)
}

fn template() -> CloneSpec {
    CloneSpec {
        source_node: "pve1".into(),
        source_vmid: 9000,
        name: Some("talos-cp-1".into()),
        ..CloneSpec::default()
    }
}

#[tokio::test]
async fn token_and_ticket_auth() {
    let lab = lab().await;
    let c = client(&lab);
    assert_eq!(c.version().await.expect("version").release, "9.1");
    assert_eq!(c.nodes().await.expect("nodes").len(), 3);

    let info = lab.info();
    let t = client_for(
        info,
        Auth::Ticket {
            username: info.pve.username.clone(),
            password: info.pve.password.clone(),
        },
    );
    assert_eq!(
        t.version().await.expect("version via ticket").version,
        "9.1.1"
    );
    // A write needs the CSRF token next to the ticket cookie.
    let set = Params::new().set("description", "touched by the ticket test");
    t.update_config_sync("pve1", 9000, set, &[], None)
        .await
        .expect("write via ticket + CSRF");
    let cfg = c.vm_config("pve1", 9000).await.expect("config");
    assert_eq!(
        cfg.get_str("description").as_deref(),
        Some("touched by the ticket test")
    );
}

#[tokio::test]
async fn bad_credentials_name_who_and_where() {
    let lab = lab().await;
    let info = lab.info();
    let wrong = "00000000-0000-0000-0000-000000000000";
    let c = client_for(
        info,
        Auth::Token {
            id: info.pve.token_id.clone(),
            secret: wrong.into(),
        },
    );
    let e = c.version().await.expect_err("bad token");
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "authentication failed for root@pam!infraflux at {}",
            info.pve.endpoint
        )),
        "{text}"
    );
    assert!(!text.contains(wrong));

    let c = client_for(
        info,
        Auth::Ticket {
            username: "root@pam".into(),
            password: "not-the-password".into(),
        },
    );
    let e = c.version().await.expect_err("bad password");
    assert!(
        e.to_string()
            .starts_with("authentication failed for root@pam at https://"),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains("not-the-password"));
}

#[tokio::test]
async fn tls_trust_ca_and_fingerprint() {
    let (lab, other) = (lab().await, self::lab().await);
    let info = lab.info();
    let make =
        |tls| Client::with_options(&settings(info, token(info), tls), fast()).expect("client");

    // Another CA, and the system roots, do not trust the lab's certificate.
    for tls in [
        TlsTrust::CaPem(other.info().ca_cert_pem.clone()),
        TlsTrust::SystemRoots,
    ] {
        let e = make(tls.clone()).version().await.expect_err("untrusted");
        assert!(matches!(e, Error::Tls { .. }), "{tls:?}: {e:?}");
        assert!(
            e.to_string().contains("ca_cert_pem")
                && e.to_string().contains("tls_fingerprint_sha256"),
            "{e}"
        );
    }

    // Learn the server certificate's fingerprint, then pin it.
    let cfg = tls::client_config(&TlsTrust::Insecure).expect("insecure config");
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(cfg)
        .tls_info(true)
        .build()
        .expect("http");
    let resp = http
        .get(format!("{}/api2/json/version", info.pve.endpoint))
        .send()
        .await
        .expect("handshake");
    let der = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("peer cert")
        .to_vec();
    let fp = tls::sha256(&der);
    make(TlsTrust::Fingerprint(fp))
        .version()
        .await
        .expect("pinned fingerprint works");

    let mut wrong = fp;
    wrong[0] ^= 0xff;
    let e = make(TlsTrust::Fingerprint(wrong))
        .version()
        .await
        .expect_err("wrong pin");
    assert!(matches!(e, Error::Tls { pinned: true, .. }), "{e:?}");
    assert!(
        e.to_string().contains("update tls_fingerprint_sha256"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("does not match tls_fingerprint_sha256"),
        "{e}"
    );
    assert!(
        e.to_string().contains(&tls::fmt_fingerprint(&fp)),
        "the error shows the fingerprint seen: {e}"
    );
}

#[tokio::test]
async fn missing_privilege_is_named() {
    let lab = lab().await;
    let info = lab.info();
    let t = info
        .pve
        .tokens
        .iter()
        .find(|t| t.id == "infraflux@pve!noalloc")
        .expect("restricted token");
    let c = client_for(
        info,
        Auth::Token {
            id: t.id.clone(),
            secret: t.secret.clone(),
        },
    );
    let e = c
        .clone_vm(&template(), 150)
        .await
        .expect_err("no VM.Allocate");
    match &e {
        Error::Privilege { privilege, who, .. } => {
            assert_eq!(
                (privilege.as_str(), who.as_str()),
                ("VM.Allocate", "infraflux@pve!noalloc")
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .contains("lacks the privilege VM.Allocate on /vms/150"),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_names_address_and_timeout() {
    let lab = lab().await;
    let info = lab.info().clone();
    lab.shutdown().await;
    let c = client_for(&info, token(&info));
    let e = c.version().await.expect_err("nothing listens");
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    let addr = info.pve.endpoint.trim_start_matches("https://");
    assert!(
        e.to_string()
            .contains(&format!("cannot reach Proxmox VE at {addr} (timeout 2s)")),
        "{e}"
    );
}

#[tokio::test]
async fn vm_lifecycle() {
    let lab = lab().await;
    let c = client(&lab);
    let vmid = c.clone_and_wait(&template(), T).await.expect("clone");
    let vm = c
        .find_vm(vmid)
        .await
        .expect("resources")
        .expect("listed after the clone");
    assert_eq!(
        (vm.node.as_str(), vm.status.as_str(), vm.template),
        ("pve1", "stopped", false)
    );

    let cfg = c.vm_config("pve1", vmid).await.expect("config");
    assert_eq!(cfg.get_str("name").as_deref(), Some("talos-cp-1"));
    assert!(cfg.digest.is_some());
    let nets = cfg.nets().expect("nets parse");
    let net0 = nets.get("net0").expect("net0");
    assert_eq!(net0.bridge.as_deref(), Some("vmbr0"));
    assert!(net0.mac.is_some(), "a fresh MAC");
    let disks = cfg.disks().expect("disks parse");
    let before = disks
        .get("scsi0")
        .and_then(|d| d.size_bytes)
        .expect("scsi0 size");

    // Tags and cores through the digest-checked async update.
    let set = Params::new()
        .set("tags", normalize::format_tags(&["talos", "cp"]))
        .set("cores", 4);
    if let Some(u) = c
        .update_config("pve1", vmid, set, &[], cfg.digest.as_deref())
        .await
        .expect("update")
    {
        c.wait_task(&u, T).await.expect("qmconfig");
    }
    let cfg2 = c.vm_config("pve1", vmid).await.expect("config");
    assert_eq!(cfg2.tags(), vec!["cp", "talos"]);
    assert_eq!(cfg2.get_u64("cores"), Some(4));
    // The old digest is stale now: PVE refuses.
    let stale = c
        .update_config_sync(
            "pve1",
            vmid,
            Params::new().set("cores", 2),
            &[],
            cfg.digest.as_deref(),
        )
        .await;
    assert!(stale.is_err(), "stale digest accepted");

    c.run_task("start", T, || c.start_vm("pve1", vmid))
        .await
        .expect("start");
    assert_eq!(
        c.vm_status("pve1", vmid).await.expect("status").status,
        "running"
    );
    let ips = c.wait_for_ipv4("pve1", vmid, T).await.expect("agent IPs");
    assert!(!ips.is_empty());
    assert_eq!(
        ipv4_addresses(&c.agent_interfaces("pve1", vmid).await.expect("agent")),
        ips
    );
    assert!(
        c.vm_pending("pve1", vmid)
            .await
            .expect("pending")
            .iter()
            .all(|p| !p.is_pending())
    );

    let u = c
        .resize_disk("pve1", vmid, "scsi0", "+2G")
        .await
        .expect("resize");
    c.wait_task(&u, T).await.expect("resize task");
    let after = c
        .vm_config("pve1", vmid)
        .await
        .expect("config")
        .disks()
        .expect("disks")["scsi0"]
        .size_bytes;
    assert_eq!(after, Some(before + (2 << 30)));

    c.run_task("shutdown", T, || {
        c.shutdown_vm("pve1", vmid, Some(10), false)
    })
    .await
    .expect("shutdown");
    c.run_task("start", T, || c.start_vm("pve1", vmid))
        .await
        .expect("start again");
    c.run_task("stop", T, || c.stop_vm("pve1", vmid, true))
        .await
        .expect("stop");
    assert_eq!(
        c.vm_status("pve1", vmid).await.expect("status").status,
        "stopped"
    );

    c.run_task("delete", T, || {
        c.delete_vm("pve1", vmid, DeleteOptions::default())
    })
    .await
    .expect("delete");
    assert!(
        c.find_vm(vmid).await.expect("resources").is_none(),
        "the cache was invalidated by the delete"
    );
    let gone = c.vm_config("pve1", vmid).await.expect_err("gone");
    assert!(gone.is_not_found(), "{gone:?}");
    assert!(!lab.pve().state().vms.contains_key(&vmid));
}

#[tokio::test]
async fn migrate_and_storage_content() {
    let lab = lab().await;
    let c = client(&lab);
    let spec = CloneSpec {
        source_node: "pve2".into(),
        source_vmid: 9001,
        name: Some("mover".into()),
        ..CloneSpec::default()
    };
    let vmid = c.clone_and_wait(&spec, T).await.expect("clone on ceph");
    c.run_task("migrate", T, || {
        c.migrate_vm("pve2", vmid, "pve3", false, false)
    })
    .await
    .expect("migrate");
    assert_eq!(
        c.find_vm(vmid)
            .await
            .expect("resources")
            .expect("listed")
            .node,
        "pve3"
    );
    let images = c
        .storage_content("pve1", "local", Some("import"))
        .await
        .expect("content");
    assert!(
        images
            .iter()
            .any(|i| i.volid == lab.info().pve.talos_image_volid),
        "{images:?}"
    );
}

/// A running VM on local-lvm: live migration needs `with-local-disks` (PVE's message in the
/// task log otherwise, and no lock left); with it the disk follows; pools move it.
#[tokio::test]
async fn live_migration_of_local_disks_and_pools() {
    let lab = lab().await;
    let c = client(&lab);
    let spec = CloneSpec {
        pool: Some("infraflux".into()),
        full: Some(true),
        ..template()
    };
    let vmid = c
        .clone_and_wait(&spec, T)
        .await
        .expect("full clone on local-lvm");
    c.run_task("start", T, || c.start_vm("pve1", vmid))
        .await
        .expect("start");
    let e = c
        .run_task("migrate", T, || {
            c.migrate_vm("pve1", vmid, "pve2", true, false)
        })
        .await
        .expect_err("local disks need with-local-disks");
    let text = e.to_string();
    assert!(text.contains("migration aborted"), "{text}");
    assert!(
        text.contains("can't live migrate attached local disks without with-local-disks option"),
        "the task log says why: {text}"
    );
    let st = c.vm_status("pve1", vmid).await.expect("still on pve1");
    assert_eq!(st.lock, None, "phase 1 cleanup removed the lock");
    let storages = c.node_storages("pve1").await.expect("storages");
    assert!(
        storages.iter().any(|s| s.storage == "local-lvm"
            && !s.shared
            && s.content_types().contains(&"images".to_owned())),
        "{storages:?}"
    );
    c.run_task("migrate", T, || {
        c.migrate_vm("pve1", vmid, "pve2", true, true)
    })
    .await
    .expect("live migration with local disks");
    let moved = c.find_vm(vmid).await.expect("resources").expect("listed");
    assert_eq!(moved.node, "pve2");
    assert_eq!(moved.status, "running");
    assert_eq!(moved.pool.as_deref(), Some("infraflux"));
    let disk = c.vm_config("pve2", vmid).await.expect("config on pve2");
    let vol = disk.get_str("scsi0").unwrap_or_default();
    let vol = vol.split(',').next().unwrap_or_default().to_owned();
    let on_pve2 = c
        .storage_content("pve2", "local-lvm", Some("images"))
        .await
        .expect("content");
    assert!(on_pve2.iter().any(|i| i.volid == vol), "{vol} {on_pve2:?}");
    // Another pool: moved with allow-move; a missing pool is PVE's error.
    c.set_vm_pool("lab", vmid).await.expect("move to pool lab");
    c.invalidate_vm_resources().await;
    let r = c.find_vm(vmid).await.expect("resources").expect("listed");
    assert_eq!(r.pool.as_deref(), Some("lab"));
    let e = c.set_vm_pool("nope", vmid).await.expect_err("no such pool");
    assert!(e.to_string().contains("pool 'nope' does not exist"), "{e}");
}

/// `targetstorage` maps local disks to another storage; PVE refuses unknown storages and
/// storages without the `images` content type before starting a task.
#[tokio::test]
async fn migration_target_storage_rules() {
    let lab = lab().await;
    let c = client(&lab);
    let spec = CloneSpec {
        full: Some(true),
        ..template()
    };
    let vmid = c
        .clone_and_wait(&spec, T)
        .await
        .expect("full clone on local-lvm");
    let path = format!("/nodes/pve1/qemu/{vmid}/migrate");
    let migrate = |ts: &'static str| {
        let path = path.clone();
        let c = c.clone();
        async move {
            c.post::<String>(
                &path,
                Params::new().set("target", "pve2").set("targetstorage", ts),
            )
            .await
        }
    };
    let e = migrate("nope").await.expect_err("unknown storage");
    assert!(
        e.to_string().contains("storage 'nope' does not exist"),
        "{e}"
    );
    let e = migrate("local").await.expect_err("no images on local");
    assert!(
        e.to_string()
            .contains("storage 'local' does not support vm images"),
        "{e}"
    );
    let upid: Upid = migrate("local-lvm:ceph")
        .await
        .expect("mapped to ceph")
        .parse()
        .expect("a UPID");
    c.wait_task(&upid, T).await.expect("offline migration");
    let cfg = c.vm_config("pve2", vmid).await.expect("on pve2");
    let scsi0 = cfg.get_str("scsi0").unwrap_or_default();
    assert!(
        scsi0.starts_with("ceph:vm-"),
        "the disk moved to ceph: {scsi0}"
    );
}

#[tokio::test]
async fn nextid_race_between_two_processes() {
    let lab = lab().await;
    // Two clients = two provider processes: no shared reservations, same nextid answers.
    let (a, b) = (client(&lab), client(&lab));
    let spec = template();
    let (x, y) = tokio::join!(a.clone_and_wait(&spec, T), b.clone_and_wait(&spec, T));
    let (x, y) = (x.expect("a"), y.expect("b"));
    assert_ne!(x, y);
    let st = lab.pve().state();
    assert!(st.vms.contains_key(&x) && st.vms.contains_key(&y));
    let lost = st
        .tasks
        .iter()
        .filter(|t| {
            t.exitstatus
                .as_deref()
                .is_some_and(|e| e.contains("already exists"))
        })
        .count();
    drop(st);
    // Either the loser's task failed on the taken id, or its request was refused; both retried.
    assert!(
        lost > 0 || route_count(&lab, "GET /cluster/nextid") > 2,
        "no race happened"
    );
}

#[tokio::test]
async fn vm_id_range_is_honoured() {
    let lab = lab().await;
    let info = lab.info();
    let mut s = settings(info, token(info), TlsTrust::CaPem(info.ca_cert_pem.clone()));
    s.vm_id_range = (5000, 5001);
    let c = Client::with_options(&s, fast()).expect("client");
    let a = c.reserve_vmid().await.expect("first");
    let b = c.reserve_vmid().await.expect("second");
    assert_eq!(
        (a.vmid, b.vmid),
        (5000, 5001),
        "reservations in one process never collide"
    );
    assert!(matches!(
        c.reserve_vmid().await,
        Err(Error::NoFreeVmId {
            min: 5000,
            max: 5001
        })
    ));
    drop(a);
    assert_eq!(c.reserve_vmid().await.expect("freed").vmid, 5000);
}

#[tokio::test]
async fn lock_timeouts_are_retried() {
    let lab = lab().await;
    let c = client(&lab);
    // Clone tasks fail inside the task ("can't lock file … got timeout"): the clone is re-run.
    faults(
        &lab,
        FaultsPatch {
            lock_timeouts: Some(3),
            ..FaultsPatch::default()
        },
    );
    let vmid = c
        .clone_and_wait(&template(), T)
        .await
        .expect("clone despite lock timeouts");
    let failed = lab
        .pve()
        .state()
        .tasks
        .iter()
        .filter(|t| {
            t.exitstatus
                .as_deref()
                .is_some_and(|e| e.contains("got timeout"))
        })
        .count();
    assert!(failed >= 1, "the fault was hit");
    // A synchronous update fails at request time with the same text: retried too.
    faults(
        &lab,
        FaultsPatch {
            lock_timeouts: Some(2),
            ..FaultsPatch::default()
        },
    );
    c.update_config_sync("pve1", vmid, Params::new().set("cores", 2), &[], None)
        .await
        .expect("update despite lock timeouts");
    assert_eq!(lab.pve().faults.get().lock_timeouts, 0);
}

#[tokio::test]
async fn stale_lock_gives_up_with_a_lock_error() {
    let lab = lab().await;
    let info = lab.info();
    let mut o = fast();
    o.retry.budget = Duration::from_millis(300);
    let c = Client::with_options(
        &settings(info, token(info), TlsTrust::CaPem(info.ca_cert_pem.clone())),
        o,
    )
    .expect("client");
    let vmid = c.clone_and_wait(&template(), T).await.expect("clone");
    lab.pve()
        .state()
        .vms
        .get_mut(&vmid)
        .expect("vm")
        .config
        .insert("lock".into(), "clone".into());
    let e = c
        .update_config_sync("pve1", vmid, Params::new().set("cores", 2), &[], None)
        .await
        .expect_err("locked");
    assert!(matches!(e, Error::Lock { .. }), "{e:?}");
    assert!(
        e.to_string().contains("VM is locked (clone)") && e.to_string().contains("qm unlock"),
        "{e}"
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let lab = lab().await;
    let c = client(&lab);
    faults(
        &lab,
        FaultsPatch {
            error_rate_5xx: Some(0.4),
            ..FaultsPatch::default()
        },
    );
    for _ in 0..15 {
        c.vm_config("pve1", 9000)
            .await
            .expect("config despite 503s");
    }
    let vmid = c
        .clone_and_wait(&template(), T)
        .await
        .expect("clone despite 503s");
    assert!(vmid >= 100);
    // More requests reached the lab than succeeded: some answered 503 and were repeated.
    let counted = lab
        .pve()
        .counters()
        .by_path
        .get("GET /nodes/pve1/qemu/9000/config")
        .copied()
        .unwrap_or(0);
    assert!(counted > 15, "{counted}");
}

#[tokio::test]
async fn failed_task_carries_its_log() {
    let lab = lab().await;
    let c = client(&lab);
    let vmid = c.clone_and_wait(&template(), T).await.expect("clone");
    faults(
        &lab,
        FaultsPatch {
            fail_next_task: Some(Some("qmstart".into())),
            ..FaultsPatch::default()
        },
    );
    let e = c
        .run_task("start", T, || c.start_vm("pve1", vmid))
        .await
        .expect_err("injected failure");
    match &e {
        Error::TaskFailed {
            kind,
            node,
            exit_status,
            log_tail,
            ..
        } => {
            assert_eq!((kind.as_str(), node.as_str()), ("qmstart", "pve1"));
            assert!(exit_status.contains("injected failure"));
            assert!(
                log_tail
                    .last()
                    .is_some_and(|l| l.starts_with("TASK ERROR:")),
                "{log_tail:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("last lines of the task log"), "{e}");
}

#[tokio::test]
async fn task_wait_times_out_clearly() {
    let lab = lab().await;
    let c = client(&lab);
    faults(
        &lab,
        FaultsPatch {
            slow_tasks_ms: Some(2000),
            ..FaultsPatch::default()
        },
    );
    let u = c.clone_vm(&template(), 300).await.expect("clone starts");
    let e = c
        .wait_task(&u, Duration::from_millis(300))
        .await
        .expect_err("too slow");
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("waiting for task qmclone of 9000 on node pve1"),
        "{e}"
    );
}

#[tokio::test]
async fn concurrent_readers_share_one_resources_request() {
    let lab = lab().await;
    let c = client(&lab);
    lab.pve().reset_counters();
    // 30 concurrent reads (a refresh with Terraform's parallelism) of the two templates.
    let readers: Vec<_> = (0..30u32)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.read_vm(9000 + i % 2).await })
        })
        .collect();
    for r in readers {
        assert!(r.await.expect("join").expect("read").is_some());
    }
    // One list for everybody, then one config GET per read: 1 + 1/N requests per read.
    assert_eq!(route_count(&lab, "GET /cluster/resources"), 1);
    assert_eq!(
        route_count(&lab, "GET /nodes/{node}/qemu/{vmid}/config"),
        30
    );
    assert_eq!(lab.pve().counters().total, 31);
}

#[tokio::test]
async fn limiter_caps_concurrent_clones_per_node() {
    let lab = lab().await;
    let info = lab.info();
    let mut s = settings(info, token(info), TlsTrust::CaPem(info.ca_cert_pem.clone()));
    s.max_parallel_tasks_per_node = 2;
    let c = Client::with_options(&s, fast()).expect("client");
    faults(
        &lab,
        FaultsPatch {
            slow_tasks_ms: Some(150),
            ..FaultsPatch::default()
        },
    );

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let pve = lab.pve().clone();
    let watcher = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let running = pve
                    .state()
                    .tasks
                    .iter()
                    .filter(|t| t.kind == "qmclone" && t.exitstatus.is_none())
                    .count();
                peak.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let clones: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.clone_and_wait(&template(), T).await })
        })
        .collect();
    let mut ids = Vec::new();
    for h in clones {
        ids.push(h.await.expect("join").expect("clone"));
    }
    done.store(true, Ordering::SeqCst);
    watcher.await.expect("watcher");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "six distinct VMs");
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "never more than two clones on pve1 at once"
    );
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_errors_or_logs() {
    let cap = Capture::default();
    let writer = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(sub);

    let lab = lab().await;
    let info = lab.info().clone();
    let mut texts = Vec::new();
    // Good and bad token, good and bad password, retried 5xx, a failed task.
    let good = client(&lab);
    texts.push(format!("{good:?}"));
    faults(
        &lab,
        FaultsPatch {
            error_rate_5xx: Some(0.3),
            ..FaultsPatch::default()
        },
    );
    let vmid = good.clone_and_wait(&template(), T).await.expect("clone");
    faults(
        &lab,
        FaultsPatch {
            error_rate_5xx: Some(0.0),
            fail_next_task: Some(Some("qmstart".into())),
            ..FaultsPatch::default()
        },
    );
    let e = good
        .run_task("start", T, || good.start_vm("pve1", vmid))
        .await
        .expect_err("fails");
    texts.push(format!("{e} {e:?}"));
    let bad = client_for(
        &info,
        Auth::Token {
            id: info.pve.token_id.clone(),
            secret: format!("{}x", info.pve.token_secret),
        },
    );
    let e = bad.version().await.expect_err("bad token");
    texts.push(format!("{e} {e:?} {bad:?}"));
    let ticket = client_for(
        &info,
        Auth::Ticket {
            username: info.pve.username.clone(),
            password: info.pve.password.clone(),
        },
    );
    ticket
        .update_config_sync("pve1", vmid, Params::new().set("cores", 2), &[], None)
        .await
        .expect("ticket write");
    let e = ticket.vm_config("pve1", 4242).await.expect_err("not found");
    texts.push(format!("{e} {e:?} {ticket:?}"));

    let logs =
        String::from_utf8_lossy(&cap.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(
        logs.contains("Proxmox VE request"),
        "debug logs were captured"
    );
    let all = format!("{logs}\n{}", texts.join("\n"));
    for secret in [
        info.pve.token_secret.as_str(),
        info.pve.password.as_str(),
        "PVEAuthCookie",
        "PVE:root@pam",
        "CSRFPreventionToken",
    ] {
        assert!(!all.contains(secret), "{secret:?} leaked:\n{all}");
    }
}

#[tokio::test]
async fn validation_errors_carry_pve_per_parameter_messages() {
    let lab = lab().await;
    let c = client(&lab);
    let e = c
        .update_config_sync("pve1", 9000, Params::new().set("cores", "many"), &[], None)
        .await
        .expect_err("bad cores");
    match &e {
        Error::Validation { errors, .. } => assert!(
            errors.get("cores").is_some_and(|m| m.contains("integer")),
            "{errors:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string().starts_with(
            "Proxmox VE rejected the parameters of PUT /nodes/pve1/qemu/9000/config: cores:"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn dropped_connections_are_retried_for_reads() {
    let lab = lab().await;
    let c = client(&lab);
    faults(
        &lab,
        FaultsPatch {
            drop_connection_rate: Some(0.3),
            ..FaultsPatch::default()
        },
    );
    for _ in 0..10 {
        c.vm_config("pve1", 9000)
            .await
            .expect("config despite dropped connections");
    }
}

#[tokio::test]
async fn waits_for_the_guest_agent() {
    let lab = lab_with(PveTiming {
        agent_delay_ms: 400,
        ..PveTiming::default()
    })
    .await;
    let c = client(&lab);
    let vmid = c.clone_and_wait(&template(), T).await.expect("clone");
    c.run_task("start", T, || c.start_vm("pve1", vmid))
        .await
        .expect("start");
    let early = c
        .agent_interfaces("pve1", vmid)
        .await
        .expect_err("agent still booting");
    assert!(
        early
            .to_string()
            .contains("QEMU guest agent is not running"),
        "{early}"
    );
    assert!(
        !c.wait_for_ipv4("pve1", vmid, T)
            .await
            .expect("IPs once the agent runs")
            .is_empty()
    );
}

#[tokio::test]
async fn read_follows_a_vm_that_moved_behind_the_cache() {
    let lab = lab().await;
    let (reader, other) = (client(&lab), client(&lab));
    let spec = CloneSpec {
        source_node: "pve2".into(),
        source_vmid: 9001,
        ..CloneSpec::default()
    };
    let vmid = other.clone_and_wait(&spec, T).await.expect("clone");
    let first = reader.read_vm(vmid).await.expect("read").expect("exists");
    assert_eq!(first.resource.node, "pve2");
    // Another process migrates it; the reader's cached list still says pve2.
    other
        .run_task("migrate", T, || {
            other.migrate_vm("pve2", vmid, "pve1", false, false)
        })
        .await
        .expect("migrate");
    let moved = reader
        .read_vm(vmid)
        .await
        .expect("read")
        .expect("still exists");
    assert_eq!(moved.resource.node, "pve1");
    assert_eq!(moved.config.get_str("name"), first.config.get_str("name"));
    // And once deleted, a read says "gone" rather than failing.
    other
        .run_task("delete", T, || {
            other.delete_vm("pve1", vmid, DeleteOptions::default())
        })
        .await
        .expect("delete");
    assert!(reader.read_vm(vmid).await.expect("read").is_none());
    assert!(reader.read_vm(4242).await.expect("read").is_none());
}

#[tokio::test]
async fn create_from_the_talos_image() {
    let lab = lab().await;
    let c = client(&lab);
    let image = lab.info().pve.talos_image_volid.clone();
    let config = Params::new()
        .set("name", "talos-w-1")
        .set("cores", 2)
        .set("memory", 4096)
        .set("scsihw", "virtio-scsi-single")
        .set(
            "scsi0",
            format!("local-lvm:0,import-from={image},discard=on,iothread=1"),
        )
        .set("ide2", "local-lvm:cloudinit")
        .set("ipconfig0", "ip=10.0.0.21/24,gw=10.0.0.1")
        .set("net0", "virtio,bridge=vmbr0,firewall=1")
        .set("agent", "enabled=1")
        .set("tags", normalize::format_tags(&["worker", "talos"]))
        .flag("onboot", true);
    let vmid = c
        .with_new_vmid(|vmid| {
            let (c, config) = (c.clone(), config.clone());
            async move {
                let _slot = c.limiter().acquire("pve1", Some("local-lvm")).await;
                c.run_task("create", T, || c.create_vm("pve1", vmid, config.clone()))
                    .await?;
                Ok(vmid)
            }
        })
        .await
        .expect("create");
    let cfg = c.read_vm(vmid).await.expect("read").expect("exists").config;
    let disk = &cfg.disks().expect("disks")["scsi0"];
    assert_eq!(disk.storage(), Some("local-lvm"));
    assert!(disk.size_bytes.is_some_and(|s| s > 0), "{disk:?}");
    assert_eq!(disk.flag("discard"), Some(true));
    assert_eq!(cfg.get_bool("onboot"), Some(true));
    assert_eq!(cfg.tags(), vec!["talos", "worker"]);
    let net = &cfg.nets().expect("nets")["net0"];
    assert_eq!((net.model.as_str(), net.firewall), ("virtio", Some(true)));
    assert!(net.mac.is_some(), "PVE assigns a MAC");

    c.run_task("delete", T, || {
        c.delete_vm("pve1", vmid, DeleteOptions::default())
    })
    .await
    .expect("delete");
    // Deleting again: the VM is gone, which a destroy treats as done.
    let again = c
        .delete_vm("pve1", vmid, DeleteOptions::default())
        .await
        .expect_err("gone");
    assert!(again.is_not_found(), "{again:?}");
}

#[tokio::test]
async fn an_expired_ticket_logs_in_again() {
    let lab = lab().await;
    let info = lab.info();
    let t = client_for(
        info,
        Auth::Ticket {
            username: info.pve.username.clone(),
            password: info.pve.password.clone(),
        },
    );
    t.version().await.expect("first login");
    t.spoil_ticket().await;
    lab.pve().reset_counters();
    let set = Params::new().set("description", "after re-login");
    t.update_config_sync("pve1", 9000, set, &[], None)
        .await
        .expect("write after re-login");
    // Refused write, login, repeated write.
    assert_eq!(route_count(&lab, "POST /access/ticket"), 1);
    assert_eq!(lab.pve().counters().total, 3);
}
