//! Reliability of `infraflux_proxmox_vm` and the provider block through real Terraform (1.15
//! and 1.0.3) against the lab: wrong input is rejected at validate or plan naming its
//! attribute; a provider killed during a create leaves a VM the next apply adopts (no
//! duplicate); seeded fault runs converge within two applies.

use std::process::Child;
use std::time::{Duration, Instant};

use acceptance_tests::lab::Lab;
use acceptance_tests::{Out, Tf, Work, both_terraforms};
use serde_json::{Value as Json, json};

/// One wrong configuration: a resource (or a provider block with a resource using it) and
/// what its diagnostic must say.
struct Case {
    name: String,
    /// The resource body, or with `provider`, the body of the `proxmox` block.
    body: String,
    provider: bool,
    /// Text the diagnostic's summary or detail holds (the attribute and what to do).
    want: &'static str,
    /// Text of the source line Terraform shows for the diagnostic's attribute.
    code: &'static str,
}

const CLONE: &str = "  node = \"pve1\"\n  clone {\n    source_vm_id = 9000\n  }\n";
const IMAGE: &str = "  node = \"pve1\"\n  disk \"scsi0\" {\n    storage     = \"local-lvm\"\n    import_from = \"local:import/talos-nocloud-amd64.raw\"\n  }\n";

fn vm(name: &str, body: String, want: &'static str, code: &'static str) -> Case {
    Case {
        name: name.into(),
        body,
        provider: false,
        want,
        code,
    }
}

fn clone_with(extra: &str) -> String {
    format!("{CLONE}{extra}")
}

fn provider_case(name: &str, body: &str, want: &'static str, code: &'static str) -> Case {
    Case {
        name: name.into(),
        body: body.into(),
        provider: true,
        want,
        code,
    }
}

