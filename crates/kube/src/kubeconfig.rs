//! A kubeconfig, parsed and checked field by field (sync; no files, no environment).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::Error;

/// The parts of a kubeconfig the client uses: the current context's cluster and user.
#[derive(Clone)]
pub struct Kubeconfig {
    pub(crate) server: String,
    pub(crate) ca_der: Option<Vec<Vec<u8>>>,
    pub(crate) insecure: bool,
    pub(crate) tls_server_name: Option<String>,
    pub(crate) auth: kube::config::AuthInfo,
}

impl std::fmt::Debug for Kubeconfig {
    // Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Kubeconfig(msg.into())
}

/// The entry of a named list (`clusters`, `users`, `contexts`) called `name`.
fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Result<&'a Value, Error> {
    let items = doc[list]
        .as_array()
        .ok_or_else(|| bad(format!("{list} is missing or not a list")))?;
    items
        .iter()
        .find(|i| i["name"].as_str() == Some(name))
        .ok_or_else(|| bad(format!("{list} has no entry named \"{name}\"")))
}

fn string_field<'a>(v: &'a Value, path: &str, key: &str) -> Result<Option<&'a str>, Error> {
    match &v[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(bad(format!("{path}.{key} is not a string"))),
    }
}

/// The DER certificates of a PEM bundle.
pub(crate) fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let b = body.take().ok_or("END without BEGIN")?;
            out.push(
                B64.decode(b)
                    .map_err(|e| format!("bad base64 in PEM: {e}"))?,
            );
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    if out.is_empty() {
        return Err("no PEM CERTIFICATE block".into());
    }
    Ok(out)
}

/// Base64-decoded UTF-8 text of `path` (a `*-data` field).
fn b64_text(s: &str, path: &str) -> Result<String, Error> {
    let raw = B64
        .decode(s.trim())
        .map_err(|e| bad(format!("{path} is not base64: {e}")))?;
    String::from_utf8(raw).map_err(|_| bad(format!("{path} is not base64 of PEM text")))
}

impl Kubeconfig {
    /// Parses a kubeconfig (YAML or JSON) and picks its current context (or its only one).
    pub fn parse(yaml: &str) -> Result<Kubeconfig, Error> {
        let doc: Value =
            serde_norway::from_str(yaml).map_err(|e| bad(format!("not parsable as YAML: {e}")))?;
        if !doc.is_object() {
            return Err(bad("not a YAML mapping"));
        }
        let context_name = match string_field(&doc, "", "current-context")? {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => match doc["contexts"].as_array().map(Vec::as_slice) {
                Some([only]) => only["name"].as_str().unwrap_or_default().to_string(),
                _ => {
                    return Err(bad(
                        "current-context is not set (and there is not exactly one context)",
                    ));
                }
            },
        };
        let ctx = &named(&doc, "contexts", &context_name)?["context"];
        let ctx_path = format!("contexts[{context_name}].context");
        let cluster_name = string_field(ctx, &ctx_path, "cluster")?
            .ok_or_else(|| bad(format!("{ctx_path}.cluster is missing")))?;
        let user_name = string_field(ctx, &ctx_path, "user")?
            .ok_or_else(|| bad(format!("{ctx_path}.user is missing")))?;

        let cluster = &named(&doc, "clusters", cluster_name)?["cluster"];
        let cpath = format!("clusters[{cluster_name}].cluster");
        let server = string_field(cluster, &cpath, "server")?
            .ok_or_else(|| bad(format!("{cpath}.server is missing")))?
            .trim_end_matches('/')
            .to_string();
        let uri: http::Uri = server
            .parse()
            .map_err(|e| bad(format!("{cpath}.server \"{server}\" is not a URL: {e}")))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(bad(format!(
                "{cpath}.server \"{server}\" is not an https:// URL with a host"
            )));
        }
        let ca_der = match string_field(cluster, &cpath, "certificate-authority-data")? {
            Some(data) => {
                let path = format!("{cpath}.certificate-authority-data");
                let pem = b64_text(data, &path)?;
                Some(pem_certificates(&pem).map_err(|e| bad(format!("{path}: {e}")))?)
            }
            None if cluster["certificate-authority"].is_string() => {
                return Err(bad(format!(
                    "{cpath}.certificate-authority (a file) is not supported: embed certificate-authority-data"
                )));
            }
            None => None,
        };
        let insecure = match &cluster["insecure-skip-tls-verify"] {
            Value::Null => false,
            Value::Bool(b) => *b,
            _ => {
                return Err(bad(format!(
                    "{cpath}.insecure-skip-tls-verify is not a boolean"
                )));
            }
        };
        let tls_server_name = string_field(cluster, &cpath, "tls-server-name")?.map(String::from);

        let empty = Value::Object(serde_json::Map::new());
        let user = match &named(&doc, "users", user_name)?["user"] {
            // `user:` with nothing under it: no credentials (anonymous).
            Value::Null => &empty,
            u => u,
        };
        let upath = format!("users[{user_name}].user");
        for (field, label) in [
            ("client-certificate-data", "CERTIFICATE"),
            ("client-key-data", "PRIVATE KEY"),
        ] {
            if let Some(data) = string_field(user, &upath, field)? {
                let text = b64_text(data, &format!("{upath}.{field}"))?;
                if !text.contains(label) {
                    return Err(bad(format!("{upath}.{field} holds no PEM {label}")));
                }
            }
        }
        if user["client-certificate-data"].is_string() != user["client-key-data"].is_string() {
            return Err(bad(format!(
                "{upath} needs both client-certificate-data and client-key-data"
            )));
        }
        let auth: kube::config::AuthInfo =
            serde_json::from_value(user.clone()).map_err(|e| bad(format!("{upath}: {e}")))?;
        Ok(Kubeconfig {
            server,
            ca_der,
            insecure,
            tls_server_name,
            auth,
        })
    }

    /// The API server URL of the current context's cluster.
    pub fn server(&self) -> &str {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN EC PRIVATE KEY-----\nAAECAw==\n-----END EC PRIVATE KEY-----\n";

    fn config(server: &str, ca: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin@lab\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\ncontexts:\n- name: admin@lab\n  context:\n    cluster: lab\n    user: admin@lab\ncurrent-context: admin@lab\n",
            crt = B64.encode(CA),
            key = B64.encode(KEY),
        )
    }

    #[test]
    fn parses_the_current_context() {
        let k = Kubeconfig::parse(&config("https://10.0.0.1:6443/", &B64.encode(CA))).expect("ok");
        assert_eq!(k.server(), "https://10.0.0.1:6443");
        assert_eq!(k.ca_der, Some(vec![vec![0, 1, 2, 3]]));
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = Kubeconfig::parse(&config("not a url", &B64.encode(CA))).unwrap_err();
        assert!(
            e.to_string().contains("clusters[lab].cluster.server"),
            "{e}"
        );
        let e = Kubeconfig::parse(&config("https://h:1", "not-base64!")).unwrap_err();
        assert!(
            e.to_string()
                .contains("clusters[lab].cluster.certificate-authority-data is not base64"),
            "{e}"
        );
        let e = Kubeconfig::parse("a: [").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("kubeconfig: not parsable as YAML"),
            "{e}"
        );
        let text = config("https://h:1", &B64.encode(CA))
            .replace("current-context: admin@lab", "current-context: other");
        let e = Kubeconfig::parse(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kubeconfig: contexts has no entry named \"other\""
        );
        let text = config("https://h:1", &B64.encode(CA)).replace("    server: https://h:1\n", "");
        let e = Kubeconfig::parse(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kubeconfig: clusters[lab].cluster.server is missing"
        );
    }
}
