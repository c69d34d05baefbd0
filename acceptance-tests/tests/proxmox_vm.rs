//! `infraflux_proxmox_vm` through real Terraform (1.15.5 and 1.0.3) against the lab, one lab
//! per test started as `infraflux-lab up --dir …` and stopped with `down` when the test ends.

use acceptance_tests::lab::{Lab, effective};
use acceptance_tests::{Tf, Work, both_terraforms};
use serde_json::json;

fn vm_resource(clone: bool, cores: u32, memory: u32, tags: &str) -> String {
    let clone = if clone {
        "  clone {\n    source_vm_id = 9000\n  }\n"
    } else {
        ""
    };
    format!(
        "resource \"infraflux_proxmox_vm\" \"vm\" {{\n  node = \"pve1\"\n  name = \"talos-cp-1\"\n  tags = [{tags}]\n{clone}  cpu {{\n    cores = {cores}\n  }}\n  memory {{\n    dedicated_mb = {memory}\n  }}\n  network \"net0\" {{\n    bridge = \"vmbr0\"\n  }}\n}}\n"
    )
}

both_terraforms!(clone_update_import_destroy, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!(
        "{}{}",
        lab.provider(None),
        vm_resource(true, 2, 2048, "\"talos\", \"b\"")
    ));
    w.init();
    w.apply();
    w.assert_plan_empty();

    let r = w.resource("infraflux_proxmox_vm.vm");
    let vmid = r["vm_id"].as_i64().expect("vm_id");
    assert_eq!(r["id"], format!("pve1/{vmid}"));
    assert_eq!(r["status"], "running");
    assert_eq!(r["current_node"], "pve1");
    assert_eq!(r["network"]["net0"]["model"], "virtio");
    let mac = r["network"]["net0"]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(mac.starts_with("BC:24:11:"), "{r:#}");
    assert_eq!(r["mac_addresses"], json!([mac]));
    let vm = lab.vm(vmid);
    assert_eq!(vm["status"], "running");
    assert_eq!(vm["node"], "pve1");
    assert_eq!(effective(&vm, "name"), "talos-cp-1");
    assert_eq!(effective(&vm, "tags"), "b;talos", "tags are written sorted");

    // A refresh costs one shared /cluster/resources and one config GET per VM.
    lab.assert_refresh_cost(&w, 1);

    // In place: cores, memory, tags. Same VM.
    w.config(&format!(
        "{}{}",
        lab.provider(None),
        vm_resource(true, 4, 4096, "\"talos\", \"a\", \"b\"")
    ));
    w.apply();
    let r = w.resource("infraflux_proxmox_vm.vm");
    assert_eq!(r["vm_id"], vmid, "updated in place");
    let vm = lab.vm(vmid);
    assert_eq!(effective(&vm, "cores"), "4");
    assert_eq!(effective(&vm, "memory"), "4096");
    assert_eq!(effective(&vm, "tags"), "a;b;talos");
    assert_eq!(lab.guests(), vec![vmid], "no second VM");
    w.assert_plan_empty();

    // Tags only, in another order: never a restart.
    let power = lab.power_tasks();
    w.config(&format!(
        "{}{}",
        lab.provider(None),
        vm_resource(true, 4, 4096, "\"b\", \"prod\", \"a\", \"talos\"")
    ));
    w.apply();
    assert_eq!(effective(&lab.vm(vmid), "tags"), "a;b;prod;talos");
    assert_eq!(
        lab.power_tasks(),
        power,
        "a tags-only change ran a power task"
    );
    w.assert_plan_empty();

    // Import into a fresh state (no clone block: PVE does not record a VM's origin).
    let w2 = Work::new(tf);
    w2.config(&format!(
        "{}{}",
        lab.provider(None),
        vm_resource(false, 4, 4096, "\"a\", \"b\", \"prod\", \"talos\"")
    ));
    w2.init();
    let bad = w2.fails(&[
        "import",
        "-no-color",
        "-input=false",
        "infraflux_proxmox_vm.vm",
        &vmid.to_string(),
    ]);
    assert!(
        bad.text().contains("expected \"node/vm_id\""),
        "{}",
        bad.all()
    );
    w2.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "infraflux_proxmox_vm.vm",
        &format!("pve1/{vmid}"),
    ]);
    w2.assert_plan_empty();
    let r2 = w2.resource("infraflux_proxmox_vm.vm");
    assert_eq!(r2["vm_id"], vmid);
    assert_eq!(r2["network"]["net0"]["mac"], mac.as_str());

    // Terraform >= 1.12: import by identity; with a clone block the VM adopts it in place.
    if tf.at_least(1, 12) {
        let w3 = Work::new(tf);
        w3.config(&format!(
            "{}import {{\n  to       = infraflux_proxmox_vm.vm\n  identity = {{ node = \"pve1\", vm_id = {vmid} }}\n}}\n\n{}",
            lab.provider(None),
            vm_resource(true, 4, 4096, "\"a\", \"b\", \"prod\", \"talos\"")
        ));
        w3.init();
        let o = w3.apply();
        assert!(
            o.stdout
                .contains("1 imported, 0 added, 1 changed, 0 destroyed"),
            "{}",
            o.stdout
        );
        w3.assert_plan_empty();
        assert_eq!(
            w3.resource("infraflux_proxmox_vm.vm")["clone"]["source_vm_id"],
            9000
        );
        assert_eq!(lab.guests(), vec![vmid], "adopted, not replaced");
    }

    // Destroy (from the imported state), then the original state finds it gone: success.
    w2.destroy();
    assert!(lab.guests().is_empty(), "VMs left: {:?}", lab.guests());
    // Deleted outside the first state: its refresh finds it gone and plans a create.
    let (code, o) = w.plan_code();
    assert_eq!(code, 2, "{}", o.stdout);
    assert!(o.stdout.contains("will be created"), "{}", o.stdout);
    w.destroy();
    lab.assert_only_templates_left();
});

