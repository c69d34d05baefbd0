//! Input checks that Talos would only make when a machine gets its config (or never, leaving a
//! cluster that cannot work): versions, names, addresses, and the fields of rendered documents
//! that patches can break. Each error is a sentence that says what to use instead.

use std::net::IpAddr;

use serde_json::Value;

use crate::render::TalosVersion;

/// The Talos minor versions whose machine-config contract this crate renders (and the lab
/// validates against their schemas): one v1alpha1 document for 1.13, multi-document from 1.14.
pub const SUPPORTED_TALOS: &[(u32, u32)] = &[(1, 13), (1, 14)];

/// The oldest Talos whose secrets contract [`crate::secrets::MachineSecrets`] generates
/// (RSA-4096 service-account key, aggregator CA): 1.7.
pub const OLDEST_SECRETS_CONTRACT: (u32, u32) = (1, 7);

fn supported_list() -> String {
    SUPPORTED_TALOS
        .iter()
        .map(|(a, b)| format!("v{a}.{b}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre.release` (letters, digits, dots and dashes).
fn semver_core(text: &str) -> Option<(u32, u32, u32)> {
    let (core, pre) = match text.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (text, None),
    };
    if let Some(p) = pre
        && (p.is_empty()
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
    {
        return None;
    }
    let mut parts = core.split('.');
    let mut num = || {
        parts
            .next()
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 9)
            .and_then(|p| p.parse::<u32>().ok())
    };
    let v = (num()?, num()?, num()?);
    parts.next().is_none().then_some(v)
}

/// A Talos version as a release tag (`v1.13.9`, `v1.14.0-rc.1`), formatted as Talos reports it
/// (so the version a machine reports compares equal) and accepting only `pick`'s minors.
fn talos_tag(text: &str) -> Result<TalosVersion, String> {
    let Some(rest) = text.strip_prefix('v') else {
        return Err(match semver_core(text) {
            Some(_) => format!(
                "{text:?} lacks the leading \"v\" of Talos release tags (machines report \
                 v{text}, so every plan would show a change): use \"v{text}\""
            ),
            None => format!("{text:?} is not a Talos release tag: use one like \"v1.13.9\""),
        });
    };
    let (major, minor, patch) = semver_core(rest)
        .ok_or_else(|| format!("{text:?} is not a Talos release tag: use one like \"v1.13.9\""))?;
    Ok(TalosVersion {
        major,
        minor,
        patch,
    })
}

/// `talos_version` of a cluster: a release tag of a Talos version this crate renders for.
pub fn talos_version(text: &str) -> Result<TalosVersion, String> {
    let v = talos_tag(text)?;
    if !SUPPORTED_TALOS.contains(&(v.major, v.minor)) {
        return Err(format!(
            "Talos {text} is not supported: this provider renders machine configs for Talos {} \
             (e.g. v1.13.9); use one of those",
            supported_list()
        ));
    }
    Ok(v)
}

/// `talos_version` of machine secrets: any release tag from the oldest contract the
/// generated secrets follow up to the newest supported Talos.
pub fn secrets_talos_version(text: &str) -> Result<TalosVersion, String> {
    let v = talos_tag(text)?;
    let newest = SUPPORTED_TALOS.last().copied().unwrap_or((1, 13));
    let (o1, o2) = OLDEST_SECRETS_CONTRACT;
    if (v.major, v.minor) < OLDEST_SECRETS_CONTRACT || (v.major, v.minor) > newest {
        return Err(format!(
            "Talos {text} is not supported: the secrets follow the contract of Talos v{o1}.{o2} \
             to v{}.{}; use the talos_version of the cluster these secrets are for",
            newest.0, newest.1
        ));
    }
    Ok(v)
}

/// The Kubernetes minor versions each supported Talos minor runs (Talos's own compatibility
/// table: a newer or older kubelet is refused at upgrade and unsupported at install).
const KUBERNETES_FOR_TALOS: &[((u32, u32), u32, u32)] = &[((1, 13), 31, 36), ((1, 14), 32, 37)];

/// `kubernetes_version` against the Talos that runs it: within Talos's supported range.
pub fn kubernetes_for_talos(text: &str, talos: TalosVersion) -> Result<(), String> {
    let core = text.strip_prefix('v').unwrap_or(text);
    let Some((1, minor, _)) = semver_core(core) else {
        return kubernetes_version(text);
    };
    let Some((_, lo, hi)) = KUBERNETES_FOR_TALOS
        .iter()
        .find(|(t, _, _)| *t == (talos.major, talos.minor))
    else {
        return Ok(());
    };
    if (*lo..=*hi).contains(&minor) {
        Ok(())
    } else {
        Err(format!(
            "Kubernetes {text} is not supported by Talos v{}.{}: it runs Kubernetes 1.{lo} to \
             1.{hi}; use a version in that range (or another talos_version)",
            talos.major, talos.minor
        ))
    }
}

/// `kubernetes_version`: `1.MINOR.PATCH`, with or without a leading `v`.
pub fn kubernetes_version(text: &str) -> Result<(), String> {
    let core = text.strip_prefix('v').unwrap_or(text);
    match semver_core(core) {
        Some((1, _, _)) => Ok(()),
        Some(_) => Err(format!(
            "{text:?} is not a Kubernetes 1.x version: use one like \"1.34.1\""
        )),
        None => Err(format!(
            "{text:?} is not a Kubernetes version: use MAJOR.MINOR.PATCH like \"1.34.1\" (the \
             kubelet and control-plane images are tagged with it)"
        )),
    }
}

/// A DNS label: 1–63 lowercase letters, digits and `-`, not starting or ending with `-`.
pub fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS name: dot-separated labels (letters of any case), at most 253 characters.
fn dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| dns_label(&l.to_ascii_lowercase()))
        // All-numeric dotted names are mistyped IPv4 addresses, not names.
        && !s.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// The cluster name: a DNS label (it names the kubeconfig's cluster and context, and
/// Cilium's cluster).
pub fn cluster_name(text: &str) -> Result<(), String> {
    if dns_label(text) {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a valid cluster name: use 1 to 63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit (e.g. \"homelab\")"
        ))
    }
}

