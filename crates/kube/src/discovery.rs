//! Kind → resource (plural, scope, verbs), from kube-rs's discovery of one group/version at
//! a time, cached and forgotten on demand (after CRDs become Established).

use std::collections::HashMap;

use kube::core::GroupVersion;
use kube::discovery::Scope;
use kube::discovery::oneshot::pinned_group;
use tokio::sync::RwLock;

use crate::error::from_kube;
use crate::{Client, Error, ObjectRef};

/// A served resource of one group/version/kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Resource {
    /// The collection path, in `namespace` when namespaced.
    pub fn collection(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    /// The path of one object.
    pub fn item(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection(namespace))
    }
}

/// (group, version).
type Gv = (String, String);

/// The discovery cache: per group/version, its resources (None: not served). Filled lazily,
/// one group/version at a time, so an unavailable aggregated API elsewhere costs nothing.
#[derive(Default)]
pub(crate) struct Catalog {
    gvs: RwLock<HashMap<Gv, Option<Vec<Resource>>>>,
}

impl Catalog {
    /// The resource of `object`'s group/version/kind, discovering its group/version first if
    /// it is not cached.
    pub async fn resolve(
        &self,
        client: &Client,
        object: &ObjectRef,
    ) -> Result<Option<Resource>, Error> {
        let gv = (object.group.clone(), object.version.clone());
        let cached = self.gvs.read().await.get(&gv).cloned();
        let resources = match cached {
            Some(r) => r,
            None => {
                let r = discover_gv(client, &gv).await?;
                self.gvs.write().await.insert(gv, r.clone());
                r
            }
        };
        Ok(resources
            .into_iter()
            .flatten()
            .find(|r| r.kind == object.kind))
    }

    /// Like `resolve`, but discovers the group/version again when the kind is unknown.
    pub async fn resolve_fresh(
        &self,
        client: &Client,
        object: &ObjectRef,
    ) -> Result<Option<Resource>, Error> {
        if let Some(r) = self.resolve(client, object).await? {
            return Ok(Some(r));
        }
        self.gvs
            .write()
            .await
            .remove(&(object.group.clone(), object.version.clone()));
        self.resolve(client, object).await
    }

    /// Forgets everything discovered (after CRDs changed what is served).
    pub async fn refresh(&self) {
        self.gvs.write().await.clear();
    }

    /// The preferred-version resources of every group that can be listed. A group whose
    /// discovery fails transiently (an unavailable aggregated API) is skipped with a warning.
    pub async fn listable(&self, client: &Client) -> Result<Vec<Resource>, Error> {
        self.refresh().await;
        let mut gvs: Vec<Gv> = Vec::new();
        let core = timed(client, client.kube.list_core_api_versions(), "API versions").await?;
        gvs.extend(core.versions.into_iter().map(|v| (String::new(), v)));
        let groups = timed(client, client.kube.list_api_groups(), "API groups").await?;
        for g in groups.groups {
            let version = g
                .preferred_version
                .map(|p| p.version)
                .or_else(|| g.versions.first().map(|v| v.version.clone()));
            if let Some(v) = version {
                gvs.push((g.name, v));
            }
        }
        let mut out = Vec::new();
        for gv in gvs {
            match discover_gv(client, &gv).await {
                Ok(Some(resources)) => out.extend(
                    resources
                        .into_iter()
                        .filter(|r| r.verbs.iter().any(|v| v == "list")),
                ),
                Ok(None) => {}
                Err(e) if e.is_transient() => {
                    tracing::warn!(group = %gv.0, version = %gv.1, error = %e, "skipping an API group that does not answer");
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| (&a.group, &a.kind).cmp(&(&b.group, &b.kind)));
        Ok(out)
    }
}

/// A kube-rs discovery call, limited in time, errors mapped.
async fn timed<T>(
    client: &Client,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
    what: &str,
) -> Result<T, Error> {
    match tokio::time::timeout(client.timeout, fut).await {
        Ok(r) => r.map_err(|e| from_kube(e, &client.server, "discover", what)),
        Err(_) => Err(Error::no_answer(&client.server, client.timeout)),
    }
}

/// The resources one group/version serves; None when it is not served (404).
async fn discover_gv(client: &Client, gv: &Gv) -> Result<Option<Vec<Resource>>, Error> {
    let what = if gv.0.is_empty() {
        gv.1.clone()
    } else {
        format!("{}/{}", gv.0, gv.1)
    };
    tracing::debug!(group_version = %what, "discovering");
    let pinned = GroupVersion::gv(&gv.0, &gv.1);
    let found = crate::client::retry(&what, || async {
        match timed(client, pinned_group(&client.kube, &pinned), &what).await {
            Ok(g) => Ok(Some(g)),
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await?;
    Ok(found.map(|group| {
        group
            .versioned_resources(&gv.1)
            .into_iter()
            .map(|(ar, caps)| Resource {
                group: ar.group,
                version: ar.version,
                kind: ar.kind,
                plural: ar.plural,
                namespaced: caps.scope == Scope::Namespaced,
                verbs: caps.operations,
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let mut r = Resource {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespaced: true,
            verbs: vec![],
        };
        assert_eq!(
            r.item(Some("ns"), "a"),
            "/api/v1/namespaces/ns/configmaps/a"
        );
        assert_eq!(r.collection(None), "/api/v1/configmaps");
        r.group = "example.com".into();
        r.namespaced = false;
        assert_eq!(
            r.item(Some("ignored"), "w"),
            "/apis/example.com/v1/configmaps/w"
        );
    }
}
