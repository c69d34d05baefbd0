//! The configuration, typed and checked: what plan and apply work from. Every error names the
//! attribute at fault.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use infraflux_talos::client::ApplyMode;
use infraflux_talos::patch::PatchSource;
use infraflux_talos::render::{
    self, ClusterSpec, Cni, NodeSpec, RenderError, Role, TalosVersion, Vip,
};
use infraflux_talos::secrets::{CertAndKey, MachineSecrets};
use tfplugin::{AttributePath, Diagnostic, Diagnostics, Value};

use super::schema::{DEFAULT_INSTALL_DISK, DEFAULT_VIP_LINK};

/// One machine of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub hostname: String,
    /// Its place in the configuration (`control_plane[index]`); none for machines from state.
    pub index: Option<usize>,
    pub role: Role,
    pub address: String,
    pub spec: NodeSpec,
}

impl Machine {
    /// Where its attributes live: `control_plane[0]` or `worker[1]`.
    pub fn path(&self) -> AttributePath {
        block_path(self.role, self.index)
    }

    pub fn role_name(&self) -> &'static str {
        role_name(self.role)
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::ControlPlane => "controlplane",
        Role::Worker => "worker",
    }
}

fn block_path(role: Role, index: Option<usize>) -> AttributePath {
    let block = AttributePath::attr(match role {
        Role::ControlPlane => "control_plane",
        Role::Worker => "worker",
    });
    match index {
        Some(i) => block.push_index(i),
        None => block,
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub spec: ClusterSpec,
    pub talos_version: TalosVersion,
    /// As written (`v1.13.9`).
    pub talos_version_text: String,
    pub apply_mode: ApplyMode,
    /// Control planes first, each group by hostname.
    pub machines: Vec<Machine>,
}

/// The result of reading a configuration that may hold unknown values.
pub enum Parsed {
    Known(Box<Cluster>),
    /// Something is not known yet (e.g. an address from a VM still to be created).
    Unknown,
    Invalid(Diagnostics),
}

fn strings(v: &Value) -> Option<Vec<String>> {
    if v.is_null() {
        return Some(Vec::new());
    }
    v.as_elements()?
        .iter()
        .map(|e| e.as_str().map(str::to_owned))
        .collect()
}

fn hostname_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !h.starts_with('-')
        && !h.ends_with('-')
}

/// The installer image's tag (`…/installer:v1.13.9` → `v1.13.9`), if it has one.
pub fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next()?;
    let tag = last.split_once(':')?.1;
    Some(tag.split('@').next().unwrap_or(tag))
}

/// The default installer for a version.
pub fn default_installer(version: &str) -> String {
    format!("ghcr.io/siderolabs/installer:{version}")
}