/// Wrong input `terraform validate` rejects: schema rules, slots, MACs, tags, the provider
/// block.
fn validate_cases() -> Vec<Case> {
    let mut v = vec![
        vm(
            "v_net32",
            clone_with("  network \"net32\" {\n    bridge = \"vmbr0\"\n  }\n"),
            "network[\"net32\"]: \"net32\" is beyond Proxmox VE's net slots (net0…net31)",
            "network \"net32\"",
        ),
        vm(
            "v_eth0",
            clone_with("  network \"eth0\" {\n    bridge = \"vmbr0\"\n  }\n"),
            "network[\"eth0\"]: \"eth0\" is not a slot name; use net0…net31",
            "network \"eth0\"",
        ),
        vm(
            "v_net01",
            clone_with("  network \"net01\" {\n    bridge = \"vmbr0\"\n  }\n"),
            "\"net01\" is not a slot name",
            "network \"net01\"",
        ),
        vm(
            "v_mac_lower",
            clone_with(
                "  network \"net0\" {\n    bridge = \"vmbr0\"\n    mac    = \"bc:24:11:0a:1b:2c\"\n  }\n",
            ),
            "network[\"net0\"].mac: \"bc:24:11:0a:1b:2c\" is in lower case; Proxmox VE stores MACs in upper case, so write \"BC:24:11:0A:1B:2C\"",
            "mac",
        ),
        vm(
            "v_mac_multicast",
            clone_with(
                "  network \"net0\" {\n    bridge = \"vmbr0\"\n    mac    = \"01:24:11:0A:1B:2C\"\n  }\n",
            ),
            "is a multicast address",
            "mac",
        ),
        vm(
            "v_mac_garbage",
            clone_with(
                "  network \"net0\" {\n    bridge = \"vmbr0\"\n    mac    = \"not-a-mac\"\n  }\n",
            ),
            "\"not-a-mac\" is not a MAC address",
            "mac",
        ),
        vm(
            "v_tag_space",
            clone_with("  tags = [\"a b\"]\n"),
            "tags: \"a b\" holds several tags",
            "tags",
        ),
        vm(
            "v_tag_semicolon",
            clone_with("  tags = [\"prod;k8s\"]\n"),
            "write them as separate elements: [\"prod\", \"k8s\"]",
            "tags",
        ),
        vm(
            "v_tag_comma",
            clone_with("  tags = [\"a,b\"]\n"),
            "holds several tags",
            "tags",
        ),
        vm(
            "v_tag_upper",
            clone_with("  tags = [\"Prod\"]\n"),
            "tags: \"Prod\" has upper case letters; Proxmox VE compares tags case-insensitively, write \"prod\"",
            "tags",
        ),
        vm(
            "v_tag_chars",
            clone_with("  tags = [\"-x\"]\n"),
            "tags: \"-x\" is not a Proxmox VE tag",
            "tags",
        ),
        vm(
            "v_tag_slash",
            clone_with("  tags = [\"a/b\"]\n"),
            "tags: \"a/b\" is not a Proxmox VE tag",
            "tags",
        ),
        vm(
            "v_tag_empty",
            clone_with("  tags = [\"\"]\n"),
            "tags: \"\" is empty",
            "tags",
        ),
        vm("v_vmid_low", clone_with("  vm_id = 99\n"), "vm_id", "vm_id"),
        vm(
            "v_vmid_high",
            clone_with("  vm_id = 1000000000\n"),
            "vm_id",
            "vm_id",
        ),
        vm(
            "v_name_empty",
            clone_with("  name = \"\"\n"),
            "name",
            "name",
        ),
        vm(
            "v_node_empty",
            "  node = \"\"\n  clone {\n    source_vm_id = 9000\n  }\n".into(),
            "node",
            "node",
        ),
        vm(
            "v_model",
            clone_with(
                "  network \"net0\" {\n    bridge = \"vmbr0\"\n    model  = \"rtl9999\"\n  }\n",
            ),
            "model",
            "model",
        ),
        vm(
            "v_vlan",
            clone_with("  network \"net0\" {\n    bridge = \"vmbr0\"\n    vlan_id = 5000\n  }\n"),
            "vlan_id",
            "vlan_id",
        ),
        vm(
            "v_mtu",
            clone_with("  network \"net0\" {\n    bridge = \"vmbr0\"\n    mtu    = 70000\n  }\n"),
            "mtu",
            "mtu",
        ),
        vm(
            "v_bridge_empty",
            clone_with("  network \"net0\" {\n    bridge = \"\"\n  }\n"),
            "bridge",
            "bridge",
        ),
        vm(
            "v_size0",
            clone_with("  disk \"scsi0\" {\n    storage = \"local-lvm\"\n    size_gb = 0\n  }\n"),
            "size_gb",
            "size_gb",
        ),
        vm(
            "v_cache",
            clone_with(
                "  disk \"scsi0\" {\n    storage = \"local-lvm\"\n    size_gb = 4\n    cache   = \"fast\"\n  }\n",
            ),
            "cache",
            "cache",
        ),
        vm("v_bios", clone_with("  bios = \"uefi\"\n"), "bios", "bios"),
        vm(
            "v_scsihw",
            clone_with("  scsi_hardware = \"nvme\"\n"),
            "scsi_hardware",
            "scsi_hardware",
        ),
        vm(
            "v_tpm_version",
            clone_with("  tpm_state {\n    storage = \"local-lvm\"\n    version = \"v3.0\"\n  }\n"),
            "version",
            "version",
        ),
    ];
    v.extend([
        provider_case("p_http", "endpoint = \"http://pve.example:8006\"\n    api_token = \"a@pve!t=s\"", "must start with https://", "endpoint"),
        provider_case("p_noscheme", "endpoint = \"pve.example:8006\"\n    api_token = \"a@pve!t=s\"", "Invalid Proxmox VE endpoint", "endpoint"),
        provider_case("p_token", "endpoint = \"https://pve.example:8006\"\n    api_token = \"root@pam-no-separator\"", "Invalid Proxmox VE API token", "api_token"),
        provider_case("p_both_creds", "endpoint = \"https://pve.example:8006\"\n    api_token = \"a@pve!t=s\"\n    username = \"root@pam\"\n    password = \"x\"", "use an API token or a username and password, not both", "api_token"),
        provider_case("p_user_only", "endpoint = \"https://pve.example:8006\"\n    username = \"root@pam\"", "Ticket login needs both username and password; set proxmox.password", "proxmox {"),
        provider_case("p_realm", "endpoint = \"https://pve.example:8006\"\n    username = \"root\"\n    password = \"x\"", "has no realm; write it as `root@pam`", "username"),
        provider_case("p_two_trusts", "endpoint = \"https://pve.example:8006\"\n    api_token = \"a@pve!t=s\"\n    insecure = true\n    tls_fingerprint_sha256 = \"AA:BB\"", "Set only one of ca_cert_pem, tls_fingerprint_sha256 and insecure", ""),
        provider_case("p_fingerprint", "endpoint = \"https://pve.example:8006\"\n    api_token = \"a@pve!t=s\"\n    tls_fingerprint_sha256 = \"zz\"", "Invalid TLS fingerprint", "tls_fingerprint_sha256"),
        provider_case("p_ca", "endpoint = \"https://pve.example:8006\"\n    api_token = \"a@pve!t=s\"\n    ca_cert_pem = \"not a pem\"", "expected a PEM certificate", "ca_cert_pem"),
        provider_case("p_range", "endpoint = \"https://pve.example:8006\"\n    api_token = \"a@pve!t=s\"\n    vm_id_range {\n      min = 500\n      max = 400\n    }", "min (500) is greater than max (400); swap them", "min"),
        provider_case("p_no_creds", "endpoint = \"https://pve.example:8006\"", "Set proxmox.api_token (or PROXMOX_VE_API_TOKEN)", ""),
    ]);
    v
}

