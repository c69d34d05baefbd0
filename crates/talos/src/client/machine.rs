//! `machine.MachineService` verbs.

use tonic::Code;

use super::proto::machine::{
    self as m, apply_configuration_request, machine_service_client::MachineServiceClient,
    reboot_request, reset_request,
};
use super::{TalosClient, TalosError};

/// How `ApplyConfiguration` applies a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    Reboot,
    Auto,
    NoReboot,
    Staged,
    Try,
}

impl ApplyMode {
    fn proto(self) -> apply_configuration_request::Mode {
        use apply_configuration_request::Mode;
        match self {
            ApplyMode::Reboot => Mode::Reboot,
            ApplyMode::Auto => Mode::Auto,
            ApplyMode::NoReboot => Mode::NoReboot,
            ApplyMode::Staged => Mode::Staged,
            ApplyMode::Try => Mode::Try,
        }
    }
}

/// What `Version` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVersion {
    /// e.g. `v1.13.9`.
    pub tag: String,
    pub sha: String,
    pub arch: String,
    /// e.g. `nocloud`.
    pub platform: Option<String>,
}

/// Outcome of `Bootstrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// This call bootstrapped etcd.
    Bootstrapped,
    /// etcd already had data (AlreadyExists): bootstrapped before, by us or someone else.
    AlreadyBootstrapped,
}

/// One etcd member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    pub id: u64,
    pub hostname: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// One service of `ServiceList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub state: String,
    /// None when the health is unknown.
    pub healthy: Option<bool>,
}

/// How `Reboot` restarts the machine: a normal reboot, or a power cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootMode {
    Default,
    PowerCycle,
}

/// What `Reset` wipes: everything, only the system disk, or only the user disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WipeMode {
    All,
    SystemDisk,
    UserDisks,
}

/// `Reset` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetOptions {
    /// Leave etcd and drain first (control planes).
    pub graceful: bool,
    /// Reboot afterwards (into maintenance mode) instead of powering off.
    pub reboot: bool,
    pub wipe: WipeMode,
}

impl Default for ResetOptions {
    fn default() -> Self {
        Self {
            graceful: true,
            reboot: true,
            wipe: WipeMode::All,
        }
    }
}

/// The first per-node message's metadata error, if the node (or apid proxy) set one.
fn metadata_error(md: Option<&super::proto::common::Metadata>) -> Option<String> {
    md.filter(|m| !m.error.is_empty()).map(|m| m.error.clone())
}

impl TalosClient {
    fn machine(&self) -> MachineServiceClient<tonic::transport::Channel> {
        MachineServiceClient::new(self.channel.clone())
    }

    fn check_md(
        &self,
        phase: &'static str,
        md: Option<&super::proto::common::Metadata>,
    ) -> Result<(), TalosError> {
        match metadata_error(md) {
            Some(e) => Err(TalosError::Api {
                node: self.node_label(),
                phase,
                code: Code::Unknown,
                message: e,
            }),
            None => Ok(()),
        }
    }

