//! Repository credentials as the Secrets Argo CD reads them: labelled
//! `argocd.argoproj.io/secret-type: repository` (one repository) or `repo-creds` (every
//! repository under a URL prefix), values base64 in `data`. The name follows from the URL, so a
//! rotation changes only that Secret's data.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::{Error, names, versions};

/// The label Argo CD finds credential Secrets by.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// One repository, or every repository whose URL starts with this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecretKind {
    /// `repository`: credentials and registration of one repository.
    #[default]
    Repository,
    /// `repo-creds`: a credential template for every repository under a URL prefix.
    RepoCreds,
}

impl SecretKind {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SecretKind::Repository => "repository",
            SecretKind::RepoCreds => "repo-creds",
        }
    }

    fn name_prefix(self) -> &'static str {
        match self {
            SecretKind::Repository => "repo-",
            SecretKind::RepoCreds => "repo-creds-",
        }
    }
}

/// What the repository serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RepoType {
    /// A Git repository.
    #[default]
    Git,
    /// A Helm chart repository.
    Helm,
}

impl RepoType {
    /// Argo CD's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Git => "git",
            RepoType::Helm => "helm",
        }
    }
}

impl FromStr for RepoType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "git" => Ok(RepoType::Git),
            "helm" => Ok(RepoType::Helm),
            other => Err(Error::option(
                "type",
                format!("must be git or helm (got {other:?})"),
            )),
        }
    }
}

/// How Argo CD authenticates to the repository. Secrets are redacted from `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum RepoAuth {
    /// A public repository.
    #[default]
    Anonymous,
    /// HTTPS basic authentication (a token goes in `password`).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// An SSH private key (PEM or OpenSSH format), for `ssh://` or `git@host:path` URLs.
    SshKey {
        /// The private key.
        private_key: String,
    },
    /// A GitHub App installation.
    GitHubApp {
        /// The App's id.
        app_id: u64,
        /// The installation's id.
        installation_id: u64,
        /// The App's private key (PEM).
        private_key: String,
        /// API base URL of a GitHub Enterprise Server, e.g. `https://ghe.example.com/api/v3`.
        enterprise_base_url: Option<String>,
    },
}

impl fmt::Debug for RepoAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HIDDEN: &str = "<redacted>";
        match self {
            RepoAuth::Anonymous => f.write_str("Anonymous"),
            RepoAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &HIDDEN)
                .finish(),
            RepoAuth::SshKey { .. } => f
                .debug_struct("SshKey")
                .field("private_key", &HIDDEN)
                .finish(),
            RepoAuth::GitHubApp {
                app_id,
                installation_id,
                enterprise_base_url,
                ..
            } => f
                .debug_struct("GitHubApp")
                .field("app_id", app_id)
                .field("installation_id", installation_id)
                .field("private_key", &HIDDEN)
                .field("enterprise_base_url", enterprise_base_url)
                .finish(),
        }
    }
}

/// One repository credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoCredential {
    /// The repository URL (or URL prefix for [`SecretKind::RepoCreds`]).
    pub url: String,
    /// Repository or prefix credentials.
    pub kind: SecretKind,
    /// Git or Helm.
    pub repo_type: RepoType,
    /// How to authenticate.
    pub auth: RepoAuth,
    /// The Secret's name; derived from the URL when `None` ([`secret_name`]).
    pub name: Option<String>,
    /// Restrict the repository to one AppProject.
    pub project: Option<String>,
}

/// The stable Secret name for `url`: `repo-` (or `repo-creds-`) and the first 12 hex digits of
/// the URL's sha256. The same URL always gives the same name.
pub fn secret_name(url: &str, kind: SecretKind) -> String {
    let digest = versions::sha256_hex(url.as_bytes());
    format!("{}{}", kind.name_prefix(), &digest[..12])
}

