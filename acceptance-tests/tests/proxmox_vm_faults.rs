//! `infraflux_proxmox_vm` under faults and at scale, through real Terraform against the lab:
//! lock timeouts, injected 5xx answers, dropped connections, a failed clone task, an
//! unreachable endpoint, a wrong CA, and 20 clones of one template in one apply.

use acceptance_tests::lab::Lab;
use acceptance_tests::{Out, Tf, Work, both_terraforms};
use serde_json::json;

/// `count` linked clones of template 9000 on pve1, started.
fn clones(count: u32) -> String {
    format!(
        "resource \"infraflux_proxmox_vm\" \"vm\" {{\n  count = {count}\n  node  = \"pve1\"\n  clone {{\n    source_vm_id = 9000\n  }}\n}}\n"
    )
}

/// A provider block for `endpoint` with `trust` (e.g. `ca_cert_pem = "…"`).
fn provider_at(lab: &Lab, endpoint: &str, trust: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    infraflux = {{ source = \"infraflux/infraflux\" }}\n  }}\n}}\n\nprovider \"infraflux\" {{\n  proxmox {{\n    endpoint  = {}\n    api_token = {}\n    {trust}\n  }}\n}}\n",
        json!(endpoint),
        json!(format!(
            "{}={}",
            lab.pve("token_id"),
            lab.pve("token_secret")
        )),
    )
}

/// No lock error, retry noise or injected fault reached the user.
fn assert_no_fault_text(o: &Out) {
    let text = o.text();
    for bad in [
        "locked",
        "can't lock",
        "got timeout",
        "lab fault",
        "injected",
        "Error",
        "Warning",
    ] {
        assert!(
            !text.contains(bad),
            "{bad:?} reached the user:\n{}",
            o.all()
        );
    }
}

/// The VM ids in state, sorted.
fn state_vmids(w: &Work) -> Vec<i64> {
    let s = w.state_json();
    let mut ids: Vec<i64> = s["values"]["root_module"]["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["type"] == "infraflux_proxmox_vm")
                .filter_map(|r| r["values"]["vm_id"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Requests the lab answered with an injected fault since the last `/requests/reset`: every
/// request counts in `total`, only served ones in `by_route`.
fn faulted(lab: &Lab) -> i64 {
    let r = lab.control("GET", "/requests", None);
    let served: i64 = r["by_route"]
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_i64).sum())
        .unwrap_or(0);
    r["total"].as_i64().unwrap_or(0) - served
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

both_terraforms!(lock_timeouts_are_retried, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!("{}{}", lab.provider(None), clones(2)));
    w.init();
    lab.control("POST", "/faults", Some(&json!({"lock_timeouts": 3})));
    let o = w.apply();
    assert_no_fault_text(&o);
    let faults = lab.control("GET", "/faults", None);
    assert_eq!(faults["lock_timeouts"], 0, "all three were hit: {faults}");
    let guests = sorted(lab.guests());
    assert_eq!(guests.len(), 2, "exactly two VMs: {guests:?}");
    assert_eq!(state_vmids(&w), guests, "state and lab agree");
    for g in &guests {
        assert_eq!(lab.vm(*g)["status"], "running");
        assert!(lab.vm(*g)["lock"].is_null(), "no lock left on {g}");
    }
    w.assert_plan_empty();
});

both_terraforms!(server_errors_are_retried, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!("{}{}", lab.provider(None), clones(2)));
    w.init();
    lab.control("POST", "/faults", Some(&json!({"error_rate_5xx": 0.3})));
    lab.control("POST", "/requests/reset", None);
    let o = w.apply();
    assert_no_fault_text(&o);
    // Refresh and plan with the fault still on.
    w.assert_plan_empty();
    lab.control("POST", "/faults", Some(&json!({"error_rate_5xx": 0.0})));
    let n = faulted(&lab);
    eprintln!("{n} requests answered 503");
    assert!(n > 0, "the fault was exercised");
    let guests = sorted(lab.guests());
    assert_eq!(guests.len(), 2, "no duplicate: {guests:?}");
    assert_eq!(state_vmids(&w), guests);
    w.assert_plan_empty();
});

both_terraforms!(dropped_connections_during_refresh, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!("{}{}", lab.provider(None), clones(3)));
    w.init();
    w.apply();
    lab.control(
        "POST",
        "/faults",
        Some(&json!({"drop_connection_rate": 0.2})),
    );
    // Each refresh is 1 + 3 reads; a few of them meet a dropped connection.
    lab.control("POST", "/requests/reset", None);
    for _ in 0..3 {
        w.assert_plan_empty();
    }
    lab.control(
        "POST",
        "/faults",
        Some(&json!({"drop_connection_rate": 0.0})),
    );
    let n = faulted(&lab);
    eprintln!("{n} connections dropped");
    assert!(n > 0, "the fault was exercised");
    assert_eq!(lab.guests().len(), 3);
});

