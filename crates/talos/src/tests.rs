//! Secrets and rendering against Talos's own JSON schemas (as the lab embeds them).

use std::sync::OnceLock;
use std::time::Instant;

use ::time::OffsetDateTime;
use serde_json::Value;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pem;
use crate::render::{
    ClusterSpec, Cni, NodeSpec, Role, TalosVersion, Vip, render, render_documents,
};
use crate::secrets::{self, MachineSecrets, SecretsError};

/// Fields Talos still decodes (and older generators wrote) that the published 1.13.9 schema
/// does not describe. We do not emit them, so nothing needs stripping for validation.
const SCHEMA_1_13_MISSING_FEATURES: &[&str] = &["rbac", "stableHostname", "apidCheckExtKeyUsage"];

fn secrets() -> &'static MachineSecrets {
    static SECRETS: OnceLock<MachineSecrets> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let start = Instant::now();
        let s = MachineSecrets::generate().expect("generate");
        eprintln!("MachineSecrets::generate took {:?}", start.elapsed());
        s
    })
}

/// Talos's own schema of `version` (the lab embeds them, derived from upstream).
fn load_schema(version: &str) -> Value {
    use infraflux_lab::talos::schema::{SCHEMA_V1_13, SCHEMA_V1_14};
    let text = match version {
        "1.13.9" => SCHEMA_V1_13,
        "1.14.0-rc.1" => SCHEMA_V1_14,
        other => panic!("no Talos schema for {other}"),
    };
    serde_json::from_str(text).expect("schema JSON")
}

fn cluster(cni: Cni, vip: bool) -> ClusterSpec {
    ClusterSpec {
        name: "lab".into(),
        endpoint: "https://10.0.0.10:6443".into(),
        kubernetes_version: "1.34.1".into(),
        install_disk: "/dev/sda".into(),
        install_image: "ghcr.io/siderolabs/installer:v1.13.9".into(),
        cni,
        vip: vip.then(|| Vip {
            address: "10.0.0.10".parse().expect("ip"),
            link: "eth0".into(),
        }),
        config_patches: vec![],
    }
}

fn node(role: Role) -> NodeSpec {
    NodeSpec {
        role,
        hostname: match role {
            Role::ControlPlane => "cp-1".into(),
            Role::Worker => "worker-1".into(),
        },
        install_disk: None,
        config_patches: vec![],
    }
}

fn cert(pem_text: &str) -> Vec<u8> {
    pem::decode_labelled(pem_text, pem::CERTIFICATE).expect("certificate PEM")
}

fn key_alg_oid(der: &[u8]) -> String {
    let (_, c) = X509Certificate::from_der(der).expect("parse");
    c.public_key().algorithm.algorithm.to_id_string()
}

#[test]
fn talos_secrets_have_talos_algorithms_labels_and_formats() {
    let s = secrets();
    s.validate().expect("generated secrets validate");
    assert!(
        secrets::is_token(&s.bootstrap_token),
        "bootstrap token format"
    );
    assert!(secrets::is_token(&s.trustd_token), "trustd token format");
    assert_ne!(s.bootstrap_token, s.trustd_token);
    assert!(!secrets::is_token("abcdef.0123456789abcdeF"));
    assert!(!secrets::is_token("abcde.0123456789abcdef"));
    for b in [
        &s.cluster_id,
        &s.cluster_secret,
        &s.secretbox_encryption_secret,
    ] {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("base64");
        assert_eq!(raw.len(), 32);
    }
    // Labels: Talos's own (siderolabs/crypto x509/constants.go).
    assert!(
        s.os_ca
            .key
            .starts_with("-----BEGIN ED25519 PRIVATE KEY-----\n")
    );
    for ca in [&s.etcd_ca, &s.kubernetes_ca, &s.aggregator_ca] {
        assert!(ca.key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    }
    assert!(
        s.service_account_key
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
    );
    // The Ed25519 key is PKCS#8 (v1, like Go's MarshalPKCS8PrivateKey).
    let der = pem::decode_labelled(&s.os_ca.key, pem::ED25519_PRIVATE_KEY).expect("pem");
    aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).expect("PKCS#8 Ed25519");
    // Algorithms of the CA certificates.
    assert_eq!(key_alg_oid(&cert(&s.os_ca.crt)), "1.3.101.112"); // Ed25519
    for ca in [&s.etcd_ca, &s.kubernetes_ca, &s.aggregator_ca] {
        let der = cert(&ca.crt);
        let (_, c) = X509Certificate::from_der(&der).expect("parse");
        assert_eq!(key_alg_oid(&der), "1.2.840.10045.2.1"); // id-ecPublicKey
        let curve = c
            .public_key()
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string());
        assert_eq!(curve.as_deref(), Some("1.2.840.10045.3.1.7")); // P-256
        assert!(c.is_ca());
    }
    let rsa_der = pem::decode_labelled(&s.service_account_key, pem::RSA_PRIVATE_KEY).expect("pem");
    let rsa = aws_lc_rs::rsa::KeyPair::from_der(&rsa_der).expect("PKCS#1 RSA");
    assert_eq!(rsa.public_modulus_len() * 8, 4096);
}

