//! Crash safety and bad input on the Talos side, through real Terraform against the lab:
//! kill -9 of the provider and of Terraform during install and bootstrap, a table of wrong
//! configurations each refused at validate and plan on the attribute at fault, destroy that
//! nothing blocks, and waits that give up when nothing answers.

use std::process::Child;
use std::time::{Duration, Instant};

use acceptance_tests::lab::Lab;
use acceptance_tests::{Tf, Work, both_terraforms};
use serde_json::Value as Json;

/// Loopback addresses of one test (see talos_cluster.rs: tests 0–7 are taken there).
fn net(tf: &Tf, test: u8) -> impl Fn(u8) -> String {
    let v = if tf.at_least(1, 12) { 15 } else { 10 };
    move |host| format!("127.31.{}.{host}", test * 20 + v)
}

/// Marks the line a case breaks: its diagnostic must point there (at the resource when no
/// line is marked).
const BAD: &str = " # BAD";

/// One wrong configuration: the resource's body and a text its diagnostic must hold.
struct Case {
    kind: &'static str,
    body: String,
    want: &'static str,
}

const CP: &str = "  control_plane {\n    hostname = \"cp-1\"\n    address  = \"192.0.2.11\"\n  }\n";

/// A cluster whose attribute lines are replaced by `set` (`key = value`, marked as the bad
/// line) or added, with `blocks` as its machines.
fn cluster(set: &[&str], blocks: &str, want: &'static str) -> Case {
    let mut attrs: Vec<(String, String)> = [
        ("name", "\"lab\""),
        ("endpoint", "\"https://192.0.2.11:6443\""),
        ("talos_version", "\"v1.13.9\""),
        ("kubernetes_version", "\"1.34.1\""),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), format!("  {k} = {v}")))
    .collect();
    for line in set {
        let (k, v) = line.split_once(" = ").expect("key = value");
        let text = format!("  {k} = {v}{BAD}");
        match attrs.iter_mut().find(|(n, _)| n == k) {
            Some(a) => a.1 = text,
            None => attrs.push((k.to_owned(), text)),
        }
    }
    let mut body: String = attrs.into_iter().map(|(_, l)| l + "\n").collect();
    body.push_str(blocks);
    Case {
        kind: "infraflux_talos_cluster",
        body,
        want,
    }
}

fn secrets(talos_version: &str, want: &'static str) -> Case {
    Case {
        kind: "infraflux_talos_machine_secrets",
        body: format!("  talos_version = {talos_version}{BAD}\n"),
        want,
    }
}

/// A machine block with extra lines (which carry the mark).
fn machine(block: &str, hostname: &str, address: &str, extra: &str) -> String {
    format!("  {block} {{\n    hostname = {hostname}\n    address  = {address}\n{extra}  }}\n")
}

fn patch(p: &str) -> String {
    serde_json::to_string(p).expect("JSON string")
}