both_terraforms!(dropped_connections_during_create_converge, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!("{}{}", lab.provider(None), clones(2)));
    w.init();
    lab.control(
        "POST",
        "/faults",
        Some(&json!({"drop_connection_rate": 0.3})),
    );
    lab.control("POST", "/requests/reset", None);
    // Reads are repeated; a write whose connection broke is not (it may have run), so this
    // apply may fail. Whatever it created is in state.
    let first = w.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let n = faulted(&lab);
    eprintln!(
        "{n} connections dropped; first apply exit code {}",
        first.code
    );
    assert!(n > 0, "the fault was exercised");
    if first.code != 0 {
        assert!(
            first
                .text()
                .contains("the connection broke before an answer"),
            "{}",
            first.all()
        );
    }
    assert!(
        state_vmids(&w).iter().all(|id| lab.guests().contains(id)),
        "state names only VMs that exist"
    );
    lab.control(
        "POST",
        "/faults",
        Some(&json!({"drop_connection_rate": 0.0})),
    );
    w.apply();
    let guests = sorted(lab.guests());
    assert_eq!(guests.len(), 2, "no orphan, no duplicate: {guests:?}");
    assert_eq!(state_vmids(&w), guests);
    w.assert_plan_empty();
});

both_terraforms!(failed_clone_task_orphans_nothing, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!("{}{}", lab.provider(None), clones(1)));
    w.init();
    lab.control(
        "POST",
        "/faults",
        Some(&json!({"fail_next_task": "qmclone"})),
    );
    let o = w.apply_fails();
    let text = o.text();
    assert_eq!(
        text.matches("Cannot clone VM 9000 on node pve1").count(),
        1,
        "one error: {}",
        o.all()
    );
    assert!(
        text.contains("task qmclone on node pve1 failed"),
        "the error names the task: {}",
        o.all()
    );
    assert!(lab.guests().is_empty(), "orphan: {:?}", lab.guests());
    assert!(w.state_addresses().is_empty(), "{:?}", w.state_addresses());

    // The fault is spent: the next apply converges on exactly one VM.
    lab.control("POST", "/faults", Some(&json!({"fail_next_task": null})));
    w.apply();
    let guests = lab.guests();
    assert_eq!(guests.len(), 1, "{guests:?}");
    assert_eq!(state_vmids(&w), guests);
    assert_eq!(lab.vm(guests[0])["status"], "running");
    w.assert_plan_empty();
});

both_terraforms!(unreachable_endpoint_and_wrong_ca, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    let ca = format!("ca_cert_pem = {}", lab.info["ca_cert_pem"]);

    // A closed port: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    w.config(&format!(
        "{}{}",
        provider_at(&lab, &format!("https://{address}"), &ca),
        clones(1)
    ));
    w.init();
    let o = w.apply_fails();
    let text = o.text();
    assert_eq!(
        text.matches(&format!("cannot reach Proxmox VE at {address}"))
            .count(),
        1,
        "{}",
        o.all()
    );
    assert_eq!(text.matches("Error:").count(), 1, "{}", o.all());

    // The lab's endpoint with a CA that did not sign its certificate.
    let other_ca = {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name
            .push(DnType::CommonName, "Some other CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.self_signed(&key).expect("self-signed").pem()
    };
    w.config(&format!(
        "{}{}",
        provider_at(
            &lab,
            &lab.pve("endpoint"),
            &format!("ca_cert_pem = {}", json!(other_ca))
        ),
        clones(1)
    ));
    let o = w.apply_fails();
    let text = o.text();
    let want = format!("TLS certificate of {} is not trusted", lab.pve("endpoint"));
    assert_eq!(text.matches(&want).count(), 1, "{}", o.all());
    assert_eq!(text.matches("Error:").count(), 1, "{}", o.all());
    assert!(text.contains("ca_cert_pem"), "{}", o.all());
    assert!(text.contains("tls_fingerprint_sha256"), "{}", o.all());

    assert!(lab.guests().is_empty());
    assert!(w.state_addresses().is_empty());
});

// 20 clones of one template in one apply, with the default `max_parallel_tasks_per_node`.
both_terraforms!(twenty_clones_of_one_template, |tf: &Tf| {
    let started = std::time::Instant::now();
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!("{}{}", lab.provider(None), clones(20)));
    w.init();
    let o = w.apply();
    assert_no_fault_text(&o);
    assert!(
        o.stdout.contains("20 added, 0 changed, 0 destroyed"),
        "{}",
        o.stdout
    );
    let guests = sorted(lab.guests());
    assert_eq!(guests.len(), 20, "{guests:?}");
    assert_eq!(state_vmids(&w), guests, "state and lab agree");
    eprintln!("20 clones applied after {:?}", started.elapsed());
    w.destroy();
    lab.assert_only_templates_left();
    eprintln!("20 clones applied and destroyed in {:?}", started.elapsed());
});

