//! `data "infraflux_talos_image"` through real Terraform (1.15.5 and 1.0.3): the schematic ID
//! and image references known at plan time with no network, and bad input refused at validate
//! naming the attribute.

use acceptance_tests::{Tf, Work, both_terraforms};
use serde_json::Value as Json;

const PROVIDER: &str = "terraform {\n  required_providers {\n    infraflux = { source = \"infraflux/infraflux\" }\n  }\n}\n\nprovider \"infraflux\" {}\n";

fn config(body: &str) -> String {
    format!(
        "{PROVIDER}\ndata \"infraflux_talos_image\" \"this\" {{\n{body}}}\n\noutput \"image\" {{\n  value = data.infraflux_talos_image.this\n}}\n"
    )
}

both_terraforms!(schematic_ids_and_references, |tf: &Tf| {
    let w = Work::new(tf);
    w.config(&config(
        "  talos_version = \"v1.13.9\"\n  extensions    = [\"siderolabs/iscsi-tools\", \"siderolabs/qemu-guest-agent\", \"siderolabs/util-linux-tools\"]\n",
    ));
    w.init();
    w.apply();
    let out: Json = serde_json::from_str(&w.ok(&["output", "-json"]).stdout).expect("outputs");
    let image = &out["image"]["value"];
    // The ID the factory gives these three extensions (Longhorn's needs on Proxmox VE).
    let id = "88d1f7a5c4f1d3aba7df787c448c1d3d008ed29cfb34af53fa0df4336a56040b";
    assert_eq!(image["schematic_id"], id, "{image:#}");
    assert_eq!(
        image["installer_image"],
        format!("factory.talos.dev/installer/{id}:v1.13.9")
    );
    assert_eq!(
        image["disk_image_url"],
        format!("https://factory.talos.dev/image/{id}/v1.13.9/nocloud-amd64.raw.xz")
    );
    assert!(
        image["schematic"]
            .as_str()
            .is_some_and(|s| s.contains("            - siderolabs/qemu-guest-agent\n")),
        "{image:#}"
    );
    w.assert_plan_empty();

    // No customisation at all: the factory's well-known default schematic.
    w.config(&config(
        "  talos_version = \"v1.13.9\"\n  platform = \"metal\"\n  arch = \"arm64\"\n",
    ));
    w.apply();
    let out: Json = serde_json::from_str(&w.ok(&["output", "-json"]).stdout).expect("outputs");
    let image = &out["image"]["value"];
    assert_eq!(
        image["schematic_id"],
        "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
    );
    assert!(
        image["iso_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/metal-arm64.iso")),
        "{image:#}"
    );
});

both_terraforms!(bad_input_names_the_attribute, |tf: &Tf| {
    let w = Work::new(tf);
    let cases = [
        (
            "  talos_version = \"1.13.9\"\n",
            "talos_version",
            "`v1.13.9`",
        ),
        (
            "  talos_version = \"v1.13\"\n",
            "talos_version",
            "vMAJOR.MINOR.PATCH",
        ),
        (
            "  talos_version = \"v1.13.9\"\n  platform = \"proxmox\"\n",
            "platform",
            "`nocloud`",
        ),
        (
            "  talos_version = \"v1.13.9\"\n  extensions = [\"iscsi-tools\"]\n",
            "extensions",
            "siderolabs/qemu-guest-agent",
        ),
        (
            "  talos_version = \"v1.13.9\"\n  extensions = [\"siderolabs/a\", \"siderolabs/a\"]\n",
            "extensions",
            "list each extension once",
        ),
        (
            "  talos_version = \"v1.13.9\"\n  meta = { \"300\" = \"x\" }\n",
            "meta",
            "from 0 to 255",
        ),
        (
            "  talos_version = \"v1.13.9\"\n  factory_url = \"factory.talos.dev\"\n",
            "factory_url",
            "base URL",
        ),
    ];
    // One configuration with every case, one `validate`: each error names its attribute.
    let mut hcl = PROVIDER.to_owned();
    for (i, (body, _, _)) in cases.iter().enumerate() {
        hcl.push_str(&format!(
            "\ndata \"infraflux_talos_image\" \"case{i}\" {{\n{body}}}\n"
        ));
    }
    w.config(&hcl);
    w.init();
    let o = w.fails(&["validate", "-no-color"]);
    let text = o.text();
    for (i, (_, attr, hint)) in cases.iter().enumerate() {
        let at = format!("data.infraflux_talos_image.case{i}");
        let block = text
            .split("Error:")
            .find(|e| e.contains(&format!("with {at},")))
            .unwrap_or_else(|| panic!("no error for {at}:\n{}", o.all()));
        assert!(block.contains(attr), "{at} should name {attr}: {block}");
        assert!(block.contains(hint), "{at} should say {hint:?}: {block}");
    }
});