fn cases() -> Vec<Case> {
    let b = BAD;
    let cp_bad_host = format!(
        "  control_plane {{\n    hostname = \"CP_1\"{b}\n    address  = \"192.0.2.11\"\n  }}\n"
    );
    let cp_addr = |a: &str| {
        format!("  control_plane {{\n    hostname = \"cp-1\"\n    address  = {a}{b}\n  }}\n")
    };
    let cp_patch = |p: &str| {
        machine(
            "control_plane",
            "\"cp-1\"",
            "\"192.0.2.11\"",
            &format!("    config_patches = [{}]{b}\n", patch(p)),
        )
    };
    let with_worker = |addr: &str, mark: bool| {
        format!(
            "{CP}  worker {{\n    hostname = \"w-1\"\n    address  = \"{addr}\"{}\n  }}\n",
            if mark { b } else { "" }
        )
    };
    let vip =
        |a: &str, link: &str| format!("  vip {{\n    address = {a}\n    link    = {link}\n  }}\n");
    let pod = "cluster:\n  network:\n    podSubnets: [not-a-cidr]\n";
    let svc = "cluster:\n  network:\n    serviceSubnets: [10.96.0.0/33]\n";
    vec![
        // Versions.
        cluster(&["talos_version = \"1.13.9\""], CP, "use \"v1.13.9\""),
        cluster(
            &["talos_version = \"v1.9.0\""],
            CP,
            "Talos v1.9.0 is not supported",
        ),
        cluster(&["talos_version = \"v2.0.0\""], CP, "is not supported"),
        cluster(
            &["talos_version = \"latest\""],
            CP,
            "not a Talos release tag",
        ),
        cluster(
            &["talos_version = \"v1.13\""],
            CP,
            "not a Talos release tag",
        ),
        cluster(&["talos_version = \"\""], CP, "not a Talos release tag"),
        cluster(
            &["kubernetes_version = \"garbage\""],
            CP,
            "is not a Kubernetes version",
        ),
        cluster(
            &["kubernetes_version = \"1.34\""],
            CP,
            "is not a Kubernetes version",
        ),
        cluster(
            &["kubernetes_version = \"2.0.0\""],
            CP,
            "not a Kubernetes 1.x version",
        ),
        cluster(
            &["kubernetes_version = \"1.29.0\""],
            CP,
            "not supported by Talos v1.13",
        ),
        cluster(
            &["kubernetes_version = \"1.37.0\""],
            CP,
            "runs Kubernetes 1.31 to 1.36",
        ),
        // Names and endpoints.
        cluster(&["name = \"Bad Name!\""], CP, "is not a valid cluster name"),
        cluster(&["name = \"\""], CP, "is not a valid cluster name"),
        cluster(&["name = \"-lab\""], CP, "is not a valid cluster name"),
        cluster(&["name = \"Lab\""], CP, "is not a valid cluster name"),
        cluster(
            &["name = \"lab.example\""],
            CP,
            "is not a valid cluster name",
        ),
        cluster(
            &["endpoint = \"192.0.2.11:6443\""],
            CP,
            "must be https://HOST:PORT",
        ),
        cluster(
            &["endpoint = \"https://192.0.2.11\""],
            CP,
            "must be https://HOST:PORT",
        ),
        cluster(
            &["endpoint = \"http://192.0.2.11:6443\""],
            CP,
            "must be https://HOST:PORT",
        ),
        cluster(
            &["endpoint = \"https://192.0.2.11:0\""],
            CP,
            "must be https://HOST:PORT",
        ),
        cluster(
            &["endpoint = \"https://bad host:6443\""],
            CP,
            "must be https://HOST:PORT",
        ),
        cluster(
            &["endpoint = \"https://192.0.2.21:6443\""],
            &with_worker("192.0.2.21", false),
            "the Kubernetes API runs on control planes only",
        ),
        // VIP.
        cluster(
            &[],
            &format!("{CP}  vip {{\n    address = \"192.0.2.11\"{b}\n  }}\n"),
            "is the address of machine cp-1",
        ),
        cluster(
            &[],
            &format!("{CP}  vip {{\n    address = \"not-an-ip\"{b}\n  }}\n"),
            "is not an IP address",
        ),
        cluster(
            &[],
            &format!("{CP}{}", vip("\"192.0.2.10\"", &format!("\"eth 0\"{b}"))),
            "is not a network interface name",
        ),
        // Machines.
        cluster(&[], &cp_bad_host, "is not a valid hostname"),
        cluster(
            &[],
            &cp_addr("\"not an address\""),
            "is not a machine address",
        ),
        cluster(&[], &cp_addr("\"192.0.2.300\""), "is not a machine address"),
        cluster(
            &[],
            &cp_addr("\"192.0.2.11:0\""),
            "is not a machine address",
        ),
        cluster(
            &[],
            &cp_addr("\"http://192.0.2.11\""),
            "is not a machine address",
        ),
        cluster(
            &[],
            &with_worker("192.0.2.11", true),
            "both have address 192.0.2.11",
        ),
        cluster(
            &[],
            &format!(
                "{CP}  worker {{\n    hostname = \"cp-1\"{b}\n    address  = \"192.0.2.21\"\n  }}\n"
            ),
            "Two machines are named \"cp-1\"",
        ),
        cluster(
            &[],
            // No control_plane line to point at: the resource's.
            "  worker {\n    hostname = \"w-1\"\n    address  = \"192.0.2.21\"\n  }\n",
            "at least one control_plane",
        ),
        cluster(
            &[],
            &format!("{CP}  install {{\n    disk = \"sda\"{b}\n  }}\n"),
            "is not a disk device path",
        ),
        cluster(
            &[],
            &machine(
                "control_plane",
                "\"cp-1\"",
                "\"192.0.2.11\"",
                &format!("    install_disk = \"nvme0n1\"{b}\n"),
            ),
            "is not a disk device path",
        ),
        cluster(
            &[],
            &format!(
                "{CP}  install {{\n    image = \"ghcr.io/siderolabs/installer:v1.12.0\"{b}\n  }}\n"
            ),
            "tag is v1.12.0",
        ),
        cluster(&["boot_timeout = \"soon\""], CP, "boot_timeout"),
        cluster(&["cni = \"calico\""], CP, "calico"),
        cluster(&["apply_mode = \"sometimes\""], CP, "sometimes"),
        // Machine secrets given to the cluster.
        cluster(&["machine_secrets = \"{}\""], CP, "Invalid machine_secrets"),
        cluster(
            &["machine_secrets = \"not json\""],
            CP,
            "Invalid machine_secrets",
        ),
        // Patches: the patch (config_patches[i]) and the machines are named.
        cluster(
            &[&format!(
                "config_patches = [{}]",
                patch("machine: [unclosed")
            )],
            CP,
            "cluster config_patches[0]",
        ),
        cluster(
            &[&format!("config_patches = [{}]", patch(pod))],
            CP,
            "\"not-a-cidr\" is not a CIDR",
        ),
        cluster(
            &[&format!(
                "config_patches = [{}, {}]",
                patch("machine:\n  sysctls: {}\n"),
                patch(svc)
            )],
            CP,
            "cluster config_patches[1] at /cluster/network/serviceSubnets/0",
        ),
        cluster(
            &[&format!(
                "config_patches = [{}]",
                patch("[{\"op\": \"remove\", \"path\": \"/machine/nope\"}]")
            )],
            CP,
            "/machine/nope",
        ),
        cluster(
            &[&format!(
                "config_patches = [{}]",
                patch("cluster:\n  clusterName: Bad Name!\n")
            )],
            CP,
            "/cluster/clusterName",
        ),
        cluster(
            &[],
            &cp_patch("machine:\n  type: worker\n"),
            "for machine cp-1 (control_plane[0])",
        ),
        cluster(
            &[],
            &cp_patch("machine:\n  install:\n    disk: sda\n"),
            "node \"cp-1\" config_patches[0] at /machine/install/disk",
        ),
        // The secrets resource.
        secrets("\"1.13.9\"", "use \"v1.13.9\""),
        secrets("\"v1.6.0\"", "is not supported"),
        secrets("\"v1.99.0\"", "is not supported"),
        secrets("\"garbage\"", "not a Talos release tag"),
        secrets("\"\"", "not a Talos release tag"),
    ]
}

