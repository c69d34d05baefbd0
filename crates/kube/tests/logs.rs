//! Every log line the engine (and kube-rs under it) writes, at TRACE, while it handles a
//! Secret: none carries the Secret's data.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Cluster, T, keep_none, quiet};
use infraflux_kube::Inventory;
use infraflux_talos::render::Cni;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_data_never_reaches_the_log() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let c = Cluster::start(Cni::Flannel).await;
    let e = c.engine();
    let plain = "hunter2-super-secret";
    let encoded = "aHVudGVyMi1zdXBlci1zZWNyZXQ=";
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"}, "data": {"password": encoded}});
    let inv = e
        .apply(
            std::slice::from_ref(&secret),
            &Inventory::default(),
            &keep_none,
            &quiet,
        )
        .await
        .expect("apply");
    let live = e
        .get(&inv.entries[0].object)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(live["data"]["password"], encoded);
    let mut changed = secret.clone();
    changed["data"]["password"] = json!("b3RoZXI=");
    e.drift(&[changed]).await.expect("drift");
    e.wait_ready(&inv, T, &quiet).await.expect("ready");
    e.delete(&inv, T, &quiet).await.expect("delete");
    c.shutdown().await;

    let text = String::from_utf8(log.0.lock().expect("lock").clone()).expect("utf8");
    assert!(text.contains("applied"), "the engine logged: {text}");
    assert!(text.contains("Secret default/creds"), "objects are named");
    for needle in [plain, encoded, "b3RoZXI="] {
        assert!(!text.contains(needle), "{needle} leaked into the log");
    }
}
