//! The schema of `infraflux_talos_cluster`.

use std::time::Duration;

use tfplugin::framework::planmod::{requires_replace, use_state_for_unknown};
use tfplugin::framework::validate::{duration, one_of, string_length};
use tfplugin::{Attribute, Block, NestedBlock, Nesting, Schema, Type, Value};

pub const CNIS: &[&str] = &["cilium", "flannel"];
pub const APPLY_MODES: &[&str] = &["auto", "no_reboot", "reboot"];
pub const WIPE_MODES: &[&str] = &["all", "system_disk", "user_disks"];
pub const DEFAULT_INSTALL_DISK: &str = "/dev/sda";
pub const DEFAULT_VIP_LINK: &str = "eth0";
/// How long a machine may not answer at all (refused, no route) before the apply gives up on
/// it: longer than a VM takes to reboot into Talos (well under a minute); servers with a slow
/// POST set `boot_timeout`.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// The type of one `nodes` entry.
pub fn node_state_type() -> Type {
    Type::object([
        ("role", Type::String),
        ("address", Type::String),
        ("stage", Type::String),
        ("talos_version", Type::String),
        ("etcd_member_id", Type::String),
        ("config_hash", Type::String),
    ])
}

fn node_block(role: &str) -> Block {
    Block::new()
        .description(format!(
            "A {role} machine. Machines are known by hostname: order does not matter. Removing \
             one leaves etcd (control planes), deletes its Kubernetes Node and resets it."
        ))
        .attr(
            Attribute::string("hostname")
                .required()
                .validate(string_length(1, 63))
                .description("Hostname, also the Kubernetes Node name. Unique in the cluster."),
        )
        .attr(
            Attribute::string("address")
                .required()
                .validate(string_length(2, 253))
                .description(
                    "Address of the machine's Talos API (port 50000), e.g. the VM's static IP.",
                ),
        )
        .attr(
            Attribute::string("install_disk")
                .optional()
                .validate(string_length(1, 255))
                .description("Overrides `install.disk` for this machine."),
        )
        .attr(
            Attribute::new("config_patches", Type::list(Type::String))
                .optional()
                .description(
                    "Patches for this machine only, applied after the cluster's `config_patches`: \
                     YAML strategic merge documents or an RFC 6902 JSON patch list.",
                ),
        )
}

