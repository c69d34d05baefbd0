//! Machine configs as a Talos node accepts them: YAML documents checked against Talos's schema,
//! then what the schema cannot say (PEM material, token formats, the cluster endpoint).

use rcgen::KeyPair;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::pki::{self, Pem, PkiError};
use super::schema::{ConfigSchema, SchemaError, V1ALPHA1};

/// Why a config was refused. `Decode` is what Talos reports as "decode error"; `Invalid` is a
/// config that decodes but fails validation.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("decode error: {0}")]
    Decode(String),
    #[error("configuration validation failed: {0}")]
    Invalid(String),
    #[error("lab error: {0}")]
    Schema(String),
    #[error(
        "the applied machine configuration doesn't contain v1alpha1 config, did you mean to patch the machine config instead?"
    )]
    NoV1Alpha1,
}

impl From<PkiError> for ConfigError {
    fn from(e: PkiError) -> Self {
        ConfigError::Invalid(e.to_string())
    }
}

/// Talos token format `[a-z0-9]{6}\.[a-z0-9]{16}`.
fn is_token(t: &str) -> bool {
    let part = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    t.split_once('.')
        .is_some_and(|(a, b)| part(a, 6) && part(b, 16))
}

/// The parts of an accepted config the simulation uses.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// The bytes as applied (what COSI MachineConfig returns).
    pub raw: Vec<u8>,
    /// sha256 of `raw`, hex.
    pub hash: String,
    /// `controlplane` or `worker`.
    pub machine_type: String,
    pub hostname: Option<String>,
    pub cluster_name: String,
    pub endpoint: String,
    /// Identifies the cluster across nodes: `cluster.id`, else the endpoint.
    pub cluster_key: String,
    /// The OS CA certificate (DER) clients' certs must chain to.
    pub os_ca_der: Vec<u8>,
    /// The OS CA key (control planes only; workers get theirs from a control plane).
    pub os_ca_key_der: Option<Vec<u8>>,
    /// The v1alpha1 document as parsed (what the Kubernetes side and config diffs read).
    pub doc: Value,
}

impl MachineConfig {
    pub fn is_control_plane(&self) -> bool {
        self.machine_type == "controlplane" || self.machine_type == "init"
    }

    /// A string at a JSON pointer of the v1alpha1 document (empty strings count as absent).
    pub fn str_at(&self, ptr: &str) -> Option<&str> {
        str_at(&self.doc, ptr)
    }

    /// The Kubernetes CA (`cluster.ca`): certificate PEM and key PEM text, as Talos decodes
    /// them from base64.
    pub fn k8s_ca(&self) -> Option<(String, String)> {
        let dec = |ptr: &str| {
            self.str_at(ptr)
                .and_then(|b| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok())
        };
        Some((dec("/cluster/ca/crt")?, dec("/cluster/ca/key")?))
    }

    /// The Talos version an installed node runs: the tag of `machine.install.image` when it is
    /// `vX.Y.Z`.
    pub fn install_version(&self) -> Option<String> {
        self.str_at("/machine/install/image")
            .and_then(image_version)
    }

    /// The OS CA key, parsed (Ed25519).
    pub fn os_ca_key(&self) -> Option<KeyPair> {
        self.os_ca_key_der
            .as_deref()
            .and_then(|d| KeyPair::try_from(d).ok())
    }
}

/// The tag of an image reference (`registry/repo:tag`, optionally `@digest`).
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
}

