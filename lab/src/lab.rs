//! Lab lifecycle: start every simulated service on loopback, describe it (`lab.json`), stop it.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control;
use crate::faults::{FaultState, Faults};
use crate::http;
use crate::pve::auth::{ALL_PRIVILEGES, AuthStore, Token};
use crate::pve::schema::{Schema, SchemaError};
use crate::pve::{Pve, PveTiming, seed, server};
use crate::talos::{Talos, TalosOptions};
use crate::tls::{LabPki, TlsError};

/// Errors starting the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// An API token to configure. `without` lists privileges the token lacks (PVE's
/// privilege-separated tokens).
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub userid: String,
    pub tokenid: String,
    pub without: Vec<String>,
}

/// How to start the lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Seed for every random decision (faults, secrets).
    pub seed: u64,
    /// Faults switched on from the start.
    pub faults: Faults,
    pub timing: PveTiming,
    /// 0 = an ephemeral port.
    pub pve_port: u16,
    /// 0 = an ephemeral port.
    pub control_port: u16,
    /// Tokens besides the always-present full-privilege `root@pam!infraflux`.
    pub extra_tokens: Vec<TokenSpec>,
    /// The simulated Talos nodes.
    pub talos: TalosOptions,
    /// Repository URLs Argo CD's simulated application controller reads from local
    /// directories (`--git-repo URL=LOCAL_PATH`).
    pub git_repos: Vec<crate::k8s::controllers::argocd::GitRepo>,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            faults: Faults::default(),
            timing: PveTiming::default(),
            pve_port: 0,
            control_port: 0,
            extra_tokens: vec![TokenSpec {
                userid: "infraflux@pve".into(),
                tokenid: "noalloc".into(),
                without: vec!["VM.Allocate".into()],
            }],
            talos: TalosOptions::default(),
            git_repos: Vec::new(),
        }
    }
}

/// One token as `lab.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenInfo {
    /// `user@realm!tokenid`
    pub id: String,
    pub secret: String,
    /// Privileges this token does not have.
    pub without: Vec<String>,
}

/// A storage as `lab.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StorageInfo {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: Vec<String>,
    pub shared: bool,
}

/// A template VM as `lab.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TemplateInfo {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub storage: String,
}

/// The Proxmox VE part of `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PveInfo {
    /// `https://127.0.0.1:PORT`
    pub endpoint: String,
    /// `https://127.0.0.1:PORT/api2/json`
    pub api_url: String,
    /// The full-privilege token id, `root@pam!infraflux`.
    pub token_id: String,
    pub token_secret: String,
    /// All tokens, including restricted ones.
    pub tokens: Vec<TokenInfo>,
    /// Ticket login (`POST /access/ticket`).
    pub username: String,
    pub password: String,
    pub nodes: Vec<String>,
    pub storages: Vec<StorageInfo>,
    pub templates: Vec<TemplateInfo>,
    pub talos_image_volid: String,
    pub talos_iso_volid: String,
}

/// The control endpoint part of `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControlInfo {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

/// Everything a client needs to use the lab: the content of `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabInfo {
    pub version: u32,
    pub seed: u64,
    /// PEM of the lab CA that signs every lab server certificate.
    pub ca_cert_pem: String,
    pub pve: PveInfo,
    pub control: ControlInfo,
}

/// A running lab.
pub struct Lab {
    info: LabInfo,
    pve: Arc<Pve>,
    talos: Arc<Talos>,
    k8s: Arc<crate::k8s::K8s>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn secret(rng: &mut ChaCha8Rng) -> String {
    let b: [u8; 16] = rng.random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

async fn bind(port: u16) -> Result<TcpListener, LabError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr)
        .await
        .map_err(|source| LabError::Bind {
            addr: addr.to_string(),
            source,
        })
}

impl Lab {
    /// Start the lab on loopback. Returns once every endpoint is listening.
    pub async fn start(opts: LabOptions) -> Result<Lab, LabError> {
        let schema = Schema::global()?;
        let pki = LabPki::generate("infraflux-lab")?;
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x1ab5_eed5);