/// Wrong input only `terraform plan` can see (it needs the cluster, or crosses attributes).
fn plan_cases() -> Vec<Case> {
    let img = |extra: &str| format!("{IMAGE}{extra}");
    vec![
        vm("n_node", "  node = \"pve9\"\n  clone {\n    source_vm_id = 9000\n  }\n".into(), "node: \"pve9\" is not a node of this cluster; its nodes are pve1, pve2, pve3", "node"),
        vm("n_source_node", "  node = \"pve1\"\n  clone {\n    source_vm_id = 9000\n    source_node  = \"pve7\"\n  }\n".into(), "clone.source_node: \"pve7\" is not a node of this cluster", "source_node"),
        vm("n_source_vm", "  node = \"pve1\"\n  clone {\n    source_vm_id = 8999\n  }\n".into(), "clone.source_vm_id: no VM or template 8999 exists", "source_vm_id"),
        vm("n_clone_storage", "  node = \"pve1\"\n  clone {\n    source_vm_id = 9000\n    full         = true\n    storage      = \"nosuch\"\n  }\n".into(), "clone.storage: node pve1 has no storage \"nosuch\". Storages of pve1 that hold `images`: ceph, local-lvm", "storage"),
        vm("n_clone_storage_content", "  node = \"pve1\"\n  clone {\n    source_vm_id = 9000\n    full         = true\n    storage      = \"local\"\n  }\n".into(), "clone.storage: storage \"local\" on node pve1 does not hold `images`", "storage"),
        vm("n_disk_storage", clone_with("  disk \"scsi1\" {\n    storage = \"nosuch\"\n    size_gb = 4\n  }\n"), "disk[\"scsi1\"].storage: node pve1 has no storage \"nosuch\"", "storage"),
        vm("n_disk_content", clone_with("  disk \"scsi1\" {\n    storage = \"local\"\n    size_gb = 4\n  }\n"), "disk[\"scsi1\"].storage: storage \"local\" on node pve1 does not hold `images`", "storage"),
        vm("n_image_missing", "  node = \"pve1\"\n  disk \"scsi0\" {\n    storage     = \"local-lvm\"\n    import_from = \"local:import/missing.raw\"\n  }\n".into(), "disk[\"scsi0\"].import_from: \"local:import/missing.raw\" does not exist on node pve1 (import volumes there: local:import/talos-nocloud-amd64.raw)", "import_from"),
        vm("n_image_storage", "  node = \"pve1\"\n  disk \"scsi0\" {\n    storage     = \"local-lvm\"\n    import_from = \"nosuch:import/x.raw\"\n  }\n".into(), "disk[\"scsi0\"].import_from: node pve1 has no storage \"nosuch\"", "import_from"),
        vm("n_image_content", "  node = \"pve1\"\n  disk \"scsi0\" {\n    storage     = \"local-lvm\"\n    import_from = \"local-lvm:import/x.raw\"\n  }\n".into(), "storage \"local-lvm\" on node pve1 does not hold `import`", "import_from"),
        vm("n_image_volid", "  node = \"pve1\"\n  disk \"scsi0\" {\n    storage     = \"local-lvm\"\n    import_from = \"talos.raw\"\n  }\n".into(), "\"talos.raw\" is not a volume id; write storage:path", "import_from"),
        vm("n_size_below_image", "  node = \"pve1\"\n  disk \"scsi0\" {\n    storage     = \"local-lvm\"\n    import_from = \"local:import/talos-nocloud-amd64.raw\"\n    size_gb     = 1\n  }\n".into(), "disk[\"scsi0\"].size_gb: 1 GiB is smaller than the image \"local:import/talos-nocloud-amd64.raw\" (1.22 GiB), and Proxmox VE cannot shrink disks. Set size_gb to 2 or more", "size_gb"),
        vm("n_iso_missing", img("  cdrom {\n    file_id = \"local:iso/nope.iso\"\n  }\n"), "cdrom.file_id: \"local:iso/nope.iso\" does not exist on node pve1", "file_id"),
        vm("n_iso_content", img("  cdrom {\n    file_id = \"local-lvm:iso/x.iso\"\n  }\n"), "cdrom.file_id: storage \"local-lvm\" on node pve1 does not hold `iso`", "file_id"),
        vm("n_pool", clone_with("  pool = \"nosuch\"\n"), "pool: \"nosuch\" does not exist (pools: infraflux, lab)", "pool"),
        vm("n_bridge", clone_with("  network \"net0\" {\n    bridge = \"vmbr9\"\n  }\n"), "network[\"net0\"].bridge: node pve1 has no bridge or SDN VNet \"vmbr9\" (it has vmbr0)", "bridge"),
        vm("n_efi_storage", clone_with("  bios = \"ovmf\"\n  efi_disk {\n    storage = \"local\"\n  }\n"), "efi_disk.storage: storage \"local\" on node pve1 does not hold `images`", "storage"),
        vm("n_tpm_storage", clone_with("  tpm_state {\n    storage = \"nosuch\"\n  }\n"), "tpm_state.storage: node pve1 has no storage \"nosuch\"", "storage"),
        vm("n_ci_storage", clone_with("  initialization {\n    datastore = \"local\"\n  }\n"), "initialization.datastore: storage \"local\" on node pve1 does not hold `images`", "datastore"),
        vm("n_scsi99", clone_with("  disk \"scsi99\" {\n    storage = \"local-lvm\"\n    size_gb = 4\n  }\n"), "disk[\"scsi99\"]: \"scsi99\" is beyond Proxmox VE's scsi slots (scsi0…scsi30)", "disk \"scsi99\""),
        vm("n_virtio16", clone_with("  disk \"virtio16\" {\n    storage = \"local-lvm\"\n    size_gb = 4\n  }\n"), "is beyond Proxmox VE's virtio slots (virtio0…virtio15)", "disk \"virtio16\""),
        vm("n_sata6", clone_with("  disk \"sata6\" {\n    storage = \"local-lvm\"\n    size_gb = 4\n  }\n"), "is beyond Proxmox VE's sata slots (sata0…sata5)", "disk \"sata6\""),
        vm("n_ide4", clone_with("  disk \"ide4\" {\n    storage = \"local-lvm\"\n    size_gb = 4\n  }\n"), "is beyond Proxmox VE's ide slots (ide0…ide3)", "disk \"ide4\""),
        vm("n_nvme", clone_with("  disk \"nvme0\" {\n    storage = \"local-lvm\"\n    size_gb = 4\n  }\n"), "\"nvme0\" is not a slot name; use scsi0…scsi30, virtio0…virtio15, sata0…sata5, ide0…ide3", "disk \"nvme0\""),
        vm("n_efidisk_slot", clone_with("  disk \"efidisk0\" {\n    storage = \"local-lvm\"\n    size_gb = 4\n  }\n"), "\"efidisk0\" is not a slot name", "disk \"efidisk0\""),
        vm("n_cdrom_slot", img("  cdrom {\n    file_id   = \"local:iso/talos-metal-amd64.iso\"\n    interface = \"ide9\"\n  }\n"), "cdrom.interface: \"ide9\" is not a drive slot", "interface"),
        vm("n_no_source", "  node = \"pve1\"\n".into(), "A boot source is needed", ""),
        vm("n_two_sources", clone_with("  disk \"scsi0\" {\n    storage     = \"local-lvm\"\n    import_from = \"local:import/talos-nocloud-amd64.raw\"\n  }\n"), "disk[\"scsi0\"].import_from and clone are both set", "import_from"),
        vm("n_no_size", clone_with("  disk \"scsi1\" {\n    storage = \"local-lvm\"\n  }\n"), "disk[\"scsi1\"].size_gb: a new empty disk needs a size", "disk \"scsi1\""),
        vm("n_ip_prefix", clone_with("  initialization {\n    ip_config \"ipconfig0\" {\n      ipv4_address = \"10.0.0.11\"\n    }\n  }\n"), "initialization.ip_config[\"ipconfig0\"].ipv4_address: \"10.0.0.11\" is neither \"dhcp\" nor an address with its prefix length", "ipv4_address"),
        vm("n_gateway_dhcp", clone_with("  initialization {\n    ip_config \"ipconfig0\" {\n      ipv4_address = \"dhcp\"\n      ipv4_gateway = \"10.0.0.1\"\n    }\n  }\n"), "ipv4_gateway is set but ipv4_address is not a static address", "ipv4_gateway"),
        vm("n_ipconfig32", clone_with("  initialization {\n    ip_config \"ipconfig32\" {\n      ipv4_address = \"dhcp\"\n    }\n  }\n"), "initialization.ip_config[\"ipconfig32\"]: slots are ipconfig0 … ipconfig31", "ip_config \"ipconfig32\""),
        vm("n_mtu_model", clone_with("  network \"net0\" {\n    bridge = \"vmbr0\"\n    model  = \"e1000\"\n    mtu    = 1450\n  }\n"), "network[\"net0\"].mtu: Proxmox VE sets the MTU of virtio NICs only", "mtu"),
    ]
}

