//! Kubeconfig files: the subset an admin kubeconfig uses (one cluster, one user with an
//! embedded client certificate, one context).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

/// Why a kubeconfig is unusable. Never quotes key material.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("kubeconfig is not valid YAML: {0}")]
    Yaml(String),
    #[error("kubeconfig: {0}")]
    Invalid(String),
}

/// What a client needs from a kubeconfig: the server and the credentials, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Kubeconfig {
    pub cluster_name: String,
    /// `https://host:port`
    pub server: String,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("cluster_name", &self.cluster_name)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    clusters: Vec<Named<ClusterEntry>>,
    #[serde(default)]
    users: Vec<Named<UserEntry>>,
    #[serde(default)]
    contexts: Vec<Named<ContextEntry>>,
    #[serde(rename = "current-context", default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Deserialize)]
struct ClusterEntry {
    server: String,
    #[serde(rename = "certificate-authority-data", default)]
    ca_data: String,
}

#[derive(Deserialize)]
struct UserEntry {
    #[serde(rename = "client-certificate-data", default)]
    cert_data: String,
    #[serde(rename = "client-key-data", default)]
    key_data: String,
}

#[derive(Deserialize)]
struct ContextEntry {
    cluster: String,
    user: String,
}

fn b64_text(what: &str, data: &str) -> Result<String, KubeconfigError> {
    let bytes = STANDARD
        .decode(data.trim())
        .map_err(|_| KubeconfigError::Invalid(format!("{what} is not base64")))?;
    String::from_utf8(bytes).map_err(|_| KubeconfigError::Invalid(format!("{what} is not PEM")))
}

impl Kubeconfig {
    /// Reads the current context's cluster and user (or the only ones).
    pub fn parse(text: &str) -> Result<Self, KubeconfigError> {
        let f: File = serde_norway::from_str(text).map_err(|e| {
            // Position only: the message could quote key material.
            KubeconfigError::Yaml(
                e.location()
                    .map(|l| format!("at line {} column {}", l.line(), l.column()))
                    .unwrap_or_else(|| "structure not understood".into()),
            )
        })?;
        let ctx = f
            .contexts
            .iter()
            .find(|c| c.name == f.current_context)
            .or_else(|| f.contexts.first());
        let pick = |want: Option<&str>, names: Vec<&str>| -> Option<usize> {
            match want {
                Some(w) => names.iter().position(|n| *n == w),
                None => (!names.is_empty()).then_some(0),
            }
        };
        let ci = pick(
            ctx.map(|c| c.value.cluster.as_str()),
            f.clusters.iter().map(|c| c.name.as_str()).collect(),
        )
        .ok_or_else(|| KubeconfigError::Invalid("no cluster for the current context".into()))?;
        let ui = pick(
            ctx.map(|c| c.value.user.as_str()),
            f.users.iter().map(|u| u.name.as_str()).collect(),
        )
        .ok_or_else(|| KubeconfigError::Invalid("no user for the current context".into()))?;
        let (cluster, user) = (&f.clusters[ci], &f.users[ui]);
        if !cluster.value.server.starts_with("https://") {
            return Err(KubeconfigError::Invalid(format!(
                "server {:?} is not an https:// URL",
                cluster.value.server
            )));
        }
        Ok(Self {
            cluster_name: cluster.name.clone(),
            server: cluster.value.server.trim_end_matches('/').to_string(),
            ca_pem: b64_text("certificate-authority-data", &cluster.value.ca_data)?,
            client_cert_pem: b64_text("client-certificate-data", &user.value.cert_data)?,
            client_key_pem: b64_text("client-key-data", &user.value.key_data)?,
        })
    }

    /// The kubeconfig YAML, in the shape `talosctl kubeconfig` writes (context `admin@NAME`).
    pub fn to_yaml(&self) -> String {
        let user = format!("admin@{}", self.cluster_name);
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.cluster_name, "cluster": {
                "server": self.server,
                "certificate-authority-data": STANDARD.encode(&self.ca_pem),
            }}],
            "users": [{"name": user, "user": {
                "client-certificate-data": STANDARD.encode(&self.client_cert_pem),
                "client-key-data": STANDARD.encode(&self.client_key_pem),
            }}],
            "contexts": [{"name": user, "context": {
                "cluster": self.cluster_name,
                "namespace": "default",
                "user": user,
            }}],
            "current-context": user,
        });
        serde_norway::to_string(&doc).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Kubeconfig {
        Kubeconfig {
            cluster_name: "lab".into(),
            server: "https://127.10.0.10:6443".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n".into(),
            client_cert_pem: "-----BEGIN CERTIFICATE-----\nQg==\n-----END CERTIFICATE-----\n"
                .into(),
            client_key_pem: "-----BEGIN EC PRIVATE KEY-----\nQw==\n-----END EC PRIVATE KEY-----\n"
                .into(),
        }
    }

    #[test]
    fn round_trips() {
        let k = sample();
        assert_eq!(Kubeconfig::parse(&k.to_yaml()).expect("parse"), k);
    }

    #[test]
    fn follows_the_current_context() {
        let text = r#"
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: "QQ=="}
- name: lab
  cluster: {server: "https://127.10.0.10:6443/", certificate-authority-data: "QQ=="}
users:
- name: u1
  user: {client-certificate-data: "Qg==", client-key-data: "Qw=="}
contexts:
- name: a
  context: {cluster: other, user: u1}
- name: b
  context: {cluster: lab, user: u1}
current-context: b
"#;
        let k = Kubeconfig::parse(text).expect("parse");
        assert_eq!(k.cluster_name, "lab");
        assert_eq!(k.server, "https://127.10.0.10:6443");
        assert_eq!(k.ca_pem, "A");
    }

    #[test]
    fn errors_never_quote_the_content() {
        let err =
            Kubeconfig::parse("users: [ {name: x, user: {client-key-data: SECRETKEY").unwrap_err();
        assert!(!err.to_string().contains("SECRETKEY"), "{err}");
        let err = Kubeconfig::parse("clusters: []\n").unwrap_err();
        assert!(err.to_string().contains("no cluster"), "{err}");
    }
}
