//! COSI reads (`cosi.resource.State`): the node's MachineStatus.

use std::fmt;

use prost::Message;

use super::proto::cosi::resource::{GetRequest, state_client::StateClient};
use super::proto::talos::resource::definitions::enums::RuntimeMachineStage;
use super::proto::talos::resource::definitions::runtime::MachineStatusSpec;
use super::{TalosClient, TalosError};

/// Talos's machine stage (`runtime.MachineStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Unknown,
    Booting,
    Installing,
    Maintenance,
    Running,
    Rebooting,
    ShuttingDown,
    Resetting,
    Upgrading,
}

impl Stage {
    fn from_proto(v: i32) -> Stage {
        match RuntimeMachineStage::try_from(v) {
            Ok(RuntimeMachineStage::MachineStageBooting) => Stage::Booting,
            Ok(RuntimeMachineStage::MachineStageInstalling) => Stage::Installing,
            Ok(RuntimeMachineStage::MachineStageMaintenance) => Stage::Maintenance,
            Ok(RuntimeMachineStage::MachineStageRunning) => Stage::Running,
            Ok(RuntimeMachineStage::MachineStageRebooting) => Stage::Rebooting,
            Ok(RuntimeMachineStage::MachineStageShuttingDown) => Stage::ShuttingDown,
            Ok(RuntimeMachineStage::MachineStageResetting) => Stage::Resetting,
            Ok(RuntimeMachineStage::MachineStageUpgrading) => Stage::Upgrading,
            _ => Stage::Unknown,
        }
    }

    /// Talos's YAML name (`stage: running`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Unknown => "unknown",
            Stage::Booting => "booting",
            Stage::Installing => "installing",
            Stage::Maintenance => "maintenance",
            Stage::Running => "running",
            Stage::Rebooting => "rebooting",
            Stage::ShuttingDown => "shutting down",
            Stage::Resetting => "resetting",
            Stage::Upgrading => "upgrading",
        }
    }

    fn from_name(s: &str) -> Stage {
        [
            Stage::Booting,
            Stage::Installing,
            Stage::Maintenance,
            Stage::Running,
            Stage::Rebooting,
            Stage::ShuttingDown,
            Stage::Resetting,
            Stage::Upgrading,
        ]
        .into_iter()
        .find(|st| st.name() == s)
        .unwrap_or(Stage::Unknown)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `MachineStatuses.runtime.talos.dev/machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineStatus {
    pub stage: Stage,
    pub ready: bool,
}

/// The YAML spec, for nodes that send no protobuf spec.
fn from_yaml(text: &str) -> MachineStatus {
    let mut stage = Stage::Unknown;
    let mut ready = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("stage:") {
            stage = Stage::from_name(v.trim());
        } else if let Some(v) = t.strip_prefix("ready:") {
            ready = v.trim() == "true";
        }
    }
    MachineStatus { stage, ready }
}

impl TalosClient {
    /// The node's stage and readiness (COSI Get `runtime/MachineStatuses.runtime.talos.dev/machine`).
    pub async fn machine_status(&self) -> Result<MachineStatus, TalosError> {
        const PHASE: &str = "read machine status";
        let req = GetRequest {
            namespace: "runtime".into(),
            r#type: "MachineStatuses.runtime.talos.dev".into(),
            id: "machine".into(),
            options: None,
        };
        let r = StateClient::new(self.channel.clone())
            .get(self.request(req, PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        let spec = r
            .resource
            .and_then(|r| r.spec)
            .ok_or_else(|| self.protocol(PHASE, "no resource spec"))?;
        if !spec.proto_spec.is_empty() {
            let s = MachineStatusSpec::decode(spec.proto_spec.as_slice())
                .map_err(|e| self.protocol(PHASE, format!("MachineStatus spec: {e}")))?;
            return Ok(MachineStatus {
                stage: Stage::from_proto(s.stage),
                ready: s.status.is_some_and(|st| st.ready),
            });
        }
        Ok(from_yaml(&spec.yaml_spec))
    }
}

impl TalosClient {
    /// The active machine config as the node reports it (COSI `config/MachineConfigs/v1alpha1`,
    /// admin only); `None` when the node has none (maintenance mode).
    pub async fn machine_config(&self) -> Result<Option<String>, TalosError> {
        const PHASE: &str = "read machine config";
        let req = GetRequest {
            namespace: "config".into(),
            r#type: "MachineConfigs.config.talos.dev".into(),
            id: "v1alpha1".into(),
            options: None,
        };
        match StateClient::new(self.channel.clone())
            .get(self.request(req, PHASE)?)
            .await
        {
            Ok(r) => Ok(r
                .into_inner()
                .resource
                .and_then(|r| r.spec)
                .map(|s| s.yaml_spec)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(self.status_error(PHASE, s)),
        }
    }
}
