//! rustls client configs for the two faces of apid.
//!
//! - **Maintenance**: TLS without a client certificate and WITHOUT verifying the server
//!   certificate. Only here: a node in maintenance mode presents a certificate from a
//!   throwaway self-signed CA it generated at boot, which nothing can know in advance
//!   (`talosctl --insecure` does the same). The handshake signature is still checked against
//!   the presented key. Nothing secret is sent to a maintenance node except the machine config
//!   itself, which is exactly what maintenance mode exists to receive.
//! - **Running**: mutual TLS. The server chain is verified against the cluster's OS CA; the
//!   client presents the `client_configuration` certificate (Ed25519, role in Organization).
//!
//! Name check (running): like talosctl. talosctl builds a `tls.Config` without `ServerName`
//! (siderolabs/talos `pkg/machinery/client/connection.go`, `buildTLSConfig`) and hands it to
//! grpc-go's `credentials.NewTLS`, which then sets `ServerName` to the host of the dial target,
//! i.e. the endpoint the client connects to; Go then checks that host against the server
//! certificate's SANs (IP SAN for an IP endpoint). So we verify the server certificate for the
//! endpoint's host (an IP SAN for IP endpoints), never for the `node` a call is proxied to.
//! Talos's apid certificate carries the node's addresses and `machine.certSANs` as SANs; the
//! OS CA certificate itself needs none.

use std::net::IpAddr;
use std::sync::Arc;

use infraflux_tls::{AnyCert, PolicyVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::error::TalosError;
use crate::pem;
use crate::secrets::ClientConfiguration;

fn finish(mut c: ClientConfig) -> Arc<ClientConfig> {
    c.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(c)
}

fn config_err(what: &str, e: impl std::fmt::Display) -> TalosError {
    TalosError::Config(format!("{what}: {e}"))
}

/// Maintenance mode: no client certificate, server certificate accepted unverified (see the
/// module documentation for why this is only ever done in maintenance mode).
pub fn maintenance() -> Result<Arc<ClientConfig>, TalosError> {
    let provider = infraflux_tls::crypto_provider();
    // Any certificate; the handshake signature is still checked against the presented key.
    let verifier = Arc::new(PolicyVerifier::new(AnyCert, &provider));
    let c = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err("TLS setup", e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(finish(c))
}

/// Running mode: mutual TLS with the cluster's client configuration.
pub fn running(creds: &ClientConfiguration) -> Result<Arc<ClientConfig>, TalosError> {
    let provider = infraflux_tls::crypto_provider();
    let ca = pem::decode_labelled(&creds.ca, pem::CERTIFICATE)
        .map_err(|e| config_err("client_configuration.ca", e))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca))
        .map_err(|e| config_err("client_configuration.ca", e))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| config_err("client_configuration.ca", e))?;
    let crt = pem::decode_labelled(&creds.crt, pem::CERTIFICATE)
        .map_err(|e| config_err("client_configuration.crt", e))?;
    // Talos writes Ed25519 PKCS#8 under `ED25519 PRIVATE KEY`; accept `PRIVATE KEY` too.
    let key = match pem::decode(&creds.key) {
        Ok((label, der)) if label == pem::ED25519_PRIVATE_KEY || label == "PRIVATE KEY" => der,
        Ok((label, _)) => {
            return Err(TalosError::Config(format!(
                "client_configuration.key: expected an Ed25519 PKCS#8 key, found PEM label {label:?}"
            )));
        }
        // The PEM error names no key material.
        Err(e) => return Err(config_err("client_configuration.key", e)),
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    let c = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err("TLS setup", e))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(vec![CertificateDer::from(crt)], key)
        // rustls's message says whether the key is unusable or does not match; never the key.
        .map_err(|e| config_err("client_configuration.crt/key", e))?;
    Ok(finish(c))
}

/// The TLS server name for an endpoint host, as grpc-go derives it from the dial target.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TalosError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string())
        .map_err(|e| TalosError::Config(format!("endpoint host {host:?}: {e}")))
}
