//! The configuration typed into `infraflux-argocd`'s inputs: install [`Options`], where the
//! manifest comes from and the digest it must have, repository credentials and the root
//! Application. The crate's refusals become diagnostics at the attribute they name.

use infraflux_argocd::repos::{RepoAuth, RepoCredential, RepoType, SecretKind};
use infraflux_argocd::root_app::RootApplication;
use infraflux_argocd::root_app::{AppProject, DEFAULT_PROJECT, Destination, IN_CLUSTER_SERVER};
use infraflux_argocd::{Error as ArgoError, Options, ServiceType, versions};
use tfplugin::{AttributePath, Diagnostic, Value};

/// Where the install manifest is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Fetched with a GET.
    Url(String),
    /// Read from a local file.
    Path(String),
}

/// Everything the configuration decides, typed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The install options.
    pub options: Options,
    /// Where the manifest comes from.
    pub source: Source,
    /// The digest it must have (lowercase hex).
    pub sha256: String,
    /// The attribute that digest comes from: `manifest_sha256`, or `version` (pinned).
    pub sha256_from: &'static str,
    /// Repository credentials.
    pub repositories: Vec<RepoCredential>,
    /// The root Application, when asked for.
    pub root_app: Option<RootApplication>,
    /// The AppProject of the root Application, when it is not `default`.
    pub project: Option<AppProject>,
}

impl Settings {
    /// The in-cluster address of the API and UI.
    pub fn server_address(&self) -> String {
        let port = if self.options.insecure { 80 } else { 443 };
        format!("argocd-server.{}.svc:{port}", self.options.namespace)
    }

    /// The resource ID.
    pub fn id(&self) -> String {
        format!("{}/argocd", self.options.namespace)
    }
}

/// The attributes the settings depend on (the kubeconfig and the password are not among them).
const OPTION_ATTRS: &[&str] = &[
    "version",
    "manifest_url",
    "manifest_sha256",
    "manifest_path",
    "namespace",
    "ha",
    "server_service_type",
    "insecure",
    "cm",
    "cmd_params",
    "resource_customizations",
    "repository",
    "root_app",
];

/// The settings the configuration describes: `Ok(None)` while any of them is unknown.
pub fn settings(config: &Value) -> Result<Option<Settings>, Diagnostic> {
    if !OPTION_ATTRS
        .iter()
        .all(|a| config.attr(a).is_wholly_known())
    {
        return Ok(None);
    }
    let at = |attr: &'static str| move |e: ArgoError| diagnostic(&e, attr);
    let raw_version =
        string(config.attr("version")).unwrap_or_else(|| versions::DEFAULT_VERSION.into());
    let version = versions::normalize_version(&raw_version).map_err(at("version"))?;
    let server_service_type = match string(config.attr("server_service_type")) {
        Some(s) => s
            .parse::<ServiceType>()
            .map_err(at("server_service_type"))?,
        None => ServiceType::default(),
    };
    let options = Options {
        namespace: string(config.attr("namespace")).unwrap_or_else(|| "argocd".into()),
        ha: config.attr("ha").as_bool().unwrap_or(false),
        server_service_type,
        insecure: config.attr("insecure").as_bool().unwrap_or(false),
        cm: map(config.attr("cm")),
        cmd_params: map(config.attr("cmd_params")),
        resource_customizations: map(config.attr("resource_customizations")),
    };
    options.validate().map_err(|e| diagnostic(&e, ""))?;
    let url = string(config.attr("manifest_url"));
    let path = string(config.attr("manifest_path"));
    let source = match (url, path) {
        (Some(_), Some(_)) => {
            return Err(Diagnostic::error(
                "Conflicting manifest sources",
                "Set manifest_url or manifest_path, not both.",
            )
            .at(AttributePath::attr("manifest_path")));
        }
        (Some(u), None) => Source::Url(u),
        (None, Some(p)) => Source::Path(p),
        (None, None) => Source::Url(options.manifest_url(&version).map_err(at("version"))?),
    };
    let configured = string(config.attr("manifest_sha256"));
    let sha256_from = if configured.is_some() {
        "manifest_sha256"
    } else {
        "version"
    };
    let sha256 = options
        .expected_sha256(&version, configured.as_deref())
        .map_err(at(sha256_from))?;
    let mut repositories = Vec::new();
    for (i, r) in config
        .attr("repository")
        .as_elements()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let cred = repository(r).map_err(|e| {
            let mut d = diagnostic(&e, "");
            d.path = Some(repo_path(i, &e));
            d
        })?;
        cred.validate().map_err(|e| {
            let mut d = diagnostic(&e, "");
            d.path = Some(repo_path(i, &e));
            d
        })?;
        repositories.push(cred);
    }
    let (root_app, project) = match block(config, "root_app") {
        None => (None, None),
        Some(b) => {
            let mut app = RootApplication::new(string(b.attr("repo_url")).unwrap_or_default());
            app.namespace.clone_from(&options.namespace);
            if let Some(v) = string(b.attr("target_revision")) {
                app.target_revision = v;
            }
            if let Some(v) = string(b.attr("path")) {
                app.path = v;
            }
            if let Some(v) = string(b.attr("project")) {
                app.project = v;
            }
            if let Some(v) = string(b.attr("name")) {
                app.name = v;
            }
            app.validate().map_err(|e| diagnostic(&e, ""))?;
            let project = (app.project != DEFAULT_PROJECT).then(|| AppProject {
                name: app.project.clone(),
                namespace: options.namespace.clone(),
                description: Some("The platform, synced from git by the root Application.".into()),
                source_repos: vec![app.repo_url.clone()],
                destinations: vec![Destination {
                    server: IN_CLUSTER_SERVER.into(),
                    namespace: "*".into(),
                }],
                allow_cluster_resources: true,
            });
            (Some(app), project)
        }
    };
    Ok(Some(Settings {
        options,
        source,
        sha256,
        sha256_from,
        repositories,
        root_app,
        project,
    }))
}

