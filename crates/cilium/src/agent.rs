//! The agent DaemonSet (`cilium`), one pod per node.

use serde_json::{Value, json};

use crate::meta::{self, AGENT_IMAGE, CHART, NAMESPACE};
use crate::resolve::Config;

/// The agent's postStart hook: removes the AWS VPC CNI's SNAT rules (the chart runs it everywhere).
const POST_START: &str = include_str!("../data/agent-poststart.sh");

/// Capabilities of the agent container. Talos's kernel has no loadable modules and no syslog
/// access for pods, so its list lacks SYS_MODULE and SYSLOG (Talos's Cilium guide).
fn agent_caps(c: &Config) -> Value {
    if c.talos {
        meta::caps(&[
            "CHOWN",
            "KILL",
            "NET_ADMIN",
            "NET_RAW",
            "IPC_LOCK",
            "SYS_ADMIN",
            "SYS_RESOURCE",
            "DAC_OVERRIDE",
            "FOWNER",
            "SETGID",
            "SETUID",
        ])
    } else {
        meta::caps(&[
            "CHOWN",
            "KILL",
            "NET_ADMIN",
            "NET_RAW",
            "IPC_LOCK",
            "SYS_MODULE",
            "SYS_ADMIN",
            "SYS_RESOURCE",
            "DAC_OVERRIDE",
            "FOWNER",
            "SETGID",
            "SETUID",
            "SYSLOG",
        ])
    }
}

fn clean_state_caps(c: &Config) -> Value {
    if c.talos {
        meta::caps(&["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"])
    } else {
        meta::caps(&["NET_ADMIN", "SYS_MODULE", "SYS_ADMIN", "SYS_RESOURCE"])
    }
}

fn health_probe(extra_headers: &[(&str, &str)]) -> Value {
    let mut headers = vec![json!({"name": "brief", "value": "true"})];
    headers.extend(
        extra_headers
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v})),
    );
    json!({"host": "127.0.0.1", "path": "/healthz", "port": "health", "scheme": "HTTP", "httpHeaders": headers})
}

fn host_port(name: &str, port: u16) -> Value {
    json!({"name": name, "containerPort": port, "hostPort": port, "protocol": "TCP"})
}

fn host_path(name: &str, path: &str, kind: Option<&str>) -> Value {
    match kind {
        Some(t) => json!({"name": name, "hostPath": {"path": path, "type": t}}),
        None => json!({"name": name, "hostPath": {"path": path}}),
    }
}

fn agent_container(c: &Config) -> Value {
    let mut env = meta::downward_env();
    env.push(json!({"name": "CILIUM_CLUSTERMESH_CONFIG", "value": "/var/lib/cilium/clustermesh/"}));
    env.push(json!({"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1"}}}));
    env.extend(meta::k8s_service_env(c));
    env.push(json!({"name": "KUBE_CLIENT_BACKOFF_BASE", "value": "1"}));
    env.push(json!({"name": "KUBE_CLIENT_BACKOFF_DURATION", "value": "120"}));

    let mut ports = vec![host_port("health", 9879)];
    if c.hubble {
        ports.push(host_port("peer-service", 4244));
    }
    if c.prometheus {
        ports.push(host_port("prometheus", 9962));
        if !c.envoy() {
            ports.push(host_port("envoy-metrics", 9964));
        }
    }
    if c.hubble_metrics_on() {
        ports.push(host_port("hubble-metrics", 9965));
    }

    let mut mounts = Vec::new();
    if c.envoy() {
        mounts.push(json!({"name": "envoy-sockets", "mountPath": "/var/run/cilium/envoy/sockets", "readOnly": false}));
    }
    mounts.push(json!({"mountPath": "/host/proc/sys/net", "name": "host-proc-sys-net"}));
    mounts.push(json!({"mountPath": "/host/proc/sys/kernel", "name": "host-proc-sys-kernel"}));
    mounts.push(json!({"name": "bpf-maps", "mountPath": "/sys/fs/bpf", "mountPropagation": "HostToContainer"}));
    if c.talos {
        // The chart mounts the host cgroup root unless it is its own /run/cilium/cgroupv2.
        mounts.push(json!({"name": "cilium-cgroup", "mountPath": meta::cgroup_root(c)}));
    }
    mounts.push(json!({"name": "cilium-run", "mountPath": "/var/run/cilium"}));
    mounts.push(json!({"name": "cilium-netns", "mountPath": "/var/run/cilium/netns", "mountPropagation": "HostToContainer"}));
    mounts.push(json!({"name": "etc-cni-netd", "mountPath": "/host/etc/cni/net.d"}));
    mounts.push(json!({"name": "clustermesh-secrets", "mountPath": "/var/lib/cilium/clustermesh", "readOnly": true}));
    mounts.push(json!({"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": true}));
    mounts.push(json!({"name": "xtables-lock", "mountPath": "/run/xtables.lock"}));
    if c.hubble {
        mounts.push(json!({"name": "hubble-tls", "mountPath": "/var/lib/cilium/tls/hubble", "readOnly": true}));
    }
    mounts.push(json!({"name": "tmp", "mountPath": "/tmp"}));

    json!({
        "name": "cilium-agent",
        "image": AGENT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["cilium-agent"],
        "args": ["--config-dir=/tmp/cilium/config-map"],
        "startupProbe": {
            "httpGet": health_probe(&[]),
            "failureThreshold": 300, "periodSeconds": 2, "successThreshold": 1, "initialDelaySeconds": 5,
        },
        "livenessProbe": {
            "httpGet": health_probe(&[("require-k8s-connectivity", "false")]),
            "periodSeconds": 30, "successThreshold": 1, "failureThreshold": 10, "timeoutSeconds": 5,
        },
        "readinessProbe": {
            "httpGet": health_probe(&[]),
            "periodSeconds": 30, "successThreshold": 1, "failureThreshold": 3, "timeoutSeconds": 5,
        },
        "env": env,
        "lifecycle": {
            "postStart": {"exec": {"command": ["bash", "-c", POST_START]}},
            "preStop": {"exec": {"command": ["/cni-uninstall.sh"]}},
        },
        "ports": ports,
        "securityContext": {"seLinuxOptions": meta::selinux(), "capabilities": agent_caps(c)},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    })
}

