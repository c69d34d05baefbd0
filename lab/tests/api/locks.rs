use reqwest::StatusCode;
use serde_json::json;

use infraflux_lab::LabOptions;
use infraflux_lab::pve::PveTiming;

use crate::common::T;

fn quick_locks(exclusive_clone_lock: bool) -> LabOptions {
    LabOptions {
        timing: PveTiming {
            lock_wait_ms: 200,
            exclusive_clone_lock,
            ..PveTiming::default()
        },
        ..LabOptions::default()
    }
}

async fn wait_for_vm(t: &T, node: &str, vmid: u32) -> serde_json::Value {
    for _ in 0..200 {
        let r = t
            .get(&format!("/nodes/{node}/qemu/{vmid}/config"), &[])
            .await;
        if r.status == StatusCode::OK {
            return r.ok().clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("VM {vmid} never appeared");
}

const LOCK_9000: &str = "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_locks_and_lock_errors() {
    let t = T::with(quick_locks(false)).await;
    t.control_post("/faults", &json!({"slow_tasks_ms": 800}))
        .await;
    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "110"), ("name", "a")],
        )
        .await;
    let first = r.ok().as_str().unwrap().to_string();
    // The clone target exists with `lock: clone` while the task runs, and the clone worker
    // holds its config file lock: a config change waits for it and times out.
    let cfg = wait_for_vm(&t, "pve1", 110).await;
    assert_eq!(cfg["lock"], "clone");
    let r = t
        .put("/nodes/pve1/qemu/110/config", &[("cores", "2")])
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.message(),
        "can't lock file '/var/lock/qemu-server/lock-110.conf' - got timeout\n"
    );
    // A stopped template is cloned under a shared lock: a second clone runs alongside...
    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "111"), ("name", "b")],
        )
        .await;
    let second = r.ok().as_str().unwrap().to_string();
    // ...but a config change of the template needs the exclusive lock and times out.
    let r = t
        .put("/nodes/pve1/qemu/9000/config", &[("description", "x")])
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.message(), format!("{LOCK_9000}\n"));
    assert_eq!(t.wait_task(&first).await["exitstatus"], "OK");
    assert_eq!(t.wait_task(&second).await["exitstatus"], "OK");

    // A running source is cloned under an exclusive lock: concurrent clones contend.
    t.control_post("/faults", &json!({"slow_tasks_ms": 0}))
        .await;
    let r = t.post("/nodes/pve1/qemu/110/status/start", &[]).await;
    t.task_ok(r).await;
    t.control_post("/faults", &json!({"slow_tasks_ms": 800}))
        .await;
    let (a, b) = tokio::join!(
        t.post("/nodes/pve1/qemu/110/clone", &[("newid", "112")]),
        t.post("/nodes/pve1/qemu/110/clone", &[("newid", "113")]),
    );
    let sa = t.wait_task(a.ok().as_str().unwrap()).await;
    let sb = t.wait_task(b.ok().as_str().unwrap()).await;
    let statuses = [sa["exitstatus"].clone(), sb["exitstatus"].clone()];
    assert!(statuses.contains(&json!("OK")), "{statuses:?}");
    assert!(
        statuses.contains(&json!(
            "can't lock file '/var/lock/qemu-server/lock-110.conf' - got timeout"
        )),
        "{statuses:?}"
    );

    // An injected lock timeout fails the next lock taker (here: a clone task).
    t.control_post("/faults", &json!({"slow_tasks_ms": 0, "lock_timeouts": 1}))
        .await;
    let r = t
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "114")])
        .await;
    let upid = r.ok().as_str().unwrap().to_string();
    assert_eq!(t.wait_task(&upid).await["exitstatus"], LOCK_9000);
    let r = t
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "114")])
        .await;
    t.task_ok(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_template_lock_makes_concurrent_clones_time_out() {
    let t = T::with(quick_locks(true)).await;
    t.control_post("/faults", &json!({"slow_tasks_ms": 800}))
        .await;
    let (a, b) = tokio::join!(
        t.post("/nodes/pve1/qemu/9000/clone", &[("newid", "115")]),
        t.post("/nodes/pve1/qemu/9000/clone", &[("newid", "116")]),
    );
    let sa = t.wait_task(a.ok().as_str().unwrap()).await;
    let sb = t.wait_task(b.ok().as_str().unwrap()).await;
    let statuses = [sa["exitstatus"].clone(), sb["exitstatus"].clone()];
    assert!(statuses.contains(&json!("OK")), "{statuses:?}");
    assert!(statuses.contains(&json!(LOCK_9000)), "{statuses:?}");
    // Fast tasks: the second waits for the lock and succeeds.
    t.control_post("/faults", &json!({"slow_tasks_ms": 0}))
        .await;
    let (a, b) = tokio::join!(
        t.post("/nodes/pve1/qemu/9000/clone", &[("newid", "117")]),
        t.post("/nodes/pve1/qemu/9000/clone", &[("newid", "118")]),
    );
    t.task_ok(a).await;
    t.task_ok(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_migrate_locks_refuse_changes() {
    let t = T::with(quick_locks(false)).await;
    t.control_post("/faults", &json!({"slow_tasks_ms": 1000}))
        .await;
    let r = t
        .post(
            "/nodes/pve1/qemu",
            &[("vmid", "140"), ("scsi0", "local-lvm:1")],
        )
        .await;
    let create = r.ok().as_str().unwrap().to_string();
    let cfg = wait_for_vm(&t, "pve1", 140).await;
    assert_eq!(cfg["lock"], "create");
    let r = t
        .put("/nodes/pve1/qemu/140/config", &[("cores", "2")])
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.message(), "VM is locked (create)\n");
    let r = t.delete("/nodes/pve1/qemu/140", &[]).await;
    assert_eq!(r.message(), "VM is locked (create)\n");
    let r = t.post("/nodes/pve1/qemu/140/status/start", &[]).await;
    let start = r.ok().as_str().unwrap().to_string();
    assert_eq!(
        t.wait_task(&start).await["exitstatus"],
        "VM is locked (create)"
    );
    assert_eq!(t.wait_task(&create).await["exitstatus"], "OK");
    let r = t
        .post("/nodes/pve1/qemu/140/migrate", &[("target", "pve2")])
        .await;
    let migrate = r.ok().as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = t
        .put("/nodes/pve1/qemu/140/config", &[("cores", "2")])
        .await;
    assert_eq!(r.message(), "VM is locked (migrate)\n");
    assert_eq!(t.wait_task(&migrate).await["exitstatus"], "OK");
    t.put("/nodes/pve2/qemu/140/config", &[("cores", "2")])
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nextid_race_two_creates_one_wins() {
    let t = T::start().await;
    // Slow tasks widen the window between the synchronous check and the worker's reservation.
    t.control_post("/faults", &json!({"slow_tasks_ms": 300}))
        .await;
    let id = t
        .get("/cluster/nextid", &[])
        .await
        .ok()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id, "100");
    let pa = [("vmid", id.as_str()), ("name", "a")];
    let pb = [("vmid", id.as_str()), ("name", "b")];
    let (a, b) = tokio::join!(
        t.post("/nodes/pve1/qemu", &pa),
        t.post("/nodes/pve2/qemu", &pb),
    );
    let ua = a.ok().as_str().unwrap().to_string();
    let ub = b.ok().as_str().unwrap().to_string();
    let sa = t.wait_task(&ua).await;
    let sb = t.wait_task(&ub).await;
    let statuses = [sa["exitstatus"].clone(), sb["exitstatus"].clone()];
    assert!(statuses.contains(&json!("OK")), "{statuses:?}");
    let failed = statuses
        .iter()
        .find(|s| **s != json!("OK"))
        .expect("one fails");
    assert!(
        failed
            .as_str()
            .unwrap()
            .starts_with("unable to create VM 100 - VM 100 already exists on node 'pve"),
        "{failed}"
    );
    assert_eq!(t.get("/cluster/nextid", &[]).await.ok(), &json!("101"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_task_failure() {
    let t = T::start().await;
    t.clone_template(120, "victim").await;
    let (s, f) = t
        .control_post("/faults", &json!({"fail_next_task": "qmstart"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(f["fail_next_task"], "qmstart");
    let r = t.post("/nodes/pve1/qemu/120/status/start", &[]).await;
    let upid = r.ok().as_str().unwrap().to_string();
    let st = t.wait_task(&upid).await;
    assert_eq!(st["status"], "stopped");
    assert_ne!(st["exitstatus"], "OK");
    let log = t
        .get(&format!("/nodes/pve1/tasks/{upid}/log"), &[])
        .await
        .ok()
        .clone();
    let last = log.as_array().unwrap().last().unwrap()["t"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last.starts_with("TASK ERROR: "), "{last}");
    let cur = t
        .get("/nodes/pve1/qemu/120/status/current", &[])
        .await
        .ok()
        .clone();
    assert_eq!(cur["status"], "stopped");
    // Consumed: the next start works.
    let r = t.post("/nodes/pve1/qemu/120/status/start", &[]).await;
    t.task_ok(r).await;
    // A failed clone leaves no half-made VM behind.
    t.control_post("/faults", &json!({"fail_next_task": "qmclone"}))
        .await;
    let r = t
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "121")])
        .await;
    let upid = r.ok().as_str().unwrap().to_string();
    assert_ne!(t.wait_task(&upid).await["exitstatus"], "OK");
    let r = t.get("/nodes/pve1/qemu/121/config", &[]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    // The node's task list shows the failures, newest first.
    let r = t
        .get("/nodes/pve1/tasks", &[("errors", "1"), ("source", "all")])
        .await;
    let list = r.ok().as_array().unwrap().clone();
    assert_eq!(list[0]["type"], "qmclone");
    assert!(
        list[0]["status"]
            .as_str()
            .unwrap()
            .contains("injected failure")
    );
    assert_eq!(list[1]["type"], "qmstart");
    assert_eq!(r.body["total"], 2);
    let r = t
        .get(
            "/nodes/pve1/tasks",
            &[("typefilter", "qmstart"), ("vmid", "120")],
        )
        .await;
    assert_eq!(r.body["total"], 2);
    // Bad UPIDs.
    let r = t.get("/nodes/pve1/tasks/UPID:nope/status", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // pveproxy decodes the path before routing: a percent-encoded UPID names the same task.
    let upid = list[0]["upid"].as_str().expect("upid");
    let encoded = upid.replace(':', "%3A").replace('@', "%40");
    let r = t
        .get(&format!("/nodes/pve1/tasks/{encoded}/status"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{encoded}");
    assert_eq!(r.body["data"]["upid"], upid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_clone_lock_blocks_until_unlocked() {
    let t = T::start().await;
    t.clone_template(150, "stale").await;
    // What a clone worker killed mid-way leaves behind.
    let (s, v) = t
        .control_post("/vms/150/lock", &json!({"lock": "clone"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["lock"], "clone");
    let r = t
        .put("/nodes/pve1/qemu/150/config", &[("cores", "2")])
        .await;
    assert_eq!(r.message(), "VM is locked (clone)\n");
    let r = t.delete("/nodes/pve1/qemu/150", &[]).await;
    assert_eq!(r.message(), "VM is locked (clone)\n");
    let r = t
        .put(
            "/nodes/pve1/qemu/150/resize",
            &[("disk", "scsi0"), ("size", "+1G")],
        )
        .await;
    assert_eq!(r.message(), "VM is locked (clone)\n");
    // `qm unlock` over the API.
    t.put(
        "/nodes/pve1/qemu/150/config",
        &[("delete", "lock"), ("skiplock", "1")],
    )
    .await
    .ok();
    t.put("/nodes/pve1/qemu/150/config", &[("cores", "2")])
        .await
        .ok();
}
