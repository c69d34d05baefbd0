//! The `infraflux` provider block: over gRPC against the real binary (every case, including
//! environment variables), and through real Terraform (validate, schema).

use acceptance_tests::plugin_client::{ClientCert, Plugin, block_type, dv};
use acceptance_tests::{Tf, Work, bin_dir, both_terraforms};
use tfplugin::proto::tfplugin6 as pb;
use tfplugin::{Type, Value};

fn infraflux() -> std::path::PathBuf {
    bin_dir().join("terraform-provider-infraflux")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn proxmox(pairs: &[(&str, Value)]) -> Value {
    Value::object([(
        "proxmox",
        Value::object(pairs.iter().map(|(k, v)| (*k, v.clone()))),
    )])
}

/// Diagnostics as `(path, summary, detail)`.
fn diags(ds: &[pb::Diagnostic]) -> Vec<(String, String, String)> {
    ds.iter()
        .map(|d| {
            let path = d.attribute.as_ref().map(|p| {
                p.steps
                    .iter()
                    .filter_map(|s| match &s.selector {
                        Some(pb::attribute_path::step::Selector::AttributeName(a)) => {
                            Some(a.clone())
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(".")
            });
            (
                path.unwrap_or_default(),
                d.summary.clone(),
                d.detail.clone(),
            )
        })
        .collect()
}

async fn provider_type(
    c: &mut pb::provider_client::ProviderClient<tonic::transport::Channel>,
) -> Type {
    let s = c
        .get_provider_schema(pb::get_provider_schema::Request {})
        .await
        .unwrap()
        .into_inner();
    block_type(s.provider.unwrap().block.as_ref().unwrap())
}

#[test]
fn validate_names_the_attribute_and_never_echoes_secrets() {
    let client = ClientCert::generate();
    let p = Plugin::start(&infraflux(), &client, &[]);
    rt().block_on(async {
        let mut c = p.provider(&client).await;
        let t = provider_type(&mut c).await;
        let range = Value::object([("min", Value::int(900)), ("max", Value::int(200))]);
        let config = proxmox(&[
            ("endpoint", "http://pve.example:8006".into()),
            ("api_token", "root@pam-no-separator".into()),
            ("vm_id_range", range),
        ]);
        let r = c
            .validate_provider_config(pb::validate_provider_config::Request {
                config: dv(&config, &t),
            })
            .await
            .unwrap()
            .into_inner();
        let d = diags(&r.diagnostics);
        let at = |p: &str| {
            d.iter()
                .find(|x| x.0 == p)
                .unwrap_or_else(|| panic!("no diagnostic at {p}: {d:?}"))
        };
        assert!(
            at("proxmox.endpoint")
                .2
                .contains("must start with https://")
        );
        assert_eq!(at("proxmox.api_token").1, "Invalid Proxmox VE API token");
        assert!(
            at("proxmox.vm_id_range.min")
                .2
                .contains("min (900) is greater than max (200)")
        );
        assert!(
            d.iter().all(|x| !x.2.contains("root@pam-no-separator")),
            "token echoed: {d:?}"
        );

        // Unknown values (from other resources) are not judged yet.
        let r = c
            .validate_provider_config(pb::validate_provider_config::Request {
                config: dv(&proxmox(&[("endpoint", Value::Unknown)]), &t),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    });
}

#[test]
fn configure_reads_the_environment_and_names_the_variable() {
    let client = ClientCert::generate();
    let env = [
        ("PROXMOX_VE_ENDPOINT", "ftp://nope"),
        ("PROXMOX_VE_API_TOKEN", "tf@pve!ci=s3cret-token-value"),
    ];
    let p = Plugin::start(&infraflux(), &client, &env);
    rt().block_on(async {
        let mut c = p.provider(&client).await;
        let t = provider_type(&mut c).await;
        let r = c
            .configure_provider(pb::configure_provider::Request {
                config: dv(&Value::object([("proxmox", Value::Null)]), &t),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let d = diags(&r.diagnostics);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].0, "proxmox.endpoint");
        assert!(
            d[0].2.contains("from PROXMOX_VE_ENDPOINT") && d[0].2.contains("https://"),
            "{d:?}"
        );
        assert!(!d[0].2.contains("s3cret-token-value"));
        // The block wins over the environment.
        let good = proxmox(&[("endpoint", "https://pve.example:8006".into())]);
        let r = c
            .configure_provider(pb::configure_provider::Request {
                config: dv(&good, &t),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    });
}

both_terraforms!(terraform_reads_the_provider_schema, |tf: &Tf| {
    let w = Work::new(tf);
    w.config("terraform {\n  required_providers {\n    infraflux = { source = \"infraflux/infraflux\" }\n  }\n}\nprovider \"infraflux\" {\n  proxmox {\n    endpoint = \"https://pve.example:8006\"\n  }\n}\n");
    w.init();
    w.ok(&["validate", "-no-color"]);
    let o = w.ok(&["providers", "schema", "-json"]);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let p =
        &j["provider_schemas"]["registry.terraform.io/infraflux/infraflux"]["provider"]["block"];
    let px = &p["block_types"]["proxmox"]["block"]["attributes"];
    assert_eq!(px["api_token"]["sensitive"], true);
    assert_eq!(px["password"]["sensitive"], true);
    assert!(
        px["endpoint"]["description"]
            .as_str()
            .unwrap()
            .contains("PROXMOX_VE_ENDPOINT")
    );
});

both_terraforms!(
    bad_provider_block_fails_validate_with_the_attribute,
    |tf: &Tf| {
        let w = Work::new(tf);
        w.config(
        "terraform {\n  required_providers {\n    infraflux = { source = \"infraflux/infraflux\" }\n  }\n}\n\
         provider \"infraflux\" {\n  proxmox {\n    endpoint  = \"http://pve.example:8006\"\n    api_token = \"root@pam-no-separator\"\n  }\n}\n\
         resource \"infraflux_proxmox_vm\" \"a\" {\n  node = \"pve1\"\n  clone {\n    source_vm_id = 9000\n  }\n}\n",
    );
        w.init();
        let o = w.fails(&["validate", "-no-color"]);
        let t = o.text();
        assert!(
            t.contains("Invalid Proxmox VE endpoint") && t.contains("must start with https://"),
            "{t}"
        );
        assert!(t.contains("Invalid Proxmox VE API token"), "{t}");
        assert!(
            t.contains("endpoint = \"http://pve.example:8006\""),
            "Terraform points at the line: {t}"
        );
    }
);