impl RepoCredential {
    /// The Secret's name: [`RepoCredential::name`] or the one derived from the URL.
    pub fn secret_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| secret_name(&self.url, self.kind))
    }

    /// Checks the credential; errors name the field.
    pub fn validate(&self) -> Result<(), Error> {
        let url = self.url.as_str();
        if url.is_empty() || url.chars().any(char::is_whitespace) {
            return Err(Error::option(
                "url",
                format!("{url:?} must be a non-empty URL without spaces"),
            ));
        }
        names::dns1123_subdomain(&self.secret_name()).map_err(|m| Error::option("name", m))?;
        if let Some(p) = &self.project {
            names::dns1123_subdomain(p).map_err(|m| Error::option("project", m))?;
        }
        let https = url.starts_with("https://") || url.starts_with("http://");
        let ssh = url.starts_with("ssh://") || (!url.contains("://") && url.contains('@'));
        match &self.auth {
            RepoAuth::Anonymous => {}
            RepoAuth::Basic { username, password } => {
                if username.is_empty() || password.is_empty() {
                    return Err(Error::option(
                        "username",
                        "basic authentication needs both username and password",
                    ));
                }
                if ssh {
                    return Err(Error::option(
                        "password",
                        format!("{url} is an SSH URL; use ssh_private_key or an https:// URL"),
                    ));
                }
            }
            RepoAuth::SshKey { private_key } => {
                if self.repo_type == RepoType::Helm {
                    return Err(Error::option(
                        "ssh_private_key",
                        "Helm repositories are reached over HTTPS; use username/password",
                    ));
                }
                if !ssh {
                    return Err(Error::option(
                        "ssh_private_key",
                        format!("{url} is not an SSH URL (ssh://… or git@host:path)"),
                    ));
                }
                check_pem(private_key, "ssh_private_key")?;
            }
            RepoAuth::GitHubApp {
                app_id,
                installation_id,
                private_key,
                enterprise_base_url,
            } => {
                if self.repo_type == RepoType::Helm || !url.starts_with("https://") {
                    return Err(Error::option(
                        "github_app_id",
                        "a GitHub App authenticates Git repositories over https:// only",
                    ));
                }
                if *app_id == 0 || *installation_id == 0 {
                    return Err(Error::option(
                        "github_app_installation_id",
                        "the App id and installation id must both be set (non-zero)",
                    ));
                }
                check_pem(private_key, "github_app_private_key")?;
                if let Some(base) = enterprise_base_url
                    && !base.starts_with("https://")
                {
                    return Err(Error::option(
                        "github_app_enterprise_base_url",
                        format!("{base:?} must be an https:// URL"),
                    ));
                }
            }
        }
        if ssh && !https && self.repo_type == RepoType::Helm {
            return Err(Error::option(
                "url",
                format!("{url} is an SSH URL, but Helm repositories are HTTPS"),
            ));
        }
        Ok(())
    }

    /// The Secret in `namespace`, values base64 in `data`.
    pub fn to_secret(&self, namespace: &str) -> Result<Value, Error> {
        self.validate()?;
        let mut data = Map::new();
        let mut put = |k: &str, v: &str| {
            data.insert(k.into(), Value::String(STANDARD.encode(v)));
        };
        put("type", self.repo_type.as_str());
        put("url", &self.url);
        if let Some(p) = &self.project {
            put("project", p);
        }
        match &self.auth {
            RepoAuth::Anonymous => {}
            RepoAuth::Basic { username, password } => {
                put("username", username);
                put("password", password);
            }
            RepoAuth::SshKey { private_key } => put("sshPrivateKey", private_key),
            RepoAuth::GitHubApp {
                app_id,
                installation_id,
                private_key,
                enterprise_base_url,
            } => {
                put("githubAppID", &app_id.to_string());
                put("githubAppInstallationID", &installation_id.to_string());
                put("githubAppPrivateKey", private_key);
                if let Some(base) = enterprise_base_url {
                    put("githubAppEnterpriseBaseUrl", base);
                }
            }
        }
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": self.secret_name(),
                "namespace": namespace,
                "labels": {
                    SECRET_TYPE_LABEL: self.kind.label(),
                    "app.kubernetes.io/part-of": "argocd",
                },
            },
            "data": data,
        }))
    }
}