impl Cluster {
    pub fn from_config(config: &Value) -> Parsed {
        if !config.is_wholly_known() {
            return Parsed::Unknown;
        }
        let mut diags = Diagnostics::new();
        let text = |name: &str| config.attr(name).as_str().unwrap_or_default().to_owned();
        let talos_version_text = text("talos_version");
        let talos_version = match TalosVersion::parse(&talos_version_text) {
            Ok(v) => v,
            Err(e) => {
                diags.push(
                    Diagnostic::error("Invalid talos_version", format!("{e}."))
                        .at(AttributePath::attr("talos_version")),
                );
                TalosVersion {
                    major: 1,
                    minor: 13,
                    patch: 0,
                }
            }
        };
        let install = config.attr("install");
        let install_disk = install
            .attr("disk")
            .as_str()
            .unwrap_or(DEFAULT_INSTALL_DISK)
            .to_owned();
        let install_image = match install.attr("image").as_str() {
            Some(i) => {
                if let Some(tag) = image_tag(i)
                    && TalosVersion::parse(tag).ok() != Some(talos_version)
                    && !diags.has_errors()
                {
                    diags.push(
                        Diagnostic::error(
                            "install.image does not match talos_version",
                            format!(
                                "The installer image's tag is {tag} but talos_version is {talos_version_text}. Use the installer of the same version (its tag decides what Talos installs)."
                            ),
                        )
                        .at(AttributePath::attr("install").push_attr("image")),
                    );
                }
                i.to_owned()
            }
            None => default_installer(&talos_version_text),
        };
        let vip = match config.attr("vip") {
            v if v.is_null() => None,
            v => match v
                .attr("address")
                .as_str()
                .unwrap_or_default()
                .parse::<IpAddr>()
            {
                Ok(address) => Some(Vip {
                    address,
                    link: v
                        .attr("link")
                        .as_str()
                        .unwrap_or(DEFAULT_VIP_LINK)
                        .to_owned(),
                }),
                Err(_) => {
                    diags.push(
                        Diagnostic::error(
                            "Invalid vip.address",
                            "vip.address must be an IP address, e.g. 10.0.0.10.",
                        )
                        .at(AttributePath::attr("vip").push_attr("address")),
                    );
                    None
                }
            },
        };
        let spec = ClusterSpec {
            name: text("name"),
            endpoint: text("endpoint"),
            kubernetes_version: text("kubernetes_version"),
            install_disk,
            install_image,
            cni: if text("cni") == "flannel" {
                Cni::Flannel
            } else {
                Cni::Cilium
            },
            vip,
            config_patches: strings(config.attr("config_patches")).unwrap_or_default(),
        };
        check_endpoint(&spec.endpoint, &mut diags);
        let mut machines = Vec::new();
        for (block, role) in [
            ("control_plane", Role::ControlPlane),
            ("worker", Role::Worker),
        ] {
            let Some(list) = config.attr(block).as_elements() else {
                continue;
            };
            for (index, m) in list.iter().enumerate() {
                let hostname = m.attr("hostname").as_str().unwrap_or_default().to_owned();
                let path = block_path(role, Some(index));
                if !hostname_ok(&hostname) {
                    diags.push(
                        Diagnostic::error(
                            "Invalid hostname",
                            format!(
                                "{hostname:?} is not a valid hostname: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'."
                            ),
                        )
                        .at(path.push_attr("hostname")),
                    );
                }
                machines.push(Machine {
                    hostname: hostname.clone(),
                    index: Some(index),
                    role,
                    address: m.attr("address").as_str().unwrap_or_default().to_owned(),
                    spec: NodeSpec {
                        role,
                        hostname,
                        install_disk: m.attr("install_disk").as_str().map(str::to_owned),
                        config_patches: strings(m.attr("config_patches")).unwrap_or_default(),
                    },
                });
            }
        }
        if !machines.iter().any(|m| m.role == Role::ControlPlane) {
            diags.push(
                Diagnostic::error(
                    "No control plane",
                    "A cluster needs at least one control_plane block (three for a highly available etcd).",
                )
                .at(AttributePath::attr("control_plane")),
            );
        }
        let mut names: HashSet<&str> = HashSet::new();
        for m in &machines {
            if !names.insert(&m.hostname) {
                diags.push(
                    Diagnostic::error(
                        "Duplicate hostname",
                        format!("Two machines are named {:?}. Hostnames name Kubernetes Nodes and etcd members: each must be unique.", m.hostname),
                    )
                    .at(m.path().push_attr("hostname")),
                );
            }
        }
        let mut seen: HashMap<String, String> = HashMap::new();
        for m in &machines {
            let key = normalise_address(&m.address);
            if let Some(first) = seen.insert(key, m.hostname.clone()) {
                diags.push(
                    Diagnostic::error(
                        "Duplicate machine address",
                        format!(
                            "{:?} and {first:?} both have address {}. Each machine needs its own address.",
                            m.hostname, m.address
                        ),
                    )
                    .at(m.path().push_attr("address")),
                );
            }
        }
        let cluster = Cluster {
            spec,
            talos_version,
            talos_version_text,
            apply_mode: match text("apply_mode").as_str() {
                "no_reboot" => ApplyMode::NoReboot,
                "reboot" => ApplyMode::Reboot,
                _ => ApplyMode::Auto,
            },
            machines,
        };
        if diags.has_errors() {
            return Parsed::Invalid(diags);
        }
        // Render every machine once with placeholder secrets: patches and fields are checked
        // at plan time, before any secret exists.
        let placeholder = placeholder_secrets();
        for m in &cluster.machines {
            if let Err(e) = cluster.render(m, &placeholder) {
                diags.push(cluster.render_error(&e));
            }
        }
        if diags.has_errors() {
            Parsed::Invalid(diags)
        } else {
            Parsed::Known(Box::new(cluster))
        }
    }

