//! The install manifest's bytes: read from a file or fetched with a plain GET, verified
//! against the expected sha256, and kept in the provider process by digest so plan, apply and
//! refresh of one run read it once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use infraflux_argocd::versions;
use tfplugin::{AttributePath, Diagnostic};

use super::options::{Settings, Source, diagnostic};

/// How long one download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Verified manifests by sha256.
fn cache() -> &'static Mutex<HashMap<String, Arc<Vec<u8>>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The verified manifest the settings name. Errors name the attribute to fix: the source
/// (`manifest_url`, `manifest_path`) when it cannot be read, `manifest_sha256` or `version`
/// when the digest differs.
pub async fn manifest(settings: &Settings) -> Result<Arc<Vec<u8>>, Diagnostic> {
    if let Some(bytes) = cache()
        .lock()
        .ok()
        .and_then(|c| c.get(&settings.sha256).cloned())
    {
        return Ok(bytes);
    }
    let bytes = match &settings.source {
        Source::Path(p) => tokio::fs::read(p).await.map_err(|e| {
            Diagnostic::error(
                "Cannot read the Argo CD install manifest",
                format!("{p}: {e}."),
            )
            .at(AttributePath::attr("manifest_path"))
        })?,
        Source::Url(u) => fetch(u).await.map_err(|e| {
            Diagnostic::error(
                "Cannot fetch the Argo CD install manifest",
                format!(
                    "GET {u}: {e}. Nothing was applied. For air-gapped sites set manifest_path \
                     to a copy of the file."
                ),
            )
            .at(AttributePath::attr("manifest_url"))
        })?,
    };
    versions::verify(&bytes, &settings.sha256).map_err(|e| diagnostic(&e, settings.sha256_from))?;
    let bytes = Arc::new(bytes);
    if let Ok(mut c) = cache().lock() {
        c.insert(settings.sha256.clone(), bytes.clone());
    }
    Ok(bytes)
}

async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!(
            "terraform-provider-infraflux/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.get(url).send().await.map_err(|e| chain(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    resp.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| chain(&e))
}

/// An error with its causes, the way a user needs to read a network failure.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
