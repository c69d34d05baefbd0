//! `data "infraflux_proxmox_nodes"` and `data "infraflux_proxmox_template"` through real
//! Terraform (1.15.5 and 1.0.3) against the lab.

use acceptance_tests::lab::Lab;
use acceptance_tests::{Tf, Work, both_terraforms};
use serde_json::Value as Json;

fn outputs(w: &Work) -> Json {
    let o = w.ok(&["output", "-json"]);
    serde_json::from_str(&o.stdout).expect("outputs JSON")
}

both_terraforms!(nodes_and_template_lookup, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    let hcl = |name: &str, node: &str| {
        format!(
            "{}data \"infraflux_proxmox_nodes\" \"all\" {{}}\n\ndata \"infraflux_proxmox_template\" \"talos\" {{\n  name = \"{name}\"\n{node}}}\n\nresource \"infraflux_proxmox_vm\" \"vm\" {{\n  node    = data.infraflux_proxmox_template.talos.node\n  started = false\n  clone {{\n    source_vm_id = data.infraflux_proxmox_template.talos.vm_id\n  }}\n}}\n\noutput \"names\" {{\n  value = data.infraflux_proxmox_nodes.all.names\n}}\noutput \"nodes\" {{\n  value = data.infraflux_proxmox_nodes.all.nodes\n}}\noutput \"template\" {{\n  value = data.infraflux_proxmox_template.talos\n}}\n",
            lab.provider(None)
        )
    };
    w.config(&hcl("talos-template-ceph", ""));
    w.init();
    w.apply();
    // The clone took space on ceph: outputs read before it change once, then nothing does.
    w.apply();
    w.assert_plan_empty();
    let out = outputs(&w);
    assert_eq!(
        out["names"]["value"],
        serde_json::json!(["pve1", "pve2", "pve3"])
    );
    let nodes = out["nodes"]["value"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(nodes.len(), 3);
    let pve1 = &nodes[0];
    assert_eq!(pve1["status"], "online");
    assert_eq!(pve1["cpu_count"], 16);
    assert!(pve1["memory_free_mb"].as_i64().unwrap_or(0) > 0, "{pve1:#}");
    let storages = pve1["storages"].as_array().cloned().unwrap_or_default();
    let lvm = storages
        .iter()
        .find(|s| s["name"] == "local-lvm")
        .unwrap_or_else(|| panic!("{pve1:#}"));
    assert_eq!(lvm["content"], serde_json::json!(["images", "rootdir"]));
    assert_eq!(lvm["shared"], false);
    assert!(lvm["free_gb"].as_i64().unwrap_or(0) > 0, "{lvm:#}");
    let ceph = storages.iter().find(|s| s["name"] == "ceph");
    assert_eq!(ceph.map(|c| &c["shared"]), Some(&Json::Bool(true)));
    // The template, found by name: the VM is cloned from it on its node.
    let t = &out["template"]["value"];
    assert_eq!(t["vm_id"], 9001);
    assert_eq!(t["node"], "pve2");
    let r = w.resource("infraflux_proxmox_vm.vm");
    assert_eq!(r["clone"]["source_vm_id"], 9001);
    assert_eq!(r["node"], "pve2");

    // No template of that name: the error names the attribute.
    w.config(&hcl("no-such-template", ""));
    let o = w.fails(&["plan", "-no-color", "-input=false"]);
    let text = o.text();
    assert!(text.contains("No such template"), "{}", o.all());
    assert!(text.contains("name = \"no-such-template\""), "{}", o.all());
    // On another node than asked: the node is named, with where it is.
    w.config(&hcl("talos-template", "  node = \"pve3\"\n"));
    let o = w.fails(&["plan", "-no-color", "-input=false"]);
    let text = o.text();
    assert!(text.contains("there is: 9000 on pve1"), "{}", o.all());
    assert!(text.contains("node = \"pve3\""), "{}", o.all());

    w.config(&hcl("talos-template-ceph", ""));
    w.destroy();
    lab.assert_only_templates_left();
});

/// One Proxmox VE client per provider process: a refresh that reads a data source and a
/// resource asks for `/cluster/resources` once between them. (A client per kind would bring a
/// cache, a limiter and a connection pool per kind, and ask twice.)
#[test]
fn data_sources_and_resources_share_one_client() {
    let tf = Tf::v1_15();
    let lab = Lab::up();
    let w = Work::new(&tf);
    w.config(&format!(
        "{}data \"infraflux_proxmox_template\" \"talos\" {{\n  name = \"talos-template\"\n}}\n\nresource \"infraflux_proxmox_vm\" \"vm\" {{\n  node    = \"pve1\"\n  started = false\n  clone {{\n    source_vm_id = 9000\n  }}\n}}\n",
        lab.provider(None)
    ));
    w.init();
    w.apply();

    lab.control("POST", "/requests/reset", None);
    w.assert_plan_empty();
    let req = lab.control("GET", "/requests", None);
    assert_eq!(req["by_route"]["GET /cluster/resources"], 1, "{req}");
    assert_eq!(
        req["by_route"]["GET /nodes/{node}/qemu/{vmid}/config"], 1,
        "the VM was refreshed: {req}"
    );

    w.destroy();
    lab.assert_only_templates_left();
}