/// One Terraform diagnostic: severity, the config line it points at, and its words.
#[derive(Debug)]
struct Diag {
    error: bool,
    line: Option<usize>,
    text: String,
}

/// The diagnostics Terraform printed with `-no-color`: each starts at an `Error:` or
/// `Warning:` line (inside a `│` box or not).
fn diags(o: &Out) -> Vec<Diag> {
    let mut out: Vec<(bool, Vec<String>)> = Vec::new();
    for l in o.all().lines() {
        let l = l.trim_start_matches(['│', '╷', '╵']).trim();
        if let Some(rest) = l.strip_prefix("Error: ") {
            out.push((true, vec![rest.to_owned()]));
        } else if let Some(rest) = l.strip_prefix("Warning: ") {
            out.push((false, vec![rest.to_owned()]));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(l.to_owned());
        }
    }
    out.into_iter()
        .map(|(error, body)| Diag {
            error,
            line: body.iter().find_map(|l| {
                let rest = l.strip_prefix("on main.tf line ")?;
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            }),
            text: body
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect()
}

/// `cases` as one configuration (after `head`), with each case's line range.
fn render(head: &str, cases: &[Case]) -> (String, Vec<(usize, usize)>) {
    let mut hcl = head.to_owned();
    let mut ranges = Vec::new();
    for c in cases {
        let first = hcl.lines().count() + 1;
        if c.provider {
            hcl.push_str(&format!(
                "provider \"infraflux\" {{\n  alias = \"{n}\"\n  proxmox {{\n    {b}\n  }}\n}}\n\nresource \"infraflux_proxmox_vm\" \"{n}\" {{\n  provider = infraflux.{n}\n{CLONE}}}\n\n",
                n = c.name,
                b = c.body
            ));
        } else {
            let name = if c.body.contains("  name =") {
                String::new()
            } else {
                format!("  name = \"{}\"\n", c.name.replace('_', "-"))
            };
            hcl.push_str(&format!(
                "resource \"infraflux_proxmox_vm\" \"{}\" {{\n{name}{}}}\n\n",
                c.name, c.body
            ));
        }
        ranges.push((first, hcl.lines().count()));
    }
    (hcl, ranges)
}

/// Each case has an error pointing at a line of its block that holds `code` (Terraform found
/// the attribute the diagnostic names) and saying `want`; no error falls outside the cases.
///
/// Terraform 1.0 points a diagnostic on a nested block's map key (`network["net32"]`) at an
/// enclosing block; later versions at the block itself.
fn assert_cases(
    tf: &Tf,
    what: &str,
    hcl: &str,
    o: &Out,
    cases: &[Case],
    ranges: &[(usize, usize)],
) {
    let ds = diags(o);
    let lines: Vec<&str> = hcl.lines().collect();
    let mut missing = Vec::new();
    for (c, (lo, hi)) in cases.iter().zip(ranges) {
        let ok = ds.iter().any(|d| {
            d.error
                && d.line.is_some_and(|l| (*lo..=*hi).contains(&l))
                && d.text.contains(c.want)
                && d.line.is_some_and(|l| {
                    let code = lines.get(l - 1).copied().unwrap_or_default();
                    code.contains(c.code)
                        || (!tf.at_least(1, 1)
                            && c.code.ends_with('"')
                            && code.trim_end().ends_with('{'))
                })
        });
        if !ok {
            let near: Vec<&Diag> = ds
                .iter()
                .filter(|d| d.line.is_some_and(|l| (*lo..=*hi).contains(&l)))
                .collect();
            missing.push(format!(
                "{} (lines {lo}-{hi}): want {:?} at {:?}; got {near:#?}",
                c.name, c.want, c.code
            ));
        }
    }
    let stray: Vec<&Diag> = ds
        .iter()
        .filter(|d| {
            d.error
                && !d
                    .line
                    .is_some_and(|l| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&l)))
        })
        .collect();
    assert!(
        missing.is_empty() && stray.is_empty(),
        "{what}: {} of {} cases not rejected as expected:\n{}\nerrors outside the cases: {stray:#?}\n\nfull output:\n{}",
        missing.len(),
        cases.len(),
        missing.join("\n"),
        o.all()
    );
}