fn check_pem(key: &str, option: &str) -> Result<(), Error> {
    let t = key.trim();
    if t.starts_with("-----BEGIN ") && t.contains("PRIVATE KEY-----") && t.ends_with("-----") {
        Ok(())
    } else {
        Err(Error::option(
            option,
            "is not a PEM private key (-----BEGIN … PRIVATE KEY-----)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

    fn decoded(secret: &Value, key: &str) -> String {
        let b = STANDARD
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap();
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn names_are_stable_valid_and_differ_by_url_and_kind() {
        let a = secret_name("https://github.com/o/r.git", SecretKind::Repository);
        assert_eq!(
            a,
            secret_name("https://github.com/o/r.git", SecretKind::Repository)
        );
        assert!(a.starts_with("repo-") && a.len() == 17, "{a}");
        assert_ne!(
            a,
            secret_name("https://github.com/o/s.git", SecretKind::Repository)
        );
        let c = secret_name("https://github.com/o/r.git", SecretKind::RepoCreds);
        assert!(c.starts_with("repo-creds-"), "{c}");
        names::dns1123_subdomain(&a).unwrap();
        names::dns1123_subdomain(&c).unwrap();
    }

    #[test]
    fn basic_credentials_become_base64_data() {
        let r = RepoCredential {
            url: "https://github.com/o/r.git".into(),
            auth: RepoAuth::Basic {
                username: "git".into(),
                password: "tok".into(),
            },
            project: Some("platform".into()),
            ..Default::default()
        };
        let s = r.to_secret("gitops").unwrap();
        assert_eq!(s["metadata"]["labels"][SECRET_TYPE_LABEL], "repository");
        assert_eq!(s["metadata"]["namespace"], "gitops");
        assert_eq!(s["metadata"]["name"], r.secret_name());
        assert!(s.get("stringData").is_none());
        assert_eq!(decoded(&s, "type"), "git");
        assert_eq!(decoded(&s, "url"), "https://github.com/o/r.git");
        assert_eq!(decoded(&s, "username"), "git");
        assert_eq!(decoded(&s, "password"), "tok");
        assert_eq!(decoded(&s, "project"), "platform");
        assert_eq!(s["data"].as_object().unwrap().len(), 5);
    }

    #[test]
    fn rotation_changes_only_the_data() {
        let mut r = RepoCredential {
            url: "https://charts.example.com".into(),
            repo_type: RepoType::Helm,
            kind: SecretKind::RepoCreds,
            auth: RepoAuth::Basic {
                username: "u".into(),
                password: "old".into(),
            },
            ..Default::default()
        };
        let before = r.to_secret("argocd").unwrap();
        r.auth = RepoAuth::Basic {
            username: "u".into(),
            password: "new".into(),
        };
        let after = r.to_secret("argocd").unwrap();
        assert_eq!(before["metadata"], after["metadata"]);
        assert_eq!(after["metadata"]["labels"][SECRET_TYPE_LABEL], "repo-creds");
        assert_ne!(before["data"]["password"], after["data"]["password"]);
        assert_eq!(decoded(&after, "type"), "helm");
    }

    #[test]
    fn ssh_and_github_app_keys() {
        let ssh = RepoCredential {
            url: "git@github.com:o/r.git".into(),
            auth: RepoAuth::SshKey {
                private_key: KEY.into(),
            },
            ..Default::default()
        };
        assert_eq!(
            decoded(&ssh.to_secret("argocd").unwrap(), "sshPrivateKey"),
            KEY
        );
        let app = RepoCredential {
            url: "https://github.com/o".into(),
            kind: SecretKind::RepoCreds,
            auth: RepoAuth::GitHubApp {
                app_id: 123,
                installation_id: 456,
                private_key: KEY.replace("OPENSSH", "RSA"),
                enterprise_base_url: None,
            },
            ..Default::default()
        };
        let s = app.to_secret("argocd").unwrap();
        assert_eq!(decoded(&s, "githubAppID"), "123");
        assert_eq!(decoded(&s, "githubAppInstallationID"), "456");
        assert!(decoded(&s, "githubAppPrivateKey").contains("RSA PRIVATE KEY"));
        assert!(s["data"].get("githubAppEnterpriseBaseUrl").is_none());
    }

    #[test]
    fn mismatched_credentials_are_refused_by_field() {
        let base = RepoCredential {
            url: "https://github.com/o/r.git".into(),
            ..Default::default()
        };
        let cases = [
            (
                RepoCredential {
                    auth: RepoAuth::SshKey {
                        private_key: KEY.into(),
                    },
                    ..base.clone()
                },
                "ssh_private_key: ",
            ),
            (
                RepoCredential {
                    url: "ssh://git@h/r".into(),
                    auth: RepoAuth::SshKey {
                        private_key: "not a key".into(),
                    },
                    ..base.clone()
                },
                "ssh_private_key: is not a PEM",
            ),
            (
                RepoCredential {
                    url: "git@h:r".into(),
                    auth: RepoAuth::Basic {
                        username: "u".into(),
                        password: "p".into(),
                    },
                    ..base.clone()
                },
                "password: ",
            ),
            (
                RepoCredential {
                    auth: RepoAuth::Basic {
                        username: "".into(),
                        password: "p".into(),
                    },
                    ..base.clone()
                },
                "username: ",
            ),
            (
                RepoCredential {
                    repo_type: RepoType::Helm,
                    auth: RepoAuth::GitHubApp {
                        app_id: 1,
                        installation_id: 2,
                        private_key: KEY.into(),
                        enterprise_base_url: None,
                    },
                    ..base.clone()
                },
                "github_app_id: ",
            ),
            (
                RepoCredential {
                    auth: RepoAuth::GitHubApp {
                        app_id: 1,
                        installation_id: 0,
                        private_key: KEY.into(),
                        enterprise_base_url: None,
                    },
                    ..base.clone()
                },
                "github_app_installation_id: ",
            ),
            (
                RepoCredential {
                    name: Some("Repo_1".into()),
                    ..base.clone()
                },
                "name: ",
            ),
            (
                RepoCredential {
                    url: "".into(),
                    ..base.clone()
                },
                "url: ",
            ),
        ];
        for (r, want) in cases {
            let e = r.to_secret("argocd").unwrap_err().to_string();
            assert!(e.starts_with(want), "{want} vs {e}");
        }
        let e = "svn".parse::<RepoType>().unwrap_err().to_string();
        assert_eq!(e, "type: must be git or helm (got \"svn\")");
    }

    #[test]
    fn debug_hides_secrets() {
        let auth = RepoAuth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let app = RepoAuth::GitHubApp {
            app_id: 1,
            installation_id: 2,
            private_key: KEY.into(),
            enterprise_base_url: None,
        };
        let text = format!("{auth:?} {app:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("AAAA"),
            "{text}"
        );
        assert!(text.contains("<redacted>"));
    }
}
