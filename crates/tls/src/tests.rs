//! Handshakes in memory, shaped like the plugin's AutoMTLS: a server on
//! [`crypto_provider`] pins a client whose certificate is P-521 (as Terraform's is), and the
//! client pins the server.

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P521_SHA512};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use super::*;

struct Cert {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn cert(alg: &'static rcgen::SignatureAlgorithm) -> Cert {
    let key = KeyPair::generate_for(alg).expect("key");
    let c = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    Cert {
        der: c.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

fn pair(
    server: &Cert,
    server_pins: &Cert,
    client: &Cert,
    client_pins: &Cert,
) -> (ClientConnection, ServerConnection) {
    let provider = crypto_provider();
    let verifier = PolicyVerifier::new(ExactCert(server_pins.der.to_vec()), &provider);
    let sc = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![server.der.clone()], server.key.clone_key())
        .expect("server config");
    // The client signs with P-521, which ring cannot: it plays Terraform, not us.
    let aws = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = PolicyVerifier::new(ExactCert(client_pins.der.to_vec()), &aws);
    let cc = ClientConfig::builder_with_provider(aws)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![client.der.clone()], client.key.clone_key())
        .expect("client config");
    let name = ServerName::try_from("localhost").expect("name");
    (
        ClientConnection::new(Arc::new(cc), name).expect("client"),
        ServerConnection::new(Arc::new(sc)).expect("server"),
    )
}

/// Which side failed, and how.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    Client(rustls::Error),
    Server(rustls::Error),
}

fn handshake(c: &mut ClientConnection, s: &mut ServerConnection) -> Outcome {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client writes");
        }
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).expect("server reads");
            if let Err(e) = s.process_new_packets() {
                return Outcome::Server(e);
            }
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("server writes");
        }
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).expect("client reads");
            if let Err(e) = c.process_new_packets() {
                return Outcome::Client(e);
            }
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Outcome::Done;
        }
    }
    panic!("the handshake did not finish");
}

const REFUSED: rustls::Error =
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure);

#[test]
fn pinned_peers_handshake_and_p521_signatures_verify() {
    let (server, client) = (cert(&PKCS_ECDSA_P256_SHA256), cert(&PKCS_ECDSA_P521_SHA512));
    let (mut c, mut s) = pair(&server, &client, &client, &server);
    assert_eq!(handshake(&mut c, &mut s), Outcome::Done);
}

#[test]
fn another_client_certificate_is_refused() {
    let (server, client) = (cert(&PKCS_ECDSA_P256_SHA256), cert(&PKCS_ECDSA_P521_SHA512));
    let stranger = cert(&PKCS_ECDSA_P521_SHA512);
    let (mut c, mut s) = pair(&server, &client, &stranger, &server);
    assert_eq!(handshake(&mut c, &mut s), Outcome::Server(REFUSED));
}

#[test]
fn another_server_certificate_is_refused() {
    let (server, client) = (cert(&PKCS_ECDSA_P256_SHA256), cert(&PKCS_ECDSA_P521_SHA512));
    let impostor = cert(&PKCS_ECDSA_P256_SHA256);
    let (mut c, mut s) = pair(&impostor, &client, &client, &server);
    assert_eq!(handshake(&mut c, &mut s), Outcome::Client(REFUSED));
}

#[test]
fn any_cert_accepts_every_certificate() {
    let c = cert(&PKCS_ECDSA_P256_SHA256);
    assert!(AnyCert.check(&c.der).is_ok());
    assert_eq!(ExactCert(vec![1, 2, 3]).check(&c.der), Err(REFUSED));
    assert_eq!(ExactCert(c.der.to_vec()).check(&c.der), Ok(()));
}