/// A machine's Talos API address: an IP address or a DNS name, optionally with `:port`
/// (`[v6]:port` for IPv6).
pub fn machine_address(text: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "{text:?} is not a machine address: use the machine's IP address (e.g. 10.0.0.11) or \
             DNS name, optionally with :PORT when the Talos API is not on port 50000"
        )
    };
    if text.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Ok(sa) = text.parse::<std::net::SocketAddr>() {
        return if sa.port() > 0 { Ok(()) } else { Err(bad()) };
    }
    let host = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
            h
        }
        Some(_) => return Err(bad()),
        None => text,
    };
    if dns_name(host) { Ok(()) } else { Err(bad()) }
}

/// The Kubernetes API endpoint: `https://HOST:PORT` with an IP or DNS host and a port.
pub fn endpoint(text: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "endpoint {text:?} must be https://HOST:PORT, e.g. https://10.0.0.10:6443 (the VIP or \
             load balancer in front of the control planes)"
        )
    };
    let rest = text.strip_prefix("https://").ok_or_else(bad)?;
    let hp = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
        let (h, p) = v6.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        hp.rsplit_once(':').ok_or_else(bad)?
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(bad)?;
    if host.parse::<IpAddr>().is_err() && !dns_name(host) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// A network interface name as Linux takes it (1–15 characters, no `/`, `:` or whitespace).
pub fn interface_name(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 15
        && text != "."
        && text != ".."
        && !text
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a network interface name: use the link that carries the VIP, e.g. \
             \"eth0\" (1 to 15 characters, no '/', ':' or spaces)"
        ))
    }
}

/// An install disk: a device path under `/dev/`.
pub fn install_disk(text: &str) -> Result<(), String> {
    let ok = text.len() > "/dev/".len()
        && text.starts_with("/dev/")
        && !text.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a disk device path: use one under /dev/, e.g. \"/dev/sda\" or \
             \"/dev/nvme0n1\""
        ))
    }
}

fn cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.bytes().all(|b| b.is_ascii_digit()) && bits.parse::<u8>().is_ok_and(|b| b <= max)
}

/// A field of a rendered config that Talos (or the cluster) cannot work with: a JSON pointer
/// (prefixed with the document's kind outside the v1alpha1 document) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocProblem {
    pub path: String,
    pub problem: String,
}

