use std::time::{Duration, Instant};

use infraflux_lab::LabOptions;
use infraflux_lab::faults::Faults;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::T;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_request_counters() {
    let t = T::start().await;
    t.clone_template(130, "counted").await;
    let (s, _) = t.control_post("/requests/reset", &json!({})).await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..3 {
        t.get("/nodes/pve1/qemu/130/config", &[]).await.ok();
    }
    t.get("/nodes/pve1/qemu/130/status/current", &[]).await.ok();
    let req = t.control_get("/requests").await;
    assert_eq!(req["total"], 4);
    assert_eq!(req["by_path"]["GET /nodes/pve1/qemu/130/config"], 3);
    assert_eq!(req["by_route"]["GET /nodes/{node}/qemu/{vmid}/config"], 3);

    let st = t.control_get("/state").await;
    let vm = st["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vmid"] == 130)
        .unwrap();
    assert_eq!(vm["node"], "pve1");
    assert_eq!(vm["status"], "stopped");
    assert_eq!(vm["lock"], json!(null));
    assert_eq!(vm["config"]["name"], "counted");
    assert!(
        st["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["type"] == "qmclone")
    );
    assert_eq!(st["requests"]["total"], 4);
    assert_eq!(st["faults"]["latency_ms"], 0);
    let r = t
        .http
        .get(format!("{}/nope", t.control))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_switch_on_and_off() {
    let t = T::start().await;
    let f = t.control_get("/faults").await;
    assert_eq!(f["error_rate_5xx"], 0.0);
    let (s, _) = t.control_post("/faults", &json!({"bogus": 1})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t
        .control_post("/faults", &json!({"error_rate_5xx": 3.0}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (_, f) = t.control_post("/faults", &json!({"latency_ms": 150})).await;
    assert_eq!(f["latency_ms"], 150);
    let started = Instant::now();
    t.get("/version", &[]).await.ok();
    assert!(started.elapsed() >= Duration::from_millis(150));
    t.control_post("/faults", &json!({"latency_ms": 0, "error_rate_5xx": 1.0}))
        .await;
    let r = t.get("/version", &[]).await;
    assert!(r.status.is_server_error());
    t.control_post(
        "/faults",
        &json!({"error_rate_5xx": 0.0, "drop_connection_rate": 1.0}),
    )
    .await;
    let dropped = t
        .http
        .get(format!("{}/version", t.api))
        .header("Authorization", &t.token)
        .send()
        .await;
    assert!(dropped.is_err());
    t.control_post("/faults", &json!({"drop_connection_rate": 0.0}))
        .await;
    t.get("/version", &[]).await.ok();
}

async fn pattern(seed: u64) -> Vec<u16> {
    let t = T::with(LabOptions {
        seed,
        faults: Faults {
            error_rate_5xx: 0.5,
            ..Faults::default()
        },
        ..LabOptions::default()
    })
    .await;
    let mut out = Vec::new();
    for _ in 0..16 {
        out.push(t.get("/version", &[]).await.status.as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_faults() {
    let a = pattern(42).await;
    let b = pattern(42).await;
    assert_eq!(a, b);
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500), "{a:?}");
}
