//! `make bench`: our provider against a Go terraform-plugin-framework provider, measured in
//! the same run on the same machine. Writes a JSON summary.
//!
//! - start → handshake line, with PLUGIN_CLIENT_CERT set as Terraform does (AutoMTLS)
//! - GetProviderSchema round trip over the mTLS connection
//! - idle RSS after the schema call, and peak RSS
//! - binary size on disk (ours is stripped by the release profile)
//! - refresh-plan of 100 and 500 VMs against the lab with 10 ms added latency: wall time, API
//!   calls per VM read (the lab counts requests), the provider's peak RSS, next to the floor:
//!   the minimal round trips (one shared VM list + one config GET per VM) ÷ Terraform's
//!   parallelism (10) × latency, plus Terraform's own time for as many resources of a no-op
//!   provider (the test provider); and beside it the same floor with the no-op resources
//!   wearing our schema and config (`tftest_mirror`), since Terraform's own work grows with them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use acceptance_tests::lab::Lab;
use acceptance_tests::plugin_client::{ClientCert, Plugin};
use acceptance_tests::{Tf, Work};
use serde_json::json;
use tfplugin::proto::tfplugin6 as pb;

const RUNS: usize = 25;
const SCHEMA_CALLS: usize = 200;
/// VM counts of the refresh benchmark.
const REFRESH_SIZES: [u64; 2] = [100, 500];
/// Added latency of every Proxmox API request during the refresh benchmark.
const LATENCY_MS: u64 = 10;
/// Terraform's default `-parallelism`.
const TF_PARALLELISM: u64 = 10;
/// Plans timed per measurement (the median is reported).
const PLAN_RUNS: usize = 7;
/// How often the RSS sampler looks at the provider process.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

struct Args {
    out: PathBuf,
    bin_dir: PathBuf,
    /// `--only refresh`: just the refresh-plan measurements (for profiling).
    only_refresh: bool,
    sizes: Vec<u64>,
}

fn args() -> Args {
    let mut out = PathBuf::from("bench/results.json");
    let mut bin_dir = acceptance_tests::root().join("target/release");
    let mut only_refresh = false;
    let mut sizes = REFRESH_SIZES.to_vec();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().map(PathBuf::from).unwrap_or(out),
            "--bin-dir" => bin_dir = it.next().map(PathBuf::from).unwrap_or(bin_dir),
            "--only" if it.next().as_deref() == Some("refresh") => only_refresh = true,
            "--sizes" => {
                sizes = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|n| n.parse().ok())
                    .collect()
            }
            other => {
                eprintln!(
                    "unknown argument {other}; usage: bench [--out FILE] [--bin-dir DIR] [--only refresh] [--sizes 100,500]"
                );
                std::process::exit(2);
            }
        }
    }
    Args {
        out,
        bin_dir,
        only_refresh,
        sizes,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn measure(bin: &Path, rt: &tokio::runtime::Runtime) -> serde_json::Value {
    let client = ClientCert::generate();
    let mut startups = Vec::new();
    for _ in 0..RUNS {
        let p = Plugin::start(bin, &client, &[]);
        startups.push(ms(p.startup));
    }
    let p = Plugin::start(bin, &client, &[]);
    let (schema_ms, first_ms, schema_bytes) = rt.block_on(async {
        let mut c = p.provider(&client).await;
        let t0 = Instant::now();
        let r = c
            .get_provider_schema(pb::get_provider_schema::Request {})
            .await
            .expect("schema");
        let first = ms(t0.elapsed());
        let bytes = prost::Message::encoded_len(r.get_ref());
        let mut v = Vec::new();
        for _ in 0..SCHEMA_CALLS {
            let t0 = Instant::now();
            c.get_provider_schema(pb::get_provider_schema::Request {})
                .await
                .expect("schema");
            v.push(ms(t0.elapsed()));
        }
        (median(v), first, bytes)
    });
    std::thread::sleep(Duration::from_millis(200));
    let (rss, hwm) = rss_kib(p.child.id());
    json!({
        "binary": bin.display().to_string(),
        "binary_bytes": std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0),
        "handshake_ms_median": median(startups.clone()),
        "handshake_ms_min": startups.iter().copied().fold(f64::INFINITY, f64::min),
        "get_provider_schema_first_ms": first_ms,
        "get_provider_schema_ms_median": schema_ms,
        "schema_response_bytes": schema_bytes,
        "idle_rss_kib": rss,
        "peak_rss_kib": hwm,
    })
}

