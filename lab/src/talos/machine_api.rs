//! `machine.MachineService` of a node, answering as its mode (maintenance ≥ 1.13, ≤ 1.12, or
//! running with roles) and its stage dictate.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::Talos;
use super::authz::{self, Caller, Mode};
use super::cluster::EtcdError;
use super::config::{self, ConfigError, MachineConfig};
use super::node::{Node, Stage};
use super::proto::common;
use super::proto::machine::{self as m, apply_configuration_request::Mode as ApplyMode};
use super::{apply, kubeconfig};

const MACHINE: &str = "/machine.MachineService/";

/// `machine.MachineService` of one node.
pub struct MachineApi {
    talos: Arc<Talos>,
    node: Arc<Node>,
}

impl MachineApi {
    pub fn new(talos: Arc<Talos>, node: Arc<Node>) -> Self {
        Self { talos, node }
    }

    /// Control-plane-only APIs answer Unimplemented on a worker.
    fn control_plane(&self, api: &str) -> Result<(), Status> {
        match self.node.state().disk.config.as_ref() {
            Some(c) => check_control_plane(c, api),
            None => Err(Status::failed_precondition(
                "the machine has no configuration",
            )),
        }
    }

    /// Talos's pre-upgrade etcd checks on a control plane (skipped with `force`).
    fn validate_etcd_for_upgrade(&self, cfg: &MachineConfig) -> Result<(), Status> {
        let fail = |m: String| Status::unknown(format!("error validating etcd for upgrade: {m}"));
        if self.talos.etcd_local(&self.node).is_err() {
            return Err(Status::unknown(
                "failed to create etcd client: etcd is not running on this node",
            ));
        }
        let members = self.talos.etcd_member_list(&cfg.cluster_key);
        if members.len() == 2 {
            return Err(fail(format!(
                "etcd member count({}) is insufficient to maintain quorum if upgrade commences",
                members.len()
            )));
        }
        if let Some(id) = self.talos.etcd_unhealthy(&cfg.cluster_key).first() {
            return Err(fail(format!(
                "etcd member {id:016x} is not healthy; all members must be healthy to perform an upgrade: context deadline exceeded"
            )));
        }
        Ok(())
    }

    /// Gate a call: the legacy (≤ 1.12) maintenance API implements almost nothing; elsewhere
    /// the role rules apply.
    fn gate<T>(&self, req: &Request<T>, rpc: &str) -> Result<Caller, Status> {
        let caller = authz::caller(req)?;
        if caller.mode == Mode::Maintenance && self.talos.opts.legacy_maintenance {
            return match rpc {
                "ApplyConfiguration" => Ok(caller),
                "Version" | "Reset" | "Upgrade" => Err(Status::unimplemented(
                    "API is not implemented in maintenance mode",
                )),
                _ => Err(Status::unimplemented(format!(
                    "method {rpc} not implemented"
                ))),
            };
        }
        if caller.mode == Mode::Maintenance && rpc == "ApplyConfiguration" {
            return Ok(caller);
        }
        authz::check(&caller, &format!("{MACHINE}{rpc}"))?;
        Ok(caller)
    }
}

/// An image reference Talos would try to pull: non-empty, no spaces, lowercase repository.
fn image_ref_ok(image: &str) -> bool {
    let repo = image.split(['@', ':']).next().unwrap_or_default();
    !image.is_empty()
        && !image.contains(char::is_whitespace)
        && !repo.is_empty()
        && repo == repo.to_ascii_lowercase()
}

/// etcd failures as Talos reports them.
fn etcd_status(e: EtcdError) -> Status {
    match e {
        EtcdError::NotRunning => Status::failed_precondition("etcd is not running on this node"),
        EtcdError::NoQuorum => Status::unavailable("etcdserver: no leader"),
        EtcdError::MemberNotFound => Status::not_found("etcdserver: member not found"),
    }
}

/// A plain (gRPC Unknown) error with Talos's wrapping prefix; quorum loss keeps its code.
fn wrap(prefix: &str, e: EtcdError) -> Status {
    match e {
        EtcdError::NoQuorum => Status::unavailable("etcdserver: no leader"),
        EtcdError::NotRunning => Status::failed_precondition("etcd is not running on this node"),
        EtcdError::MemberNotFound => {
            Status::unknown(format!("{prefix}: etcdserver: member not found"))
        }
    }
}

