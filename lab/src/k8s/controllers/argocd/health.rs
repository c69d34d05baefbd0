//! Resource health as gitops-engine assesses it (the built-in checks for the kinds the lab
//! serves with a status: Deployments, StatefulSets, DaemonSets), and the Application's
//! aggregate: the worst of its resources' (Healthy < Suspended < Progressing < Missing <
//! Degraded < Unknown). Kinds without a check have no health and do not count; a missing
//! resource counts as Missing only when its kind has a check; child Applications have no
//! built-in check since Argo CD 1.8.

use serde_json::{Value, json};

/// A health status with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: &'static str,
    pub message: String,
}

impl Health {
    fn new(status: &'static str, message: impl Into<String>) -> Health {
        Health {
            status,
            message: message.into(),
        }
    }

    /// As `status.resources[].health` carries it.
    pub fn to_json(&self) -> Value {
        if self.message.is_empty() {
            json!({"status": self.status})
        } else {
            json!({"status": self.status, "message": self.message})
        }
    }
}

/// Worse-than order of health statuses.
pub fn rank(status: &str) -> u8 {
    match status {
        "Healthy" => 0,
        "Suspended" => 1,
        "Progressing" => 2,
        "Missing" => 3,
        "Degraded" => 4,
        _ => 5,
    }
}

/// Whether the kind has a built-in health check.
pub fn has_check(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
    )
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// The health of a live object (as served, with its status), None for kinds without a check.
pub fn of(group: &str, kind: &str, live: &Value) -> Option<Health> {
    if !has_check(group, kind) {
        return None;
    }
    let generation = int(live, "/metadata/generation");
    let observed = int(live, "/status/observedGeneration");
    let replicas = live
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    Some(match kind {
        "Deployment" => {
            if live.pointer("/spec/paused") == Some(&json!(true)) {
                return Some(Health::new("Suspended", "Deployment is paused"));
            }
            let updated = int(live, "/status/updatedReplicas");
            let available = int(live, "/status/availableReplicas");
            if observed < generation {
                Health::new(
                    "Progressing",
                    "Waiting for rollout to finish: observed deployment generation less than desired generation",
                )
            } else if updated < replicas {
                Health::new(
                    "Progressing",
                    format!(
                        "Waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated..."
                    ),
                )
            } else if available < updated {
                Health::new(
                    "Progressing",
                    format!(
                        "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
                    ),
                )
            } else {
                Health::new("Healthy", "")
            }
        }
        "StatefulSet" => {
            let ready = int(live, "/status/readyReplicas");
            if observed == 0 || generation > observed {
                Health::new(
                    "Progressing",
                    "Waiting for statefulset spec update to be observed...",
                )
            } else if ready < replicas {
                Health::new(
                    "Progressing",
                    format!("Waiting for {} pods to be ready...", replicas - ready),
                )
            } else {
                let rev = live["status"]["currentRevision"]
                    .as_str()
                    .unwrap_or_default();
                Health::new(
                    "Healthy",
                    format!(
                        "statefulset rolling update complete {ready} pods at revision {rev}..."
                    ),
                )
            }
        }
        _ => {
            let desired = int(live, "/status/desiredNumberScheduled");
            let updated = int(live, "/status/updatedNumberScheduled");
            let available = int(live, "/status/numberAvailable");
            let name = live["metadata"]["name"].as_str().unwrap_or_default();
            if observed == 0 || generation > observed {
                Health::new(
                    "Progressing",
                    "Waiting for rollout to finish: observed daemon set generation less than desired generation",
                )
            } else if updated < desired {
                Health::new(
                    "Progressing",
                    format!(
                        "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
                    ),
                )
            } else if available < desired {
                Health::new(
                    "Progressing",
                    format!(
                        "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
                    ),
                )
            } else {
                Health::new("Healthy", "")
            }
        }
    })
}

/// The Application's health from its resources' `(group, kind, health)`; a missing resource
/// comes as `Missing` and counts only when its kind has a check.
pub fn aggregate<'a>(
    items: impl Iterator<Item = (&'a str, &'a str, Option<&'a Health>)>,
) -> &'static str {
    let mut worst = "Healthy";
    for (group, kind, h) in items {
        let Some(h) = h else { continue };
        if h.status == "Missing" && !has_check(group, kind) {
            continue;
        }
        if rank(h.status) > rank(worst) {
            worst = h.status;
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_and_aggregate() {
        let rolling = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 1}});
        let h = of("apps", "Deployment", &rolling).expect("check");
        assert_eq!(h.status, "Progressing");
        assert_eq!(
            h.message,
            "Waiting for rollout to finish: 1 of 2 updated replicas are available..."
        );
        let mut done = rolling.clone();
        done["status"]["availableReplicas"] = json!(2);
        assert_eq!(
            of("apps", "Deployment", &done).expect("check").status,
            "Healthy"
        );
        assert!(of("", "ConfigMap", &json!({})).is_none());
        let missing = Health::new("Missing", "");
        let items = [
            ("", "ConfigMap", Some(&missing)),
            ("apps", "Deployment", Some(&h)),
        ];
        assert_eq!(aggregate(items.into_iter()), "Progressing");
        let items = [
            ("apps", "Deployment", Some(&missing)),
            ("apps", "Deployment", Some(&h)),
        ];
        assert_eq!(aggregate(items.into_iter()), "Missing");
    }
}