both_terraforms!(clear_errors, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    let vm = vm_resource(true, 2, 2048, "\"talos\"");

    // A bad token: one error naming the token and the endpoint.
    let bad = format!(
        "{}=00000000-0000-0000-0000-000000000000",
        lab.pve("token_id")
    );
    w.config(&format!("{}{vm}", lab.provider(Some(&bad))));
    w.init();
    let o = w.apply_fails();
    let text = o.text();
    let want = format!(
        "authentication failed for {} at {}",
        lab.pve("token_id"),
        lab.pve("endpoint")
    );
    assert_eq!(text.matches(&want).count(), 1, "{}", o.all());
    assert!(
        !text.contains("00000000-0000-0000-0000-000000000000"),
        "secret leaked: {}",
        o.all()
    );

    // A token without VM.Allocate: the privilege is named.
    let noalloc = lab.info["pve"]["tokens"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["without"] == json!(["VM.Allocate"])))
        .map(|t| {
            format!(
                "{}={}",
                t["id"].as_str().unwrap_or_default(),
                t["secret"].as_str().unwrap_or_default()
            )
        })
        .expect("the lab's token without VM.Allocate");
    w.config(&format!("{}{vm}", lab.provider(Some(&noalloc))));
    let o = w.apply_fails();
    assert_eq!(
        o.text().matches("lacks the privilege VM.Allocate").count(),
        1,
        "{}",
        o.all()
    );

    // A missing template: the plan says so, pointing at clone.source_vm_id.
    w.config(&format!(
        "{}{}",
        lab.provider(None),
        vm.replace("source_vm_id = 9000", "source_vm_id = 9999")
    ));
    let o = w.apply_fails();
    let text = o.text();
    assert!(
        text.contains("clone.source_vm_id: no VM or template 9999 exists"),
        "{}",
        o.all()
    );
    assert!(
        text.contains("source_vm_id = 9999"),
        "the error shows the attribute: {}",
        o.all()
    );

    // No proxmox block: a clear error at create.
    w.config(&format!(
        "terraform {{\n  required_providers {{\n    infraflux = {{ source = \"infraflux/infraflux\" }}\n  }}\n}}\n\nprovider \"infraflux\" {{}}\n\n{vm}"
    ));
    let o = w.apply_fails();
    assert!(
        o.text().contains("Proxmox VE is not configured"),
        "{}",
        o.all()
    );
    assert!(o.text().contains("`proxmox"), "{}", o.all());

    assert!(lab.guests().is_empty(), "VMs left: {:?}", lab.guests());
    assert!(w.state_addresses().is_empty());
});