/// The tag of an image when it is a version `vX.Y.Z` (pre-release suffixes allowed).
pub fn image_version(image: &str) -> Option<String> {
    let tag = image_tag(image)?;
    let core = tag.strip_prefix('v')?;
    let core = core.split(['-', '+']).next().unwrap_or(core);
    let parts: Vec<&str> = core.split('.').collect();
    (parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    .then(|| tag.to_string())
}

/// Parse and validate a config as `ApplyConfiguration` of a node running Talos `version`
/// receives it.
pub fn parse(bytes: &[u8], version: &str) -> Result<MachineConfig, ConfigError> {
    let schema =
        ConfigSchema::for_version(version).map_err(|e| ConfigError::Schema(e.to_string()))?;
    let docs = documents(bytes)?;
    let mut v1 = None;
    let mut hostname = None;
    for doc in &docs {
        if doc.get("kind").and_then(Value::as_str) == Some("HostnameConfig") {
            hostname = str_at(doc, "/hostname").map(str::to_string);
        }
        let def = schema.definition_for(doc).map_err(|e| match e {
            SchemaError::Unknown(m) => ConfigError::Decode(m),
            SchemaError::Load(m) => ConfigError::Schema(m),
        })?;
        let checked = if def == V1ALPHA1 {
            without_hidden(doc)
        } else {
            doc.clone()
        };
        let errors = schema
            .validate(&def, &checked)
            .map_err(|e| ConfigError::Schema(e.to_string()))?;
        if !errors.is_empty() {
            return Err(ConfigError::Decode(errors.join("; ")));
        }
        if def == V1ALPHA1 {
            if v1.is_some() {
                return Err(ConfigError::Decode(
                    "duplicate v1alpha1 document".to_string(),
                ));
            }
            v1 = Some(doc);
        }
    }
    let v1 = v1.ok_or(ConfigError::NoV1Alpha1)?;
    let mut cfg = check_v1alpha1(&effective_v1alpha1(v1, &docs))?;
    if hostname.is_some() {
        cfg.hostname = hostname;
    }
    cfg.hash = hex::encode(Sha256::digest(bytes));
    cfg.raw = bytes.to_vec();
    Ok(cfg)
}

/// Talos 1.14 moved the Kubernetes side out of v1alpha1 into `Kube*Config` (and install,
/// discovery identity) documents. The simulation reads one v1alpha1-shaped view: what those
/// documents say is put where Talos ≤ 1.13 keeps it (PEM re-encoded as base64, as there).
/// Without a `KubeFlannelCNIConfig` document there is no CNI (`cni: none`).
fn effective_v1alpha1(v1: &Value, docs: &[Value]) -> Value {
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d.get("kind").and_then(Value::as_str) == Some(k))
    };
    if kind("KubeClusterConfig").is_none() {
        return v1.clone();
    }
    let mut out = v1.clone();
    let mut set = |ptr: &str, v: Option<&Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            set_at(&mut out, ptr, v.clone());
        }
    };
    let b64 = |v: Option<&Value>| {
        v.and_then(Value::as_str).map(|pem| {
            Value::from(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                pem,
            ))
        })
    };
    if let Some(d) = kind("KubeClusterConfig") {
        set("/cluster/clusterName", d.get("clusterName"));
        set("/cluster/controlPlane/endpoint", d.get("endpoint"));
    }
    if let Some(d) = kind("DiscoveryIdentityConfig") {
        set("/cluster/id", d.get("clusterID"));
        set("/cluster/secret", d.get("clusterSecret"));
    }
    if let Some(d) = kind("UnattendedInstall") {
        set("/machine/install/image", d.pointer("/installer/image"));
    }
    if let Some(d) = kind("KubeletConfig") {
        set("/machine/kubelet/image", d.get("image"));
    }
    if let Some(d) = kind("KubeAPIServerConfig") {
        set("/cluster/apiServer/image", d.get("image"));
    }
    if let Some(d) = kind("KubeNetworkConfig") {
        for k in ["dnsDomain", "podSubnets", "serviceSubnets"] {
            set(&format!("/cluster/network/{k}"), d.get(k));
        }
    }
    if let Some(d) = kind("KubeAPIServerCAConfig") {
        let crt = d
            .pointer("/issuingCA/cert")
            .or_else(|| d.pointer("/acceptedCAs/0"));
        set("/cluster/ca/crt", b64(crt).as_ref());
        set("/cluster/ca/key", b64(d.pointer("/issuingCA/key")).as_ref());
    }
    if kind("KubeFlannelCNIConfig").is_none() {
        set("/cluster/network/cni/name", Some(&Value::from("none")));
    }
    if let Some(d) = kind("KubeProxyConfig") {
        let disabled = d.get("enabled").and_then(Value::as_bool) == Some(false);
        set("/cluster/proxy/disabled", Some(&Value::from(disabled)));
    }
    out
}