both_terraforms!(bad_input_is_rejected_at_validate_or_plan, |tf: &Tf| {
    let lab = Lab::up();
    let vcases = validate_cases();
    let pcases = plan_cases();
    assert!(
        vcases.len() + pcases.len() >= 45,
        "{} cases",
        vcases.len() + pcases.len()
    );

    // One validate over every config-only mistake.
    let w = Work::new(tf);
    let (hcl, ranges) = render(&lab.provider(None), &vcases);
    w.config(&hcl);
    w.init();
    let o = w.fails(&["validate", "-no-color"]);
    assert_cases(tf, "validate", &hcl, &o, &vcases, &ranges);

    // One plan over every mistake the cluster or several attributes reveal, plus a resource
    // whose provider has no proxmox block.
    let w = Work::new(tf);
    let mut cases = pcases;
    let head = format!(
        "{}provider \"infraflux\" {{\n  alias = \"empty\"\n}}\n\n",
        lab.provider(None)
    );
    let (mut hcl, mut ranges) = render(&head, &cases);
    let first = hcl.lines().count() + 1;
    hcl.push_str(&format!(
        "resource \"infraflux_proxmox_vm\" \"n_no_block\" {{\n  provider = infraflux.empty\n{CLONE}}}\n"
    ));
    ranges.push((first, hcl.lines().count()));
    cases.push(vm(
        "n_no_block",
        String::new(),
        "infraflux_proxmox_vm needs a `proxmox { endpoint = …, api_token = … }` block",
        "",
    ));
    w.config(&hcl);
    w.init();
    lab.control("POST", "/requests/reset", None);
    let o = w.fails(&["plan", "-no-color", "-input=false"]);
    assert_cases(tf, "plan", &hcl, &o, &cases, &ranges);
    // The checks share the read cache: one node list, one storage list, one pool list for
    // the whole plan, however many VMs ask.
    let req = lab.control("GET", "/requests", None);
    for route in ["GET /nodes", "GET /nodes/{node}/storage", "GET /pools"] {
        assert_eq!(req["by_route"][route], 1, "{route}: {req}");
    }
    assert!(lab.guests().is_empty());
});

