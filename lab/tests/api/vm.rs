use reqwest::StatusCode;
use serde_json::json;

use crate::common::T;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_configure_start_agent_resize_delete() {
    let t = T::start().await;
    // Linked clone of the template.
    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("name", "cp-1"), ("full", "0")],
        )
        .await;
    let upid = r.ok().as_str().unwrap().to_string();
    assert!(upid.starts_with("UPID:pve1:"), "{upid}");
    assert!(
        upid.ends_with(":qmclone:9000:root@pam!infraflux:"),
        "{upid}"
    );
    let st = t.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    assert_eq!(st["type"], "qmclone");
    assert_eq!(st["user"], "root@pam!infraflux");
    let log = t.get(&format!("/nodes/pve1/tasks/{upid}/log"), &[]).await;
    let lines = log.ok().as_array().unwrap().clone();
    assert_eq!(lines.last().unwrap()["t"], "TASK OK");
    assert_eq!(lines[0]["n"], 1);
    assert!(log.body["total"].as_u64().unwrap() >= 2);

    let cfg = t.get("/nodes/pve1/qemu/101/config", &[]).await.ok().clone();
    assert_eq!(cfg["name"], "cp-1");
    assert!(cfg.get("lock").is_none());
    assert!(cfg.get("template").is_none());
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:base-9000-disk-0/vm-101-disk-0,"),
        "{cfg}"
    );
    assert_ne!(
        cfg["net0"],
        t.get("/nodes/pve1/qemu/9000/config", &[]).await.ok()["net0"]
    );

    // Wrong node.
    let r = t.get("/nodes/pve2/qemu/101/config", &[]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.message(),
        "Configuration file 'nodes/pve2/qemu-server/101.conf' does not exist\n"
    );

    // Sync config with digest; stale digest fails.
    let digest = cfg["digest"].as_str().unwrap().to_string();
    t.put(
        "/nodes/pve1/qemu/101/config",
        &[
            ("cores", "4"),
            ("memory", "4096"),
            ("ipconfig0", "ip=127.20.0.11/8"),
            ("digest", &digest),
        ],
    )
    .await
    .ok();
    let r = t
        .put(
            "/nodes/pve1/qemu/101/config",
            &[("cores", "2"), ("digest", &digest)],
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.message().starts_with("detected modified configuration"));

    // Agent before start.
    let r = t
        .get("/nodes/pve1/qemu/101/agent/network-get-interfaces", &[])
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.message(), "VM 101 is not running\n");

    let r = t.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    t.task_ok(r).await;
    let cur = t
        .get("/nodes/pve1/qemu/101/status/current", &[])
        .await
        .ok()
        .clone();
    assert_eq!(cur["status"], "running");
    assert_eq!(cur["agent"], 1);
    assert_eq!(cur["cpus"], 4);
    let r = t.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    let upid = r.ok().as_str().unwrap().to_string();
    assert_eq!(
        t.wait_task(&upid).await["exitstatus"],
        "VM 101 already running"
    );

    let ifs = t
        .get("/nodes/pve1/qemu/101/agent/network-get-interfaces", &[])
        .await
        .ok()
        .clone();
    let eth0 = &ifs["result"][1];
    assert_eq!(eth0["ip-addresses"][0]["ip-address"], "127.20.0.11");

    // Non-hotpluggable change while running goes to pending (POST: async).
    let r = t
        .post(
            "/nodes/pve1/qemu/101/config",
            &[("cores", "8"), ("description", "hot")],
        )
        .await;
    t.task_ok(r).await;
    let cur_cfg = t
        .get("/nodes/pve1/qemu/101/config", &[("current", "1")])
        .await
        .ok()
        .clone();
    assert_eq!(cur_cfg["cores"], 4);
    assert_eq!(cur_cfg["description"], "hot");
    let merged = t.get("/nodes/pve1/qemu/101/config", &[]).await.ok().clone();
    assert_eq!(merged["cores"], 8);
    let pending = t
        .get("/nodes/pve1/qemu/101/pending", &[])
        .await
        .ok()
        .clone();
    let cores = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "cores")
        .unwrap()
        .clone();
    assert_eq!(cores, json!({"key": "cores", "value": 4, "pending": 8}));

    // Resize: grow ok, shrink fails in the task.
    let r = t
        .put(
            "/nodes/pve1/qemu/101/resize",
            &[("disk", "scsi0"), ("size", "+2G")],
        )
        .await;
    t.task_ok(r).await;
    let cfg = t.get("/nodes/pve1/qemu/101/config", &[]).await.ok().clone();
    assert!(
        cfg["scsi0"].as_str().unwrap().ends_with("size=12G"),
        "{cfg}"
    );
    let r = t
        .put(
            "/nodes/pve1/qemu/101/resize",
            &[("disk", "scsi0"), ("size", "5G")],
        )
        .await;
    let upid = r.ok().as_str().unwrap().to_string();
    let st = t.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "shrinking disks is not supported");
    let r = t
        .put(
            "/nodes/pve1/qemu/101/resize",
            &[("disk", "scsi0"), ("size", "huge")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Delete refuses a running VM; stop applies nothing yet, start applies pending.
    let r = t.delete("/nodes/pve1/qemu/101", &[]).await;
    assert_eq!(r.message(), "VM 101 is running - destroy failed\n");
    let r = t.post("/nodes/pve1/qemu/101/status/reboot", &[]).await;
    t.task_ok(r).await;
    let cur_cfg = t
        .get("/nodes/pve1/qemu/101/config", &[("current", "1")])
        .await
        .ok()
        .clone();
    assert_eq!(cur_cfg["cores"], 8);
    let r = t.post("/nodes/pve1/qemu/101/status/shutdown", &[]).await;
    t.task_ok(r).await;
    let r = t
        .delete(
            "/nodes/pve1/qemu/101",
            &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
        )
        .await;
    t.task_ok(r).await;
    let r = t.get("/nodes/pve1/qemu/101/config", &[]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let vols = t
        .get("/nodes/pve1/storage/local-lvm/content", &[("vmid", "101")])
        .await
        .ok()
        .clone();
    assert_eq!(vols, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_import_and_errors() {
    let t = T::start().await;
    let r = t
        .post(
            "/nodes/pve2/qemu",
            &[
                ("vmid", "200"),
                ("name", "talos-w-1"),
                ("memory", "2048"),
                ("cores", "2"),
                ("scsihw", "virtio-scsi-single"),
                (
                    "scsi0",
                    "local-lvm:0,import-from=local:import/talos-nocloud-amd64.raw,iothread=1",
                ),
                ("ide2", "local-lvm:cloudinit"),
                ("net0", "virtio,bridge=vmbr0"),
                ("agent", "1"),
                ("start", "1"),
            ],
        )
        .await;
    t.task_ok(r).await;
    let cfg = t.get("/nodes/pve2/qemu/200/config", &[]).await.ok().clone();
    let scsi0 = cfg["scsi0"].as_str().unwrap();
    assert!(
        scsi0.starts_with("local-lvm:vm-200-disk-0,iothread=1,size="),
        "{scsi0}"
    );
    assert!(!scsi0.contains("import-from"));
    assert_eq!(cfg["ide2"], "local-lvm:vm-200-cloudinit,media=cdrom");
    assert!(
        cfg["net0"]
            .as_str()
            .unwrap()
            .starts_with("virtio=BC:24:11:")
    );
    let cur = t
        .get("/nodes/pve2/qemu/200/status/current", &[])
        .await
        .ok()
        .clone();
    assert_eq!(cur["status"], "running");
    let ifs = t
        .get("/nodes/pve2/qemu/200/agent/network-get-interfaces", &[])
        .await
        .ok()
        .clone();
    assert_eq!(
        ifs["result"][1]["ip-addresses"][0]["ip-address"],
        "127.10.0.200"
    );

    // Existing vmid: synchronous error.
    let r = t.post("/nodes/pve1/qemu", &[("vmid", "200")]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.message(),
        "unable to create VM 200 - VM 200 already exists on node 'pve2'\n"
    );
    // Images are not allowed on `local`; a missing import source is reported.
    let r = t
        .post("/nodes/pve1/qemu", &[("vmid", "201"), ("scsi0", "local:8")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["errors"]["scsi0"],
        "storage 'local' does not support content-type 'images'"
    );
    let r = t
        .post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "201"),
                ("scsi0", "local-lvm:0,import-from=local:import/nope.raw"),
            ],
        )
        .await;
    assert_eq!(
        r.body["errors"]["scsi0"],
        "volume 'local:import/nope.raw' does not exist"
    );
    // Agent off: the real error.
    let r = t
        .post(
            "/nodes/pve1/qemu",
            &[("vmid", "202"), ("agent", "0"), ("start", "1")],
        )
        .await;
    t.task_ok(r).await;
    let r = t
        .get("/nodes/pve1/qemu/202/agent/network-get-interfaces", &[])
        .await;
    assert_eq!(r.message(), "No QEMU guest agent configured\n");
    // Templates cannot start.
    let r = t.post("/nodes/pve1/qemu/9000/status/start", &[]).await;
    let upid = r.ok().as_str().unwrap().to_string();
    assert_eq!(
        t.wait_task(&upid).await["exitstatus"],
        "you can't start a vm if it's a template"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_targets_and_migrate() {
    let t = T::start().await;
    // Local template disk: no clone to another node without shared storage.
    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "300"), ("target", "pve2")],
        )
        .await;
    assert_eq!(
        r.message(),
        "can't clone VM to node 'pve2' (VM uses local storage)\n"
    );
    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[
                ("newid", "300"),
                ("target", "pve2"),
                ("full", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(
        r.message(),
        "can't clone to non-shared storage 'local-lvm'\n"
    );
    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "300"), ("storage", "ceph")],
        )
        .await;
    assert_eq!(
        r.message(),
        "parameter 'storage' not allowed for linked clones\n"
    );
    // Full clone to shared storage on another node works.
    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[
                ("newid", "300"),
                ("target", "pve3"),
                ("full", "1"),
                ("storage", "ceph"),
            ],
        )
        .await;
    t.task_ok(r).await;
    let cfg = t.get("/nodes/pve3/qemu/300/config", &[]).await.ok().clone();
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("ceph:vm-300-disk-0,")
    );
    // The ceph template clones linked anywhere.
    let r = t
        .post(
            "/nodes/pve2/qemu/9001/clone",
            &[("newid", "301"), ("target", "pve1")],
        )
        .await;
    t.task_ok(r).await;
    let cfg = t.get("/nodes/pve1/qemu/301/config", &[]).await.ok().clone();
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("ceph:base-9001-disk-0/vm-301-disk-0")
    );
    // Migrate 300 back to pve1.
    let r = t
        .post("/nodes/pve3/qemu/300/migrate", &[("target", "pve3")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"]["target"], "target is local node.");
    let r = t
        .post("/nodes/pve3/qemu/300/migrate", &[("target", "pve1")])
        .await;
    t.task_ok(r).await;
    t.get("/nodes/pve1/qemu/300/config", &[]).await.ok();
    // A running VM needs --online.
    let r = t.post("/nodes/pve1/qemu/300/status/start", &[]).await;
    t.task_ok(r).await;
    let r = t
        .post("/nodes/pve1/qemu/300/migrate", &[("target", "pve2")])
        .await;
    assert_eq!(r.message(), "can't migrate running VM without --online\n");
    // Template with linked clones cannot be destroyed.
    let r = t.delete("/nodes/pve2/qemu/9001", &[]).await;
    let upid = r.ok().as_str().unwrap().to_string();
    let st = t.wait_task(&upid).await;
    assert!(st["exitstatus"].as_str().unwrap().contains("still in use"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_boot_delay_and_missing_bridge() {
    use infraflux_lab::LabOptions;
    use infraflux_lab::pve::PveTiming;
    let t = T::with(LabOptions {
        timing: PveTiming {
            agent_delay_ms: 1000,
            ..PveTiming::default()
        },
        ..LabOptions::default()
    })
    .await;
    t.clone_template(160, "agent").await;
    let r = t.post("/nodes/pve1/qemu/160/status/start", &[]).await;
    t.task_ok(r).await;
    let r = t
        .get("/nodes/pve1/qemu/160/agent/network-get-interfaces", &[])
        .await;
    assert_eq!(r.message(), "QEMU guest agent is not running\n");
    tokio::time::sleep(std::time::Duration::from_millis(1020)).await;
    t.get("/nodes/pve1/qemu/160/agent/network-get-interfaces", &[])
        .await
        .ok();

    t.clone_template(161, "nobridge").await;
    t.put(
        "/nodes/pve1/qemu/161/config",
        &[("net0", "virtio,bridge=vmbr7")],
    )
    .await
    .ok();
    let r = t.post("/nodes/pve1/qemu/161/status/start", &[]).await;
    let upid = r.ok().as_str().unwrap().to_string();
    assert_eq!(
        t.wait_task(&upid).await["exitstatus"],
        "bridge 'vmbr7' does not exist"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_own_template_from_the_talos_image() {
    let t = T::start().await;
    let r = t
        .post(
            "/nodes/pve3/qemu",
            &[
                ("vmid", "9100"),
                ("name", "talos-1-13"),
                (
                    "scsi0",
                    "ceph:0,import-from=local:import/talos-nocloud-amd64.raw",
                ),
                ("net0", "virtio,bridge=vmbr0"),
                ("agent", "enabled=1"),
            ],
        )
        .await;
    t.task_ok(r).await;
    let r = t.post("/nodes/pve3/qemu/9100/template", &[]).await;
    t.task_ok(r).await;
    let cfg = t
        .get("/nodes/pve3/qemu/9100/config", &[])
        .await
        .ok()
        .clone();
    assert_eq!(cfg["template"], 1);
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("ceph:base-9100-disk-0,"),
        "{cfg}"
    );
    let r = t.post("/nodes/pve3/qemu/9100/template", &[]).await;
    assert_eq!(r.message(), "you can't convert a template to a template\n");
    // Linked clone of the new template onto another node (shared storage).
    let r = t
        .post(
            "/nodes/pve3/qemu/9100/clone",
            &[("newid", "170"), ("target", "pve1")],
        )
        .await;
    t.task_ok(r).await;
    let cfg = t.get("/nodes/pve1/qemu/170/config", &[]).await.ok().clone();
    assert!(
        cfg["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("ceph:base-9100-disk-0/vm-170-disk-0,")
    );
    // Running VMs cannot become templates.
    let r = t.post("/nodes/pve1/qemu/170/status/start", &[]).await;
    t.task_ok(r).await;
    let r = t.post("/nodes/pve1/qemu/170/template", &[]).await;
    assert_eq!(
        r.message(),
        "you can't convert a VM to template if VM is running\n"
    );
}