both_terraforms!(failure_after_clone_is_saved_and_converges, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!(
        "{}{}",
        lab.provider(None),
        vm_resource(true, 2, 2048, "\"talos\"")
    ));
    w.init();
    lab.control(
        "POST",
        "/faults",
        Some(&json!({"fail_next_task": "qmstart"})),
    );
    let o = w.apply_fails();
    assert!(o.text().contains("Cannot start VM"), "{}", o.all());
    let guests = lab.guests();
    assert_eq!(guests.len(), 1, "the clone exists: {guests:?}");
    assert_eq!(
        w.state_addresses(),
        vec!["infraflux_proxmox_vm.vm".to_owned()]
    );
    assert!(w.raw_state().contains("\"tainted\""), "{}", w.raw_state());
    assert_eq!(w.resource("infraflux_proxmox_vm.vm")["vm_id"], guests[0]);

    // The next apply replaces the tainted VM: still exactly one.
    w.apply();
    let guests = lab.guests();
    assert_eq!(guests.len(), 1, "no duplicate: {guests:?}");
    let r = w.resource("infraflux_proxmox_vm.vm");
    assert_eq!(r["vm_id"], guests[0]);
    assert_eq!(lab.vm(guests[0])["status"], "running");
    w.assert_plan_empty();
    w.destroy();
    assert!(lab.guests().is_empty());
});

both_terraforms!(power_nics_and_refresh_cost, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    let config = |one_started: bool, net1: &str| {
        format!(
            "{}resource \"infraflux_proxmox_vm\" \"many\" {{\n  count   = 2\n  node    = \"pve1\"\n  started = false\n  clone {{\n    source_vm_id = 9000\n    full         = false\n  }}\n}}\n\nresource \"infraflux_proxmox_vm\" \"one\" {{\n  node    = \"pve1\"\n  started = {one_started}\n  on_boot = true\n  clone {{\n    source_vm_id = 9000\n  }}\n  network \"net0\" {{\n    bridge = \"vmbr0\"\n  }}\n{net1}}}\n",
            lab.provider(None)
        )
    };
    w.config(&config(false, ""));
    w.init();
    w.apply();
    w.assert_plan_empty();
    let guests = lab.guests();
    assert_eq!(guests.len(), 3, "{guests:?}");
    for g in &guests {
        assert_eq!(lab.vm(*g)["status"], "stopped", "started = false");
    }
    let many = w.resource("infraflux_proxmox_vm.many[0]");
    assert_eq!(many["status"], "stopped");
    assert_eq!(
        many["network"],
        json!({}),
        "NICs not declared are not managed"
    );
    let disk = effective(&lab.vm(many["vm_id"].as_i64().unwrap_or_default()), "scsi0");
    assert!(disk.contains("base-9000-disk-0/"), "linked clone: {disk}");

    // N VMs refresh with one shared list and one config GET each.
    lab.assert_refresh_cost(&w, 3);

    // Start one VM and add a NIC, in place.
    let one = w.resource("infraflux_proxmox_vm.one");
    let vmid = one["vm_id"].as_i64().unwrap_or_default();
    assert_eq!(effective(&lab.vm(vmid), "onboot"), "1");
    w.config(&config(
        true,
        "  network \"net1\" {\n    bridge  = \"vmbr0\"\n    model   = \"e1000\"\n    vlan_id = 10\n  }\n",
    ));
    w.apply();
    w.assert_plan_empty();
    let vm = lab.vm(vmid);
    assert_eq!(vm["status"], "running");
    let net1 = effective(&vm, "net1");
    assert!(
        net1.starts_with("e1000=") && net1.contains("tag=10"),
        "{net1}"
    );
    let one = w.resource("infraflux_proxmox_vm.one");
    assert_eq!(one["vm_id"], vmid);
    assert_eq!(one["status"], "running");
    assert_eq!(
        one["mac_addresses"].as_array().map(Vec::len),
        Some(2),
        "{one:#}"
    );
    for g in &guests {
        if *g != vmid {
            assert_eq!(lab.vm(*g)["status"], "stopped");
        }
    }

    // Remove the NIC again.
    w.config(&config(true, ""));
    w.apply();
    w.assert_plan_empty();
    let vm = lab.vm(vmid);
    assert!(
        vm["config"]["net1"].is_null() || vm["pending_delete"].to_string().contains("net1"),
        "{vm:#}"
    );

    w.destroy();
    assert!(lab.guests().is_empty(), "{:?}", lab.guests());
});