/// The VM ids in state.
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

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

fn tasks(lab: &Lab) -> Vec<Json> {
    lab.control("GET", "/state", None)["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn tasks_of(lab: &Lab, kind: &str) -> usize {
    tasks(lab).iter().filter(|t| t["type"] == kind).count()
}

/// The pids of `root`'s descendants whose command line names `needle`.
fn descendants_named(root: u32, needle: &str) -> Vec<u32> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after its `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pp) = ppid {
            parent.insert(pid, pp);
        }
    }
    let is_below = |mut p: u32| {
        while let Some(&pp) = parent.get(&p) {
            if pp == root {
                return true;
            }
            p = pp;
        }
        false
    };
    parent
        .keys()
        .copied()
        .filter(|&p| is_below(p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// Wait until `cond` holds (polling the lab), at most a minute.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: not within 60s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start `terraform apply`, wait for a task of `kind` to run in the lab, then kill -9 the
/// provider process it runs.
fn kill_provider_during(w: &Work, lab: &Lab, kind: &str) -> Out {
    let child: Child = w
        .command(&["apply", "-auto-approve", "-no-color", "-input=false"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start terraform apply");
    wait_for(&format!("a running {kind} task"), || {
        tasks(lab)
            .iter()
            .any(|t| t["type"] == kind && t["status"] == "running")
    });
    let pids = descendants_named(child.id(), "terraform-provider-infraflux");
    assert!(!pids.is_empty(), "no provider process below terraform");
    for p in &pids {
        let st = std::process::Command::new("kill")
            .args(["-9", &p.to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -9 {p}");
    }
    let o = child.wait_with_output().expect("terraform ends");
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert_ne!(
        out.code,
        0,
        "the apply survived its provider: {}",
        out.all()
    );
    out
}

/// Start `terraform apply`, wait for a task of `kind` to run in the lab, then kill -9
/// Terraform itself; its provider notices and exits (it is killed if it lingers).
fn kill_terraform_during(w: &Work, lab: &Lab, kind: &str) {
    let mut child: Child = w
        .command(&["apply", "-auto-approve", "-no-color", "-input=false"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start terraform apply");
    wait_for(&format!("a running {kind} task"), || {
        tasks(lab)
            .iter()
            .any(|t| t["type"] == kind && t["status"] == "running")
    });
    let providers = descendants_named(child.id(), "terraform-provider-infraflux");
    assert!(!providers.is_empty(), "no provider process below terraform");
    // Terraform 1.0 runs itself under a panic-catching parent: kill the one doing the work.
    for p in descendants_named(child.id(), "terraform")
        .into_iter()
        .filter(|p| !providers.contains(p))
    {
        let _ = std::process::Command::new("kill")
            .args(["-9", &p.to_string()])
            .status();
    }
    child.kill().expect("kill -9 terraform");
    let _ = child.wait();
    let alive = |p: &u32| std::path::Path::new(&format!("/proc/{p}")).exists();
    let started = Instant::now();
    while providers.iter().any(alive) && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for p in providers.iter().filter(|p| alive(p)) {
        eprintln!("provider {p} outlived Terraform by 15s; killing it");
        let _ = std::process::Command::new("kill")
            .args(["-9", &p.to_string()])
            .status();
    }
}

/// After the kill: nothing in state, while the task making the VM still runs; the next apply
/// waits for it and adopts its VM: one VM, one create task, no marker left.
fn next_apply_adopts(w: &Work, lab: &Lab, kind: &str) {
    assert!(state_vmids(w).is_empty(), "{:?}", w.state_addresses());
    assert!(lab.guests().len() <= 1, "{:?}", lab.guests());
    w.apply();
    let guests = lab.guests();
    assert_eq!(guests.len(), 1, "no duplicate: {guests:?}");
    assert_eq!(tasks_of(lab, kind), 1, "created once");
    assert_eq!(state_vmids(w), guests);
    let vm = lab.vm(guests[0]);
    assert!(vm["lock"].is_null(), "{vm:#}");
    assert_eq!(vm["status"], "running");
    assert!(
        !vm["config"]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("infraflux-unfinished-create"),
        "the marker is gone: {vm:#}"
    );
    w.assert_plan_empty();
    w.destroy();
    lab.assert_only_templates_left();
}

both_terraforms!(provider_killed_during_clone_next_apply_adopts, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!(
        "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  name        = \"kill-clone\"\n  description = \"managed\"\n{CLONE}  initialization {{\n    ip_config \"ipconfig0\" {{\n      ipv4_address = \"10.9.0.11/24\"\n      ipv4_gateway = \"10.9.0.1\"\n    }}\n  }}\n}}\n",
        lab.provider(None)
    ));
    w.init();
    // Slow enough that the next apply starts while the clone still runs.
    lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 3000})));
    kill_provider_during(&w, &lab, "qmclone");
    lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 0})));
    next_apply_adopts(&w, &lab, "qmclone");
});

both_terraforms!(
    provider_killed_during_image_create_next_apply_adopts,
    |tf: &Tf| {
        let lab = Lab::up();
        let w = Work::new(tf);
        w.config(&format!(
            "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  name = \"kill-create\"\n{IMAGE}}}\n",
            lab.provider(None)
        ));
        w.init();
        lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 3000})));
        kill_provider_during(&w, &lab, "qmcreate");
        lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 0})));
        next_apply_adopts(&w, &lab, "qmcreate");
    }
);

/// Named clones and an image VM: `count` of each.
fn fleet(lab: &Lab) -> String {
    format!(
        "{}resource \"infraflux_proxmox_vm\" \"c\" {{\n  count = 3\n  name  = \"seeded-c${{count.index}}\"\n  tags  = [\"seeded\"]\n{CLONE}  disk \"scsi0\" {{\n    storage = \"local-lvm\"\n    size_gb = 12\n  }}\n}}\n\nresource \"infraflux_proxmox_vm\" \"i\" {{\n  name = \"seeded-i\"\n{IMAGE}}}\n",
        lab.provider(None)
    )
}

// Seeded faults (5xx, dropped connections, lock timeouts, all at once) stay on for two
// applies: together they converge on exactly the VMs of the config, nothing duplicated.
both_terraforms!(seeded_faults_converge_within_two_applies, |tf: &Tf| {
    for seed in ["11", "23", "37"] {
        let lab = Lab::up_with(&["--seed", seed]);
        let w = Work::new(tf);
        w.config(&fleet(&lab));
        w.init();
        lab.control(
            "POST",
            "/faults",
            Some(&json!({"error_rate_5xx": 0.1, "drop_connection_rate": 0.1, "lock_timeouts": 3})),
        );
        let first = w.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
        if first.code != 0 {
            eprintln!("seed {seed}: the first apply failed:\n{}", first.all());
            assert!(
                !first.text().contains("timeout 60s"),
                "an instant failure reported as a timeout: {}",
                first.all()
            );
            let second = w.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
            assert_eq!(
                second.code,
                0,
                "seed {seed}: two applies did not converge:\n{}",
                second.all()
            );
        }
        lab.control(
            "POST",
            "/faults",
            Some(&json!({"error_rate_5xx": 0.0, "drop_connection_rate": 0.0, "lock_timeouts": 0})),
        );
        let guests = sorted(lab.guests());
        assert_eq!(
            guests.len(),
            4,
            "seed {seed}: no orphan, no duplicate: {guests:?}"
        );
        assert_eq!(state_vmids(&w), guests, "seed {seed}");
        for g in &guests {
            let vm = lab.vm(*g);
            assert_eq!(vm["status"], "running", "seed {seed}: {vm:#}");
            assert!(vm["lock"].is_null(), "seed {seed}: {vm:#}");
        }
        w.assert_plan_empty();
        w.destroy();
        lab.assert_only_templates_left();
    }
});

// Destroy is always possible: a VM already gone is success (here another workspace that
// imported it destroyed it first), and no plan-time check of the cluster stands in the way.
both_terraforms!(destroy_succeeds_when_the_vm_is_gone, |tf: &Tf| {
    let lab = Lab::up();
    let hcl = format!(
        "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  name = \"gone\"\n  pool = \"lab\"\n{CLONE}}}\n",
        lab.provider(None)
    );
    let w = Work::new(tf);
    w.config(&hcl);
    w.init();
    w.apply();
    let id = state_vmids(&w)[0];
    let other = Work::new(tf);
    other.config(&hcl);
    other.init();
    other.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "infraflux_proxmox_vm.vm",
        &format!("pve1/{id}"),
    ]);
    other.destroy();
    lab.assert_only_templates_left();
    let o = w.run(&[
        "destroy",
        "-auto-approve",
        "-no-color",
        "-input=false",
        "-refresh=false",
    ]);
    assert_eq!(o.code, 0, "{}", o.all());
    assert!(w.state_addresses().is_empty());
});

// A MAC and tags written the way Proxmox VE keeps them apply once: no perpetual diff.
both_terraforms!(pinned_mac_and_tags_plan_empty, |tf: &Tf| {
    let lab = Lab::up();
    let w = Work::new(tf);
    w.config(&format!(
        "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  name = \"pinned\"\n  tags = [\"talos\", \"k8s_cp\", \"a.b-c\"]\n{CLONE}  network \"net0\" {{\n    bridge = \"vmbr0\"\n    mac    = \"BC:24:11:0A:1B:2C\"\n  }}\n}}\n",
        lab.provider(None)
    ));
    w.init();
    w.apply();
    let id = state_vmids(&w)[0];
    let vm = lab.vm(id);
    let net0 = vm["config"]["net0"].as_str().unwrap_or_default();
    assert!(net0.contains("BC:24:11:0A:1B:2C"), "{vm:#}");
    assert_eq!(
        w.resource("infraflux_proxmox_vm.vm")["network"]["net0"]["mac"],
        "BC:24:11:0A:1B:2C"
    );
    w.assert_plan_empty();
    w.destroy();
    lab.assert_only_templates_left();
});

both_terraforms!(
    terraform_killed_during_clone_next_apply_adopts,
    |tf: &Tf| {
        let lab = Lab::up();
        let w = Work::new(tf);
        w.config(&format!(
        "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  name = \"kill-terraform\"\n{CLONE}}}\n",
        lab.provider(None)
    ));
        w.init();
        lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 3000})));
        kill_terraform_during(&w, &lab, "qmclone");
        lab.control("POST", "/faults", Some(&json!({"slow_tasks_ms": 0})));
        next_apply_adopts(&w, &lab, "qmclone");
    }
);