    /// `Version`.
    pub async fn version(&self) -> Result<NodeVersion, TalosError> {
        const PHASE: &str = "version";
        let r = self
            .machine()
            .version(self.request((), PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        let msg = r
            .messages
            .into_iter()
            .next()
            .ok_or_else(|| self.protocol(PHASE, "no message"))?;
        self.check_md(PHASE, msg.metadata.as_ref())?;
        let v = msg
            .version
            .ok_or_else(|| self.protocol(PHASE, "no version"))?;
        Ok(NodeVersion {
            tag: v.tag,
            sha: v.sha,
            arch: v.arch,
            platform: msg.platform.map(|p| p.name),
        })
    }

    /// `ApplyConfiguration`; answers Talos's `mode_details` (what it will do). A refused
    /// config is [`TalosError::ConfigRejected`] with Talos's reason.
    pub async fn apply_configuration(
        &self,
        config: &[u8],
        mode: ApplyMode,
        dry_run: bool,
    ) -> Result<String, TalosError> {
        self.apply_call(config, mode, dry_run)
            .await
            .map(|(_, details)| details)
    }

    /// A dry run: the mode Talos would apply the config with (AUTO resolved to REBOOT or
    /// NO_REBOOT) and its summary, without the config diff (which can quote secrets).
    pub async fn apply_dry_run(
        &self,
        config: &[u8],
        mode: ApplyMode,
    ) -> Result<(ApplyMode, String), TalosError> {
        let (mode, details) = self.apply_call(config, mode, true).await?;
        let summary = details
            .split("Config diff")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok((mode, summary))
    }

    async fn apply_call(
        &self,
        config: &[u8],
        mode: ApplyMode,
        dry_run: bool,
    ) -> Result<(ApplyMode, String), TalosError> {
        const PHASE: &str = "apply configuration";
        let req = m::ApplyConfigurationRequest {
            data: config.to_vec(),
            mode: mode.proto() as i32,
            dry_run,
            try_mode_timeout: None,
        };
        let r = self
            .machine()
            .apply_configuration(self.request(req, PHASE)?)
            .await
            .map_err(|s| match s.code() {
                // InvalidArgument: ≥ 1.13 validation; Unknown/Internal carrying Talos's
                // "failed to parse config"/"decode error" text (≤ 1.12, schema errors).
                Code::InvalidArgument | Code::Unknown | Code::Internal
                    if std::error::Error::source(&s).is_none() =>
                {
                    TalosError::ConfigRejected {
                        node: self.node_label(),
                        reason: s.message().to_string(),
                    }
                }
                _ => self.status_error(PHASE, s),
            })?
            .into_inner();
        let msg = r
            .messages
            .into_iter()
            .next()
            .ok_or_else(|| self.protocol(PHASE, "no message"))?;
        if let Some(e) = metadata_error(msg.metadata.as_ref()) {
            return Err(TalosError::ConfigRejected {
                node: self.node_label(),
                reason: e,
            });
        }
        let applied = match apply_configuration_request::Mode::try_from(msg.mode) {
            Ok(apply_configuration_request::Mode::NoReboot) => ApplyMode::NoReboot,
            Ok(apply_configuration_request::Mode::Staged) => ApplyMode::Staged,
            Ok(apply_configuration_request::Mode::Try) => ApplyMode::Try,
            Ok(apply_configuration_request::Mode::Auto) => ApplyMode::Auto,
            _ => ApplyMode::Reboot,
        };
        Ok((applied, msg.mode_details))
    }

    /// `Bootstrap` (etcd). AlreadyExists → `Ok(AlreadyBootstrapped)`; FailedPrecondition
    /// ("not available yet") → [`TalosError::NotReady`], retryable.
    pub async fn bootstrap(&self) -> Result<Bootstrap, TalosError> {
        const PHASE: &str = "bootstrap";
        let req = m::BootstrapRequest::default();
        match self.machine().bootstrap(self.request(req, PHASE)?).await {
            Ok(r) => {
                let r = r.into_inner();
                if let Some(msg) = r.messages.first() {
                    self.check_md(PHASE, msg.metadata.as_ref())?;
                }
                Ok(Bootstrap::Bootstrapped)
            }
            Err(s) if s.code() == Code::AlreadyExists => Ok(Bootstrap::AlreadyBootstrapped),
            Err(s) => Err(self.status_error(PHASE, s)),
        }
    }

    /// `EtcdMemberList`.
    pub async fn etcd_member_list(&self) -> Result<Vec<EtcdMember>, TalosError> {
        const PHASE: &str = "etcd member list";
        let req = m::EtcdMemberListRequest { query_local: false };
        let r = self
            .machine()
            .etcd_member_list(self.request(req, PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        let mut out = Vec::new();
        for msg in r.messages {
            self.check_md(PHASE, msg.metadata.as_ref())?;
            out.extend(msg.members.into_iter().map(|e| EtcdMember {
                id: e.id,
                hostname: e.hostname,
                peer_urls: e.peer_urls,
                client_urls: e.client_urls,
                is_learner: e.is_learner,
            }));
        }
        Ok(out)
    }

    /// `EtcdLeaveCluster` on this node: it leaves etcd (before it is reset or removed).
    pub async fn etcd_leave_cluster(&self) -> Result<(), TalosError> {
        const PHASE: &str = "etcd leave cluster";
        let r = self
            .machine()
            .etcd_leave_cluster(self.request(m::EtcdLeaveClusterRequest {}, PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        if let Some(msg) = r.messages.first() {
            self.check_md(PHASE, msg.metadata.as_ref())?;
        }
        Ok(())
    }

    /// `EtcdRemoveMemberByID` (asked of a remaining control plane): removes a member whose
    /// machine cannot leave by itself. `false` when no such member exists (already gone).
    pub async fn etcd_remove_member(&self, member_id: u64) -> Result<bool, TalosError> {
        const PHASE: &str = "etcd remove member";
        let req = m::EtcdRemoveMemberByIdRequest { member_id };
        match self
            .machine()
            .etcd_remove_member_by_id(self.request(req, PHASE)?)
            .await
        {
            Ok(r) => {
                if let Some(msg) = r.into_inner().messages.first() {
                    self.check_md(PHASE, msg.metadata.as_ref())?;
                }
                Ok(true)
            }
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(self.status_error(PHASE, s)),
        }
    }

    /// `Reboot`.
    pub async fn reboot(&self, mode: RebootMode) -> Result<(), TalosError> {
        const PHASE: &str = "reboot";
        let mode = match mode {
            RebootMode::Default => reboot_request::Mode::Default,
            RebootMode::PowerCycle => reboot_request::Mode::Powercycle,
        };
        let req = m::RebootRequest { mode: mode as i32 };
        let r = self
            .machine()
            .reboot(self.request(req, PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        if let Some(msg) = r.messages.first() {
            self.check_md(PHASE, msg.metadata.as_ref())?;
        }
        Ok(())
    }

    /// `Reset`.
    pub async fn reset(&self, opts: ResetOptions) -> Result<(), TalosError> {
        const PHASE: &str = "reset";
        let wipe = match opts.wipe {
            WipeMode::All => reset_request::WipeMode::All,
            WipeMode::SystemDisk => reset_request::WipeMode::SystemDisk,
            WipeMode::UserDisks => reset_request::WipeMode::UserDisks,
        };
        let req = m::ResetRequest {
            graceful: opts.graceful,
            reboot: opts.reboot,
            system_partitions_to_wipe: Vec::new(),
            user_disks_to_wipe: Vec::new(),
            mode: wipe as i32,
        };
        let r = self
            .machine()
            .reset(self.request(req, PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        if let Some(msg) = r.messages.first() {
            self.check_md(PHASE, msg.metadata.as_ref())?;
        }
        Ok(())
    }

    /// `ServiceList`.
    pub async fn service_list(&self) -> Result<Vec<Service>, TalosError> {
        const PHASE: &str = "service list";
        let r = self
            .machine()
            .service_list(self.request((), PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        let mut out = Vec::new();
        for msg in r.messages {
            self.check_md(PHASE, msg.metadata.as_ref())?;
            out.extend(msg.services.into_iter().map(|s| Service {
                id: s.id,
                state: s.state,
                healthy: s.health.and_then(|h| (!h.unknown).then_some(h.healthy)),
            }));
        }
        Ok(out)
    }
}

/// The largest kubeconfig archive accepted (a real one is a few KiB).
const KUBECONFIG_MAX: usize = 1 << 20;

/// The `kubeconfig` entry of the gzip'd tar `Kubeconfig` streams.
fn kubeconfig_from_archive(gz: &[u8]) -> Result<String, String> {
    use std::io::Read as _;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let entries = archive.entries().map_err(|e| format!("not a tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("broken tar entry: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("tar path: {e}"))?
            .to_string_lossy()
            .into_owned();
        if path.trim_start_matches("./") == "kubeconfig" {
            let mut text = String::new();
            entry
                .by_ref()
                .take(KUBECONFIG_MAX as u64)
                .read_to_string(&mut text)
                .map_err(|e| format!("kubeconfig entry: {e}"))?;
            return Ok(text);
        }
    }
    Err("the archive has no `kubeconfig` entry".into())
}

impl TalosClient {
    /// `Kubeconfig`: an admin kubeconfig for the cluster, signed by its Kubernetes CA
    /// (control planes only). A stream that breaks half-way is [`TalosError::Unreachable`].
    pub async fn kubeconfig(&self) -> Result<String, TalosError> {
        const PHASE: &str = "kubeconfig";
        let mut stream = self
            .machine()
            .kubeconfig(self.request((), PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        let mut gz = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| self.status_error(PHASE, s))?
        {
            self.check_md(PHASE, chunk.metadata.as_ref())?;
            if gz.len() + chunk.bytes.len() > KUBECONFIG_MAX {
                return Err(self.protocol(PHASE, "the kubeconfig archive is larger than 1 MiB"));
            }
            gz.extend_from_slice(&chunk.bytes);
        }
        kubeconfig_from_archive(&gz).map_err(|d| self.protocol(PHASE, d))
    }

    /// `Upgrade` to the installer `image`; the node reboots into it. Answers Talos's ack.
    pub async fn upgrade(&self, image: &str, force: bool) -> Result<String, TalosError> {
        const PHASE: &str = "upgrade";
        let req = m::UpgradeRequest {
            image: image.to_string(),
            preserve: true,
            stage: false,
            force,
            reboot_mode: 0,
        };
        let r = self
            .machine()
            .upgrade(self.request(req, PHASE)?)
            .await
            .map_err(|s| self.status_error(PHASE, s))?
            .into_inner();
        let msg = r
            .messages
            .into_iter()
            .next()
            .ok_or_else(|| self.protocol(PHASE, "no message"))?;
        self.check_md(PHASE, msg.metadata.as_ref())?;
        Ok(msg.ack)
    }
}

#[cfg(test)]
mod archive_tests {
    use super::kubeconfig_from_archive;

    fn archive(name: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append_data(&mut h, name, body).expect("append");
        b.into_inner().expect("tar").finish().expect("gzip")
    }

    #[test]
    fn finds_the_kubeconfig_entry() {
        let gz = archive("kubeconfig", b"apiVersion: v1\nkind: Config\n");
        assert_eq!(
            kubeconfig_from_archive(&gz).as_deref(),
            Ok("apiVersion: v1\nkind: Config\n")
        );
    }

    /// Talos never closes its tar writer: the archive ends right after the entry's data,
    /// without padding or end-of-archive blocks.
    #[test]
    fn reads_an_unterminated_archive_as_talos_writes_it() {
        use std::io::Write as _;
        let body = b"apiVersion: v1\nkind: Config\n";
        let mut h = tar::Header::new_gnu();
        h.set_path("kubeconfig").expect("path");
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(h.as_bytes()).expect("header");
        gz.write_all(body).expect("body");
        let gz = gz.finish().expect("gzip");
        assert_eq!(
            kubeconfig_from_archive(&gz).as_deref(),
            Ok("apiVersion: v1\nkind: Config\n")
        );
    }

    #[test]
    fn refuses_archives_without_it_and_garbage() {
        let gz = archive("other", b"x");
        assert!(
            kubeconfig_from_archive(&gz)
                .unwrap_err()
                .contains("no `kubeconfig`")
        );
        assert!(kubeconfig_from_archive(b"not gzip").is_err());
        let gz = archive("kubeconfig", b"ok");
        assert!(kubeconfig_from_archive(&gz[..gz.len() / 2]).is_err());
    }
}
