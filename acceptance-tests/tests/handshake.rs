//! The plugin process as go-plugin sees it: refusal without the cookie, protocol negotiation,
//! AutoMTLS that admits only Terraform's certificate, health, shutdown, cancellation, and
//! malformed values answered with diagnostics instead of crashes.

use std::process::Command;
use std::time::{Duration, Instant};

use acceptance_tests::bin_dir;
use acceptance_tests::plugin_client::{COOKIE, ClientCert, Plugin, block_type, dv};
use tfplugin::proto::tfplugin6 as pb;
use tfplugin::value::{Type, Value, decode_msgpack};

fn tftest() -> std::path::PathBuf {
    bin_dir().join("terraform-provider-tftest")
}

#[test]
fn refuses_to_run_without_the_magic_cookie() {
    let o = Command::new(tftest())
        .env_remove(COOKIE.0)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "nothing on stdout");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("plugin for Terraform") && err.contains("not meant to be run directly"),
        "{err}"
    );
}

#[test]
fn refuses_a_terraform_without_protocol_6() {
    let o = Command::new(tftest())
        .env(COOKIE.0, COOKIE.1)
        .env("PLUGIN_PROTOCOL_VERSIONS", "4,5")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("only protocol 6"));
}

#[test]
fn refuses_a_malformed_client_certificate() {
    let o = Command::new(tftest())
        .env(COOKIE.0, COOKIE.1)
        .env("PLUGIN_CLIENT_CERT", "garbage")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("PLUGIN_CLIENT_CERT"));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn handshake_line_and_mutual_tls() {
    let client = ClientCert::generate();
    let mut p = Plugin::start(&tftest(), &client, &[]);
    assert_eq!(
        (p.handshake.core.as_str(), p.handshake.protocol.as_str()),
        ("1", "6")
    );
    assert_eq!(p.handshake.network, "unix");
    rt().block_on(async {
        // Terraform's certificate gets in.
        let ch = p
            .connect(&client)
            .await
            .expect("connect with the pinned cert");
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
        let h = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "plugin".into(),
            })
            .await
            .unwrap();
        assert_eq!(
            h.into_inner().status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
        let mut prov = pb::provider_client::ProviderClient::new(ch.clone());
        let schema = prov
            .get_provider_schema(pb::get_provider_schema::Request {})
            .await
            .unwrap()
            .into_inner();
        assert!(schema.resource_schemas.contains_key("tftest_thing"));
        assert!(schema.diagnostics.is_empty());

        // Any other certificate is refused, and the provider keeps serving.
        let stranger = ClientCert::generate();
        let refused = async {
            let ch = p.connect(&stranger).await?;
            pb::provider_client::ProviderClient::new(ch)
                .get_metadata(pb::get_metadata::Request {})
                .await
                .map_err(|s| std::io::Error::other(s.to_string()))?;
            Ok::<_, Box<dyn std::error::Error>>(())
        }
        .await;
        assert!(refused.is_err(), "a stranger's certificate must be refused");
        prov.get_metadata(pb::get_metadata::Request {})
            .await
            .expect("still serving");

        // Graceful shutdown through the controller.
        let mut ctl =
            tfplugin::proto::plugin::grpc_controller_client::GrpcControllerClient::new(ch);
        ctl.shutdown(tfplugin::proto::plugin::Empty {})
            .await
            .unwrap();
    });
    assert_eq!(
        p.wait_exit(Duration::from_secs(5)),
        Some(0),
        "exits cleanly after Shutdown"
    );
    assert!(
        !std::path::Path::new(&p.handshake.address).exists(),
        "socket removed"
    );
}

fn thing_type(schema: &pb::get_provider_schema::Response) -> Type {
    block_type(
        schema.resource_schemas["tftest_thing"]
            .block
            .as_ref()
            .unwrap(),
    )
}