/// Tasks of one type the lab ran so far.
fn tasks_of(lab: &Lab, kind: &str) -> usize {
    lab.control("GET", "/state", None)["tasks"]
        .as_array()
        .map(|ts| ts.iter().filter(|t| t["type"] == kind).count())
        .unwrap_or(0)
}

// An apply that gives up while a PVE task still runs keeps the task's UPID in private state:
// the next apply waits for that task instead of starting a second one.
both_terraforms!(a_task_left_running_is_resumed_not_repeated, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    let hcl = |node: &str, timeout: &str| {
        format!(
            "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  node = \"{node}\"\n  clone {{\n    source_vm_id = 9000\n  }}\n  timeouts {{\n    create = \"{timeout}\"\n    update = \"{timeout}\"\n  }}\n}}\n",
            lab.provider(None)
        )
    };

    // A clone slower than the create timeout: the VM it makes is saved (tainted) with its task.
    w.config(&hcl("pve1", "1s"));
    w.init();
    lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 2500})));
    let o = w.apply_fails();
    assert!(
        o.text().contains("may still be being created"),
        "{}",
        o.all()
    );
    assert_eq!(tasks_of(&lab, "qmclone"), 1);
    let saved = w.resource("infraflux_proxmox_vm.vm")["vm_id"]
        .as_i64()
        .expect("the VM being cloned is in state");
    assert!(w.raw_state().contains("\"tainted\""), "{}", w.raw_state());
    lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 0})));
    // The replacement waits for that clone before deleting its VM: nothing orphaned.
    w.config(&hcl("pve1", "5m"));
    w.apply();
    let guests = lab.guests();
    assert_eq!(guests.len(), 1, "{guests:?}");
    // Destroyed once its clone had finished (a delete of a VM still locked by its clone would
    // fail), then cloned anew: the tainted VM was replaced.
    assert_eq!(tasks_of(&lab, "qmdestroy"), 1);
    assert_eq!(tasks_of(&lab, "qmclone"), 2);
    let destroyed = lab.control("GET", "/state", None)["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["type"] == "qmdestroy").cloned())
        .unwrap_or_default();
    assert_eq!(destroyed["id"], saved.to_string());
    assert_eq!(destroyed["exitstatus"], "OK", "{destroyed:#}");
    assert_eq!(state_vmids(&w), guests);
    w.assert_plan_empty();
    let vmid = guests[0];

    // A migration slower than the update timeout: the next apply waits for it.
    lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 2500})));
    w.config(&hcl("pve2", "1s"));
    let o = w.apply_fails();
    assert!(o.text().contains("qmigrate"), "{}", o.all());
    assert_eq!(tasks_of(&lab, "qmigrate"), 1);
    lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 0})));
    w.config(&hcl("pve2", "5m"));
    w.apply();
    assert_eq!(tasks_of(&lab, "qmigrate"), 1, "the migration ran once");
    let vm = lab.vm(vmid);
    assert_eq!(vm["node"], "pve2");
    assert!(vm["lock"].is_null(), "{vm:#}");
    let r = w.resource("infraflux_proxmox_vm.vm");
    assert_eq!(r["vm_id"], vmid);
    assert_eq!(r["current_node"], "pve2");
    w.assert_plan_empty();
    w.destroy();
    lab.assert_only_templates_left();
});

// The documented way to keep a VM whose create was interrupted: `terraform untaint`. The next
// apply waits for the clone task in private state and then configures that VM: no second clone.
both_terraforms!(an_interrupted_clone_is_kept_after_untaint, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    let hcl = |cores: u32, timeout: &str| {
        format!(
            "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  node = \"pve1\"\n  clone {{\n    source_vm_id = 9000\n  }}\n  cpu {{\n    cores = {cores}\n  }}\n  timeouts {{\n    create = \"{timeout}\"\n  }}\n}}\n",
            lab.provider(None)
        )
    };
    w.config(&hcl(3, "1s"));
    w.init();
    lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 2500})));
    w.apply_fails();
    lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 0})));
    let saved = w.resource("infraflux_proxmox_vm.vm")["vm_id"]
        .as_i64()
        .expect("the VM being cloned is in state");
    let o = w.run(&["untaint", "-no-color", "infraflux_proxmox_vm.vm"]);
    assert_eq!(o.code, 0, "{}", o.all());
    w.config(&hcl(3, "5m"));
    w.apply();
    assert_eq!(
        tasks_of(&lab, "qmclone"),
        1,
        "the interrupted clone was not repeated"
    );
    assert_eq!(tasks_of(&lab, "qmdestroy"), 0);
    assert_eq!(lab.guests(), vec![saved]);
    let vm = lab.vm(saved);
    assert_eq!(vm["config"]["cores"], "3", "{vm:#}");
    assert!(vm["lock"].is_null(), "{vm:#}");
    w.assert_plan_empty();
    w.destroy();
    lab.assert_only_templates_left();
});
