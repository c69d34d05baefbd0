//! Kind → resource (plural, scope, verbs), from the API server's discovery, cached and
//! re-run on demand (after CRDs become Established).

use std::collections::HashMap;

use kube::discovery::{Discovery, Scope};
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
    /// Whether this version is the group's preferred one (import lists only those).
    pub preferred: bool,
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

type Key = (String, String, String);

/// The discovery cache.
#[derive(Default)]
pub(crate) struct Catalog {
    kinds: RwLock<Option<HashMap<Key, Resource>>>,
}

impl Catalog {
    /// The resource of `object`'s group/version/kind, discovering first if nothing is cached.
    pub async fn resolve(
        &self,
        client: &Client,
        object: &ObjectRef,
    ) -> Result<Option<Resource>, Error> {
        if self.kinds.read().await.is_none() {
            self.refresh(client).await?;
        }
        let key = (
            object.group.clone(),
            object.version.clone(),
            object.kind.clone(),
        );
        Ok(self
            .kinds
            .read()
            .await
            .as_ref()
            .and_then(|m| m.get(&key).cloned()))
    }

    /// Like `resolve`, but re-runs discovery once when the kind is unknown.
    pub async fn resolve_fresh(
        &self,
        client: &Client,
        object: &ObjectRef,
    ) -> Result<Option<Resource>, Error> {
        if let Some(r) = self.resolve(client, object).await? {
            return Ok(Some(r));
        }
        self.refresh(client).await?;
        self.resolve(client, object).await
    }

    /// Runs discovery again.
    pub async fn refresh(&self, client: &Client) -> Result<(), Error> {
        tracing::debug!(server = %client.server, "discovering API resources");
        let d = crate::client::retry("discovery", || async {
            match tokio::time::timeout(
                client.timeout * 4,
                Discovery::new(client.kube.clone()).run(),
            )
            .await
            {
                Ok(r) => r.map_err(|e| from_kube(e, &client.server, "discover", "API resources")),
                Err(_) => Err(Error::no_answer(&client.server, client.timeout * 4)),
            }
        })
        .await?;
        let mut map = HashMap::new();
        for group in d.groups() {
            let preferred = group.preferred_version_or_latest().to_string();
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    let r = Resource {
                        group: ar.group.clone(),
                        version: ar.version.clone(),
                        kind: ar.kind.clone(),
                        plural: ar.plural.clone(),
                        namespaced: caps.scope == Scope::Namespaced,
                        verbs: caps.operations.clone(),
                        preferred: version == preferred,
                    };
                    map.insert((r.group.clone(), r.version.clone(), r.kind.clone()), r);
                }
            }
        }
        *self.kinds.write().await = Some(map);
        Ok(())
    }

    /// The preferred-version resources that can be listed.
    pub async fn listable(&self, client: &Client) -> Result<Vec<Resource>, Error> {
        self.refresh(client).await?;
        let guard = self.kinds.read().await;
        let mut out: Vec<Resource> = guard
            .as_ref()
            .map(|m| {
                m.values()
                    .filter(|r| r.preferred && r.verbs.iter().any(|v| v == "list"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (&a.group, &a.kind).cmp(&(&b.group, &b.kind)));
        Ok(out)
    }
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
            preferred: true,
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
