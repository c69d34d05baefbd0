//! Readiness waits: workloads rolled out, CRDs Established, Nodes Ready and untainted.
//!
//! Short polls with a growing pause (100 ms to 1 s) rather than watches: each check is one
//! GET, statuses the API server computes on read are seen at once, and a dropped connection
//! costs nothing to resume.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Engine, Error, Inventory, ObjectRef};

/// The pause before poll number `attempt` (0-based).
pub(crate) fn poll_pause(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(4)).min(1000))
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A CRD's Established condition: Ok when True, else what it says.
pub(crate) fn crd_established(live: &Value) -> Result<(), String> {
    let cond = live["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Established"));
    match cond {
        Some(c) if c["status"] == "True" => Ok(()),
        Some(c) => Err(format!(
            "not Established ({}: {})",
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        )),
        None => Err("not Established yet".into()),
    }
}

/// Whether the controller has seen the current spec.
fn observed(live: &Value) -> Result<(), String> {
    let generation = int(&live["metadata"]["generation"]);
    let seen = int(&live["status"]["observedGeneration"]);
    if seen < generation {
        return Err(format!(
            "generation {generation} not yet observed (observed {seen})"
        ));
    }
    Ok(())
}

/// Readiness of a kind the engine waits for; None for kinds it does not wait for.
pub(crate) fn readiness(object: &ObjectRef, live: &Value) -> Option<Result<(), String>> {
    let status = &live["status"];
    let check = match (object.group.as_str(), object.kind.as_str()) {
        ("apps", "Deployment") => observed(live).and_then(|()| {
            let want = live["spec"]["replicas"].as_i64().unwrap_or(1);
            let updated = int(&status["updatedReplicas"]);
            let available = int(&status["availableReplicas"]);
            let total = int(&status["replicas"]);
            if updated < want || available < want {
                Err(format!(
                    "{available} of {want} replicas available, {updated} updated"
                ))
            } else if total > updated {
                Err(format!(
                    "{} old replicas pending termination",
                    total - updated
                ))
            } else {
                Ok(())
            }
        }),
        ("apps", "DaemonSet") => observed(live).and_then(|()| {
            let want = int(&status["desiredNumberScheduled"]);
            let updated = int(&status["updatedNumberScheduled"]);
            let available = int(&status["numberAvailable"]);
            if updated < want || available < want {
                Err(format!(
                    "{available} of {want} pods available, {updated} updated"
                ))
            } else {
                Ok(())
            }
        }),
        ("apps", "StatefulSet") => observed(live).and_then(|()| {
            let want = live["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = int(&status["readyReplicas"]);
            let updated = int(&status["updatedReplicas"]);
            if ready < want || updated < want {
                Err(format!(
                    "{ready} of {want} replicas ready, {updated} updated"
                ))
            } else {
                Ok(())
            }
        }),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd_established(live),
        _ => return None,
    };
    Some(check)
}

/// Waits for `object` (pre-checked to be a waited kind) until `deadline`.
async fn wait_one(
    engine: &Engine,
    object: &ObjectRef,
    deadline: Instant,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), Error> {
    let mut last = String::new();
    let mut attempt = 0;
    loop {
        let seen = match engine.get(object).await {
            Ok(Some(live)) => match readiness(object, &live) {
                Some(Ok(())) | None => return Ok(()),
                Some(Err(s)) => s,
            },
            Ok(None) => "not found".into(),
            // The API server restarting is worth waiting through.
            Err(e) if e.is_transient() => e.to_string(),
            Err(e) => return Err(e),
        };
        if seen != last {
            tracing::debug!(object = %object, state = %seen, "waiting");
            progress(&format!("{object}: {seen}"));
            last = seen;
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                waited_for: object.to_string(),
                last_seen: last,
            });
        }
        tokio::time::sleep(poll_pause(attempt)).await;
        attempt += 1;
    }
}