/// Checks that `crt` is a client certificate (EKU exactly clientAuth, not a CA) whose signature
/// verifies with the key of `ca` (and a tampered one does not); returns its subject's
/// (organizations, common names).
fn assert_client_cert_signed_by(
    crt: &str,
    ca: &str,
    alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
) -> (Vec<String>, Vec<String>) {
    let ca_der = cert(ca);
    let (_, ca) = X509Certificate::from_der(&ca_der).expect("ca");
    let der = cert(crt);
    let (_, c) = X509Certificate::from_der(&der).expect("client");
    let eku = c
        .extended_key_usage()
        .expect("eku ext")
        .expect("eku present")
        .value;
    assert!(eku.client_auth);
    assert!(!eku.server_auth && !eku.any && eku.other.is_empty() && !eku.code_signing);
    assert!(!c.is_ca());
    assert_eq!(c.issuer(), ca.subject());
    let ca_pub = aws_lc_rs::signature::UnparsedPublicKey::new(
        alg,
        ca.public_key().subject_public_key.data.to_vec(),
    );
    ca_pub
        .verify(c.tbs_certificate.as_ref(), &c.signature_value.data)
        .expect("the certificate verifies against the CA");
    let mut bad = c.signature_value.data.to_vec();
    bad[0] ^= 1;
    assert!(ca_pub.verify(c.tbs_certificate.as_ref(), &bad).is_err());
    let names = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    (
        names(&mut c.subject().iter_organization()),
        names(&mut c.subject().iter_common_name()),
    )
}

#[test]
fn talos_admin_client_cert_is_os_admin_client_auth_signed_by_os_ca() {
    let s = secrets();
    let client = s
        .admin_client(OffsetDateTime::now_utc(), secrets::CLIENT_VALIDITY)
        .expect("admin cert");
    assert_eq!(client.ca, s.os_ca.crt);
    assert!(
        client
            .key
            .starts_with("-----BEGIN ED25519 PRIVATE KEY-----\n")
    );
    let (orgs, _) =
        assert_client_cert_signed_by(&client.crt, &s.os_ca.crt, &aws_lc_rs::signature::ED25519);
    assert_eq!(orgs, vec!["os:admin"]);
}

#[test]
fn kubernetes_admin_cert_is_system_masters_signed_by_the_kubernetes_ca() {
    let s = secrets();
    let admin = s
        .kubernetes_admin(OffsetDateTime::now_utc(), secrets::CLIENT_VALIDITY)
        .expect("kubernetes admin cert");
    assert!(admin.key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    let (orgs, cns) = assert_client_cert_signed_by(
        &admin.crt,
        &s.kubernetes_ca.crt,
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
    );
    assert_eq!(orgs, vec!["system:masters"]);
    assert_eq!(cns, vec!["admin"]);
}

#[test]
fn talos_secrets_json_round_trips_and_debug_hides_everything() {
    let s = secrets();
    let text = s.to_json().expect("json");
    let back = MachineSecrets::from_json(&text).expect("round trip");
    assert_eq!(&back, s);
    assert_eq!(back.to_json().expect("json"), text, "stable JSON");
    let v: Value = serde_json::from_str(&text).expect("value");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "cluster_id",
            "cluster_secret",
            "bootstrap_token",
            "trustd_token",
            "secretbox_encryption_secret",
            "os_ca",
            "etcd_ca",
            "kubernetes_ca",
            "aggregator_ca",
            "service_account_key"
        ],
        "the state format is stable"
    );
    let dbg = format!("{s:?}");
    for needle in [
        "PRIVATE KEY",
        s.bootstrap_token.as_str(),
        s.trustd_token.as_str(),
        s.cluster_secret.as_str(),
        s.secretbox_encryption_secret.as_str(),
    ] {
        assert!(!dbg.contains(needle), "Debug leaks {needle:?}: {dbg}");
    }
}