/// Peak RSS (KiB) of any process running `bin` while `f` runs: `VmHWM` sampled until the
/// process exits (it only grows, so the last sample is the peak up to then).
fn peak_rss_while<T>(bin: &Path, f: impl FnOnce() -> T) -> (T, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(0);
    let target = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_path_buf());
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    if std::fs::read_link(e.path().join("exe")).ok().as_ref() == Some(&target) {
                        peak.fetch_max(rss_kib(pid).1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        let out = f();
        stop.store(true, Ordering::Relaxed);
        out
    });
    (out, peak.load(Ordering::Relaxed))
}

/// One `terraform plan` (which refreshes): wall time in ms and exit code.
fn time_plan(w: &Work) -> (f64, i32) {
    let t0 = Instant::now();
    let o = w.run(&["plan", "-detailed-exitcode", "-no-color", "-input=false"]);
    let elapsed = ms(t0.elapsed());
    assert!(o.code == 0 || o.code == 2, "plan failed:\n{}", o.all());
    (elapsed, o.code)
}

/// `n` resources of a no-op provider (the test provider), applied: Terraform's own share of
/// a refresh-plan of `n` resources.
fn noop_work(n: u64) -> Work {
    let w = Work::new(&Tf::v1_15());
    let dir = w.path().join("store");
    let _ = std::fs::create_dir_all(&dir);
    w.config(&format!(
        "terraform {{\n  required_providers {{\n    tftest = {{ source = \"infraflux/tftest\" }}\n  }}\n}}\n\nprovider \"tftest\" {{\n  dir = {}\n}}\n\nresource \"tftest_thing\" \"t\" {{\n  count = {n}\n  name  = \"t${{count.index}}\"\n}}\n",
        json!(dir.display().to_string())
    ));
    w.init();
    w.apply();
    w
}