/// Put `v` at a JSON pointer, making the objects on the way.
fn set_at(doc: &mut Value, ptr: &str, v: Value) {
    let mut cur = doc;
    let mut keys = ptr.trim_start_matches('/').split('/').peekable();
    while let Some(k) = keys.next() {
        if !cur.is_object() {
            *cur = Value::Object(serde_json::Map::new());
        }
        let Value::Object(o) = cur else { return };
        if keys.peek().is_none() {
            o.insert(k.to_string(), v);
            return;
        }
        cur = o
            .entry(k)
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
}

/// Fields Talos still decodes but leaves out of its published schema (hidden from the docs);
/// `talosctl gen config` writes them (see `shared/reference/talos/config-templates.md`).
const HIDDEN: [(&str, &str); 3] = [
    ("/machine/features", "rbac"),
    ("/machine/features", "stableHostname"),
    ("/machine/features", "apidCheckExtKeyUsage"),
];

fn without_hidden(doc: &Value) -> Value {
    let mut d = doc.clone();
    for (ptr, key) in HIDDEN {
        if let Some(Value::Object(o)) = d.pointer_mut(ptr) {
            o.remove(key);
        }
    }
    d
}

fn documents(bytes: &[u8]) -> Result<Vec<Value>, ConfigError> {
    let mut out = Vec::new();
    for de in serde_yaml::Deserializer::from_slice(bytes) {
        let v = Value::deserialize(de).map_err(|e| ConfigError::Decode(e.to_string()))?;
        match v {
            Value::Null => {}
            Value::Object(_) => out.push(v),
            other => {
                return Err(ConfigError::Decode(format!(
                    "a document must be a mapping, got {other}"
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(ConfigError::Decode("no documents in the config".into()));
    }
    Ok(out)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn check_token(what: &str, token: Option<&str>, required: bool) -> Result<(), ConfigError> {
    match token {
        Some(t) if !is_token(t) => Err(ConfigError::Invalid(format!(
            "{what}: invalid token format {t:?}: must match [a-z0-9]{{6}}.[a-z0-9]{{16}}"
        ))),
        None if required => Err(ConfigError::Invalid(format!("{what} is required"))),
        _ => Ok(()),
    }
}

fn check_endpoint(endpoint: Option<&str>) -> Result<String, ConfigError> {
    let e = endpoint
        .ok_or_else(|| ConfigError::Invalid("cluster.controlPlane.endpoint is required".into()))?;
    let u = url::Url::parse(e).map_err(|err| {
        ConfigError::Invalid(format!("cluster.controlPlane.endpoint {e:?}: {err}"))
    })?;
    if u.scheme() != "https" || u.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::Invalid(format!(
            "cluster.controlPlane.endpoint {e:?}: must be an https URL with a host"
        )));
    }
    Ok(e.to_string())
}

/// Optional `{crt, key}` pairs elsewhere in the config: each present value must parse.
fn check_cert_and_key(v: &Value, ptr: &str) -> Result<(), ConfigError> {
    if let Some(crt) = str_at(v, &format!("{ptr}/crt")) {
        let what = format!("{}.crt", ptr.trim_start_matches('/').replace('/', "."));
        pki::check_cert(&what, &pki::pem_from_b64(&what, crt)?)?;
    }
    if let Some(key) = str_at(v, &format!("{ptr}/key")) {
        let what = format!("{}.key", ptr.trim_start_matches('/').replace('/', "."));
        pki::check_other_key(&what, &pki::pem_from_b64(&what, key)?)?;
    }
    Ok(())
}

fn check_v1alpha1(v: &Value) -> Result<MachineConfig, ConfigError> {
    let machine_type = str_at(v, "/machine/type")
        .ok_or_else(|| ConfigError::Invalid("machine.type is required".into()))?
        .to_string();
    let control_plane = machine_type == "controlplane" || machine_type == "init";
    check_token("machine.token", str_at(v, "/machine/token"), true)?;
    check_token("cluster.token", str_at(v, "/cluster/token"), false)?;
    let endpoint = check_endpoint(str_at(v, "/cluster/controlPlane/endpoint"))?;

    let crt = str_at(v, "/machine/ca/crt")
        .ok_or_else(|| ConfigError::Invalid("machine.ca.crt is required".into()))?;
    let crt: Pem = pki::pem_from_b64("machine.ca.crt", crt)?;
    pki::check_cert("machine.ca.crt", &crt)?;
    let key = match str_at(v, "/machine/ca/key") {
        Some(k) => {
            let pem = pki::pem_from_b64("machine.ca.key", k)?;
            let key = pki::ed25519_key("machine.ca.key", &pem)?;
            pki::check_pair("machine.ca", &crt, &key)?;
            Some(pem.der)
        }
        None if control_plane => {
            return Err(ConfigError::Invalid(
                "machine.ca.key is required on a control plane".into(),
            ));
        }
        None => None,
    };
    for ptr in [
        "/cluster/ca",
        "/cluster/aggregatorCA",
        "/cluster/etcd/ca",
        "/cluster/serviceAccount",
    ] {
        check_cert_and_key(v, ptr)?;
    }
    Ok(MachineConfig {
        raw: Vec::new(),
        hash: String::new(),
        machine_type,
        hostname: str_at(v, "/machine/network/hostname").map(str::to_string),
        cluster_name: str_at(v, "/cluster/clusterName")
            .unwrap_or_default()
            .to_string(),
        cluster_key: str_at(v, "/cluster/id").unwrap_or(&endpoint).to_string(),
        endpoint,
        os_ca_der: crt.der,
        os_ca_key_der: key,
        doc: v.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_format() {
        assert!(is_token("abcdef.0123456789abcdef"));
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef.0123456789abcde",
        ] {
            assert!(!is_token(bad), "{bad}");
        }
    }

    #[test]
    fn image_versions() {
        assert_eq!(
            image_version("ghcr.io/siderolabs/installer:v1.13.10").as_deref(),
            Some("v1.13.10")
        );
        assert_eq!(
            image_version("factory.talos.dev/installer/abc123:v1.14.0-rc.1").as_deref(),
            Some("v1.14.0-rc.1")
        );
        assert_eq!(image_version("registry:5000/installer"), None);
        assert_eq!(image_version("ghcr.io/siderolabs/installer:latest"), None);
        assert_eq!(
            image_tag("registry.k8s.io/kube-apiserver:v1.34.1"),
            Some("v1.34.1")
        );
    }

    #[test]
    fn decode_errors() {
        assert!(matches!(
            parse(b"version: [", "v1.13.9"),
            Err(ConfigError::Decode(_))
        ));
        assert!(matches!(
            parse(b"- a\n- b\n", "v1.13.9"),
            Err(ConfigError::Decode(_))
        ));
        assert!(
            matches!(parse(b"apiVersion: v1alpha1\nkind: Nope\n", "v1.13.9"), Err(ConfigError::Decode(m)) if m.contains("unknown document"))
        );
        assert!(matches!(
            parse(
                b"apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: a\n",
                "v1.13.9"
            ),
            Err(ConfigError::NoV1Alpha1)
        ));
    }
}