    /// One machine's config YAML.
    pub fn render(&self, m: &Machine, secrets: &MachineSecrets) -> Result<String, RenderError> {
        render::render(&self.spec, &m.spec, secrets, &self.talos_version)
    }

    /// A render error as a diagnostic on the attribute it concerns.
    pub fn render_error(&self, e: &RenderError) -> Diagnostic {
        match e {
            RenderError::Patch(p) => {
                let path = match &p.patch {
                    PatchSource::Cluster { index } => {
                        AttributePath::attr("config_patches").push_index(*index)
                    }
                    PatchSource::Node { hostname, index } => {
                        let m = self.machines.iter().find(|m| &m.hostname == hostname);
                        block_path(m.map_or(Role::Worker, |m| m.role), m.and_then(|m| m.index))
                            .push_attr("config_patches")
                            .push_index(*index)
                    }
                };
                Diagnostic::error(
                    "Invalid config patch",
                    format!(
                        "{e}. Fix the patch: it must apply to the machine config Talos {} takes.",
                        self.talos_version_text
                    ),
                )
                .at(path)
            }
            RenderError::Invalid { field, problem } => {
                let path = match *field {
                    "install.image" => AttributePath::attr("install").push_attr("image"),
                    "vip.link" => AttributePath::attr("vip").push_attr("link"),
                    "hostname" => AttributePath::attr("control_plane"),
                    f => AttributePath::attr(f),
                };
                Diagnostic::error(format!("Invalid {field}"), format!("{field} {problem}."))
                    .at(path)
            }
            RenderError::Yaml(_) => {
                Diagnostic::error("Cannot render the machine config", e.to_string())
            }
        }
    }

    pub fn control_planes(&self) -> impl Iterator<Item = &Machine> {
        self.machines
            .iter()
            .filter(|m| m.role == Role::ControlPlane)
    }

    pub fn machine(&self, hostname: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.hostname == hostname)
    }

    /// Addresses of the control planes (talosctl endpoints).
    pub fn endpoints(&self) -> Vec<String> {
        self.control_planes().map(|m| m.address.clone()).collect()
    }

    /// Hostname → address, every machine.
    pub fn addresses(&self) -> BTreeMap<String, String> {
        self.machines
            .iter()
            .map(|m| (m.hostname.clone(), m.address.clone()))
            .collect()
    }
}

fn normalise_address(a: &str) -> String {
    a.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|_| a.trim().to_ascii_lowercase())
}

fn check_endpoint(endpoint: &str, diags: &mut Diagnostics) {
    let ok = endpoint
        .strip_prefix("https://")
        .map(|r| r.trim_end_matches('/'))
        .and_then(|hp| hp.rsplit_once(':'))
        .is_some_and(|(h, p)| {
            !h.is_empty() && !h.contains('/') && p.parse::<u16>().is_ok_and(|p| p > 0)
        });
    if !ok {
        diags.push(
            Diagnostic::error(
                "Invalid endpoint",
                format!("endpoint {endpoint:?} must be https://HOST:PORT, e.g. https://10.0.0.10:6443 (the VIP or load balancer in front of the control planes)."),
            )
            .at(AttributePath::attr("endpoint")),
        );
    }
}