impl Engine {
    /// Waits until every Deployment is rolled out and available, every DaemonSet and
    /// StatefulSet is rolled out, and every CRD of the inventory is Established.
    /// On timeout: `Error::Timeout` naming the first object not ready and what it last showed.
    pub async fn wait_ready(
        &self,
        inventory: &Inventory,
        timeout: Duration,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let waited: Vec<&ObjectRef> = inventory
            .entries
            .iter()
            .map(|e| &e.object)
            .filter(|o| readiness(o, &Value::Null).is_some())
            .collect();
        tracing::info!(objects = waited.len(), "waiting for readiness");
        for object in waited {
            wait_one(self, object, deadline, progress).await?;
            tracing::debug!(object = %object, "ready");
            progress(&format!("{object} ready"));
        }
        Ok(())
    }

    /// Waits until there is at least one Node, every Node is Ready, and (when `taint_key` is
    /// given) none carries a taint with that key. The timeout names the node and what it showed.
    pub async fn wait_nodes(
        &self,
        taint_key: Option<&str>,
        timeout: Duration,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        tracing::info!(taint = taint_key.unwrap_or(""), "waiting for Nodes");
        let mut last = (String::new(), String::new());
        let mut attempt = 0;
        loop {
            let blocker = match self.client.node_states().await {
                Ok(nodes) if nodes.is_empty() => {
                    Some(("Nodes".to_string(), "no Node registered yet".to_string()))
                }
                Ok(nodes) => nodes.into_iter().find_map(|(n, ready_condition)| {
                    if !n.ready {
                        return Some((format!("Node {}", n.name), ready_condition));
                    }
                    let key = taint_key?;
                    n.taints
                        .iter()
                        .find(|t| t.split([':', '=']).next() == Some(key))
                        .map(|t| (format!("Node {}", n.name), format!("tainted {t}")))
                }),
                Err(e) if e.is_transient() => Some(("Nodes".to_string(), e.to_string())),
                Err(e) => return Err(e),
            };
            let Some(blocker) = blocker else {
                progress("all Nodes ready");
                return Ok(());
            };
            if blocker != last {
                progress(&format!("{}: {}", blocker.0, blocker.1));
                last = blocker;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    waited_for: last.0,
                    last_seen: last.1,
                });
            }
            tokio::time::sleep(poll_pause(attempt)).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(group: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some("kube-system".into()),
            name: "cilium".into(),
        }
    }

    #[test]
    fn daemonset_rollout() {
        let ds = r("apps", "DaemonSet");
        let live = json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
            "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1}});
        assert_eq!(
            readiness(&ds, &live),
            Some(Err("1 of 3 pods available, 3 updated".into()))
        );
        let stale = json!({"metadata": {"generation": 3}, "status": {"observedGeneration": 2}});
        assert_eq!(
            readiness(&ds, &stale),
            Some(Err("generation 3 not yet observed (observed 2)".into()))
        );
        let done = json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
            "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}});
        assert_eq!(readiness(&ds, &done), Some(Ok(())));
    }

    #[test]
    fn deployment_statefulset_crd_and_others() {
        let d = r("apps", "Deployment");
        let live = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert_eq!(readiness(&d, &live), Some(Ok(())));
        let live = json!({"metadata": {"generation": 1}, "spec": {},
            "status": {"observedGeneration": 1}});
        assert_eq!(
            readiness(&d, &live),
            Some(Err("0 of 1 replicas available, 0 updated".into()))
        );
        let s = r("apps", "StatefulSet");
        let live = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 2}});
        assert_eq!(
            readiness(&s, &live),
            Some(Err("1 of 2 replicas ready, 2 updated".into()))
        );
        let c = r("apiextensions.k8s.io", "CustomResourceDefinition");
        let live = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(readiness(&c, &live), Some(Ok(())));
        assert_eq!(
            readiness(&c, &json!({})),
            Some(Err("not Established yet".into()))
        );
        assert_eq!(readiness(&r("", "ConfigMap"), &json!({})), None);
    }

    #[test]
    fn pauses_grow_to_a_second() {
        assert_eq!(poll_pause(0), Duration::from_millis(100));
        assert_eq!(poll_pause(3), Duration::from_millis(800));
        assert_eq!(poll_pause(10), Duration::from_secs(1));
    }
}