/// A Talos node from the nocloud image: two disks, a static cloud-init address, agent.
/// `extra` goes inside the resource; `disks` are the disk blocks.
fn talos_node(ip: &str, disks: &str, extra: &str) -> String {
    format!(
        r#"resource "infraflux_proxmox_vm" "node" {{
  node          = "pve1"
  name          = "talos-cp-1"
  machine       = "q35"
  scsi_hardware = "virtio-scsi-single"
{extra}
  cpu {{
    cores = 2
  }}
  memory {{
    dedicated_mb = 2048
  }}
{disks}
  network "net0" {{
    bridge = "vmbr0"
  }}
  initialization {{
    ip_config "ipconfig0" {{
      ipv4_address = "{ip}/8"
      ipv4_gateway = "127.0.0.1"
    }}
    dns {{
      servers = ["1.1.1.1", "9.9.9.9"]
      domain  = "lab.internal"
    }}
  }}
  agent {{
    enabled = true
  }}
}}
"#
    )
}

fn boot_disk(size_gb: u32) -> String {
    format!(
        "  disk \"scsi0\" {{\n    storage     = \"local-lvm\"\n    import_from = \"local:import/talos-nocloud-amd64.raw\"\n    size_gb     = {size_gb}\n    discard     = true\n    ssd         = true\n    iothread    = true\n  }}\n"
    )
}

const DATA_DISK: &str = "  disk \"scsi1\" {\n    storage = \"local-lvm\"\n    size_gb = 2\n    cache   = \"writeback\"\n  }\n";

/// The `size=` of a drive value, as PVE wrote it.
fn drive_size(drive: &str) -> String {
    drive
        .split(',')
        .find_map(|p| p.strip_prefix("size="))
        .unwrap_or_default()
        .to_owned()
}