#[test]
fn malformed_values_get_diagnostics_not_crashes() {
    let client = ClientCert::generate();
    let p = Plugin::start(&tftest(), &client, &[]);
    rt().block_on(async {
        let mut prov = p.provider(&client).await;
        for garbage in [
            vec![0xc1],
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            vec![0x81, 0xa3, b'b', b'a', b'd', 0xc0],
            vec![],
        ] {
            let r = prov
                .plan_resource_change(pb::plan_resource_change::Request {
                    type_name: "tftest_thing".into(),
                    proposed_new_state: Some(pb::DynamicValue {
                        msgpack: garbage.clone(),
                        json: vec![],
                    }),
                    config: Some(pb::DynamicValue {
                        msgpack: garbage.clone(),
                        json: vec![],
                    }),
                    ..Default::default()
                })
                .await
                .expect("answered, not crashed")
                .into_inner();
            if !garbage.is_empty() {
                assert_eq!(r.diagnostics.len(), 1, "{garbage:?}");
                assert!(
                    r.diagnostics[0].summary.contains("Invalid"),
                    "{:?}",
                    r.diagnostics[0]
                );
            }
        }
        let r = prov
            .validate_resource_config(pb::validate_resource_config::Request {
                type_name: "nope".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.diagnostics[0].detail.contains("\"nope\""));
        // Still healthy afterwards.
        prov.get_metadata(pb::get_metadata::Request {})
            .await
            .unwrap();
    });
}

#[test]
fn stop_provider_cancels_an_apply_in_flight_and_keeps_what_exists() {
    let client = ClientCert::generate();
    let store = tempfile::tempdir().unwrap();
    let p = Plugin::start(
        &tftest(),
        &client,
        &[("TFTEST_DIR", store.path().to_str().unwrap())],
    );
    rt().block_on(async {
        let mut prov = p.provider(&client).await;
        let schema = prov
            .get_provider_schema(pb::get_provider_schema::Request {})
            .await
            .unwrap()
            .into_inner();
        let t = thing_type(&schema);
        let ptype = Type::object([("dir", Type::String)]);
        let cfg = prov
            .configure_provider(pb::configure_provider::Request {
                config: dv(&Value::object([("dir", Value::Null)]), &ptype),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(cfg.diagnostics.is_empty(), "{:?}", cfg.diagnostics);
        let config = Value::object([
            ("name", Value::from("slow")),
            ("delay_ms", Value::int(120_000)),
        ]);
        let plan = prov
            .plan_resource_change(pb::plan_resource_change::Request {
                type_name: "tftest_thing".into(),
                prior_state: dv(&Value::Null, &t),
                proposed_new_state: dv(&config, &t),
                config: dv(&config, &t),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
        let mut prov2 = prov.clone();
        let started = Instant::now();
        let apply = tokio::spawn(async move {
            prov2
                .apply_resource_change(pb::apply_resource_change::Request {
                    type_name: "tftest_thing".into(),
                    prior_state: dv(&Value::Null, &t),
                    planned_state: plan.planned_state,
                    config: dv(&config, &t),
                    ..Default::default()
                })
                .await
        });
        // Wait until the object exists, then stop.
        while std::fs::read_dir(store.path()).unwrap().count() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        prov.stop_provider(pb::stop_provider::Request {})
            .await
            .unwrap();
        let r = apply.await.unwrap().unwrap().into_inner();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "cancelled promptly"
        );
        assert!(
            r.diagnostics.iter().any(|d| d.summary == "Interrupted"),
            "{:?}",
            r.diagnostics
        );
        let schema_t = thing_type(&schema);
        let state = decode_msgpack(&r.new_state.unwrap().msgpack, &schema_t).unwrap();
        assert!(
            state.attr("id").as_str().is_some(),
            "the created object is returned for state"
        );
    });
}

#[test]
fn exits_when_terraform_dies_without_shutdown() {
    let client = ClientCert::generate();
    // A parent that vanishes after the handshake, as a killed Terraform would.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{:?} >/dev/null 2>&1 & echo $!; sleep 0.5",
            tftest()
        ))
        .env(COOKIE.0, COOKIE.1)
        .env("PLUGIN_CLIENT_CERT", &client.pem)
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    let t0 = Instant::now();
    // SAFETY: signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "provider {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn falls_back_to_tcp_within_the_allowed_ports() {
    let client = ClientCert::generate();
    // A socket directory that cannot exist forces the TCP fallback.
    let env = [
        ("PLUGIN_UNIX_SOCKET_DIR", "/proc/no-such-dir"),
        ("PLUGIN_MIN_PORT", "41000"),
        ("PLUGIN_MAX_PORT", "41100"),
    ];
    let p = Plugin::start(&tftest(), &client, &env);
    assert_eq!(p.handshake.network, "tcp");
    let port: u16 = p
        .handshake
        .address
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((41000..=41100).contains(&port), "{}", p.handshake.address);
    assert!(
        p.handshake.address.starts_with("127.0.0.1:"),
        "loopback only"
    );
    rt().block_on(async {
        let mut c = p.provider(&client).await;
        c.get_metadata(pb::get_metadata::Request {})
            .await
            .expect("served over TCP with mTLS");
    });
}
