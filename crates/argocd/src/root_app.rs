//! The root Application (app-of-apps) that hands the rest of the platform to Argo CD, and an
//! optional AppProject for it. Both are plain objects; [`crate::schema::validate`] checks them
//! against the CRDs of the install manifest.

use serde_json::{Value, json};

use crate::{Error, manifest, names};

/// Where the child Applications live in this repository.
pub const DEFAULT_APPS_PATH: &str = "gitops/argocd/apps";
/// The cluster Argo CD runs in, as Argo CD names it.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// Makes deleting an Application delete its resources first (cascade).
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// The project every Argo CD install has.
pub const DEFAULT_PROJECT: &str = "default";
/// Name of the root Application when none is given.
pub const DEFAULT_ROOT_NAME: &str = "root";

/// How often and how patiently a failed sync is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts before giving up.
    pub limit: u32,
    /// First wait, as Argo CD spells durations (`5s`).
    pub duration: String,
    /// Each wait is the previous times this.
    pub factor: u32,
    /// Longest wait (`3m`).
    pub max_duration: String,
}

impl Default for Retry {
    /// 5 attempts, 5s doubling up to 3m.
    fn default() -> Self {
        Retry {
            limit: 5,
            duration: "5s".into(),
            factor: 2,
            max_duration: "3m".into(),
        }
    }
}

/// Which files of a directory source are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// Descend into sub-directories.
    pub recurse: bool,
    /// Glob of the files to apply, e.g. `{project.yaml,*/application.yaml}`.
    pub include: Option<String>,
}

impl Directory {
    /// The layout of `gitops/argocd/apps`: the shared AppProject and one `application.yaml` per
    /// component folder; the values files beside them are for the child Applications.
    pub fn infraflux_apps() -> Self {
        Directory {
            recurse: true,
            include: Some("{project.yaml,*/application.yaml}".into()),
        }
    }
}

/// The root Application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootApplication {
    /// Its name.
    pub name: String,
    /// Argo CD's namespace (the Application lives there).
    pub namespace: String,
    /// The Git repository holding the child Applications.
    pub repo_url: String,
    /// Branch, tag or commit.
    pub target_revision: String,
    /// Folder of the child Applications.
    pub path: String,
    /// AppProject of the root Application.
    pub project: String,
    /// Where the child Applications are created; Argo CD's namespace when `None`.
    pub destination_namespace: Option<String>,
    /// Which files of `path` are applied; all of them when `None`.
    pub directory: Option<Directory>,
    /// Sync retries.
    pub retry: Retry,
}

impl RootApplication {
    /// The defaults for `repo_url`: name `root` in `argocd`, revision `HEAD`, path
    /// [`DEFAULT_APPS_PATH`] with [`Directory::infraflux_apps`], project `default`.
    pub fn new(repo_url: impl Into<String>) -> Self {
        RootApplication {
            name: DEFAULT_ROOT_NAME.into(),
            namespace: manifest::UPSTREAM_NAMESPACE.into(),
            repo_url: repo_url.into(),
            target_revision: "HEAD".into(),
            path: DEFAULT_APPS_PATH.into(),
            project: DEFAULT_PROJECT.into(),
            destination_namespace: None,
            directory: Some(Directory::infraflux_apps()),
            retry: Retry::default(),
        }
    }

    /// Checks the fields; errors name the field.
    pub fn validate(&self) -> Result<(), Error> {
        names::dns1123_subdomain(&self.name).map_err(|m| Error::option("root_app.name", m))?;
        names::dns1123_label(&self.namespace).map_err(|m| Error::option("namespace", m))?;
        names::dns1123_subdomain(&self.project)
            .map_err(|m| Error::option("root_app.project", m))?;
        if let Some(ns) = &self.destination_namespace {
            names::dns1123_label(ns)
                .map_err(|m| Error::option("root_app.destination_namespace", m))?;
        }
        for (field, v) in [
            ("root_app.repo_url", &self.repo_url),
            ("root_app.target_revision", &self.target_revision),
        ] {
            if v.trim().is_empty() || v.chars().any(char::is_whitespace) {
                return Err(Error::option(
                    field,
                    format!("{v:?} must be non-empty, without spaces"),
                ));
            }
        }
        if self.path.starts_with('/') || self.path.split('/').any(|s| s == "..") {
            return Err(Error::option(
                "root_app.path",
                format!(
                    "{:?} must be relative to the repository root, without '..'",
                    self.path
                ),
            ));
        }
        if self.retry.factor == 0 {
            return Err(Error::option("root_app.retry.factor", "must be at least 1"));
        }
        for (field, d) in [
            ("root_app.retry.duration", &self.retry.duration),
            ("root_app.retry.max_duration", &self.retry.max_duration),
        ] {
            if !is_duration(d) {
                return Err(Error::option(
                    field,
                    format!("{d:?} is not a duration such as 5s, 3m or 1h"),
                ));
            }
        }
        Ok(())
    }