both_terraforms!(image_disks_cloud_init_import_destroy, |tf: &Tf| {
    let lab = Lab::up();
    // One address per Terraform version: both tests' Talos nodes may run at once.
    let ip = if tf.at_least(1, 12) {
        "127.77.15.11"
    } else {
        "127.77.10.11"
    };
    let hcl = |disks: &str, extra: &str| {
        format!("{}{}", lab.provider(None), talos_node(ip, disks, extra))
    };

    // Plan-time: a boot source is required, and only one.
    let w0 = Work::new(tf);
    w0.config(&hcl(DATA_DISK, ""));
    w0.init();
    let o = w0.fails(&["plan", "-no-color", "-input=false"]);
    assert!(o.text().contains("A boot source is needed"), "{}", o.all());
    assert!(o.text().contains("clone"), "{}", o.all());
    w0.config(&hcl(
        &boot_disk(4),
        "  clone {\n    source_vm_id = 9000\n  }\n",
    ));
    let o = w0.fails(&["plan", "-no-color", "-input=false"]);
    assert!(
        o.text().contains("disk[\"scsi0\"].import_from and clone"),
        "{}",
        o.all()
    );

    // Create from the image: scsi0 imported and grown, scsi1 allocated, cloud-init on ide2.
    let w = Work::new(tf);
    w.config(&hcl(&format!("{}{DATA_DISK}", boot_disk(4)), ""));
    w.init();
    w.apply();
    w.assert_plan_empty();
    let r = w.resource("infraflux_proxmox_vm.node");
    let vmid = r["vm_id"].as_i64().expect("vm_id");
    assert_eq!(r["ipv4_addresses"], json!([ip]), "{r:#}");
    assert_eq!(r["disk"]["scsi0"]["size_gb"], 4);
    assert_eq!(r["disk"]["scsi1"]["cache"], "writeback");
    assert_eq!(r["initialization"]["datastore"], "local-lvm");
    assert_eq!(r["bios"], "seabios");
    let vm = lab.vm(vmid);
    assert_eq!(vm["status"], "running");
    let scsi0 = effective(&vm, "scsi0");
    assert_eq!(drive_size(&scsi0), "4G", "{scsi0}");
    for opt in ["discard=on", "ssd=1", "iothread=1"] {
        assert!(scsi0.contains(opt), "{scsi0}");
    }
    let scsi1 = effective(&vm, "scsi1");
    assert_eq!(drive_size(&scsi1), "2G", "{scsi1}");
    assert!(scsi1.contains("cache=writeback"), "{scsi1}");
    assert!(effective(&vm, "ide2").contains("cloudinit"), "{vm:#}");
    assert_eq!(
        effective(&vm, "ipconfig0"),
        format!("ip={ip}/8,gw=127.0.0.1")
    );
    assert_eq!(effective(&vm, "nameserver"), "1.1.1.1 9.9.9.9");
    assert_eq!(effective(&vm, "scsihw"), "virtio-scsi-single");
    assert_eq!(effective(&vm, "boot"), "order=scsi0");
    // The simulated Talos node listens on the static address.
    let talos = lab.control("GET", "/talos/nodes", None);
    assert!(
        talos["nodes"]
            .as_array()
            .is_some_and(|ns| ns.iter().any(|n| n["vmid"] == vmid && n["address"] == ip)),
        "{talos:#}"
    );

    // Grow scsi0 in place: a resize, same VM.
    w.config(&hcl(&format!("{}{DATA_DISK}", boot_disk(6)), ""));
    w.apply();
    assert_eq!(w.resource("infraflux_proxmox_vm.node")["vm_id"], vmid);
    assert_eq!(drive_size(&effective(&lab.vm(vmid), "scsi0")), "6G");
    assert_eq!(lab.guests(), vec![vmid], "grown in place, not replaced");
    w.assert_plan_empty();

    // Shrink: refused at plan time, naming the attribute.
    w.config(&hcl(&format!("{}{DATA_DISK}", boot_disk(3)), ""));
    let o = w.fails(&["plan", "-no-color", "-input=false"]);
    assert!(o.text().contains("disk[\"scsi0\"].size_gb"), "{}", o.all());
    assert!(o.text().contains("cannot shrink"), "{}", o.all());

    // Removing scsi1: refused unless allow_disk_removal, then deleted with its volume.
    w.config(&hcl(&boot_disk(6), ""));
    let o = w.fails(&["plan", "-no-color", "-input=false"]);
    assert!(o.text().contains("disk[\"scsi1\"]"), "{}", o.all());
    assert!(o.text().contains("allow_disk_removal"), "{}", o.all());
    w.config(&hcl(&boot_disk(6), "  allow_disk_removal = true\n"));
    w.apply();
    let vm = lab.vm(vmid);
    let keys: Vec<&String> = vm["config"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert!(
        !keys
            .iter()
            .any(|k| *k == "scsi1" || k.starts_with("unused")),
        "scsi1 and its volume are gone: {keys:?}"
    );
    w.assert_plan_empty();

    // Import into a fresh state. Disks, cloud-init and the agent are blocks Terraform cannot
    // leave out of a plan once in state, so an import leaves them to the configuration: one
    // apply adopts them (and import_from, which PVE does not record) without touching PVE.
    let w2 = Work::new(tf);
    w2.config(&hcl(&boot_disk(6), "  allow_disk_removal = true\n"));
    w2.init();
    w2.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "infraflux_proxmox_vm.node",
        &format!("pve1/{vmid}"),
    ]);
    let r2 = w2.resource("infraflux_proxmox_vm.node");
    assert_eq!(r2["vm_id"], vmid);
    let digest = r2["config_digest"].clone();
    // The adopting apply writes nothing to PVE: the config digest stays.
    let o = w2.apply();
    assert!(
        o.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        o.stdout
    );
    let r2 = w2.resource("infraflux_proxmox_vm.node");
    assert_eq!(
        r2["config_digest"], digest,
        "adopting changed nothing in PVE"
    );
    assert_eq!(r2["disk"]["scsi0"]["size_gb"], 6, "{r2:#}");
    assert_eq!(
        r2["initialization"]["ip_config"]["ipconfig0"]["ipv4_address"],
        format!("{ip}/8")
    );
    assert_eq!(r2["ipv4_addresses"], json!([ip]));
    w2.assert_plan_empty();

    // Destroy leaves nothing.
    w2.destroy();
    assert!(lab.guests().is_empty(), "VMs left: {:?}", lab.guests());
    w.destroy();
    lab.assert_only_templates_left();
});

