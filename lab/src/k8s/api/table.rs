//! Server-side printing (`kubectl get`): `meta.k8s.io/v1` Tables with the real printers'
//! columns.

use serde_json::{Value, json};

use crate::k8s::store::Kind;

/// The client asked for server-side printing (`kubectl get`): Accept names
/// `as=Table;v=v1;g=meta.k8s.io`.
pub(super) fn wants_table(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| {
            let params: Vec<&str> = first.split(';').map(str::trim).collect();
            params.contains(&"as=Table")
                && params.contains(&"g=meta.k8s.io")
                && params.contains(&"v=v1")
        })
}

/// `duration.HumanDuration` of Kubernetes (what AGE columns print).
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if d < 730 {
        format!("{d}d")
    } else if d < 2920 {
        match d % 365 {
            0 => format!("{}y", d / 365),
            dd => format!("{}y{dd}d", d / 365),
        }
    } else {
        format!("{}y", d / 365)
    }
}

pub(super) fn age(obj: &Value) -> String {
    let Some(ts) = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
    else {
        return "<unknown>".into();
    };
    let Some(t) = parse_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let now = time::OffsetDateTime::now_utc();
    human_duration((now - t).whole_seconds().max(0) as u64)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what the store writes).
pub(super) fn parse_rfc3339(ts: &str) -> Option<time::OffsetDateTime> {
    let n = |r: std::ops::Range<usize>| ts.get(r).and_then(|s| s.parse::<u32>().ok());
    let month = time::Month::try_from(n(5..7)? as u8).ok()?;
    let date = time::Date::from_calendar_date(n(0..4)? as i32, month, n(8..10)? as u8).ok()?;
    let t = time::Time::from_hms(n(11..13)? as u8, n(14..16)? as u8, n(17..19)? as u8).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

pub(super) fn col(name: &str, ty: &str, priority: u8) -> Value {
    let mut c =
        json!({"name": name, "type": ty, "format": "", "description": "", "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
        c["description"] = json!(
            "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
        );
    }
    c
}

/// A label selector as `kubectl` prints it (`a=b,c in (d,e)`; `<none>` when empty).
pub(super) fn selector_text(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.sort();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// A row's cells from an object.
type Cells = dyn Fn(&Value) -> Vec<Value>;

/// A `meta.k8s.io/v1` Table of objects (the real printers' columns for the kinds served).
pub(super) fn table(k: &Kind, items: &[Value], rv: u64) -> Value {
    let name = |o: &Value| json!(o["metadata"]["name"]);
    let count = |v: &Value| v.as_object().map_or(0, |m| m.len());
    let (columns, cells): (Vec<Value>, Box<Cells>) = match k.resource {
        "nodes" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
                col("Internal-IP", "string", 1),
                col("External-IP", "string", 1),
                col("OS-Image", "string", 1),
                col("Kernel-Version", "string", 1),
                col("Container-Runtime", "string", 1),
            ],
            Box::new(move |o| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                    .and_then(|c| c["status"].as_str())
                    .map_or("Unknown", |s| match s {
                        "True" => "Ready",
                        "False" => "NotReady",
                        _ => "Unknown",
                    });
                let mut roles: Vec<&str> = o["metadata"]["labels"]
                    .as_object()
                    .map(|l| {
                        l.keys()
                            .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                            .collect()
                    })
                    .unwrap_or_default();
                roles.sort();
                let roles = if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                };
                let addr = |t: &str| {
                    o["status"]["addresses"]
                        .as_array()
                        .and_then(|a| a.iter().find(|a| a["type"] == t))
                        .and_then(|a| a["address"].as_str())
                        .unwrap_or("<none>")
                        .to_string()
                };
                let info = &o["status"]["nodeInfo"];
                vec![
                    name(o),
                    json!(ready),
                    json!(roles),
                    json!(age(o)),
                    info["kubeletVersion"].clone(),
                    json!(addr("InternalIP")),
                    json!(addr("ExternalIP")),
                    info["osImage"].clone(),
                    info["kernelVersion"].clone(),
                    info["containerRuntimeVersion"].clone(),
                ]
            }),
        ),
        "namespaces" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                let phase = o["status"]["phase"].as_str().unwrap_or("Active");
                vec![name(o), json!(phase), json!(age(o))]
            }),
        ),
        "configmaps" => (
            vec![
                col("Name", "string", 0),
                col("Data", "integer", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(count(&o["data"]) + count(&o["binaryData"])),
                    json!(age(o)),
                ]
            }),
        ),
        "secrets" => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Data", "integer", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(o["type"].as_str().unwrap_or("Opaque")),
                    json!(count(&o["data"])),
                    json!(age(o)),
                ]
            }),
        ),
        "deployments" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Up-to-date", "string", 0),
                col("Available", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                let st = &o["status"];
                let n = |f: &str| st[f].as_u64().unwrap_or(0);
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        n("readyReplicas"),
                        o["spec"]["replicas"].as_u64().unwrap_or(1)
                    )),
                    json!(n("updatedReplicas")),
                    json!(n("availableReplicas")),
                    json!(age(o)),
                ]
            }),
        ),
        "daemonsets" => (
            vec![
                col("Name", "string", 0),
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                col("Node Selector", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                let st = &o["status"];
                let n = |f: &str| json!(st[f].as_u64().unwrap_or(0));
                let sel = o["spec"]["template"]["spec"]["nodeSelector"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into());
                vec![
                    name(o),
                    n("desiredNumberScheduled"),
                    n("currentNumberScheduled"),
                    n("numberReady"),
                    n("updatedNumberScheduled"),
                    n("numberAvailable"),
                    json!(sel),
                    json!(age(o)),
                ]
            }),
        ),
        "statefulsets" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        o["status"]["readyReplicas"].as_u64().unwrap_or(0),
                        o["spec"]["replicas"].as_u64().unwrap_or(1)
                    )),
                    json!(age(o)),
                ]
            }),
        ),
        "networkpolicies" => (
            vec![
                col("Name", "string", 0),
                col("Pod-Selector", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    name(o),
                    json!(selector_text(&o["spec"]["podSelector"])),
                    json!(age(o)),
                ]
            }),
        ),
        "services" => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Cluster-IP", "string", 0),
                col("External-IP", "string", 0),
                col("Port(s)", "string", 0),
                col("Age", "string", 0),
                col("Selector", "string", 1),
            ],
            Box::new(move |o| {
                let spec = &o["spec"];
                let ty = spec["type"].as_str().unwrap_or("ClusterIP");
                let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
                let external = match ty {
                    "ExternalName" => text(&spec["externalName"]),
                    "LoadBalancer" => Some(
                        o["status"]["loadBalancer"]["ingress"]
                            .as_array()
                            .filter(|a| !a.is_empty())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|i| text(&i["ip"]).or_else(|| text(&i["hostname"])))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_else(|| "<pending>".into()),
                    ),
                    _ => spec["externalIPs"]
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .map(|a| a.iter().filter_map(text).collect::<Vec<_>>().join(",")),
                };
                let ports: Vec<String> = spec["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let proto = p["protocol"].as_str().unwrap_or("TCP");
                        match p["nodePort"].as_u64() {
                            Some(np) => format!("{}:{np}/{proto}", p["port"]),
                            None => format!("{}/{proto}", p["port"]),
                        }
                    })
                    .collect();
                let selector = spec["selector"]
                    .as_object()
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        let mut kv: Vec<String> = m
                            .iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect();
                        kv.sort();
                        kv.join(",")
                    });
                vec![
                    name(o),
                    json!(ty),
                    json!(text(&spec["clusterIP"]).unwrap_or_else(|| "<none>".into())),
                    json!(external.unwrap_or_else(|| "<none>".into())),
                    json!(if ports.is_empty() {
                        "<none>".into()
                    } else {
                        ports.join(",")
                    }),
                    json!(age(o)),
                    json!(selector.unwrap_or_else(|| "<none>".into())),
                ]
            }),
        ),
        "serviceaccounts" => (
            vec![
                col("Name", "string", 0),
                col("Secrets", "string", 0),
                col("Age", "string", 0),
            ],
            Box::new(move |o| {
                let n = o["secrets"].as_array().map_or(0, Vec::len);
                vec![name(o), json!(n.to_string()), json!(age(o))]
            }),
        ),
        _ => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            Box::new(move |o| vec![name(o), json!(age(o))]),
        ),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({
                "cells": cells(o),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
        assert!(parse_rfc3339("2024-02-29T23:59:58Z").is_some());
        assert!(parse_rfc3339("garbage").is_none());
    }
}
