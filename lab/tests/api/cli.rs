use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use infraflux_lab::LabInfo;

use crate::common::client_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_writes_lab_json_and_down_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_infraflux-lab");
    let mut child = Command::new(bin)
        .args(["up", "--dir"])
        .arg(dir.path())
        .args([
            "--seed",
            "9",
            "--latency-ms",
            "1",
            "--faults",
            "slow_tasks_ms=5",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let json_path = dir.path().join("lab.json");
    let started = Instant::now();
    while !json_path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "lab.json never appeared"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let info: LabInfo =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(info.seed, 9);
    assert!(info.pve.endpoint.starts_with("https://127.0.0.1:"));
    assert_eq!(info.pve.nodes, vec!["pve1", "pve2", "pve3"]);
    assert!(dir.path().join("lab.pid").exists());

    let http = client_for(&info.ca_cert_pem);
    let r = http
        .get(format!("{}/nodes", info.pve.api_url))
        .header(
            "Authorization",
            format!(
                "PVEAPIToken={}={}",
                info.pve.token_id, info.pve.token_secret
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let faults: serde_json::Value = http
        .get(format!("{}/faults", info.control.endpoint))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["latency_ms"], 1);
    assert_eq!(faults["slow_tasks_ms"], 5);

    // A second `up` in the same directory refuses.
    let again = Command::new(bin)
        .args(["up", "--dir"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!again.success());

    let down = Command::new(bin)
        .args(["down", "--dir"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(down.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!dir.path().join("lab.pid").exists());
    assert!(!dir.path().join("lab.json").exists());
    // `down` with nothing running fails plainly.
    let none = Command::new(bin)
        .args(["down", "--dir"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!none.success());
    // Bad usage exits non-zero.
    let bad = Command::new(bin)
        .arg("up")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!bad.success());
}

/// `up --pve-port N` on a port another process holds fails at once, naming the address, and
/// serves nothing (no lab.json).
#[test]
fn up_on_a_taken_port_fails_naming_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_infraflux-lab"))
        .args(["up", "--dir"])
        .arg(dir.path())
        .args(["--pve-port", &port.to_string()])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && err.contains("another lab"),
        "{err}"
    );
    assert!(!dir.path().join("lab.json").exists());
}
