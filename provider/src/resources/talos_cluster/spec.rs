//! The configuration, typed and checked: what plan and apply work from. Every error names the
//! attribute at fault.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use infraflux_talos::checks;
use infraflux_talos::client::ApplyMode;
use infraflux_talos::patch::PatchSource;
use infraflux_talos::render::{
    self, ClusterSpec, Cni, NodeSpec, RenderError, Role, TalosVersion, Vip,
};
use infraflux_talos::secrets::{CertAndKey, MachineSecrets};
use tfplugin::framework::timeouts::parse_duration;
use tfplugin::{AttributePath, Diagnostic, Diagnostics, Value};

use super::schema::{DEFAULT_BOOT_TIMEOUT, DEFAULT_INSTALL_DISK, DEFAULT_VIP_LINK};

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
    /// How long a machine may not answer at all before a wait for it gives up.
    pub boot_timeout: Duration,
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

/// The machines of the configuration whose hostnames are known, each checked.
fn machines(config: &Value, diags: &mut Diagnostics) -> Vec<Machine> {
    let mut machines = Vec::new();
    for (block, role) in [
        ("control_plane", Role::ControlPlane),
        ("worker", Role::Worker),
    ] {
        let Some(list) = config.attr(block).as_elements() else {
            continue;
        };
        for (index, m) in list.iter().enumerate() {
            let path = block_path(role, Some(index));
            let hostname = m.attr("hostname").as_str().unwrap_or_default().to_owned();
            if !m.attr("hostname").is_unknown() && !checks::dns_label(&hostname) {
                err(
                    diags,
                    path.push_attr("hostname"),
                    "Invalid hostname",
                    format!(
                        "{hostname:?} is not a valid hostname: use 1 to 63 lowercase letters, \
                         digits and '-', not starting or ending with '-'"
                    ),
                );
            }
            let address = m.attr("address").as_str().unwrap_or_default().to_owned();
            if !m.attr("address").is_unknown()
                && let Err(e) = checks::machine_address(&address)
            {
                err(
                    diags,
                    path.push_attr("address"),
                    "Invalid machine address",
                    e,
                );
            }
            let install_disk = m.attr("install_disk").as_str().map(str::to_owned);
            if let Some(Err(e)) = install_disk.as_deref().map(checks::install_disk) {
                err(
                    diags,
                    path.push_attr("install_disk"),
                    "Invalid install_disk",
                    e,
                );
            }
            machines.push(Machine {
                hostname: hostname.clone(),
                index: Some(index),
                role,
                address,
                spec: NodeSpec {
                    role,
                    hostname,
                    install_disk,
                    config_patches: strings(m.attr("config_patches")).unwrap_or_default(),
                },
            });
        }
    }
    machines
}