/// The `qmigrate` tasks the lab ran so far.
fn migrations(lab: &Lab) -> Vec<serde_json::Value> {
    lab.control("GET", "/state", None)["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| t["type"] == "qmigrate")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

both_terraforms!(node_change_migrates_in_place, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    // A running full clone on local-lvm, and a stopped linked clone of the template.
    let hcl = |node: &str, linked_node: &str| {
        format!(
            "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  node = \"{node}\"\n  clone {{\n    source_vm_id = 9000\n  }}\n}}\n\nresource \"infraflux_proxmox_vm\" \"linked\" {{\n  node    = \"{linked_node}\"\n  started = false\n  clone {{\n    source_vm_id = 9000\n    full         = false\n  }}\n}}\n",
            lab.provider(None)
        )
    };
    w.config(&hcl("pve1", "pve1"));
    w.init();
    w.apply();
    let r = w.resource("infraflux_proxmox_vm.vm");
    let vmid = r["vm_id"].as_i64().expect("vm_id");
    let disk = effective(&lab.vm(vmid), "scsi0");

    // Another node: an in-place update, not a replacement.
    w.config(&hcl("pve2", "pve1"));
    let (code, o) = w.plan_code();
    assert_eq!(code, 2, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("infraflux_proxmox_vm.vm will be updated in-place"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("must be replaced"), "{}", o.stdout);
    w.apply();
    let vm = lab.vm(vmid);
    assert_eq!(vm["node"], "pve2", "{vm:#}");
    assert_eq!(vm["status"], "running", "migrated online");
    assert!(vm["lock"].is_null(), "{vm:#}");
    assert_eq!(effective(&vm, "scsi0"), disk, "the local disk came along");
    let m = migrations(&lab);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert_eq!(m[0]["node"], "pve1", "the task runs on the source node");
    assert_eq!(m[0]["exitstatus"], "OK", "{m:#?}");
    let r = w.resource("infraflux_proxmox_vm.vm");
    assert_eq!(r["vm_id"], vmid, "same VM id");
    assert_eq!(r["node"], "pve2");
    assert_eq!(r["current_node"], "pve2");
    assert_eq!(r["id"], format!("pve2/{vmid}"));
    assert_eq!(r["clone"]["source_node"], "pve1", "where it was cloned");
    assert_eq!(lab.guests().len(), 2, "no second VM");
    w.assert_plan_empty();

    // A linked clone of a template on local storage cannot move: PVE's reason, at `node`.
    let linked = w.resource("infraflux_proxmox_vm.linked")["vm_id"]
        .as_i64()
        .expect("vm_id");
    w.config(&hcl("pve2", "pve3"));
    let o = w.apply_fails();
    let text = o.text();
    assert!(
        text.contains(&format!(
            "Cannot migrate VM {linked} from node pve1 to pve3"
        )),
        "{}",
        o.all()
    );
    assert!(
        text.contains("as it's a clone of 'base-9000-disk-0'"),
        "{}",
        o.all()
    );
    assert!(
        text.contains("node = \"pve3\""),
        "the error shows the attribute: {}",
        o.all()
    );
    let lvm = lab.vm(linked);
    assert_eq!(lvm["node"], "pve1");
    assert!(
        lvm["lock"].is_null(),
        "the failed migration left no lock: {lvm:#}"
    );
    w.config(&hcl("pve2", "pve1"));
    w.assert_plan_empty();

    w.destroy();
    lab.assert_only_templates_left();
});

both_terraforms!(pending_changes_and_reboot_after_update, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    let hcl = |reboot: bool, cores: u32, memory: u32, extra: &str| {
        format!(
            "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  node                = \"pve1\"\n  reboot_after_update = {reboot}\n  clone {{\n    source_vm_id = 9000\n  }}\n  cpu {{\n    cores = {cores}\n  }}\n  memory {{\n    dedicated_mb = {memory}\n  }}\n  network \"net0\" {{\n    bridge = \"vmbr0\"\n  }}\n  agent {{\n    wait_for_ip = true\n  }}\n{extra}}}\n",
            lab.provider(None)
        )
    };
    w.config(&hcl(false, 2, 2048, ""));
    w.init();
    w.apply();
    let r = w.resource("infraflux_proxmox_vm.vm");
    let vmid = r["vm_id"].as_i64().expect("vm_id");
    assert_eq!(r["agent"]["wait_for_ip"], true);
    assert_eq!(
        r["ipv4_addresses"].as_array().map(Vec::len),
        Some(1),
        "{r:#}"
    );
    w.assert_plan_empty();
    let power = lab.power_tasks();

    // Cores on a running VM wait for a restart: not allowed to reboot, so a warning names them.
    w.config(&hcl(false, 4, 2048, ""));
    let o = w.apply();
    let text = o.text();
    assert!(
        text.contains(&format!("VM {vmid} needs a reboot")),
        "{}",
        o.all()
    );
    assert!(text.contains("cores"), "{}", o.all());
    assert_eq!(lab.power_tasks(), power, "no reboot");
    let vm = lab.vm(vmid);
    assert_eq!(vm["pending"]["cores"], "4", "{vm:#}");
    assert_eq!(vm["config"]["cores"], "2", "{vm:#}");
    w.assert_plan_empty();

    // Allowing reboots applies what was left pending.
    w.config(&hcl(true, 4, 2048, ""));
    let o = w.apply();
    assert!(!o.text().contains("needs a reboot"), "{}", o.all());
    assert_eq!(lab.power_tasks(), power + 1, "one reboot");
    let vm = lab.vm(vmid);
    assert_eq!(vm["config"]["cores"], "4", "{vm:#}");
    assert_eq!(vm["pending"], json!({}), "{vm:#}");
    assert_eq!(vm["status"], "running");
    w.assert_plan_empty();

    // Tags and a new NIC apply live (the default hotplug): no reboot.
    w.config(&hcl(
        true,
        4,
        2048,
        "  tags = [\"live\"]\n  network \"net1\" {\n    bridge = \"vmbr0\"\n  }\n",
    ));
    w.apply();
    assert_eq!(lab.power_tasks(), power + 1, "live changes never reboot");
    let vm = lab.vm(vmid);
    assert!(vm["config"]["net1"].is_string(), "{vm:#}");
    assert_eq!(vm["pending"], json!({}), "{vm:#}");
    w.assert_plan_empty();

    // Memory (not hot-pluggable without NUMA and `hotplug` memory) reboots.
    w.config(&hcl(
        true,
        4,
        3072,
        "  tags = [\"live\"]\n  network \"net1\" {\n    bridge = \"vmbr0\"\n  }\n",
    ));
    w.apply();
    assert_eq!(lab.power_tasks(), power + 2);
    assert_eq!(lab.vm(vmid)["config"]["memory"], "3072");
    w.assert_plan_empty();

    w.destroy();
    lab.assert_only_templates_left();
});

/// A UEFI VM installed from an ISO: EFI vars, TPM, CD-ROM, pool, NIC MTU.
fn uefi_vm(pool: &str, iso: &str, mtu: u32, efi_type: &str) -> String {
    format!(
        r#"resource "infraflux_proxmox_vm" "uefi" {{
  node    = "pve1"
  name    = "uefi-1"
  pool    = "{pool}"
  bios    = "ovmf"
  machine = "q35"
  efi_disk {{
    storage = "local-lvm"
    type    = "{efi_type}"
  }}
  tpm_state {{
    storage = "local-lvm"
  }}
  cdrom {{
    file_id = "{iso}"
  }}
  disk "scsi0" {{
    storage = "local-lvm"
    size_gb = 8
  }}
  network "net0" {{
    bridge = "vmbr0"
    mtu    = {mtu}
  }}
}}
"#
    )
}

