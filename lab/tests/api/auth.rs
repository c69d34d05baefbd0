use reqwest::{Method, StatusCode};

use crate::common::{T, to_resp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_ok_and_bad() {
    let t = T::start().await;
    let info = t.lab.info().clone();
    t.get("/version", &[]).await.ok();

    let bad_secret = format!("PVEAPIToken={}=nope", info.pve.token_id);
    let r = t.call_as(&bad_secret, Method::GET, "/version", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.reason.as_deref(), Some("invalid token value!"));
    let r = t
        .call_as(
            "PVEAPIToken=root@pam!ghost=abc",
            Method::GET,
            "/version",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.reason.as_deref(),
        Some("no such token 'ghost' for user 'root@pam'")
    );
    let r = t.call_as("", Method::GET, "/version", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Auth comes before path lookup, as in pveproxy.
    let r = t.call_as("", Method::GET, "/no/such/path", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_login_and_csrf() {
    let t = T::start().await;
    let info = t.lab.info().clone();
    let r = t
        .call_as(
            "",
            Method::POST,
            "/access/ticket",
            &[("username", "root@pam"), ("password", "wrong")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .call_as(
            "",
            Method::POST,
            "/access/ticket",
            &[
                ("username", "root"),
                ("realm", "pam"),
                ("password", &info.pve.password),
            ],
        )
        .await;
    let d = r.ok().clone();
    assert_eq!(d["username"], "root@pam");
    let ticket = d["ticket"].as_str().unwrap().to_string();
    let csrf = d["CSRFPreventionToken"].as_str().unwrap().to_string();
    assert!(ticket.starts_with("PVE:root@pam:"));

    let cookie = format!("PVEAuthCookie={ticket}");
    let get = t
        .http
        .get(format!("{}/nodes", t.api))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    let r = to_resp(get).await;
    assert_eq!(r.ok().as_array().unwrap().len(), 3);

    // A write without the CSRF token is refused; with it, it goes through.
    let url = format!("{}/nodes/pve1/qemu/9000/config", t.api);
    let r = to_resp(
        t.http
            .put(&url)
            .header("Cookie", &cookie)
            .form(&[("description", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.reason.as_deref(),
        Some("Permission denied - invalid csrf token")
    );
    let r = to_resp(
        t.http
            .put(&url)
            .header("Cookie", &cookie)
            .header("CSRFPreventionToken", &csrf)
            .form(&[("description", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.ok();

    let r = to_resp(
        t.http
            .get(format!("{}/nodes", t.api))
            .header("Cookie", "PVEAuthCookie=PVE:root@pam:00000000::forged")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_token_gets_403_naming_the_privilege() {
    let t = T::start().await;
    let info = t.lab.info().clone();
    let tok = info
        .pve
        .tokens
        .iter()
        .find(|k| k.without.contains(&"VM.Allocate".to_string()))
        .expect("restricted token");
    let auth = format!("PVEAPIToken={}={}", tok.id, tok.secret);
    // Reads still work.
    let r = t
        .call_as(&auth, Method::GET, "/nodes/pve1/qemu/9000/config", &[])
        .await;
    r.ok();
    let r = t
        .call_as(&auth, Method::POST, "/nodes/pve1/qemu", &[("vmid", "100")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.message(),
        "Permission check failed (/vms/100, VM.Allocate)\n"
    );
    let r = t
        .call_as(&auth, Method::DELETE, "/nodes/pve1/qemu/9000", &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.message(),
        "Permission check failed (/vms/9000, VM.Allocate)\n"
    );
    // Clone needs VM.Allocate on the new id.
    let r = t
        .call_as(
            &auth,
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "150")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.message(),
        "Permission check failed (/vms/150, VM.Allocate)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_config_privileges() {
    use infraflux_lab::{LabOptions, TokenSpec};
    let t = T::with(LabOptions {
        extra_tokens: vec![TokenSpec {
            userid: "ops@pve".into(),
            tokenid: "nocpu".into(),
            without: vec!["VM.Config.CPU".into(), "Datastore.AllocateSpace".into()],
        }],
        ..LabOptions::default()
    })
    .await;
    let info = t.lab.info().clone();
    let tok = info
        .pve
        .tokens
        .iter()
        .find(|k| k.id == "ops@pve!nocpu")
        .unwrap();
    let auth = format!("PVEAPIToken={}={}", tok.id, tok.secret);
    let r = t
        .call_as(
            &auth,
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            &[("description", "ok")],
        )
        .await;
    r.ok();
    let r = t
        .call_as(
            &auth,
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            &[("cores", "4")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.message(),
        "Permission check failed (/vms/9000, VM.Config.CPU)\n"
    );
    let r = t
        .call_as(
            &auth,
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            &[("scsi1", "local-lvm:4")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.message(),
        "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_starts_fast() {
    // Warm the process-wide schema, as every test binary does once.
    drop(T::start().await);
    let started = std::time::Instant::now();
    let t = T::start().await;
    let took = started.elapsed();
    eprintln!("lab start (schema cached): {took:?}");
    assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    t.get("/version", &[]).await.ok();
}