/// A small init container that copies a static helper to the host and runs it in the host's
/// namespaces (cgroup2 mount, sysctl fixes).
fn nsenter_init(name: &str, script: &str, env: Vec<Value>) -> Value {
    json!({
        "name": name,
        "image": AGENT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "command": ["bash", "-ec", script],
        "volumeMounts": [
            {"name": "hostproc", "mountPath": "/hostproc"},
            {"name": "cni-path", "mountPath": "/hostbin"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"seLinuxOptions": meta::selinux(), "capabilities": meta::caps(&["SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"])},
    })
}

fn init_containers(c: &Config) -> Vec<Value> {
    let mut config_env = meta::downward_env();
    config_env.extend(meta::k8s_service_env(c));
    let mut inits = vec![json!({
        "name": "config",
        "image": AGENT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["cilium-dbg", "build-config"],
        "env": config_env,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"capabilities": meta::caps(&["NET_ADMIN"])},
    })];
    if !c.talos {
        // Talos mounts cgroup2 itself; elsewhere the chart mounts one for Cilium.
        inits.push(nsenter_init(
            "mount-cgroup",
            "cp /usr/bin/cilium-mount /hostbin/cilium-mount;\nnsenter --cgroup=/hostproc/1/ns/cgroup --mount=/hostproc/1/ns/mnt \"${BIN_PATH}/cilium-mount\" $CGROUP_ROOT;\nrm /hostbin/cilium-mount\n",
            vec![
                json!({"name": "CGROUP_ROOT", "value": meta::cgroup_root(c)}),
                json!({"name": "BIN_PATH", "value": "/opt/cni/bin"}),
            ],
        ));
    }
    inits.push(nsenter_init(
        "apply-sysctl-overwrites",
        "cp /usr/bin/cilium-sysctlfix /hostbin/cilium-sysctlfix;\nnsenter --mount=/hostproc/1/ns/mnt \"${BIN_PATH}/cilium-sysctlfix\";\nrm /hostbin/cilium-sysctlfix\n",
        vec![json!({"name": "BIN_PATH", "value": "/opt/cni/bin"})],
    ));
    inits.push(json!({
        "name": "mount-bpf-fs",
        "image": AGENT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["mount | grep \"/sys/fs/bpf type bpf\" || mount -t bpf bpf /sys/fs/bpf"],
        "command": ["/bin/bash", "-c", "--"],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"privileged": true},
        "volumeMounts": [{"name": "bpf-maps", "mountPath": "/sys/fs/bpf", "mountPropagation": "Bidirectional"}],
    }));
    let optional_key = |name: &str, key: &str| json!({"name": name, "valueFrom": {"configMapKeyRef": {"name": "cilium-config", "key": key, "optional": true}}});
    let mut clean_env = vec![
        optional_key("CILIUM_ALL_STATE", "clean-cilium-state"),
        optional_key("CILIUM_BPF_STATE", "clean-cilium-bpf-state"),
        optional_key("WRITE_CNI_CONF_WHEN_READY", "write-cni-conf-when-ready"),
    ];
    clean_env.extend(meta::k8s_service_env(c));
    inits.push(json!({
        "name": "clean-cilium-state",
        "image": AGENT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/init-container.sh"],
        "env": clean_env,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"seLinuxOptions": meta::selinux(), "capabilities": clean_state_caps(c)},
        "volumeMounts": [
            {"name": "bpf-maps", "mountPath": "/sys/fs/bpf"},
            {"name": "cilium-cgroup", "mountPath": meta::cgroup_root(c), "mountPropagation": "HostToContainer"},
            {"name": "cilium-run", "mountPath": "/var/run/cilium"},
        ],
    }));
    inits.push(json!({
        "name": "install-cni-binaries",
        "image": AGENT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/install-plugin.sh"],
        "resources": {"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "10Mi"}},
        "securityContext": {"seLinuxOptions": meta::selinux(), "capabilities": {"drop": ["ALL"]}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "cni-path", "mountPath": "/host/opt/cni/bin"}],
    }));
    inits
}