both_terraforms!(efi_tpm_cdrom_pool_mtu_round_trip, |tf: &Tf| {
    let lab = Lab::up();
    let iso = "local:iso/talos-metal-amd64.iso";
    let hcl = |pool: &str, iso: &str, mtu: u32, efi: &str| {
        format!("{}{}", lab.provider(None), uefi_vm(pool, iso, mtu, efi))
    };
    let w = Work::new(tf);
    w.config(&hcl("infraflux", iso, 1450, "4m"));
    w.init();
    w.apply();
    w.assert_plan_empty();
    let r = w.resource("infraflux_proxmox_vm.uefi");
    let vmid = r["vm_id"].as_i64().expect("vm_id");
    assert_eq!(r["pool"], "infraflux");
    assert_eq!(r["efi_disk"]["type"], "4m");
    assert_eq!(r["efi_disk"]["pre_enrolled_keys"], false);
    assert_eq!(r["tpm_state"]["version"], "v2.0");
    assert_eq!(r["cdrom"]["interface"], "ide3");
    assert_eq!(r["network"]["net0"]["mtu"], 1450);
    let vm = lab.vm(vmid);
    assert_eq!(vm["status"], "running");
    let efi = effective(&vm, "efidisk0");
    for opt in ["efitype=4m", "pre-enrolled-keys=0", "size=528K"] {
        assert!(efi.contains(opt), "{efi}");
    }
    let tpm = effective(&vm, "tpmstate0");
    assert!(
        tpm.contains("version=v2.0") && tpm.contains("size=4M"),
        "{tpm}"
    );
    assert_eq!(effective(&vm, "ide3"), format!("{iso},media=cdrom"));
    assert_eq!(
        effective(&vm, "boot"),
        "order=ide3;scsi0",
        "boots the ISO first"
    );
    assert!(effective(&vm, "net0").contains("mtu=1450"), "{vm:#}");

    // In place, live: another pool, the CD-ROM ejected, another MTU.
    w.config(&hcl("lab", "none", 9000, "4m"));
    w.apply();
    w.assert_plan_empty();
    let r = w.resource("infraflux_proxmox_vm.uefi");
    assert_eq!(r["vm_id"], vmid);
    assert_eq!(r["pool"], "lab");
    assert_eq!(r["cdrom"]["file_id"], "none");
    let vm = lab.vm(vmid);
    assert_eq!(effective(&vm, "ide3"), "none,media=cdrom");
    assert!(effective(&vm, "net0").contains("mtu=9000"), "{vm:#}");

    // The EFI vars format cannot be converted: a plan-time error at the attribute.
    w.config(&hcl("lab", "none", 9000, "2m"));
    let o = w.fails(&["plan", "-no-color", "-input=false"]);
    assert!(o.text().contains("efi_disk.type"), "{}", o.all());
    assert!(o.text().contains("cannot convert it"), "{}", o.all());

    // Import: one apply adopts the blocks without touching Proxmox VE.
    let w2 = Work::new(tf);
    w2.config(&hcl("lab", "none", 9000, "4m"));
    w2.init();
    w2.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "infraflux_proxmox_vm.uefi",
        &format!("pve1/{vmid}"),
    ]);
    let digest = w2.resource("infraflux_proxmox_vm.uefi")["config_digest"].clone();
    w2.apply();
    let r2 = w2.resource("infraflux_proxmox_vm.uefi");
    assert_eq!(
        r2["config_digest"], digest,
        "adopting changed nothing in PVE"
    );
    assert_eq!(r2["efi_disk"]["storage"], "local-lvm");
    assert_eq!(r2["tpm_state"]["version"], "v2.0");
    assert_eq!(r2["pool"], "lab");
    w2.assert_plan_empty();

    w2.destroy();
    // Gone: the first state plans a create, which needs a bootable ISO in the configuration.
    w.config(&hcl("lab", iso, 9000, "4m"));
    w.destroy();
    lab.assert_only_templates_left();
});