/// Checks across machines: a control plane, unique hostnames and addresses, a VIP that is
/// no machine's address, an endpoint that is not a worker.
fn check_machines(
    machines: &[Machine],
    spec: &ClusterSpec,
    endpoint_host: Option<&str>,
    no_control_plane: bool,
    diags: &mut Diagnostics,
) {
    if no_control_plane {
        diags.push(
            Diagnostic::error(
                "No control plane",
                "A cluster needs at least one control_plane block (three for a highly available etcd).",
            )
            .at(AttributePath::attr("control_plane")),
        );
    }
    let mut names: HashSet<&str> = HashSet::new();
    for m in machines.iter().filter(|m| !m.hostname.is_empty()) {
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
    for m in machines.iter().filter(|m| !m.address.is_empty()) {
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
    if let Some(vip) = &spec.vip
        && let Some(m) = machines
            .iter()
            .find(|m| normalise_address(&m.address) == vip.address.to_string())
    {
        diags.push(
            Diagnostic::error(
                "vip.address is a machine's address",
                format!(
                    "vip.address {} is the address of machine {} ({}). The VIP moves between the \
                     control planes, so it must be a free address of their network that no \
                     machine has: pick another one for vip.address (and endpoint).",
                    vip.address,
                    m.hostname,
                    m.path()
                ),
            )
            .at(AttributePath::attr("vip").push_attr("address")),
        );
    }
    if let Some(host) = endpoint_host
        && let Some(m) = machines.iter().find(|m| {
            m.role == Role::Worker && normalise_address(&m.address) == normalise_address(host)
        })
    {
        diags.push(
            Diagnostic::error(
                "endpoint points at a worker",
                format!(
                    "endpoint's host {host} is the address of worker {} ({}), but the Kubernetes \
                     API runs on control planes only: use the VIP, a load balancer, or a control \
                     plane's address.",
                    m.hostname,
                    m.path()
                ),
            )
            .at(AttributePath::attr("endpoint")),
        );
    }
}

/// Secrets given in the configuration (`machine_secrets` or `machine_secrets_wo`), checked.
pub fn given_secrets(config: &Value, diags: &mut Diagnostics) -> Option<MachineSecrets> {
    let mut found = None;
    for attr in ["machine_secrets", "machine_secrets_wo"] {
        let Some(text) = config.attr(attr).as_str() else {
            continue;
        };
        match MachineSecrets::from_json(text) {
            Ok(s) => found = found.or(Some(s)),
            Err(e) => diags.push(
                Diagnostic::error(
                    format!("Invalid {attr}"),
                    format!(
                        "{e}. Give the `machine_secrets` JSON of an infraflux_talos_machine_secrets \
                         resource (or of the cluster to adopt), unchanged."
                    ),
                )
                .at(AttributePath::attr(attr)),
            ),
        }
    }
    if !config.attr("machine_secrets").is_null() && !config.attr("machine_secrets_wo").is_null() {
        diags.push(
            Diagnostic::error(
                "Conflicting machine secrets",
                "machine_secrets and machine_secrets_wo both give the cluster's secrets: keep \
                 machine_secrets (from infraflux_talos_machine_secrets) and remove \
                 machine_secrets_wo.",
            )
            .at(AttributePath::attr("machine_secrets_wo")),
        );
    }
    found
}

fn err(diags: &mut Diagnostics, path: AttributePath, summary: &str, detail: String) {
    diags.push(Diagnostic::error(summary, format!("{detail}.")).at(path));
}

impl Cluster {
    pub fn from_config(config: &Value) -> Parsed {
        let mut diags = Diagnostics::new();
        // Each known attribute is checked even when others are not known yet, so a literal
        // mistake is reported by `terraform validate` already.
        let known = |name: &str| config.attr(name).as_str().map(str::to_owned);
        let text = |name: &str| known(name).unwrap_or_default();
        let talos_version_text = text("talos_version");
        let mut talos_known = false;
        let talos_version = match known("talos_version").map(|t| checks::talos_version(&t)) {
            Some(Ok(v)) => {
                talos_known = true;
                v
            }
            Some(Err(e)) => {
                err(
                    &mut diags,
                    AttributePath::attr("talos_version"),
                    "Invalid talos_version",
                    e,
                );
                TalosVersion {
                    major: 1,
                    minor: 13,
                    patch: 0,
                }
            }
            None => TalosVersion {
                major: 1,
                minor: 13,
                patch: 0,
            },
        };
        // Against the Talos that runs it when that is known and valid.
        let k8s = |k: String| {
            if talos_known {
                checks::kubernetes_for_talos(&k, talos_version)
            } else {
                checks::kubernetes_version(&k)
            }
        };
        if let Some(Err(e)) = known("kubernetes_version").map(k8s) {
            err(
                &mut diags,
                AttributePath::attr("kubernetes_version"),
                "Invalid kubernetes_version",
                e,
            );
        }
        if let Some(Err(e)) = known("name").map(|n| checks::cluster_name(&n)) {
            err(&mut diags, AttributePath::attr("name"), "Invalid name", e);
        }
        let endpoint_host = match known("endpoint").map(|e| checks::endpoint(&e)) {
            Some(Ok((host, _))) => Some(host),
            Some(Err(e)) => {
                err(
                    &mut diags,
                    AttributePath::attr("endpoint"),
                    "Invalid endpoint",
                    e,
                );
                None
            }
            None => None,
        };
        if let Some(Err(e)) = config.attr("boot_timeout").as_str().map(parse_duration) {
            err(
                &mut diags,
                AttributePath::attr("boot_timeout"),
                "Invalid boot_timeout",
                e,
            );
        }
        given_secrets(config, &mut diags);
        let install = config.attr("install");
        let install_disk = install
            .attr("disk")
            .as_str()
            .unwrap_or(DEFAULT_INSTALL_DISK)
            .to_owned();
        if let Err(e) = checks::install_disk(&install_disk) {
            err(
                &mut diags,
                AttributePath::attr("install").push_attr("disk"),
                "Invalid install.disk",
                e,
            );
        }
        let install_image = match install.attr("image").as_str() {
            Some(i) => {
                if let Some(tag) = image_tag(i)
                    && TalosVersion::parse(tag).ok() != Some(talos_version)
                    && !diags.has_errors()
                    && known("talos_version").is_some()
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
            v if v.is_null() || v.attr("address").is_unknown() => None,
            v => {
                let link = v
                    .attr("link")
                    .as_str()
                    .unwrap_or(DEFAULT_VIP_LINK)
                    .to_owned();
                if let Err(e) = checks::interface_name(&link) {
                    err(
                        &mut diags,
                        AttributePath::attr("vip").push_attr("link"),
                        "Invalid vip.link",
                        e,
                    );
                }
                match v
                    .attr("address")
                    .as_str()
                    .unwrap_or_default()
                    .parse::<IpAddr>()
                {
                    Ok(address) => Some(Vip { address, link }),
                    Err(_) => {
                        err(
                            &mut diags,
                            AttributePath::attr("vip").push_attr("address"),
                            "Invalid vip.address",
                            format!(
                                "{:?} is not an IP address: vip.address is a free address on the \
                                 control planes' network, e.g. 10.0.0.10",
                                v.attr("address").as_str().unwrap_or_default()
                            ),
                        );
                        None
                    }
                }
            }
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
        let machines = machines(config, &mut diags);
        let no_control_plane = match config.attr("control_plane") {
            Value::Null => true,
            v => v.as_elements().is_some_and(<[Value]>::is_empty),
        };
        check_machines(
            &machines,
            &spec,
            endpoint_host.as_deref(),
            no_control_plane,
            &mut diags,
        );
        if diags.has_errors() {
            return Parsed::Invalid(diags);
        }
        if !config.is_wholly_known() {
            return Parsed::Unknown;
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
            boot_timeout: config
                .attr("boot_timeout")
                .as_str()
                .and_then(|t| parse_duration(t).ok())
                .unwrap_or(DEFAULT_BOOT_TIMEOUT),
            machines,
        };
        // Render every machine once with placeholder secrets: patches and fields are checked
        // at plan time, before any secret exists.
        diags.extend(
            cluster
                .render_all(&placeholder_secrets())
                .err()
                .unwrap_or_default(),
        );
        if diags.has_errors() {
            Parsed::Invalid(diags)
        } else {
            Parsed::Known(Box::new(cluster))
        }
    }

    /// Every machine rendered; the errors grouped so that a cluster patch that fails on five
    /// machines is one diagnostic naming the five.
    pub fn render_all(
        &self,
        secrets: &MachineSecrets,
    ) -> Result<BTreeMap<String, String>, Diagnostics> {
        let mut out = BTreeMap::new();
        let mut failed: Vec<(String, Vec<&Machine>)> = Vec::new();
        for m in &self.machines {
            match self.render(m, secrets) {
                Ok(c) => {
                    out.insert(m.hostname.clone(), c);
                }
                Err(e) => {
                    let key = e.to_string();
                    match failed.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, ms)) => ms.push(m),
                        None => failed.push((key, vec![m])),
                    }
                }
            }
        }
        if failed.is_empty() {
            return Ok(out);
        }
        let mut diags = Diagnostics::new();
        for (_, ms) in failed {
            if let Err(e) = self.render(ms[0], secrets) {
                diags.push(self.render_error(&ms, &e));
            }
        }
        Err(diags)
    }

    /// One machine's config YAML.
    pub fn render(&self, m: &Machine, secrets: &MachineSecrets) -> Result<String, RenderError> {
        render::render(&self.spec, &m.spec, secrets, &self.talos_version)
    }

    /// A render error as a diagnostic on the attribute it concerns, naming the machines whose
    /// config it breaks (`config_patches[2] for machine cp-2`).
    pub fn render_error(&self, machines: &[&Machine], e: &RenderError) -> Diagnostic {
        let names = machines
            .iter()
            .map(|m| format!("{} ({})", m.hostname, m.path()))
            .collect::<Vec<_>>()
            .join(", ");
        let plural = if machines.len() == 1 { "" } else { "s" };
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
                    format!("Invalid config patch {path} for machine{plural} {names}"),
                    format!(
                        "{p}. Fix the patch: the machine config it makes must be one Talos {} \
                         takes and a cluster can run with.",
                        self.talos_version_text
                    ),
                )
                .at(path)
            }
            RenderError::Invalid { field, problem } => {
                let path = match *field {
                    "install.image" => AttributePath::attr("install").push_attr("image"),
                    "install.disk" => AttributePath::attr("install").push_attr("disk"),
                    "vip.link" => AttributePath::attr("vip").push_attr("link"),
                    "hostname" | "install_disk" => machines
                        .first()
                        .map_or(AttributePath::attr("control_plane"), |m| {
                            m.path().push_attr(*field)
                        }),
                    f => AttributePath::attr(f),
                };
                Diagnostic::error(
                    format!("Invalid {field}"),
                    format!("{field}: {problem} (machine{plural} {names})."),
                )
                .at(path)
            }
            RenderError::Yaml(_) => Diagnostic::error(
                format!("Cannot render the machine config of {names}"),
                e.to_string(),
            ),
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