fn repository(r: &Value) -> Result<RepoCredential, ArgoError> {
    let repo_type = match string(r.attr("type")) {
        Some(t) => t.parse::<RepoType>()?,
        None => RepoType::Git,
    };
    let kind = match string(r.attr("kind")).as_deref() {
        Some("repo-creds") => SecretKind::RepoCreds,
        _ => SecretKind::Repository,
    };
    let auth = match (
        string(r.attr("username")),
        string(r.attr("password")),
        string(r.attr("ssh_private_key")),
    ) {
        (None, None, None) => RepoAuth::Anonymous,
        (None, None, Some(private_key)) => RepoAuth::SshKey { private_key },
        (u, p, None) => RepoAuth::Basic {
            username: u.unwrap_or_default(),
            password: p.unwrap_or_default(),
        },
        (_, _, Some(_)) => {
            return Err(invalid(
                "ssh_private_key",
                "set either username/password or ssh_private_key, not both",
            ));
        }
    };
    Ok(RepoCredential {
        url: string(r.attr("url")).unwrap_or_default(),
        kind,
        repo_type,
        auth,
        name: None,
        project: None,
    })
}

/// A refusal of a credential field.
fn invalid(option: &str, message: &str) -> ArgoError {
    ArgoError::InvalidOption {
        option: option.into(),
        message: message.into(),
    }
}

/// `repository[i].<field>` for a refusal naming a credential field.
fn repo_path(i: usize, e: &ArgoError) -> AttributePath {
    let base = AttributePath::attr("repository").push_index(i);
    match e {
        ArgoError::InvalidOption { option, .. }
            if [
                "url",
                "type",
                "kind",
                "username",
                "password",
                "ssh_private_key",
            ]
            .contains(&option.as_str()) =>
        {
            base.push_attr(option)
        }
        _ => base,
    }
}