    /// The Application object.
    pub fn build(&self) -> Result<Value, Error> {
        self.validate()?;
        let mut source = json!({
            "repoURL": self.repo_url,
            "targetRevision": self.target_revision,
            "path": self.path,
        });
        if let Some(d) = &self.directory {
            source["directory"] = json!({"recurse": d.recurse});
            if let Some(include) = &d.include {
                source["directory"]["include"] = json!(include);
            }
        }
        Ok(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "finalizers": [RESOURCES_FINALIZER],
            },
            "spec": {
                "project": self.project,
                "source": source,
                "destination": {
                    "server": IN_CLUSTER_SERVER,
                    "namespace": self.destination_namespace.as_deref().unwrap_or(&self.namespace),
                },
                "syncPolicy": {
                    "automated": {"prune": true, "selfHeal": true},
                    "retry": {
                        "limit": self.retry.limit,
                        "backoff": {
                            "duration": self.retry.duration,
                            "factor": self.retry.factor,
                            "maxDuration": self.retry.max_duration,
                        },
                    },
                    "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
                },
            },
        }))
    }
}

/// Where a project's Applications may deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Cluster API URL; [`IN_CLUSTER_SERVER`] for the local cluster.
    pub server: String,
    /// Namespace, or a glob such as `*`.
    pub namespace: String,
}

/// An AppProject restricting which repositories and destinations its Applications use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppProject {
    /// Its name.
    pub name: String,
    /// Argo CD's namespace.
    pub namespace: String,
    /// A line for the UI.
    pub description: Option<String>,
    /// Repository URLs (globs allowed) Applications may take sources from.
    pub source_repos: Vec<String>,
    /// Where its Applications may deploy.
    pub destinations: Vec<Destination>,
    /// Allow cluster-scoped resources of every kind (CRDs, ClusterRoles, webhooks).
    pub allow_cluster_resources: bool,
}

impl AppProject {
    /// The AppProject object.
    pub fn build(&self) -> Result<Value, Error> {
        names::dns1123_subdomain(&self.name).map_err(|m| Error::option("project.name", m))?;
        names::dns1123_label(&self.namespace).map_err(|m| Error::option("namespace", m))?;
        if self.source_repos.is_empty() {
            return Err(Error::option(
                "project.source_repos",
                "name at least one repository, or no Application of the project can sync",
            ));
        }
        if self.destinations.is_empty() {
            return Err(Error::option(
                "project.destinations",
                "name at least one destination, or no Application of the project can sync",
            ));
        }
        let destinations: Vec<Value> = self
            .destinations
            .iter()
            .map(|d| json!({"server": d.server, "namespace": d.namespace}))
            .collect();
        let mut spec = json!({
            "sourceRepos": self.source_repos,
            "destinations": destinations,
        });
        if let Some(d) = &self.description {
            spec["description"] = json!(d);
        }
        if self.allow_cluster_resources {
            spec["clusterResourceWhitelist"] = json!([{"group": "*", "kind": "*"}]);
        }
        Ok(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "finalizers": [RESOURCES_FINALIZER],
            },
            "spec": spec,
        }))
    }
}