/// The configuration holding every case as its own resource, and per case the line range of
/// its block and the line it breaks.
fn table(cases: &[Case]) -> (String, Vec<(usize, usize, usize)>) {
    let mut hcl = String::from(
        "terraform {\n  required_providers {\n    infraflux = { source = \"infraflux/infraflux\" }\n  }\n}\n",
    );
    let mut spans = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        hcl.push('\n');
        let start = hcl.lines().count() + 1;
        hcl.push_str(&format!(
            "resource {:?} \"c{i:02}\" {{\n{}}}\n",
            c.kind, c.body
        ));
        let end = hcl.lines().count();
        let bad = hcl
            .lines()
            .enumerate()
            .skip(start - 1)
            .take(end + 1 - start)
            .find(|(_, l)| l.ends_with(BAD))
            .map_or(start, |(n, _)| n + 1);
        spans.push((start, end, bad));
    }
    (hcl, spans)
}

/// Checks that every case got an error on its bad line saying `want`; returns the failures.
fn check_table(
    cases: &[Case],
    spans: &[(usize, usize, usize)],
    diags: &[Json],
    step: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, (c, (start, end, bad))) in cases.iter().zip(spans).enumerate() {
        let mine: Vec<&Json> = diags
            .iter()
            .filter(|d| d["severity"] == "error")
            .filter(|d| {
                d["range"]["start"]["line"]
                    .as_u64()
                    .is_some_and(|l| (*start..=*end).contains(&(l as usize)))
            })
            .collect();
        let text = |d: &Json| {
            format!(
                "{} {}",
                d["summary"].as_str().unwrap_or(""),
                d["detail"].as_str().unwrap_or("")
            )
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
        };
        let hit = mine.iter().find(|d| text(d).contains(c.want));
        match hit {
            None => failures.push(format!(
                "{step} c{i:02}: no error saying {:?}; got {:?}",
                c.want,
                mine.iter().map(|d| text(d)).collect::<Vec<_>>()
            )),
            Some(d) if d["range"]["start"]["line"].as_u64() != Some(*bad as u64) => {
                failures.push(format!(
                    "{step} c{i:02}: error on line {} instead of the bad line {bad}: {}",
                    d["range"]["start"]["line"],
                    text(d)
                ))
            }
            Some(_) => {}
        }
    }
    failures
}