/// Talos's answer on a worker for control-plane-only APIs.
fn check_control_plane(cfg: &MachineConfig, api: &str) -> Result<(), Status> {
    if cfg.is_control_plane() {
        Ok(())
    } else {
        Err(Status::unimplemented(format!(
            "{api} is only available on control plane nodes"
        )))
    }
}

type DataStream = Pin<Box<dyn Stream<Item = Result<common::Data, Status>> + Send>>;

fn config_status(e: ConfigError, legacy: bool) -> Status {
    match e {
        ConfigError::Schema(m) => Status::internal(m),
        e if legacy => Status::unknown(format!("failed to parse config: {e}")),
        e => Status::invalid_argument(e.to_string()),
    }
}

#[tonic::async_trait]
impl m::machine_service_server::MachineService for MachineApi {
    async fn apply_configuration(
        &self,
        req: Request<m::ApplyConfigurationRequest>,
    ) -> Result<Response<m::ApplyConfigurationResponse>, Status> {
        let caller = self.gate(&req, "ApplyConfiguration")?;
        let legacy = caller.mode == Mode::Maintenance && self.talos.opts.legacy_maintenance;
        let r = req.into_inner();
        let requested = ApplyMode::try_from(r.mode).unwrap_or(ApplyMode::Reboot);
        let version = self.talos.version_of(&self.node.state());
        let cfg = config::parse(&r.data, &version).map_err(|e| config_status(e, legacy))?;
        let reply = |mode: ApplyMode, details: &str| {
            Response::new(m::ApplyConfigurationResponse {
                messages: vec![m::ApplyConfiguration {
                    metadata: None,
                    warnings: Vec::new(),
                    mode: mode as i32,
                    mode_details: details.to_string(),
                }],
            })
        };
        match caller.mode {
            Mode::Maintenance => {
                if r.dry_run {
                    return Ok(reply(
                        requested,
                        "Dry run: the config is valid; nothing was applied",
                    ));
                }
                if self.node.state().stage != Stage::Maintenance {
                    return Err(Status::failed_precondition(
                        "the machine is not in maintenance mode",
                    ));
                }
                self.node
                    .install(cfg, self.talos.faults().slow_talos_install_ms());
                Ok(reply(
                    ApplyMode::Reboot,
                    "Applied configuration: installing, then rebooting",
                ))
            }
            Mode::Running => {
                let current = self.node.state().disk.config.clone().ok_or_else(|| {
                    Status::failed_precondition("the machine has no configuration")
                })?;
                let immediate = apply::can_apply_immediate(&current.doc, &cfg.doc);
                let mut mode = requested;
                let mut mode_err = String::new();
                let mut details = match requested {
                    ApplyMode::Try | ApplyMode::NoReboot => {
                        immediate.map_err(Status::invalid_argument)?;
                        "Applied configuration without a reboot"
                    }
                    ApplyMode::Staged => "Staged configuration to be applied after the next reboot",
                    ApplyMode::Auto => match immediate {
                        Ok(()) => {
                            mode = ApplyMode::NoReboot;
                            "Applied configuration without a reboot"
                        }
                        Err(e) => {
                            mode = ApplyMode::Reboot;
                            mode_err = format!(": {e}");
                            "Applied configuration with a reboot"
                        }
                    },
                    ApplyMode::Reboot => "Applied configuration with a reboot",
                }
                .to_string();
                if r.dry_run {
                    let diff = apply::unified_diff(
                        &String::from_utf8_lossy(&current.raw),
                        &String::from_utf8_lossy(&cfg.raw),
                    );
                    let diff = if diff.is_empty() {
                        "No changes.".to_string()
                    } else {
                        diff
                    };
                    return Ok(reply(
                        mode,
                        &format!(
                            "Dry run summary:\n{details} (skipped in dry-run).\nConfig diff:\n\n{diff}"
                        ),
                    ));
                }
                match mode {
                    ApplyMode::Try => {
                        let timeout = r
                            .try_mode_timeout
                            .and_then(|d| std::time::Duration::try_from(d).ok())
                            .unwrap_or(std::time::Duration::from_secs(60));
                        details.push_str(&format!(
                            "\nThe config is applied in 'try' mode and will be automatically reverted back in {}",
                            apply::go_duration(timeout)
                        ));
                        let hash = cfg.hash.clone();
                        self.node.state().disk.config = Some(cfg);
                        let node = self.node.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(timeout).await;
                            let mut st = node.state();
                            if st.disk.config.as_ref().is_some_and(|c| c.hash == hash) {
                                st.disk.config = Some(current);
                            }
                        });
                    }
                    ApplyMode::Staged => {
                        self.node.state().disk.staged_config = Some(cfg);
                    }
                    ApplyMode::Reboot => {
                        self.node.state().disk.config = Some(cfg);
                        self.node.reboot_soon();
                    }
                    _ => {
                        self.node.state().disk.config = Some(cfg);
                    }
                }
                Ok(reply(mode, &format!("{details}{mode_err}")))
            }
        }
    }

    async fn bootstrap(
        &self,
        req: Request<m::BootstrapRequest>,
    ) -> Result<Response<m::BootstrapResponse>, Status> {
        self.gate(&req, "Bootstrap")?;
        if self.talos.faults().take_bootstrap_not_ready() {
            return Err(Status::failed_precondition(
                "bootstrap is not available yet",
            ));
        }
        self.talos.sync();
        let cfg = {
            let st = self.node.state();
            let Some(cfg) = st.disk.config.as_ref().filter(|_| self.node.ready(&st)) else {
                return Err(Status::failed_precondition(
                    "bootstrap is not available yet",
                ));
            };
            if !cfg.is_control_plane() {
                return Err(Status::failed_precondition(
                    "bootstrap can only be performed on a control plane node",
                ));
            }
            if st.disk.bootstrapped {
                return Err(Status::already_exists("etcd data directory is not empty"));
            }
            cfg.clone()
        };
        if self.talos.cluster_bootstrapped(&cfg.cluster_key) {
            // Another control plane bootstrapped: this one joins (or waits to), so its etcd
            // is not waiting for bootstrap any more.
            return Err(Status::already_exists("etcd data directory is not empty"));
        }
        self.talos.etcd_bootstrap(&self.node, &cfg);
        Ok(Response::new(m::BootstrapResponse {
            messages: vec![m::Bootstrap { metadata: None }],
        }))
    }

    async fn etcd_member_list(
        &self,
        req: Request<m::EtcdMemberListRequest>,
    ) -> Result<Response<m::EtcdMemberListResponse>, Status> {
        self.gate(&req, "EtcdMemberList")?;
        self.control_plane("member list")?;
        let key = self.talos.etcd_local(&self.node).map_err(etcd_status)?;
        let members = self.talos.etcd_members(&key).map_err(etcd_status)?;
        Ok(Response::new(m::EtcdMemberListResponse {
            messages: vec![m::EtcdMembers {
                metadata: None,
                legacy_members: members.iter().map(|m| m.hostname.clone()).collect(),
                members,
            }],
        }))
    }

    async fn etcd_remove_member_by_id(
        &self,
        req: Request<m::EtcdRemoveMemberByIdRequest>,
    ) -> Result<Response<m::EtcdRemoveMemberByIdResponse>, Status> {
        self.gate(&req, "EtcdRemoveMemberByID")?;
        self.control_plane("etcd remove member")?;
        let key = self
            .talos
            .etcd_local(&self.node)
            .map_err(|e| wrap("failed to create etcd client", e))?;
        let id = req.into_inner().member_id;
        match self.talos.etcd_remove(&key, id) {
            Ok(_) => Ok(Response::new(m::EtcdRemoveMemberByIdResponse {
                messages: vec![m::EtcdRemoveMemberById { metadata: None }],
            })),
            Err(EtcdError::MemberNotFound) => {
                Err(Status::not_found("etcdserver: member not found"))
            }
            Err(e) => Err(wrap("failed to remove member", e)),
        }
    }

    async fn etcd_leave_cluster(
        &self,
        req: Request<m::EtcdLeaveClusterRequest>,
    ) -> Result<Response<m::EtcdLeaveClusterResponse>, Status> {
        self.gate(&req, "EtcdLeaveCluster")?;
        self.control_plane("etcd leave")?;
        let key = self
            .talos
            .etcd_local(&self.node)
            .map_err(|e| wrap("failed to create etcd client", e))?;
        self.talos
            .etcd_leave(&self.node, &key)
            .map_err(|e| wrap("failed to leave cluster", e))?;
        Ok(Response::new(m::EtcdLeaveClusterResponse {
            messages: vec![m::EtcdLeaveCluster { metadata: None }],
        }))
    }

    type KubeconfigStream = DataStream;

    async fn kubeconfig(
        &self,
        req: Request<()>,
    ) -> Result<Response<Self::KubeconfigStream>, Status> {
        let caller = self.gate(&req, "Kubeconfig")?;
        let cfg = self
            .node
            .state()
            .disk
            .config
            .clone()
            .ok_or_else(|| Status::failed_precondition("the machine has no configuration"))?;
        check_control_plane(&cfg, "kubeconfig")?;
        let yaml =
            kubeconfig::admin_kubeconfig(&cfg).map_err(|e| Status::unknown(e.to_string()))?;
        let bytes =
            kubeconfig::tar_gz(yaml.as_bytes()).map_err(|e| Status::unknown(e.to_string()))?;
        if !self.talos.faults().take_kubeconfig_drop() {
            // Talos sends the whole archive as one message.
            let one = common::Data {
                metadata: None,
                bytes,
            };
            return Ok(Response::new(Box::pin(tokio_stream::iter([Ok(one)]))));
        }
        // Fault: part of the archive, then the connection drops.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let half = bytes[..bytes.len() / 2].to_vec();
        let kill = caller.kill.clone();
        tokio::spawn(async move {
            let _ = tx
                .send(Ok(common::Data {
                    metadata: None,
                    bytes: half,
                }))
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            kill.notify_one();
            // Keep the stream open until the connection is gone.
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            drop(tx);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn reboot(
        &self,
        req: Request<m::RebootRequest>,
    ) -> Result<Response<m::RebootResponse>, Status> {
        self.gate(&req, "Reboot")?;
        self.node.reboot_soon();
        Ok(Response::new(m::RebootResponse {
            messages: vec![m::Reboot {
                metadata: None,
                actor_id: String::new(),
            }],
        }))
    }

    async fn reset(
        &self,
        req: Request<m::ResetRequest>,
    ) -> Result<Response<m::ResetResponse>, Status> {
        self.gate(&req, "Reset")?;
        let graceful = req.get_ref().graceful;
        if graceful {
            // Talos's reset sequence leaves etcd first on a control plane that runs it.
            if let Ok(key) = self.talos.etcd_local(&self.node)
                && let Err(e) = self.talos.etcd_leave(&self.node, &key)
            {
                tracing::warn!(
                    vmid = self.node.vmid,
                    "graceful reset: etcd leave failed: {e:?}"
                );
            }
        }
        self.node.reset();
        Ok(Response::new(m::ResetResponse {
            messages: vec![m::Reset {
                metadata: None,
                actor_id: String::new(),
            }],
        }))
    }

    async fn service_list(
        &self,
        req: Request<()>,
    ) -> Result<Response<m::ServiceListResponse>, Status> {
        self.gate(&req, "ServiceList")?;
        Ok(Response::new(m::ServiceListResponse {
            messages: vec![m::ServiceList {
                metadata: None,
                services: self.talos.services(&self.node),
            }],
        }))
    }

    async fn upgrade(
        &self,
        req: Request<m::UpgradeRequest>,
    ) -> Result<Response<m::UpgradeResponse>, Status> {
        self.gate(&req, "Upgrade")?;
        let r = req.into_inner();
        let cfg = self
            .node
            .state()
            .disk
            .config
            .clone()
            .ok_or_else(|| Status::failed_precondition("the machine has no configuration"))?;
        if !image_ref_ok(&r.image) {
            return Err(Status::unknown(format!(
                "error validating installer image {:?}: failed to parse reference: {}",
                r.image, r.image
            )));
        }
        if cfg.is_control_plane() && !r.force {
            self.validate_etcd_for_upgrade(&cfg)?;
        }
        self.node.upgrade(config::image_version(&r.image), r.stage);
        Ok(Response::new(m::UpgradeResponse {
            messages: vec![m::Upgrade {
                metadata: None,
                ack: "Upgrade request received".into(),
                actor_id: String::new(),
            }],
        }))
    }

    async fn version(&self, req: Request<()>) -> Result<Response<m::VersionResponse>, Status> {
        self.gate(&req, "Version")?;
        Ok(Response::new(m::VersionResponse {
            messages: vec![m::Version {
                metadata: None,
                version: Some(m::VersionInfo {
                    tag: self.talos.version_of(&self.node.state()),
                    sha: "infraflux-lab".into(),
                    built: String::new(),
                    go_version: "go1.24".into(),
                    os: "linux".into(),
                    arch: "amd64".into(),
                }),
                platform: Some(m::PlatformInfo {
                    name: "nocloud".into(),
                    mode: "cloud".into(),
                }),
                features: Some(m::FeaturesInfo { rbac: true }),
            }],
        }))
    }
}
