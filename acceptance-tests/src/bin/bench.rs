//! `make bench`: our provider against a Go terraform-plugin-framework provider, measured in
//! the same run on the same machine. Writes a JSON summary.
//!
//! - start → handshake line, with PLUGIN_CLIENT_CERT set as Terraform does (AutoMTLS)
//! - GetProviderSchema round trip over the mTLS connection
//! - idle RSS after the schema call, and peak RSS
//! - binary size on disk (ours is stripped by the release profile)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use acceptance_tests::plugin_client::{ClientCert, Plugin};
use serde_json::json;
use tfplugin::proto::tfplugin6 as pb;

const RUNS: usize = 25;
const SCHEMA_CALLS: usize = 200;

struct Args {
    out: PathBuf,
    bin_dir: PathBuf,
}

fn args() -> Args {
    let mut out = PathBuf::from("bench/results.json");
    let mut bin_dir = acceptance_tests::root().join("target/release");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().map(PathBuf::from).unwrap_or(out),
            "--bin-dir" => bin_dir = it.next().map(PathBuf::from).unwrap_or(bin_dir),
            other => {
                eprintln!("unknown argument {other}; usage: bench [--out FILE] [--bin-dir DIR]");
                std::process::exit(2);
            }
        }
    }
    Args { out, bin_dir }
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
    let o = measure(&ours, &rt);
    let g = measure(&go, &rt);
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
    });
    let text = serde_json::to_string_pretty(&summary).expect("json");
    if let Some(dir) = a.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&a.out, &text).expect("write results");
    println!("{text}");
}