        let password = secret(&mut rng);
        let mut tokens = vec![Token {
            userid: "root@pam".into(),
            tokenid: "infraflux".into(),
            secret: secret(&mut rng),
            privileges: ALL_PRIVILEGES.iter().map(|s| s.to_string()).collect(),
        }];
        let mut token_infos = vec![TokenInfo {
            id: "root@pam!infraflux".into(),
            secret: tokens[0].secret.clone(),
            without: Vec::new(),
        }];
        for t in &opts.extra_tokens {
            let tok = Token {
                userid: t.userid.clone(),
                tokenid: t.tokenid.clone(),
                secret: secret(&mut rng),
                privileges: ALL_PRIVILEGES
                    .iter()
                    .filter(|p| !t.without.iter().any(|w| w == *p))
                    .map(|s| s.to_string())
                    .collect(),
            };
            token_infos.push(TokenInfo {
                id: tok.full_id(),
                secret: tok.secret.clone(),
                without: t.without.clone(),
            });
            tokens.push(tok);
        }
        let auth = AuthStore::new("root@pam".into(), password.clone(), tokens);
        let faults = Arc::new(FaultState::new(opts.seed, opts.faults.clone()));
        let cluster = seed::cluster(crate::pve::auth::unix_now());
        let storages = cluster
            .storages
            .iter()
            .map(|s| StorageInfo {
                id: s.id.clone(),
                kind: s.kind.clone(),
                content: s.content.clone(),
                shared: s.shared,
            })
            .collect();
        let pve = Arc::new(Pve::new(schema, auth, faults, opts.timing.clone(), cluster));

        let pve_listener = bind(opts.pve_port).await?;
        let control_listener = bind(opts.control_port).await?;
        let pve_addr = pve_listener.local_addr()?;
        let control_addr = control_listener.local_addr()?;
        let (tx, rx) = watch::channel(false);

        let p = pve.clone();
        let pve_handler = http::handler(move |req| server::handle(p.clone(), req));
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config.clone());
        let t1 = tokio::spawn(http::serve(
            pve_listener,
            Some(acceptor),
            pve_handler,
            rx.clone(),
        ));
        // Subscribed before any request can start a VM.
        let talos = Talos::new(opts.talos.clone(), pve.clone());
        let t3 = talos.spawn(rx.clone());
        let k8s = crate::k8s::K8s::new(talos.clone(), opts.git_repos.clone());
        let t4 = k8s.spawn(rx.clone());
        let ctl = Arc::new(control::Control {
            pve: pve.clone(),
            talos: talos.clone(),
            k8s: k8s.clone(),
        });
        let control_handler = http::handler(move |req| control::handle(ctl.clone(), req));
        let t2 = tokio::spawn(http::serve(control_listener, None, control_handler, rx));

        let endpoint = format!("https://{pve_addr}");
        let info = LabInfo {
            version: 1,
            seed: opts.seed,
            ca_cert_pem: pki.ca_pem.clone(),
            pve: PveInfo {
                api_url: format!("{endpoint}/api2/json"),
                endpoint,
                token_id: token_infos[0].id.clone(),
                token_secret: token_infos[0].secret.clone(),
                tokens: token_infos,
                username: "root@pam".into(),
                password,
                nodes: seed::NODES.iter().map(|n| n.to_string()).collect(),
                storages,
                templates: seed::TEMPLATES
                    .iter()
                    .map(|t| TemplateInfo {
                        vmid: t.vmid,
                        name: t.name.into(),
                        node: t.node.into(),
                        storage: t.storage.into(),
                    })
                    .collect(),
                talos_image_volid: seed::TALOS_IMAGE.into(),
                talos_iso_volid: seed::TALOS_ISO.into(),
            },
            control: ControlInfo {
                endpoint: format!("http://{control_addr}"),
            },
        };
        Ok(Lab {
            info,
            pve,
            talos,
            k8s,
            shutdown: tx,
            tasks: vec![t1, t2, t3, t4],
        })
    }

    /// The data `lab.json` holds.
    pub fn info(&self) -> &LabInfo {
        &self.info
    }

    /// The PVE simulation (for in-process inspection).
    pub fn pve(&self) -> &Arc<Pve> {
        &self.pve
    }

    /// The Talos simulation (for in-process inspection).
    pub fn talos(&self) -> &Arc<Talos> {
        &self.talos
    }

    /// The Kubernetes API servers (for in-process inspection).
    pub fn k8s(&self) -> &Arc<crate::k8s::K8s> {
        &self.k8s
    }

    /// Stop every endpoint and wait for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