/// A refusal of the crate as an error at the attribute it names (`root_app.path`), or at
/// `fallback` when it names none of ours.
pub fn diagnostic(e: &ArgoError, fallback: &str) -> Diagnostic {
    let option = match e {
        ArgoError::InvalidOption { option, .. } => option.clone(),
        ArgoError::UnpinnedVersion { .. } => "manifest_sha256".into(),
        ArgoError::Sha256Mismatch { .. } if fallback.is_empty() => "manifest_sha256".into(),
        _ => fallback.into(),
    };
    let summary = match e {
        ArgoError::Sha256Mismatch { .. } => "Argo CD install manifest digest mismatch".to_string(),
        ArgoError::UnpinnedVersion { .. } => "No sha256 for this Argo CD version".to_string(),
        _ if !option.is_empty() => format!("Invalid {option}"),
        _ => "Invalid Argo CD configuration".to_string(),
    };
    let d = Diagnostic::error(summary, format!("{e}."));
    let mut path = AttributePath::root();
    for part in option.split('.').filter(|p| !p.is_empty()) {
        // `cm.<key>` and friends name a map key; the rest are attributes and blocks.
        let in_map = path.steps().len() == 1
            && ["cm", "cmd_params", "resource_customizations"]
                .iter()
                .any(|m| option.starts_with(&format!("{m}.")));
        path = if in_map {
            path.push_key(part)
        } else {
            path.push_attr(part)
        };
    }
    if path.steps().is_empty() {
        d
    } else {
        d.at(path)
    }
}

fn block<'a>(config: &'a Value, name: &str) -> Option<&'a Value> {
    let b = config.attr(name);
    (!b.is_null()).then_some(b)
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_map()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration with every attribute of the schema, null unless given.
    pub(crate) fn config(attrs: &[(&str, Value)]) -> Value {
        let mut c = Value::object(attrs.iter().cloned());
        for name in OPTION_ATTRS {
            if c.attr(name).is_null() {
                c.set_attr(name, Value::Null);
            }
        }
        c
    }

    #[test]
    fn defaults_are_the_pinned_release_in_argocd() {
        let s = settings(&config(&[])).expect("valid").expect("known");
        assert_eq!(s.options, Options::default());
        assert!(
            matches!(&s.source, Source::Url(u) if u.ends_with("/v3.5.1/manifests/install.yaml"))
        );
        assert_eq!(s.sha256.len(), 64);
        assert_eq!(s.sha256_from, "version");
        assert_eq!(s.server_address(), "argocd-server.argocd.svc:443");
        assert!(s.root_app.is_none() && s.project.is_none());
    }

    #[test]
    fn unknown_options_defer_and_conflicts_are_named() {
        assert!(
            settings(&config(&[("namespace", Value::Unknown)]))
                .expect("ok")
                .is_none()
        );
        let d = settings(&config(&[
            ("manifest_url", Value::from("http://x/install.yaml")),
            ("manifest_path", Value::from("/tmp/install.yaml")),
        ]))
        .expect_err("conflict");
        assert_eq!(d.path, Some(AttributePath::attr("manifest_path")));
        // A version without a pinned digest needs manifest_sha256.
        let d = settings(&config(&[("version", Value::from("v3.4.0"))])).expect_err("unpinned");
        assert_eq!(d.path, Some(AttributePath::attr("manifest_sha256")));
        assert!(d.detail.contains("manifest_sha256"), "{}", d.detail);
    }

    #[test]
    fn repositories_root_app_and_project() {
        let repo = Value::object([
            ("url", Value::from("git@github.com:example/platform.git")),
            ("type", Value::Null),
            ("kind", Value::Null),
            ("username", Value::Null),
            ("password", Value::Null),
            ("ssh_private_key", Value::from("not a key")),
        ]);
        let root = Value::object([
            ("repo_url", Value::from("https://git.example.com/p.git")),
            ("target_revision", Value::Null),
            ("path", Value::Null),
            ("project", Value::from("platform")),
            ("name", Value::Null),
        ]);
        let d = settings(&config(&[("repository", Value::List(vec![repo]))])).expect_err("bad key");
        assert_eq!(
            d.path,
            Some(
                AttributePath::attr("repository")
                    .push_index(0)
                    .push_attr("ssh_private_key")
            )
        );
        let s = settings(&config(&[
            ("namespace", Value::from("gitops")),
            ("insecure", Value::from(true)),
            ("root_app", root),
        ]))
        .expect("valid")
        .expect("known");
        let app = s.root_app.clone().expect("root app");
        assert_eq!(app.namespace, "gitops");
        assert_eq!(app.project, "platform");
        assert_eq!(
            s.project.as_ref().expect("project").source_repos,
            ["https://git.example.com/p.git"]
        );
        assert_eq!(s.server_address().as_str(), "argocd-server.gitops.svc:80");
    }
}