#[test]
fn talos_given_secrets_are_validated_and_errors_name_the_field() {
    let s = secrets();
    let mut v: Value = serde_json::from_str(&s.to_json().expect("json")).expect("value");
    v["trustd_token"] = Value::String("NOPE".into());
    let err = MachineSecrets::from_json(&v.to_string()).unwrap_err();
    assert!(
        matches!(
            err,
            SecretsError::Invalid {
                field: "trustd_token",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("NOPE"));

    let mut v: Value = serde_json::from_str(&s.to_json().expect("json")).expect("value");
    v["os_ca"]["key"] = Value::String(s.os_ca.key.replace("ED25519 PRIVATE KEY", "PRIVATE KEY"));
    let err = MachineSecrets::from_json(&v.to_string()).unwrap_err();
    assert!(
        matches!(err, SecretsError::Invalid { field: "os_ca", .. }),
        "{err}"
    );

    let mut v: Value = serde_json::from_str(&s.to_json().expect("json")).expect("value");
    v["cluster_secret"] = serde_json::json!({"oops": s.cluster_secret});
    let err = MachineSecrets::from_json(&v.to_string()).unwrap_err();
    assert!(!err.to_string().contains(&s.cluster_secret), "{err}");

    let mut v: Value = serde_json::from_str(&s.to_json().expect("json")).expect("value");
    v["surprise"] = Value::Bool(true);
    assert!(matches!(
        MachineSecrets::from_json(&v.to_string()),
        Err(SecretsError::Json(_))
    ));
}

/// Validates every document against the schema, unmodified.
fn assert_schema_valid(schema: &Value, version: &str, docs: &[Value], what: &str) {
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    for d in docs {
        let errors: Vec<String> = validator.iter_errors(d).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{what}: document {} does not validate against {version}: {errors:#?}",
            d.get("kind").and_then(Value::as_str).unwrap_or("v1alpha1")
        );
    }
}

#[test]
fn talos_1_13_schema_lacks_fields_real_configs_carry() {
    let schema = load_schema("1.13.9");
    let features = &schema["$defs"]["v1alpha1.FeaturesConfig"]["properties"];
    for f in SCHEMA_1_13_MISSING_FEATURES {
        assert!(
            features.get(*f).is_none(),
            "the 1.13.9 schema now has {f}: stop stripping it"
        );
    }
    assert!(
        schema["$defs"]["v1alpha1.MachineConfig"]["properties"]
            .get("network")
            .is_none()
    );
}

#[test]
fn talos_every_rendered_config_validates_against_talos_schema() {
    let s = secrets();
    let mut checked = 0;
    for (version, talos) in [("1.13.9", "v1.13.9"), ("1.14.0-rc.1", "v1.14.0-rc.1")] {
        let schema = load_schema(version);
        let tv = TalosVersion::parse(talos).expect("version");
        for role in [Role::ControlPlane, Role::Worker] {
            for cni in [Cni::Cilium, Cni::Flannel] {
                for vip in [false, true] {
                    let what = format!("{talos} {role:?} {cni:?} vip={vip}");
                    let c = cluster(cni, vip);
                    let n = node(role);
                    let docs = render_documents(&c, &n, s, &tv).expect("render");
                    assert_schema_valid(&schema, version, &docs, &what);
                    // The YAML text parses back to the same documents.
                    let yaml = render(&c, &n, s, &tv).expect("render");
                    let parsed = crate::patch::parse_yaml_documents(&yaml).expect("yaml");
                    assert_eq!(parsed, docs, "{what}");
                    checked += 1;
                }
            }
        }
    }
    eprintln!("validated {checked} rendered configs");
}

#[test]
fn talos_schema_validation_is_not_vacuous() {
    let s = secrets();
    for (version, talos) in [("1.13.9", "v1.13.9"), ("1.14.0-rc.1", "v1.14.0")] {
        let schema = load_schema(version);
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let tv = TalosVersion::parse(talos).expect("v");
        let docs = render_documents(
            &cluster(Cni::Cilium, true),
            &node(Role::ControlPlane),
            s,
            &tv,
        )
        .expect("render");
        for d in &docs {
            let mut bad = d.clone();
            bad["notATalosField"] = Value::Bool(true);
            assert!(
                !validator.is_valid(&bad),
                "{version}: unknown field accepted"
            );
        }
        let mut bad = docs[0].clone();
        bad["machine"]["type"] = Value::String("init2".into());
        assert!(
            !validator.is_valid(&bad),
            "{version}: bad machine.type accepted"
        );
        if version.starts_with("1.13") {
            // The gap is real: a 1.13 config written with these fields fails the schema.
            let mut with_rbac = docs[0].clone();
            with_rbac["machine"]["features"]["rbac"] = Value::Bool(true);
            assert!(!validator.is_valid(&with_rbac));
        }
    }
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
}

#[test]
fn talos_1_13_shape_cilium_flannel_roles_vip() {
    let s = secrets();
    let tv = TalosVersion::parse("v1.13.9").expect("v");
    let docs = render_documents(
        &cluster(Cni::Cilium, true),
        &node(Role::ControlPlane),
        s,
        &tv,
    )
    .expect("render");
    let v1 = &docs[0];
    assert_eq!(v1["machine"]["type"], "controlplane");
    assert_eq!(v1["cluster"]["network"]["cni"]["name"], "none");
    assert_eq!(v1["cluster"]["proxy"]["disabled"], true);
    assert_eq!(v1["machine"]["features"]["kubePrism"]["port"], 7445);
    assert_eq!(v1["machine"]["features"]["kubePrism"]["enabled"], true);
    assert_eq!(
        v1["cluster"]["controlPlane"]["endpoint"],
        "https://10.0.0.10:6443"
    );
    assert_eq!(v1["cluster"]["clusterName"], "lab");
    assert_eq!(v1["machine"]["install"]["disk"], "/dev/sda");
    assert_eq!(
        v1["machine"]["kubelet"]["image"],
        "ghcr.io/siderolabs/kubelet:v1.34.1"
    );
    assert_eq!(v1["cluster"]["token"], s.bootstrap_token.as_str());
    assert_eq!(v1["machine"]["token"], s.trustd_token.as_str());
    assert_eq!(v1["machine"]["ca"]["crt"], pem::b64(&s.os_ca.crt).as_str());
    assert_eq!(v1["machine"]["ca"]["key"], pem::b64(&s.os_ca.key).as_str());
    assert_eq!(
        find(&docs, "HostnameConfig").expect("hostname")["hostname"],
        "cp-1"
    );
    assert_eq!(
        find(&docs, "Layer2VIPConfig").expect("vip")["name"],
        "10.0.0.10"
    );

    let mut w = node(Role::Worker);
    w.install_disk = Some("/dev/vdb".into());
    let docs = render_documents(&cluster(Cni::Flannel, true), &w, s, &tv).expect("render");
    let v1 = &docs[0];
    assert_eq!(v1["machine"]["type"], "worker");
    assert_eq!(v1["machine"]["ca"]["key"], "");
    assert_eq!(v1["cluster"]["ca"]["key"], "");
    assert!(v1["cluster"].get("etcd").is_none());
    assert!(v1["cluster"].get("serviceAccount").is_none());
    assert!(v1["cluster"].get("secretboxEncryptionSecret").is_none());
    assert!(
        v1["cluster"]["network"].get("cni").is_none(),
        "flannel is Talos's default"
    );
    assert!(v1["cluster"]["proxy"].get("disabled").is_none());
    assert_eq!(v1["machine"]["install"]["disk"], "/dev/vdb");
    assert!(
        find(&docs, "Layer2VIPConfig").is_none(),
        "VIP only on control planes"
    );
}

#[test]
fn talos_1_14_shape_is_multidoc() {
    let s = secrets();
    let tv = TalosVersion::parse("1.14.0-rc.1").expect("v");
    let yaml = render(
        &cluster(Cni::Cilium, false),
        &node(Role::ControlPlane),
        s,
        &tv,
    )
    .expect("render");
    assert!(yaml.contains("\n---\n"));
    let docs = render_documents(
        &cluster(Cni::Cilium, false),
        &node(Role::ControlPlane),
        s,
        &tv,
    )
    .expect("render");
    assert_eq!(
        find(&docs, "KubeProxyConfig").expect("proxy")["enabled"],
        false
    );
    assert_eq!(find(&docs, "KubePrismConfig").expect("prism")["port"], 7445);
    assert!(find(&docs, "KubeFlannelCNIConfig").is_none());
    assert_eq!(
        find(&docs, "KubeClusterConfig").expect("cluster")["endpoint"],
        "https://10.0.0.10:6443"
    );
    assert!(docs[0].pointer("/machine/install").is_none());
    let ca = find(&docs, "KubeAPIServerCAConfig").expect("ca");
    assert_eq!(
        ca["issuingCA"]["key"],
        s.kubernetes_ca.key.as_str(),
        "plain PEM"
    );
    assert!(docs[0]["cluster"].get("etcd").is_some());

    let flannel_cp = render_documents(
        &cluster(Cni::Flannel, false),
        &node(Role::ControlPlane),
        s,
        &tv,
    )
    .expect("render");
    assert!(find(&flannel_cp, "KubeFlannelCNIConfig").is_some());
    assert!(
        find(&flannel_cp, "KubeProxyConfig")
            .expect("proxy")
            .get("enabled")
            .is_none()
    );
    let worker = render_documents(&cluster(Cni::Flannel, false), &node(Role::Worker), s, &tv)
        .expect("render");
    for cp_only in [
        "KubeFlannelCNIConfig",
        "KubeProxyConfig",
        "KubeServiceAccountConfig",
        "KubeAggregatorCAConfig",
        "KubeEtcdEncryptionConfig",
    ] {
        assert!(find(&worker, cp_only).is_none(), "{cp_only} on a worker");
    }
    let ca = find(&worker, "KubeAPIServerCAConfig").expect("ca");
    assert!(ca.get("issuingCA").is_none());
    assert_eq!(ca["acceptedCAs"][0], s.kubernetes_ca.crt.as_str());
    assert!(
        worker[0]["machine"]["ca"]["key"]
            .as_str()
            .is_some_and(str::is_empty)
    );
    assert!(worker[0]["cluster"].get("etcd").is_none());
    assert!(
        find(&worker, "UnattendedInstall").expect("install")["provisioning"]["diskSelector"]["match"]
            == "disk.dev_path == \"/dev/sda\""
    );
}

#[test]
fn talos_same_secrets_give_byte_identical_configs() {
    let s = secrets();
    for talos in ["v1.13.9", "v1.14.0"] {
        let tv = TalosVersion::parse(talos).expect("v");
        let c = cluster(Cni::Cilium, true);
        let a = render(&c, &node(Role::ControlPlane), s, &tv).expect("a");
        let again = MachineSecrets::from_json(&s.to_json().expect("json")).expect("back");
        let b = render(&c, &node(Role::ControlPlane), &again, &tv).expect("b");
        assert_eq!(a, b, "{talos}");
    }
}

#[test]
fn talos_cluster_and_node_patches_apply_in_order() {
    let s = secrets();
    let tv = TalosVersion::parse("v1.13.9").expect("v");
    let mut c = cluster(Cni::Cilium, false);
    c.config_patches = vec![
        "machine:\n  certSANs: [lb.example]\n  install: {wipe: true}\n".into(),
        "- {op: add, path: /machine/install/extraKernelArgs, value: [console=ttyS0]}\n".into(),
    ];
    let mut n = node(Role::ControlPlane);
    n.config_patches =
        vec!["machine:\n  install: {wipe: false}\n  certSANs: [cp-1.example]\n".into()];
    let docs = render_documents(&c, &n, s, &tv).expect("render");
    assert_eq!(
        docs[0]["machine"]["certSANs"],
        serde_json::json!(["lb.example", "cp-1.example"])
    );
    assert_eq!(docs[0]["machine"]["install"]["wipe"], false);
    assert_eq!(
        docs[0]["machine"]["install"]["extraKernelArgs"],
        serde_json::json!(["console=ttyS0"])
    );

    n.config_patches
        .push("- {op: replace, path: /cluster/nothere/x, value: 1}\n".into());
    let err = render(&c, &n, s, &tv).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node \"cp-1\" config_patches[1] at /cluster/nothere/x: operation 0 failed: path is invalid"
    );
    c.config_patches
        .push("cluster: {network: {podSubnets: {a: 1}}}\n".into());
    let err = render(&c, &n, s, &tv).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cluster config_patches[2] at /cluster/network/podSubnets: "),
        "{err}"
    );
}

#[test]
fn talos_render_rejects_bad_inputs() {
    let s = secrets();
    let tv = TalosVersion::parse("1.13.0").expect("v");
    let mut c = cluster(Cni::Cilium, false);
    c.endpoint = "10.0.0.10:6443".into();
    let err = render(&c, &node(Role::Worker), s, &tv).unwrap_err();
    assert!(err.to_string().starts_with("invalid endpoint"), "{err}");
    assert!(TalosVersion::parse("one.two").is_err());
    assert!(!TalosVersion::parse("v1.13.9").expect("v").multidoc());
    assert!(TalosVersion::parse("v1.14.0-beta.0").expect("v").multidoc());
}

/// `cargo test -p terraform-provider-infraflux talos_print_example -- --ignored --nocapture`
/// shows what a control plane's config looks like (with real, throwaway secrets).
#[test]
#[ignore = "prints an example config"]
fn talos_print_example() {
    for talos in ["v1.13.9", "v1.14.0"] {
        let tv = TalosVersion::parse(talos).expect("v");
        let yaml = render(
            &cluster(Cni::Cilium, true),
            &node(Role::ControlPlane),
            secrets(),
            &tv,
        )
        .expect("render");
        println!("# {talos}\n{yaml}");
    }
}