both_terraforms!(
    bad_input_table_is_refused_at_validate_and_plan,
    |tf: &Tf| {
        let cases = cases();
        assert!(cases.len() >= 40, "{} cases", cases.len());
        let (hcl, spans) = table(&cases);
        let w = Work::new(tf);
        w.config(&hcl);
        w.init();

        let out = w.fails(&["validate", "-json", "-no-color"]);
        let v: Json = serde_json::from_str(&out.stdout).expect("validate JSON");
        let diags = v["diagnostics"].as_array().cloned().unwrap_or_default();
        let mut failures = check_table(&cases, &spans, &diags, "validate");

        let out = w.fails(&["plan", "-json", "-no-color", "-input=false"]);
        let diags: Vec<Json> = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .filter(|l| l["type"] == "diagnostic")
            .map(|l| l["diagnostic"].clone())
            .collect();
        failures.extend(check_table(&cases, &spans, &diags, "plan"));
        assert!(
            failures.is_empty(),
            "{} failures:\n{}\n\n{hcl}",
            failures.len(),
            failures.join("\n")
        );
    }
);

/// Processes whose parent is `pid`, with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces, so split after its `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmd = std::fs::read(format!("/proc/{child}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            out.push((child, cmd));
        }
    }
    out
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) on a process this test started (or its child).
    assert_eq!(
        unsafe { libc::kill(pid as i32, libc::SIGKILL) },
        0,
        "kill -9 {pid}"
    );
}