fn secret_items(items: &[(&str, &str)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(k, p)| json!({"key": k, "path": p}))
            .collect(),
    )
}

fn volumes(c: &Config) -> Vec<Value> {
    let mut v = vec![
        json!({"name": "tmp", "emptyDir": {}}),
        host_path("cilium-run", "/var/run/cilium", Some("DirectoryOrCreate")),
        host_path("cilium-netns", "/var/run/netns", Some("DirectoryOrCreate")),
        host_path("bpf-maps", "/sys/fs/bpf", Some("DirectoryOrCreate")),
        host_path("hostproc", "/proc", Some("Directory")),
        host_path(
            "cilium-cgroup",
            meta::cgroup_root(c),
            Some("DirectoryOrCreate"),
        ),
        host_path("cni-path", "/opt/cni/bin", Some("DirectoryOrCreate")),
        host_path("etc-cni-netd", "/etc/cni/net.d", Some("DirectoryOrCreate")),
        host_path("lib-modules", "/lib/modules", None),
        host_path("xtables-lock", "/run/xtables.lock", Some("FileOrCreate")),
    ];
    if c.envoy() {
        v.push(host_path(
            "envoy-sockets",
            "/var/run/cilium/envoy/sockets",
            Some("DirectoryOrCreate"),
        ));
    }
    v.push(json!({
        "name": "clustermesh-secrets",
        "projected": {
            "defaultMode": 0o400,
            "sources": [
                {"secret": {"name": "cilium-clustermesh", "optional": true}},
                {"secret": {
                    "name": "clustermesh-apiserver-remote-cert", "optional": true,
                    "items": secret_items(&[("tls.key", "common-etcd-client.key"), ("tls.crt", "common-etcd-client.crt"), ("ca.crt", "common-etcd-client-ca.crt")]),
                }},
                {"secret": {
                    "name": "clustermesh-apiserver-local-cert", "optional": true,
                    "items": secret_items(&[("tls.key", "local-etcd-client.key"), ("tls.crt", "local-etcd-client.crt"), ("ca.crt", "local-etcd-client-ca.crt")]),
                }},
            ],
        },
    }));
    v.push(host_path(
        "host-proc-sys-net",
        "/proc/sys/net",
        Some("Directory"),
    ));
    v.push(host_path(
        "host-proc-sys-kernel",
        "/proc/sys/kernel",
        Some("Directory"),
    ));
    if c.hubble {
        v.push(json!({
            "name": "hubble-tls",
            "projected": {
                "defaultMode": 0o400,
                "sources": [{"secret": {
                    "name": "hubble-server-certs", "optional": true,
                    "items": secret_items(&[("tls.crt", "server.crt"), ("tls.key", "server.key"), ("ca.crt", "client-ca.crt")]),
                }}],
            },
        }));
    }
    v
}

/// The agent DaemonSet.
pub(crate) fn daemon_set(c: &Config) -> Value {
    let mut annotations = serde_json::Map::new();
    if c.prometheus && !c.service_monitors {
        annotations.insert("prometheus.io/port".into(), json!("9962"));
        annotations.insert("prometheus.io/scrape".into(), json!("true"));
    }
    annotations.insert(
        "kubectl.kubernetes.io/default-container".into(),
        json!("cilium-agent"),
    );
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "cilium",
            "namespace": NAMESPACE,
            "labels": {
                "k8s-app": "cilium", "app.kubernetes.io/part-of": "cilium",
                "app.kubernetes.io/name": "cilium-agent", "helm.sh/chart": CHART,
            },
        },
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "cilium"}},
            "updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}, "type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "annotations": annotations,
                    "labels": {
                        "k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent",
                        "app.kubernetes.io/part-of": "cilium", "helm.sh/chart": CHART,
                    },
                },
                "spec": {
                    "securityContext": {"appArmorProfile": {"type": "Unconfined"}, "seccompProfile": {"type": "Unconfined"}},
                    "containers": [agent_container(c)],
                    "initContainers": init_containers(c),
                    "restartPolicy": "Always",
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "cilium",
                    "automountServiceAccountToken": true,
                    "terminationGracePeriodSeconds": 1,
                    "hostNetwork": true,
                    "hostUsers": true,
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"k8s-app": "cilium"}}, "topologyKey": "kubernetes.io/hostname"},
                    ]}},
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],
                    "volumes": volumes(c),
                },
            },
        },
    })
}
