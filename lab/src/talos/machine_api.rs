//! `machine.MachineService` of a node, answering as its mode (maintenance ≥ 1.13, ≤ 1.12, or
//! running with roles) and its stage dictate.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::Talos;
use super::authz::{self, Caller, Mode};
use super::config::{self, ConfigError};
use super::node::{Node, Stage};
use super::proto::common;
use super::proto::machine::{self as m, apply_configuration_request::Mode as ApplyMode};

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

    /// Gate a call: the legacy (≤ 1.12) maintenance API implements almost nothing; elsewhere
    /// the role rules apply.
    fn gate<T>(&self, req: &Request<T>, rpc: &str) -> Result<Caller, Status> {
        let caller = authz::caller(req);
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
        let cfg = config::parse(&r.data).map_err(|e| config_status(e, legacy))?;
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
        if r.dry_run {
            return Ok(reply(
                requested,
                "Dry run: the config is valid; nothing was applied",
            ));
        }
        match caller.mode {
            Mode::Maintenance => {
                if self.node.state().stage != Stage::Maintenance {
                    return Err(Status::failed_precondition(
                        "the machine is not in maintenance mode",
                    ));
                }
                self.node.install(cfg);
                Ok(reply(
                    ApplyMode::Reboot,
                    "Applied configuration: installing, then rebooting",
                ))
            }
            Mode::Running => {
                let reboot = requested == ApplyMode::Reboot;
                self.node.state().disk.config = Some(cfg);
                if reboot {
                    self.node.reboot_soon();
                    Ok(reply(
                        ApplyMode::Reboot,
                        "Applied configuration with a reboot",
                    ))
                } else {
                    // A seam: the lab applies every change live for now.
                    Ok(reply(
                        ApplyMode::NoReboot,
                        "Applied configuration without a reboot",
                    ))
                }
            }
        }
    }

    async fn bootstrap(
        &self,
        req: Request<m::BootstrapRequest>,
    ) -> Result<Response<m::BootstrapResponse>, Status> {
        self.gate(&req, "Bootstrap")?;
        let key = {
            let st = self.node.state();
            let Some(cfg) = st.disk.config.as_ref().filter(|_| self.node.ready(&st)) else {
                return Err(Status::failed_precondition(
                    "bootstrap is not available yet",
                ));
            };
            if !cfg.is_control_plane() {
                return Err(Status::failed_precondition(
                    "bootstrap is not available yet: not a control plane node",
                ));
            }
            if st.disk.bootstrapped {
                return Err(Status::already_exists("etcd data directory is not empty"));
            }
            cfg.cluster_key.clone()
        };
        if self.talos.cluster_bootstrapped(&key) {
            // Another control plane bootstrapped: this one joined, so its etcd has data.
            self.node.state().disk.bootstrapped = true;
            return Err(Status::already_exists("etcd data directory is not empty"));
        }
        self.node.state().disk.bootstrapped = true;
        Ok(Response::new(m::BootstrapResponse {
            messages: vec![m::Bootstrap { metadata: None }],
        }))
    }

    async fn etcd_member_list(
        &self,
        req: Request<m::EtcdMemberListRequest>,
    ) -> Result<Response<m::EtcdMemberListResponse>, Status> {
        self.gate(&req, "EtcdMemberList")?;
        let key = {
            let st = self.node.state();
            match st.disk.config.as_ref() {
                Some(c) if c.is_control_plane() && st.stage == Stage::Running => {
                    c.cluster_key.clone()
                }
                _ => {
                    return Err(Status::failed_precondition(
                        "etcd is not running on this node",
                    ));
                }
            }
        };
        if !self.talos.cluster_bootstrapped(&key) {
            return Err(Status::failed_precondition(
                "etcd is not running on this node",
            ));
        }
        Ok(Response::new(m::EtcdMemberListResponse {
            messages: vec![m::EtcdMembers {
                metadata: None,
                legacy_members: Vec::new(),
                members: self.talos.etcd_members(&key),
            }],
        }))
    }

    type KubeconfigStream = DataStream;

    async fn kubeconfig(
        &self,
        req: Request<()>,
    ) -> Result<Response<Self::KubeconfigStream>, Status> {
        self.gate(&req, "Kubeconfig")?;
        // Seam: the Kubernetes side (and so a kubeconfig) comes in a later slice.
        Err(Status::unimplemented(
            "lab: Kubeconfig is not simulated yet",
        ))
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
        Err(Status::unimplemented("lab: Upgrade is not simulated yet"))
    }

    async fn version(&self, req: Request<()>) -> Result<Response<m::VersionResponse>, Status> {
        self.gate(&req, "Version")?;
        Ok(Response::new(m::VersionResponse {
            messages: vec![m::Version {
                metadata: None,
                version: Some(m::VersionInfo {
                    tag: self.talos.opts.version.clone(),
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