pub fn schema() -> Schema {
    let install = Block::new()
        .description("Where and what Talos installs.")
        .attr(
            Attribute::string("disk")
                .optional()
                .validate(string_length(1, 255))
                .description("Install disk. Default `/dev/sda`."),
        )
        .attr(
            Attribute::string("image")
                .optional()
                .validate(string_length(3, 512))
                .description(
                    "Installer image. Default `ghcr.io/siderolabs/installer:<talos_version>`. Its \
                     tag must match `talos_version` when set.",
                ),
        );
    let vip = Block::new()
        .description("A shared layer-2 virtual IP held by the control planes (for `endpoint`).")
        .attr(
            Attribute::string("address")
                .required()
                .validate(string_length(2, 45))
                .description("The VIP, e.g. `10.0.0.10`."),
        )
        .attr(
            Attribute::string("link")
                .optional()
                .validate(string_length(1, 64))
                .description("The interface that carries it. Default `eth0`."),
        );
    let on_destroy = Block::new()
        .description(
            "What `terraform destroy` does to the machines. Health is never checked on destroy.",
        )
        .attr(Attribute::bool("reset").optional().description(
            "Reset every machine back to maintenance mode. Default `false`: the machines \
                     are left as they are (e.g. because their VMs are destroyed anyway).",
        ))
        .attr(
            Attribute::bool("graceful")
                .optional()
                .description("Leave etcd and drain before resetting. Default `true`."),
        )
        .attr(
            Attribute::string("wipe_mode")
                .optional()
                .validate(one_of(WIPE_MODES))
                .description("`all` (default), `system_disk` or `user_disks`."),
        );
    Schema::new(
        Block::new()
            .description(
                "A Talos Linux cluster on machines booted from the Talos image: machine secrets, \
                 per-node configs, install, etcd bootstrap, health, credentials, scaling, \
                 upgrades and reset, in one resource.",
            )
            .attr(
                Attribute::string("id")
                    .computed()
                    .plan_modifier(use_state_for_unknown())
                    .description("The cluster name."),
            )
            .attr(
                Attribute::string("name")
                    .required()
                    .validate(string_length(1, 63))
                    .plan_modifier(requires_replace())
                    .description("Cluster name (`cluster.clusterName`). Changing it replaces the cluster."),
            )
            .attr(
                Attribute::string("endpoint")
                    .required()
                    .validate(string_length(10, 300))
                    .description("Kubernetes API endpoint, `https://VIP-or-LB:6443`."),
            )
            .attr(
                Attribute::string("talos_version")
                    .required()
                    .validate(string_length(4, 40))
                    .description(
                        "Talos version, e.g. `v1.13.9`. It decides the config format (one document \
                         up to 1.13, several from 1.14). Changing it upgrades the machines one at a \
                         time.",
                    ),
            )
            .attr(
                Attribute::string("kubernetes_version")
                    .required()
                    .validate(string_length(4, 40))
                    .description("Kubernetes version, e.g. `1.34.1`."),
            )
            .attr(
                Attribute::string("cni")
                    .default("cilium")
                    .validate(one_of(CNIS))
                    .description(
                        "`cilium` (default): no CNI from Talos, kube-proxy off, KubePrism on port \
                         7445, for a Cilium installed afterwards. `flannel`: Talos's built-in CNI.",
                    ),
            )
            .attr(
                Attribute::new("config_patches", Type::list(Type::String))
                    .optional()
                    .description(
                        "Patches for every machine, in order: YAML strategic merge documents or an \
                         RFC 6902 JSON patch list. Checked at plan time.",
                    ),
            )
            .attr(
                Attribute::string("apply_mode")
                    .default("auto")
                    .validate(one_of(APPLY_MODES))
                    .description(
                        "How config changes reach running machines: `auto` (default: without a \
                         reboot when Talos can), `no_reboot` (fail if a reboot is needed), or `reboot`. \
                         (`staged` is not offered: a config waiting for a reboot would show as a \
                         change in every plan.)",
                    ),
            )
            .attr(
                Attribute::string("boot_timeout")
                    .optional()
                    .validate(duration())
                    .description(
                        "How long a machine may not answer at all (connection refused, no route) \
                         before the apply gives up on it, naming it: longer than your machines \
                         take to boot. Default `2m`.",
                    ),
            )
            .attr(
                Attribute::string("machine_secrets_wo")
                    .optional()
                    .write_only()
                    .description(
                        "Adopt an existing cluster: its machine secrets (the JSON of \
                         `machine_secrets`). Write-only (Terraform ≥ 1.11); read only on create.",
                    ),
            )
            .attr(
                Attribute::string("machine_secrets")
                    .optional()
                    .computed()
                    .sensitive()
                    .plan_modifier(use_state_for_unknown())
                    .semantic_equal(same_secrets)
                    .description(
                        "The cluster's CAs, keys and tokens (JSON). Give them from \
                         `infraflux_talos_machine_secrets` so they reach the state before any \
                         machine is configured (a crash cannot lose them); otherwise generated \
                         once at create. Never regenerated, and never changed after create.",
                    ),
            )
            .attr(
                Attribute::new(
                    "client_configuration",
                    Type::object([("ca", Type::String), ("crt", Type::String), ("key", Type::String)]),
                )
                .computed()
                .sensitive()
                .plan_modifier(use_state_for_unknown())
                .description("talosctl credentials (PEM): the OS CA and an `os:admin` client certificate and key."),
            )
            .attr(
                Attribute::string("talosconfig")
                    .computed()
                    .sensitive()
                    .description("A talosconfig for talosctl (endpoints: the control planes)."),
            )
            .attr(
                Attribute::string("kubeconfig")
                    .computed()
                    .sensitive()
                    .plan_modifier(use_state_for_unknown())
                    .description("An admin kubeconfig (`system:masters`), from Talos."),
            )
            .attr(
                Attribute::string("kubernetes_ca_fingerprint")
                    .computed()
                    .plan_modifier(use_state_for_unknown())
                    .description("SHA-256 of the Kubernetes CA certificate (DER), hex."),
            )
            .attr(
                Attribute::new("nodes", Type::map(node_state_type()))
                    .computed()
                    .description(
                        "Per machine (by hostname): `role`, `address`, `stage` (`running`, \
                         `maintenance`, …), `talos_version`, `etcd_member_id` (control planes) and \
                         `config_hash` (of the active config; a change shows which machines a plan \
                         touches).",
                    ),
            )
            .block(NestedBlock::new("install", Nesting::Single, install))
            .block(NestedBlock::new("control_plane", Nesting::List, node_block("control-plane")))
            .block(NestedBlock::new("worker", Nesting::List, node_block("worker")))
            .block(NestedBlock::new("vip", Nesting::Single, vip))
            .block(NestedBlock::new("on_destroy", Nesting::Single, on_destroy))
            .timeouts(&["create", "update", "delete"]),
    )
}

/// Two `machine_secrets` JSON texts hold the same secrets (formatting aside).
fn same_secrets(a: &Value, b: &Value) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => {
            let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
            parse(a).is_some_and(|x| Some(x) == parse(b))
        }
        _ => false,
    }
}