/// Secrets-shaped strings: rendering only copies secrets into the config, so these let a plan
/// check every patch and field before real secrets exist.
fn placeholder_secrets() -> MachineSecrets {
    let pair = || CertAndKey {
        crt: "placeholder".into(),
        key: "placeholder".into(),
    };
    MachineSecrets {
        cluster_id: "placeholder".into(),
        cluster_secret: "placeholder".into(),
        bootstrap_token: "aaaaaa.aaaaaaaaaaaaaaaa".into(),
        trustd_token: "aaaaaa.aaaaaaaaaaaaaaaa".into(),
        secretbox_encryption_secret: "placeholder".into(),
        os_ca: pair(),
        etcd_ca: pair(),
        kubernetes_ca: pair(),
        aggregator_ca: pair(),
        service_account_key: "placeholder".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(hostname: &str, address: &str) -> Value {
        Value::object([
            ("hostname", Value::from(hostname)),
            ("address", Value::from(address)),
        ])
    }

    fn config(extra: Vec<(&str, Value)>) -> Value {
        let cp = Value::List(vec![machine("cp-1", "127.10.0.11")]);
        let mut attrs: Vec<(&str, Value)> = vec![
            ("name", Value::from("lab")),
            ("endpoint", Value::from("https://127.10.0.11:6443")),
            ("talos_version", Value::from("v1.13.9")),
            ("kubernetes_version", Value::from("1.34.1")),
            ("cni", Value::from("cilium")),
            ("apply_mode", Value::from("auto")),
            ("control_plane", cp),
        ];
        for (k, v) in extra {
            attrs.retain(|(n, _)| *n != k);
            attrs.push((k, v));
        }
        Value::object(attrs)
    }

    fn errors(v: &Value) -> Vec<(String, String)> {
        match Cluster::from_config(v) {
            Parsed::Invalid(d) => d
                .iter()
                .map(|d| (format!("{:?}", d.path), d.detail.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn a_valid_config_parses_with_defaults() {
        let Parsed::Known(c) = Cluster::from_config(&config(vec![])) else {
            panic!("not parsed");
        };
        assert_eq!(c.spec.install_image, "ghcr.io/siderolabs/installer:v1.13.9");
        assert_eq!(c.spec.install_disk, "/dev/sda");
        assert_eq!(c.endpoints(), vec!["127.10.0.11".to_string()]);
    }

    #[test]
    fn unknown_values_defer_checks() {
        let v = config(vec![("endpoint", Value::Unknown)]);
        assert!(matches!(Cluster::from_config(&v), Parsed::Unknown));
    }

    #[test]
    fn bad_input_names_the_attribute() {
        let e = errors(&config(vec![("endpoint", Value::from("10.0.0.1:6443"))]));
        assert!(
            e[0].0.contains("endpoint") && e[0].1.contains("https://HOST:PORT"),
            "{e:?}"
        );

        let two = Value::List(vec![
            machine("cp-1", "127.10.0.11"),
            machine("cp-2", "127.10.0.11"),
        ]);
        let e = errors(&config(vec![("control_plane", two)]));
        assert!(
            e[0].0.contains("Index(1)") && e[0].1.contains("both have address"),
            "{e:?}"
        );

        let twins = Value::List(vec![
            machine("cp-1", "127.10.0.11"),
            machine("cp-1", "127.10.0.12"),
        ]);
        let e = errors(&config(vec![("control_plane", twins)]));
        assert!(e[0].1.contains("Two machines are named \"cp-1\""), "{e:?}");

        let e = errors(&config(vec![(
            "config_patches",
            Value::List(vec![Value::from("machine: [unclosed")]),
        )]));
        assert!(e[0].0.contains("config_patches"), "{e:?}");

        let e = errors(&config(vec![(
            "install",
            Value::object([("image", Value::from("ghcr.io/siderolabs/installer:v1.12.0"))]),
        )]));
        assert!(e[0].1.contains("v1.12.0"), "{e:?}");

        let e = errors(&config(vec![("control_plane", Value::List(Vec::new()))]));
        assert!(e[0].1.contains("at least one control_plane"), "{e:?}");
    }

    #[test]
    fn image_tags() {
        assert_eq!(
            image_tag("ghcr.io/siderolabs/installer:v1.13.9"),
            Some("v1.13.9")
        );
        assert_eq!(
            image_tag("factory.talos.dev/installer/abc:v1.14.0"),
            Some("v1.14.0")
        );
        assert_eq!(image_tag("localhost:5000/installer"), None);
    }
}