fn problem(path: String, problem: String) -> DocProblem {
    DocProblem { path, problem }
}

fn subnets(list: &Value, path: &str) -> Result<(), DocProblem> {
    let Some(items) = list.as_array() else {
        return Err(problem(
            path.into(),
            "must be a list of CIDRs, e.g. [\"10.244.0.0/16\"]".into(),
        ));
    };
    if items.is_empty() {
        return Err(problem(
            path.into(),
            "must hold at least one CIDR, e.g. [\"10.244.0.0/16\"]".into(),
        ));
    }
    for (i, v) in items.iter().enumerate() {
        match v.as_str() {
            Some(s) if cidr(s) => {}
            _ => {
                return Err(problem(
                    format!("{path}/{i}"),
                    format!("{v} is not a CIDR: use ADDRESS/PREFIX, e.g. \"10.244.0.0/16\""),
                ));
            }
        }
    }
    Ok(())
}

fn string_at<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    doc.pointer(pointer).filter(|v| !v.is_null())
}

fn check_string(
    doc: &Value,
    pointer: &str,
    prefix: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<(), DocProblem> {
    let Some(v) = string_at(doc, pointer) else {
        return Ok(());
    };
    let path = format!("{prefix}{pointer}");
    match v.as_str() {
        Some(s) => check(s).map_err(|e| problem(path, e)),
        None => Err(problem(path, format!("{v} must be a string"))),
    }
}

/// Checks the fields of a machine config (as documents) that patches can set to values Talos
/// accepts syntactically but a cluster cannot run with, and that the machine keeps its `role`.
pub fn documents(docs: &[Value], machine_type: &str) -> Result<(), DocProblem> {
    for doc in docs {
        let kind = doc.get("kind").and_then(Value::as_str);
        match kind {
            None => {
                for key in ["podSubnets", "serviceSubnets"] {
                    let p = format!("/cluster/network/{key}");
                    if let Some(v) = string_at(doc, &p) {
                        subnets(v, &p)?;
                    }
                }
                check_string(doc, "/cluster/clusterName", "", cluster_name)?;
                check_string(doc, "/cluster/controlPlane/endpoint", "", |s| {
                    endpoint(s).map(|_| ())
                })?;
                check_string(doc, "/cluster/network/dnsDomain", "", |s| {
                    if dns_name(s) {
                        Ok(())
                    } else {
                        Err(format!(
                            "{s:?} is not a DNS domain: use one like \"cluster.local\""
                        ))
                    }
                })?;
                check_string(doc, "/machine/install/disk", "", install_disk)?;
                check_string(doc, "/machine/type", "", |t| {
                    if t == machine_type {
                        Ok(())
                    } else {
                        Err(format!(
                            "a patch may not make this {machine_type} a {t:?}: declare the \
                             machine in a control_plane or worker block instead"
                        ))
                    }
                })?;
            }
            Some("KubeNetworkConfig") => {
                for key in ["podSubnets", "serviceSubnets"] {
                    let p = format!("/{key}");
                    if let Some(v) = string_at(doc, &p) {
                        subnets(v, &format!("KubeNetworkConfig{p}"))?;
                    }
                }
            }
            Some("KubeClusterConfig") => {
                check_string(doc, "/clusterName", "KubeClusterConfig", cluster_name)?;
                check_string(doc, "/endpoint", "KubeClusterConfig", |s| {
                    endpoint(s).map(|_| ())
                })?;
            }
            Some("Layer2VIPConfig") => {
                check_string(doc, "/name", "Layer2VIPConfig", |s| {
                    s.parse::<IpAddr>().map(|_| ()).map_err(|_| {
                        format!("{s:?} is not an IP address: the VIP is one, e.g. \"10.0.0.10\"")
                    })
                })?;
                check_string(doc, "/link", "Layer2VIPConfig", interface_name)?;
            }
            Some("HostnameConfig") => {
                check_string(doc, "/hostname", "HostnameConfig", |s| {
                    if dns_label(s) {
                        Ok(())
                    } else {
                        Err(format!(
                            "{s:?} is not a hostname: use 1 to 63 lowercase letters, digits and '-'"
                        ))
                    }
                })?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
