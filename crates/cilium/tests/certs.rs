//! The TLS material has the chart's shape (genCA/genSignedCert): RSA-2048, CN-only subjects,
//! server+client auth, CA 1095 days, leaves 365 days, leaves signed by the CA.

mod common;

use common::certs;
use infraflux_cilium::{Certificates, build};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::{FromDer, X509Certificate};

fn with_cert<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
    let (_, p) = parse_x509_pem(pem.as_bytes()).expect("PEM");
    let (_, cert) = X509Certificate::from_der(&p.contents).expect("DER");
    f(&cert)
}

fn days(cert: &X509Certificate<'_>) -> i64 {
    (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400
}

fn key_bits(cert: &X509Certificate<'_>) -> usize {
    match cert.public_key().parsed().expect("public key") {
        x509_parser::public_key::PublicKey::RSA(rsa) => rsa.key_size(),
        other => panic!("not RSA: {other:?}"),
    }
}

#[test]
fn the_ca_is_shaped_like_the_charts() {
    let c = certs();
    with_cert(&c.ca.cert_pem, |ca| {
        assert_eq!(ca.subject().to_string(), "CN=Cilium CA");
        assert_eq!(ca.issuer().to_string(), "CN=Cilium CA");
        assert_eq!(days(ca), 1095);
        assert_eq!(key_bits(ca), 2048);
        let bc = ca
            .basic_constraints()
            .expect("ok")
            .expect("basic constraints");
        assert!(bc.critical && bc.value.ca);
        let ku = ca.key_usage().expect("ok").expect("key usage");
        assert!(
            ku.critical
                && ku.value.digital_signature()
                && ku.value.key_encipherment()
                && ku.value.key_cert_sign()
        );
        let eku = ca.extended_key_usage().expect("ok").expect("eku").value;
        assert!(eku.server_auth && eku.client_auth);
    });
    assert!(
        c.ca.key_pem
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
        "PKCS#1, as the chart writes it"
    );
}

#[test]
fn the_hubble_leaves_are_signed_by_the_ca() {
    let c = certs();
    let ca_ski = with_cert(&c.ca.cert_pem, |ca| {
        ca.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .expect("CA subject key identifier")
    });
    for (leaf, name) in [
        (&c.hubble_server, "*.default.hubble-grpc.cilium.io"),
        (&c.hubble_relay_client, "*.hubble-relay.cilium.io"),
    ] {
        with_cert(&leaf.cert_pem, |cert| {
            assert_eq!(cert.subject().to_string(), format!("CN={name}"));
            assert_eq!(cert.issuer().to_string(), "CN=Cilium CA");
            assert_eq!(days(cert), 365);
            assert_eq!(key_bits(cert), 2048);
            let bc = cert
                .basic_constraints()
                .expect("ok")
                .expect("basic constraints");
            assert!(bc.critical && !bc.value.ca);
            let ku = cert.key_usage().expect("ok").expect("key usage").value;
            assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
            let san = cert
                .subject_alternative_name()
                .expect("ok")
                .expect("SAN")
                .value;
            assert_eq!(san.general_names, vec![GeneralName::DNSName(name)]);
            let aki = cert
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::AuthorityKeyIdentifier(a) => {
                        a.key_identifier.as_ref().map(|k| k.0.to_vec())
                    }
                    _ => None,
                })
                .expect("authority key identifier");
            assert_eq!(aki, ca_ski, "{name} is issued by this CA");
        });
        assert!(
            leaf.key_pem
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
    }
}

#[test]
fn generating_twice_gives_new_material_and_debug_hides_keys() {
    let now = time::OffsetDateTime::now_utc();
    let a = Certificates::generate(now).expect("generate");
    assert_ne!(a.ca.key_pem, certs().ca.key_pem);
    assert_ne!(a.ca.cert_pem, certs().ca.cert_pem);
    let debug = format!("{a:?}");
    assert!(
        !debug.contains("PRIVATE KEY"),
        "keys must not reach Debug output"
    );
    assert!(debug.contains("<redacted>"));
}

#[test]
fn the_secrets_carry_the_given_material_unchanged() {
    use base64::Engine as _;
    let c = certs();
    let m = build(&common::golden_options("hubble"), c).expect("build");
    let data = |name: &str, key: &str| {
        let s = m
            .objects
            .iter()
            .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == name)
            .expect("secret");
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(s["data"][key].as_str().expect("b64"))
                .expect("b64"),
        )
        .expect("utf-8")
    };
    assert_eq!(data("cilium-ca", "ca.crt"), c.ca.cert_pem);
    assert_eq!(data("cilium-ca", "ca.key"), c.ca.key_pem);
    assert_eq!(
        data("hubble-server-certs", "tls.crt"),
        c.hubble_server.cert_pem
    );
    assert_eq!(
        data("hubble-server-certs", "tls.key"),
        c.hubble_server.key_pem
    );
    assert_eq!(
        data("hubble-relay-client-certs", "tls.crt"),
        c.hubble_relay_client.cert_pem
    );
    assert_eq!(data("hubble-relay-client-certs", "ca.crt"), c.ca.cert_pem);
    // Rebuilding with the same material gives the same objects: no plan churn.
    assert_eq!(
        m.objects,
        build(&common::golden_options("hubble"), c)
            .expect("build")
            .objects
    );
}
