use reqwest::StatusCode;
use serde_json::json;

use crate::common::T;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_parameter_errors() {
    let t = T::start().await;
    let r = t.get("/xyz", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(r.message(), "Method 'GET /xyz' not implemented\n");
    assert_eq!(
        r.reason.as_deref(),
        Some("Method 'GET /xyz' not implemented")
    );
    let r = t.call(reqwest::Method::PATCH, "/version", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);

    let r = t.get("/cluster/nextid", &[("vmid", "abc")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["data"], json!(null));
    assert_eq!(
        r.body["errors"]["vmid"],
        "type check ('integer') failed - got 'abc'"
    );
    assert_eq!(r.message(), "Parameter verification failed.\n");

    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "50"), ("bogus", "1"), ("format", "zip")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["errors"]["newid"],
        "value must have a minimum value of 100"
    );
    assert_eq!(
        r.body["errors"]["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert_eq!(
        r.body["errors"]["format"],
        "value 'zip' does not have a value in the enumeration 'raw, qcow2, vmdk'"
    );

    let r = t
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("name", "under_score")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["errors"]["name"]
            .as_str()
            .unwrap()
            .contains("DNS name")
    );

    let r = t
        .put(
            "/nodes/pve1/qemu/9000/config",
            &[("net0", "virtio,bridge=vmbr0,firewall=maybe")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["errors"]["net0"]
            .as_str()
            .unwrap()
            .contains("net0.firewall: type check ('boolean') failed - got 'maybe'"),
        "{}",
        r.body
    );
    let r = t.post("/nodes/pve1/qemu", &[]).await;
    assert_eq!(
        r.body["errors"]["vmid"],
        "property is missing and it is not optional"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_endpoints_have_real_shapes() {
    let t = T::start().await;
    let v = t.get("/version", &[]).await.ok().clone();
    assert_eq!(v["release"], "9.1");

    assert_eq!(t.get("/cluster/nextid", &[]).await.ok(), &json!("100"));
    assert_eq!(
        t.get("/cluster/nextid", &[("vmid", "123")]).await.ok(),
        &json!("123")
    );
    let r = t.get("/cluster/nextid", &[("vmid", "9000")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"]["vmid"], "VM 9000 already exists");

    let vms = t
        .get("/cluster/resources", &[("type", "vm")])
        .await
        .ok()
        .clone();
    let tpl = vms
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vmid"] == 9000)
        .unwrap();
    assert_eq!(tpl["template"], 1);
    assert_eq!(tpl["node"], "pve1");
    assert_eq!(tpl["id"], "qemu/9000");
    let all = t.get("/cluster/resources", &[]).await.ok().clone();
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|v| v["type"] == "storage")
    );
    assert!(all.as_array().unwrap().iter().any(|v| v["type"] == "node"));

    let nodes = t.get("/nodes", &[]).await.ok().clone();
    assert_eq!(nodes.as_array().unwrap().len(), 3);
    t.get("/nodes/pve2/status", &[]).await.ok();
    let r = t.get("/nodes/pve9/status", &[]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.message().starts_with("hostname lookup 'pve9' failed"));

    let st = t.get("/nodes/pve1/storage", &[]).await.ok().clone();
    let ids: Vec<&str> = st
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["storage"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["local", "local-lvm", "ceph"]);
    let images = t
        .get(
            "/nodes/pve1/storage/local/content",
            &[("content", "import")],
        )
        .await
        .ok()
        .clone();
    assert_eq!(images[0]["volid"], "local:import/talos-nocloud-amd64.raw");
    let isos = t
        .get("/nodes/pve3/storage/local/content", &[("content", "iso")])
        .await
        .ok()
        .clone();
    assert_eq!(isos[0]["volid"], "local:iso/talos-metal-amd64.iso");
    let r = t.get("/nodes/pve1/storage/nfs/content", &[]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);

    let cfg = t
        .get("/nodes/pve1/qemu/9000/config", &[])
        .await
        .ok()
        .clone();
    assert_eq!(cfg["template"], 1);
    assert_eq!(cfg["cores"], 2);
    assert_eq!(cfg["name"], "talos-template");
    assert_eq!(cfg["digest"].as_str().unwrap().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_are_accepted() {
    let t = T::start().await;
    let r = t
        .http
        .put(format!("{}/nodes/pve1/qemu/9000/config", t.api))
        .header("Authorization", &t.token)
        .json(&json!({"description": "from json", "onboot": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cfg = t
        .get("/nodes/pve1/qemu/9000/config", &[])
        .await
        .ok()
        .clone();
    assert_eq!(cfg["onboot"], 1);
    assert_eq!(cfg["description"], "from json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_breaks_the_lab() {
    let t = T::start().await;
    let base = t.lab.info().pve.endpoint.clone();
    let send = |m: reqwest::Method, url: String, ct: &'static str, body: Vec<u8>| {
        t.http
            .request(m, url)
            .header("Authorization", &t.token)
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    let cases: Vec<(reqwest::Method, String, &str, Vec<u8>)> = vec![
        (
            reqwest::Method::POST,
            format!("{}/nodes/pve1/qemu", t.api),
            "application/json",
            b"{not json".to_vec(),
        ),
        (
            reqwest::Method::POST,
            format!("{}/nodes/pve1/qemu", t.api),
            "application/json",
            b"[1,2]".to_vec(),
        ),
        (
            reqwest::Method::PUT,
            format!("{}/nodes/pve1/qemu/9000/config", t.api),
            "application/x-www-form-urlencoded",
            b"%ff%fe=%00&=&&net0=,,,=,".to_vec(),
        ),
        (
            reqwest::Method::PUT,
            format!("{}/nodes/pve1/qemu/9000/config", t.api),
            "application/x-www-form-urlencoded",
            b"scsi0=local-lvm:99999999999999999999&memory=x".to_vec(),
        ),
        (
            reqwest::Method::GET,
            format!("{}/nodes/%ff/qemu/abc/config", t.api),
            "text/plain",
            Vec::new(),
        ),
        (
            reqwest::Method::GET,
            format!("{}/nodes/pve1/qemu/9000/config?vmid=1", t.api),
            "text/plain",
            Vec::new(),
        ),
        (
            reqwest::Method::PUT,
            format!("{}/nodes/pve1/qemu/9000/resize", t.api),
            "application/x-www-form-urlencoded",
            b"disk=scsi0&size=+99999999999999T".to_vec(),
        ),
        (
            reqwest::Method::OPTIONS,
            format!("{base}/"),
            "text/plain",
            Vec::new(),
        ),
        (
            reqwest::Method::GET,
            format!("{base}/api2/extjs/version"),
            "text/plain",
            Vec::new(),
        ),
        (
            reqwest::Method::GET,
            format!("{}/nodes/pve1/tasks/UPID:pve1:zz:zz:zz:x:y:z:/log", t.api),
            "text/plain",
            Vec::new(),
        ),
    ];
    for (m, url, ct, body) in cases {
        let r = send(m.clone(), url.clone(), ct, body)
            .await
            .expect("answered");
        assert!(
            r.status().is_client_error() || r.status().is_server_error() || r.status().is_success(),
            "{m} {url}: {}",
            r.status()
        );
    }
    t.get("/version", &[]).await.ok();
    let r = t
        .get("/nodes/pve1/qemu/9000/config", &[("vmid", "1")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["errors"]["vmid"],
        "duplicate parameter (not allowed)"
    );
}

/// Every key the lab answers with must be declared in the schema's `returns` (a self-check of
/// the response shapes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_only_use_keys_the_schema_declares() {
    use infraflux_lab::pve::schema::Schema;
    use serde_json::Value;
    let schema = Schema::global().unwrap();
    let t = T::start().await;
    t.clone_template(180, "shape").await;
    let r = t.post("/nodes/pve1/qemu/180/status/start", &[]).await;
    let upid = t.task_ok(r).await["upid"].as_str().unwrap().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("/version", "/version".into()),
        ("/cluster/resources", "/cluster/resources".into()),
        ("/nodes", "/nodes".into()),
        ("/cluster/status", "/cluster/status".into()),
        ("/storage", "/storage".into()),
        ("/nodes/{node}/network", "/nodes/pve2/network".into()),
        ("/nodes/{node}/status", "/nodes/pve1/status".into()),
        ("/nodes/{node}/storage", "/nodes/pve1/storage".into()),
        (
            "/nodes/{node}/storage/{storage}/content",
            "/nodes/pve1/storage/local/content".into(),
        ),
        (
            "/nodes/{node}/storage/{storage}/content",
            "/nodes/pve1/storage/local-lvm/content".into(),
        ),
        ("/nodes/{node}/qemu", "/nodes/pve1/qemu".into()),
        (
            "/nodes/{node}/qemu/{vmid}/config",
            "/nodes/pve1/qemu/180/config".into(),
        ),
        (
            "/nodes/{node}/qemu/{vmid}/pending",
            "/nodes/pve1/qemu/180/pending".into(),
        ),
        (
            "/nodes/{node}/qemu/{vmid}/status/current",
            "/nodes/pve1/qemu/180/status/current".into(),
        ),
        (
            "/nodes/{node}/tasks/{upid}/status",
            format!("/nodes/pve1/tasks/{upid}/status"),
        ),
        (
            "/nodes/{node}/tasks/{upid}/log",
            format!("/nodes/pve1/tasks/{upid}/log"),
        ),
        ("/nodes/{node}/tasks", "/nodes/pve1/tasks".into()),
    ];
    let mut bad = Vec::new();
    for (route, path) in cases {
        let concrete = route
            .replace("{node}", "pve1")
            .replace("{vmid}", "180")
            .replace("{storage}", "local")
            .replace("{upid}", &upid);
        let def = schema.lookup("GET", &concrete).unwrap().def;
        let data = t.get(&path, &[]).await.ok().clone();
        let returns = schema_returns(&def.path);
        let (props, items): (Option<&serde_json::Map<String, Value>>, Vec<&Value>) =
            match (&data, returns.get("type").and_then(Value::as_str)) {
                (Value::Array(a), Some("array")) => (
                    returns["items"]
                        .get("properties")
                        .and_then(Value::as_object),
                    a.iter().collect(),
                ),
                (Value::Object(_), _) => (
                    returns.get("properties").and_then(Value::as_object),
                    vec![&data],
                ),
                _ => (None, vec![]),
            };
        let Some(props) = props else { continue };
        for item in items {
            for k in item.as_object().unwrap().keys() {
                let declared = REAL_BUT_UNDOCUMENTED.contains(&(route, k.as_str()))
                    || props.contains_key(k)
                    || infraflux_lab::pve::validate::lookup_prop(props, k).is_some();
                if !declared {
                    bad.push(format!("{route}: {k}"));
                }
            }
        }
    }
    bad.sort();
    bad.dedup();
    assert!(bad.is_empty(), "keys not in the schema's returns: {bad:#?}");
}

fn schema_returns(path: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(infraflux_lab::pve::schema::APIDATA).unwrap();
    fn find<'a>(n: &'a serde_json::Value, p: &str) -> Option<&'a serde_json::Value> {
        if n["path"] == p {
            return Some(n);
        }
        n["children"].as_array()?.iter().find_map(|c| find(c, p))
    }
    doc.as_array()
        .unwrap()
        .iter()
        .find_map(|r| find(r, path))
        .map(|n| n["info"]["GET"]["returns"].clone())
        .unwrap()
}

/// Fields real PVE answers with that its schema's `returns` does not list.
const REAL_BUT_UNDOCUMENTED: &[(&str, &str)] = &[
    ("/nodes", "id"),
    ("/nodes", "type"),
    ("/nodes", "disk"),
    ("/nodes", "maxdisk"),
    ("/nodes/{node}/status", "uptime"),
    ("/nodes/{node}/status", "kversion"),
    ("/nodes/{node}/status", "swap"),
    ("/nodes/{node}/status", "ksm"),
    ("/nodes/{node}/status", "wait"),
    ("/nodes/{node}/storage/{storage}/content", "content"),
    ("/nodes/{node}/qemu", "disk"),
    ("/nodes/{node}/qemu/{vmid}/status/current", "disk"),
    ("/storage", "type"),
    ("/storage", "content"),
    ("/storage", "digest"),
    ("/storage", "shared"),
    ("/storage", "path"),
    ("/storage", "vgname"),
    ("/storage", "thinpool"),
    ("/storage", "pool"),
    ("/storage", "krbd"),
    ("/nodes/{node}/network", "bridge_stp"),
    ("/nodes/{node}/network", "bridge_fd"),
];

/// `lab/data/` is what `scripts/derive-reference.py` makes of the upstream schemas today.
#[test]
fn derived_schemas_are_fresh() {
    let Some(reference) = infraflux_reference::path("proxmox") else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/derive-reference.py"))
        .arg("--check")
        .env("INFRAFLUX_REFERENCE", reference.join(".."))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