/// Waits (polling the lab and the state file) until `ready` holds, or panics after 5 min with
/// the apply's output.
fn wait_until(apply: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Ok(Some(st)) = apply.try_wait() {
            panic!("the apply ended ({st}) before {what}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never saw {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Who is killed: the provider (Terraform reports the crash) or Terraform itself.
#[derive(Clone, Copy, Debug)]
enum Victim {
    Provider,
    Terraform,
}

/// Every process below `pid`, with its command line.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut all = children(pid);
    let mut i = 0;
    while i < all.len() {
        all.extend(children(all[i].0));
        i += 1;
    }
    all
}

/// kill -9 of the victim. Terraform 1.0 runs under panicwrap (a Terraform process below the
/// one started), so "Terraform" is every process of the tree that is not a provider.
fn kill(apply: &mut Child, victim: Victim) {
    let tf = apply.id();
    let (providers, terraform): (Vec<_>, Vec<_>) = descendants(tf)
        .into_iter()
        .partition(|(_, cmd)| cmd.contains("terraform-provider-"));
    match victim {
        Victim::Provider => {
            let ours: Vec<u32> = providers
                .into_iter()
                .filter(|(_, cmd)| cmd.contains("terraform-provider-infraflux"))
                .map(|(p, _)| p)
                .collect();
            assert!(!ours.is_empty(), "no provider process under Terraform {tf}");
            for p in ours {
                sigkill(p);
            }
        }
        Victim::Terraform => {
            for (p, _) in terraform {
                sigkill(p);
            }
            sigkill(tf);
        }
    }
    let _ = apply.wait();
}

both_terraforms!(
    kill_9_during_install_and_bootstrap_loses_no_secret,
    |tf: &Tf| {
        let lab = Lab::up();
        let ip = net(tf, 9);
        let w = Work::new(tf);
        w.copy_stack();
        w.write(
            "terraform.tfvars.json",
            &lab.stack_vars(&[("cp-1", ip(11))], &[("worker-1", ip(21))]),
        );
        w.init();
        let secrets_in_state = |w: &Work| {
            let raw: Json = serde_json::from_str(&w.raw_state()).unwrap_or(Json::Null);
            raw["resources"].as_array().and_then(|rs| {
                rs.iter()
                    .find(|r| r["type"] == "infraflux_talos_machine_secrets")
                    .and_then(|r| r["instances"][0]["attributes"]["machine_secrets"].as_str())
                    .map(str::to_owned)
            })
        };
        let args = ["apply", "-auto-approve", "-no-color", "-input=false"];
        let spawn = |w: &Work| {
            w.command(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start terraform apply")
        };
        let stage = |lab: &Lab, s: &str| lab.talos_nodes().iter().any(|n| n["stage"] == s);

        // 1. The provider dies while a machine installs its config.
        lab.control(
            "POST",
            "/faults",
            Some(&serde_json::json!({"slow_talos_install_ms": 60000})),
        );
        let mut apply = spawn(&w);
        wait_until(&mut apply, "a machine installing", || {
            stage(&lab, "installing")
        });
        let secrets =
            secrets_in_state(&w).expect("the secrets are in state before any machine installs");
        kill(&mut apply, Victim::Provider);
        lab.control(
            "POST",
            "/faults",
            Some(&serde_json::json!({"slow_talos_install_ms": 0})),
        );

        // 2. Terraform dies while bootstrap is refused (etcd not ready yet).
        lab.control(
            "POST",
            "/faults",
            Some(&serde_json::json!({"bootstrap_not_ready": 1000})),
        );
        let mut apply = spawn(&w);
        wait_until(&mut apply, "bootstrap tried", || {
            lab.control("GET", "/faults", None)["bootstrap_not_ready"]
                .as_u64()
                .is_some_and(|n| n < 1000)
        });
        kill(&mut apply, Victim::Terraform);
        lab.control(
            "POST",
            "/faults",
            Some(&serde_json::json!({"bootstrap_not_ready": 0})),
        );
        // The orphaned provider notices its Terraform is gone and exits (see handshake.rs).

        // The next apply converges on the same secrets.
        w.apply();
        assert_eq!(
            secrets_in_state(&w).as_deref(),
            Some(secrets.as_str()),
            "the secrets survived"
        );
        let r = w.resource("module.cluster.infraflux_talos_cluster.this");
        assert_eq!(r["machine_secrets"], secrets.as_str());
        for (name, node) in r["nodes"].as_object().cloned().unwrap_or_default() {
            assert_eq!(node["stage"], "running", "{name}");
        }
        assert!(
            r["kubeconfig"]
                .as_str()
                .is_some_and(|k| k.contains("admin@"))
        );
        w.assert_plan_empty();
        w.destroy();
        lab.assert_only_templates_left();
    }
);

/// One VM from the Talos image at `ip` (as in talos_cluster.rs).
fn talos_vm(name: &str, ip: &str) -> String {
    format!(
        r#"
resource "infraflux_proxmox_vm" "{name}" {{
  node = "pve1"
  name = "{name}"
  disk "scsi0" {{
    storage     = "local-lvm"
    import_from = "local:import/talos-nocloud-amd64.raw"
    size_gb     = 10
  }}
  network "net0" {{
    bridge = "vmbr0"
  }}
  initialization {{
    ip_config "ipconfig0" {{
      ipv4_address = "{ip}/8"
      ipv4_gateway = "127.0.0.1"
    }}
  }}
}}
"#
    )
}

both_terraforms!(
    nothing_answering_fails_fast_and_destroy_still_works,
    |tf: &Tf| {
        let lab = Lab::up();
        let ip = net(tf, 10);
        let w = Work::new(tf);
        let hcl = |extra: &str| {
            format!(
                r#"{provider}{cp}
resource "infraflux_talos_machine_secrets" "this" {{
  talos_version = "v1.13.9"
}}

resource "infraflux_talos_cluster" "this" {{
  name               = "reliable"
  endpoint           = "https://{cp_ip}:6443"
  talos_version      = "v1.13.9"
  kubernetes_version = "1.34.1"
  machine_secrets    = infraflux_talos_machine_secrets.this.machine_secrets
  boot_timeout       = "20s"
{extra}
  control_plane {{
    hostname = "cp-1"
    address  = "{cp_ip}"
  }}
  worker {{
    hostname = "worker-1"
    address  = "{nobody}"
  }}
  on_destroy {{
    reset = true
  }}
  depends_on = [infraflux_proxmox_vm.cp-1]
}}
"#,
                provider = lab.provider(None),
                cp = talos_vm("cp-1", &ip(11)),
                cp_ip = ip(11),
                nobody = ip(99),
            )
        };
        w.config(&hcl(""));
        w.init();
        // Nothing listens at the worker's address: the apply gives up after boot_timeout, not
        // the 30 min create timeout, naming the machine, the phase and what it last saw.
        let out = w.apply_fails();
        let text = out.text();
        assert!(
            text.contains(&format!("Talos machine worker-1 ({})", ip(99)))
                && text.contains("apply configuration failed")
                && text.contains("longer than boot_timeout")
                && text.to_lowercase().contains("refused"),
            "{text}"
        );

        // Configuration made invalid after the fact (a typo while tearing down) does not block
        // destroy; plan still refuses it.
        w.config(&hcl("").replace("name               = \"reliable\"", "name = \"Bad Name!\""));
        let out = w.fails(&["plan", "-no-color", "-input=false"]);
        assert!(
            out.text().contains("is not a valid cluster name"),
            "{}",
            out.text()
        );
        // An address no client can use in state (written by an older provider, or edited)
        // is skipped with a warning.
        let state = w
            .raw_state()
            .replace(&format!("\"{}\"", ip(99)), "\"bad address!\"");
        w.write("terraform.tfstate", &state);
        let out = w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
        assert!(
            out.text().contains("ignored: this run destroys"),
            "the refusal is said as a warning:\n{}",
            out.text()
        );
        assert!(
            out.text().contains("Talos machine worker-1 not reset"),
            "{}",
            out.text()
        );
        assert!(w.state_addresses().is_empty(), "{:?}", w.state_addresses());
        lab.assert_only_templates_left();
    }
);

both_terraforms!(
    machine_secrets_never_regenerate_and_import_from_a_file,
    |tf: &Tf| {
        let w = Work::new(tf);
        let hcl = |version: &str| {
            format!(
                "terraform {{\n  required_providers {{\n    infraflux = {{ source = \"infraflux/infraflux\" }}\n  }}\n}}\n\nresource \"infraflux_talos_machine_secrets\" \"this\" {{\n  talos_version = \"{version}\"\n}}\n"
            )
        };
        w.config(&hcl("v1.13.9"));
        w.init();
        w.apply();
        let first = w.resource("infraflux_talos_machine_secrets.this");
        let secrets = first["machine_secrets"]
            .as_str()
            .expect("secrets")
            .to_owned();
        assert!(secrets.contains("os_ca"), "{first:#}");
        assert!(
            first["client_configuration"]["crt"]
                .as_str()
                .is_some_and(|c| c.contains("CERTIFICATE"))
        );
        w.assert_plan_empty();

        // Another Talos version changes in place; the secrets stay.
        w.config(&hcl("v1.14.0"));
        w.apply();
        let r = w.resource("infraflux_talos_machine_secrets.this");
        assert_eq!(r["machine_secrets"], secrets.as_str());
        assert_eq!(r["id"], first["id"]);

        // Lost from state (or moved to another state): imported from a file, the same secrets.
        w.ok(&["state", "rm", "infraflux_talos_machine_secrets.this"]);
        w.write("secrets.json", &secrets);
        let file = w.path().join("secrets.json");
        let out = w.ok(&[
            "import",
            "-no-color",
            "-input=false",
            "infraflux_talos_machine_secrets.this",
            file.to_str().unwrap_or_default(),
        ]);
        assert!(
            !out.all().contains("BEGIN"),
            "no secret printed:\n{}",
            out.all()
        );
        let r = w.resource("infraflux_talos_machine_secrets.this");
        assert_eq!(r["machine_secrets"], secrets.as_str());
        assert_eq!(r["id"], first["id"]);
        // Only talos_version (not known to an import) is planned.
        w.apply();
        assert_eq!(
            w.resource("infraflux_talos_machine_secrets.this")["machine_secrets"],
            secrets.as_str()
        );
        w.assert_plan_empty();

        // A file that is not the secrets is refused, naming the file.
        w.ok(&["state", "rm", "infraflux_talos_machine_secrets.this"]);
        w.write("bad.json", "{\"os_ca\": 1}");
        let bad = w.path().join("bad.json");
        let out = w.fails(&[
            "import",
            "-no-color",
            "-input=false",
            "infraflux_talos_machine_secrets.this",
            bad.to_str().unwrap_or_default(),
        ]);
        assert!(
            out.text().contains("Invalid machine secrets to import"),
            "{}",
            out.text()
        );
    }
);