/// `n` no-op resources wearing `infraflux_proxmox_vm`'s schema (the test provider's
/// `tftest_mirror`), with the VMs' configuration, applied: Terraform's own share of a
/// refresh-plan of `n` VMs, schema size included.
fn mirror_work(n: u64, ours: &Work) -> Work {
    let out = ours.run(&["providers", "schema", "-json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("providers schema -json");
    let schema = &doc["provider_schemas"]["registry.terraform.io/infraflux/infraflux"]["resource_schemas"]
        ["infraflux_proxmox_vm"];
    assert!(
        schema["block"].is_object(),
        "no infraflux_proxmox_vm schema: {}",
        out.all()
    );
    let mut w = Work::new(&Tf::v1_15());
    let path = w.path().join("mirror-schema.json");
    std::fs::write(&path, schema.to_string()).expect("write schema");
    w.set_env("TFTEST_MIRROR_SCHEMA", path.display().to_string());
    w.config(&format!(
        "terraform {{\n  required_providers {{\n    tftest = {{ source = \"infraflux/tftest\" }}\n  }}\n}}\n\nprovider \"tftest\" {{\n  dir = {}\n}}\n\nresource \"tftest_mirror\" \"vm\" {{\n  count   = {n}\n  node    = \"pve1\"\n  started = false\n  clone {{\n    source_vm_id = 9000\n    full         = false\n  }}\n}}\n",
        json!(w.path().join("store").display().to_string())
    ));
    w.init();
    w.apply();
    w
}

/// Refresh-plan of `n` VMs against the lab with added latency. The no-op plans of the floor
/// alternate with ours, so both see the same machine (this one is noisy).
fn refresh(n: u64, bin_dir: &Path) -> serde_json::Value {
    let lab = Lab::up();
    let w = Work::new(&Tf::v1_15());
    w.config(&format!(
        "{}resource \"infraflux_proxmox_vm\" \"vm\" {{\n  count   = {n}\n  node    = \"pve1\"\n  started = false\n  clone {{\n    source_vm_id = 9000\n    full         = false\n  }}\n}}\n",
        lab.provider(None)
    ));
    w.init();
    let t0 = Instant::now();
    w.apply();
    let setup_s = t0.elapsed().as_secs_f64();
    let noop = noop_work(n);
    let mirror = mirror_work(n, &w);
    lab.control("POST", "/faults", Some(&json!({"latency_ms": LATENCY_MS})));
    lab.control("POST", "/requests/reset", None);
    let (mut walls, mut noops, mut mirrors, mut code) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let ((), peak_rss_kib) = peak_rss_while(&bin_dir.join("terraform-provider-infraflux"), || {
        for _ in 0..PLAN_RUNS {
            noops.push(time_plan(&noop).0);
            mirrors.push(time_plan(&mirror).0);
            let (wall, c) = time_plan(&w);
            walls.push(wall);
            code = c;
        }
    });
    let mirror_ms = median(mirrors);
    let req = lab.control("GET", "/requests", None);
    let runs = PLAN_RUNS as f64;
    let count = |route: &str| req["by_route"][route].as_f64().unwrap_or(0.0) / runs;
    let total = req["total"].as_f64().unwrap_or(0.0) / runs;
    let (wall_ms, noop_ms) = (median(walls), median(noops));
    let min_round_trips = n + 1;
    let network_floor_ms = min_round_trips.div_ceil(TF_PARALLELISM) as f64 * LATENCY_MS as f64;
    let floor_ms = noop_ms + network_floor_ms;
    json!({
        "vms": n,
        "latency_ms": LATENCY_MS,
        "setup_apply_s": setup_s,
        "plan_exit_code": code,
        "wall_ms_median": wall_ms,
        "requests_per_plan": total,
        "config_gets_per_plan": count("GET /nodes/{node}/qemu/{vmid}/config"),
        "vm_lists_per_plan": count("GET /cluster/resources"),
        "api_calls_per_vm_read": total / n as f64,
        "provider_peak_rss_kib": peak_rss_kib,
        "floor": {
            "min_round_trips": min_round_trips,
            "network_ms": network_floor_ms,
            "terraform_noop_provider_ms": noop_ms,
            "total_ms": floor_ms,
        },
        "wall_over_floor": wall_ms / floor_ms,
        // The same floor with Terraform's time for no-op resources of our schema and config:
        // what is left above it is the provider's own work.
        "floor_same_schema": {
            "terraform_noop_same_schema_ms": mirror_ms,
            "total_ms": mirror_ms + network_floor_ms,
        },
        "wall_over_floor_same_schema": wall_ms / (mirror_ms + network_floor_ms),
        "goals": {
            "api_calls_per_vm_read_max": 1.0 + 1.0 / n as f64,
            "wall_over_floor_max": 1.2,
            "wall_over_floor_same_schema_max": 1.2,
            "provider_peak_rss_kib_max": 30 * 1024,
        },
    })
}

/// The whole stack of `terraform/` (5 VMs from the Talos image, the Talos cluster, Cilium)
/// applied to the lab: what `make demo` does, timed.
fn stack_apply(bin_dir: &Path) -> serde_json::Value {
    let lab = Lab::up();
    let w = Work::new(&Tf::v1_15());
    w.copy_stack();
    let ip = |h: u8| format!("127.34.0.{h}");
    let mut vars: serde_json::Value = serde_json::from_str(&lab.stack_vars(
        &[("cp-1", ip(11)), ("cp-2", ip(12)), ("cp-3", ip(13))],
        &[("worker-1", ip(21)), ("worker-2", ip(22))],
    ))
    .expect("vars");
    // The whole stack, as `make demo` applies it: Cilium included.
    vars["install_platform"] = json!(true);
    w.write("terraform.tfvars.json", &vars.to_string());
    w.init();
    let t0 = Instant::now();
    let (_, apply_peak_rss_kib) =
        peak_rss_while(&bin_dir.join("terraform-provider-infraflux"), || w.apply());
    let apply_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    w.assert_plan_empty();
    let plan_ms = ms(t1.elapsed());
    let t2 = Instant::now();
    w.destroy();
    let destroy_s = t2.elapsed().as_secs_f64();
    json!({
        "machines": 5,
        "apply_s": apply_s,
        "refresh_plan_ms": plan_ms,
        "destroy_s": destroy_s,
        "provider_peak_rss_kib": apply_peak_rss_kib,
        "note": "lab timings: install 200 ms, reboot 100 ms per machine; secrets generation (RSA-4096) included",
    })
}

/// `terraform plan` of a Cilium install with every option on and no cluster (the kubeconfig
/// names an address nothing listens on): the objects are built, nothing is contacted.
fn cilium_plan_without_cluster() -> serde_json::Value {
    let w = Work::new(&Tf::v1_15());
    w.config(
        r#"
terraform {
  required_providers {
    infraflux = { source = "infraflux/infraflux" }
  }
}
resource "infraflux_cilium_install" "full" {
  kubeconfig        = "apiVersion: v1\nkind: Config\nclusters: []\n"
  bgp_control_plane = true
  gateway_api       = true
  routing {
    mode                    = "native"
    native_cidr             = "10.244.0.0/16"
    auto_direct_node_routes = true
  }
  hubble {
    relay   = true
    ui      = true
    metrics = ["dns", "drop", "tcp", "flow"]
  }
  encryption {
    type = "wireguard"
  }
  bpf {
    masquerade = true
  }
  load_balancer {
    mode         = "hybrid"
    acceleration = "native"
  }
  ingress_controller {}
  prometheus {
    enabled         = true
    service_monitor = true
    dashboards      = true
  }
}
"#,
    );
    w.init();
    let runs: Vec<f64> = (0..3).map(|_| time_plan(&w).0).collect();
    json!({ "option_set": "full", "plan_ms_median": median(runs) })
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ours = a.bin_dir.join("terraform-provider-infraflux");
    let go = acceptance_tests::root().join(".tools/bin/terraform-provider-workato-go");
    for b in [&ours, &go] {
        assert!(
            b.exists(),
            "{} is missing (make bench builds ours and installs the Go one)",
            b.display()
        );
    }
    let refreshes: Vec<serde_json::Value> = a
        .sizes
        .iter()
        .map(|n| {
            let r = refresh(*n, &a.bin_dir);
            eprintln!("refresh of {n} VMs: {r}");
            r
        })
        .collect();
    if a.only_refresh {
        println!("{}", serde_json::Value::from(refreshes));
        return;
    }
    let o = measure(&ours, &rt);
    let g = measure(&go, &rt);
    let stack = stack_apply(&a.bin_dir);
    eprintln!("stack apply: {stack}");
    let cilium_plan = cilium_plan_without_cluster();
    eprintln!("cilium plan without a cluster: {cilium_plan}");
    let ratio = |k: &str| {
        o[k].as_f64().unwrap_or(0.0) / g[k].as_f64().unwrap_or(1.0).max(f64::MIN_POSITIVE)
    };
    let summary = json!({
        "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "runs": RUNS,
        "schema_calls": SCHEMA_CALLS,
        "infraflux": o,
        "go_plugin_framework": g,
        "ratios": {
            "handshake": ratio("handshake_ms_median"),
            "get_provider_schema": ratio("get_provider_schema_ms_median"),
            "idle_rss": ratio("idle_rss_kib"),
            "binary_size": ratio("binary_bytes"),
        },
        "goals": { "handshake_ratio_max": 0.2, "idle_rss_ratio_max": 0.5 },
        "refresh_plan": refreshes,
        "stack_apply": stack,
        "cilium_plan_without_cluster": cilium_plan,
    });
    let text = serde_json::to_string_pretty(&summary).expect("json");
    if let Some(dir) = a.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&a.out, &text).expect("write results");
    println!("{text}");
}