/// Argo CD's duration syntax: digits and a unit (`s`, `m`, `h`), possibly several (`1m30s`).
fn is_duration(s: &str) -> bool {
    let mut digits = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '0'..='9' => digits = true,
            's' | 'm' | 'h' if digits => {
                digits = false;
                any = true;
            }
            _ => return false,
        }
    }
    any && !digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_application_has_every_promised_setting() {
        let app = RootApplication::new("https://git.example.com/p.git")
            .build()
            .unwrap();
        assert_eq!(app["metadata"]["finalizers"], json!([RESOURCES_FINALIZER]));
        assert_eq!(app["metadata"]["namespace"], "argocd");
        let spec = &app["spec"];
        assert_eq!(spec["project"], "default");
        assert_eq!(spec["source"]["path"], "gitops/argocd/apps");
        assert_eq!(spec["source"]["targetRevision"], "HEAD");
        assert_eq!(
            spec["destination"]["server"],
            "https://kubernetes.default.svc"
        );
        assert_eq!(spec["destination"]["namespace"], "argocd");
        let sync = &spec["syncPolicy"];
        assert_eq!(sync["automated"], json!({"prune": true, "selfHeal": true}));
        assert_eq!(
            sync["retry"],
            json!({"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}})
        );
        assert_eq!(
            sync["syncOptions"],
            json!(["CreateNamespace=true", "ServerSideApply=true"])
        );
    }

    #[test]
    fn fields_reach_the_object() {
        let app = RootApplication {
            name: "platform".into(),
            namespace: "gitops".into(),
            target_revision: "v1.2.3".into(),
            path: "clusters/lab".into(),
            project: "platform".into(),
            destination_namespace: Some("apps".into()),
            directory: None,
            ..RootApplication::new("git@github.com:o/r.git")
        }
        .build()
        .unwrap();
        assert_eq!(app["metadata"]["name"], "platform");
        assert_eq!(app["metadata"]["namespace"], "gitops");
        assert_eq!(app["spec"]["source"]["repoURL"], "git@github.com:o/r.git");
        assert_eq!(app["spec"]["source"]["path"], "clusters/lab");
        assert!(app["spec"]["source"].get("directory").is_none());
        assert_eq!(app["spec"]["destination"]["namespace"], "apps");
    }

    #[test]
    fn bad_fields_are_named() {
        let base = RootApplication::new("https://g/r.git");
        let cases = [
            (
                RootApplication {
                    name: "Root".into(),
                    ..base.clone()
                },
                "root_app.name: ",
            ),
            (
                RootApplication {
                    repo_url: "".into(),
                    ..base.clone()
                },
                "root_app.repo_url: ",
            ),
            (
                RootApplication {
                    path: "../x".into(),
                    ..base.clone()
                },
                "root_app.path: ",
            ),
            (
                RootApplication {
                    path: "/abs".into(),
                    ..base.clone()
                },
                "root_app.path: ",
            ),
            (
                RootApplication {
                    retry: Retry {
                        duration: "5 seconds".into(),
                        ..Retry::default()
                    },
                    ..base.clone()
                },
                "root_app.retry.duration: ",
            ),
        ];
        for (a, want) in cases {
            let e = a.build().unwrap_err().to_string();
            assert!(e.starts_with(want), "{want} vs {e}");
        }
    }

    #[test]
    fn durations() {
        for ok in ["5s", "3m", "1h", "1m30s", "10s"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "5", "s", "5d", "5 s", "m5"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn the_project_lists_repos_and_destinations() {
        let p = AppProject {
            name: "platform".into(),
            namespace: "argocd".into(),
            description: Some("platform".into()),
            source_repos: vec!["https://g/r.git".into()],
            destinations: vec![Destination {
                server: IN_CLUSTER_SERVER.into(),
                namespace: "*".into(),
            }],
            allow_cluster_resources: true,
        };
        let o = p.build().unwrap();
        assert_eq!(o["spec"]["sourceRepos"], json!(["https://g/r.git"]));
        assert_eq!(o["spec"]["destinations"][0]["namespace"], "*");
        assert_eq!(o["spec"]["clusterResourceWhitelist"][0]["kind"], "*");
        let e = AppProject {
            source_repos: vec![],
            ..p.clone()
        }
        .build()
        .unwrap_err();
        assert!(e.to_string().starts_with("project.source_repos: "), "{e}");
        let e = AppProject {
            destinations: vec![],
            ..p
        }
        .build()
        .unwrap_err();
        assert!(e.to_string().starts_with("project.destinations: "), "{e}");
    }
}
