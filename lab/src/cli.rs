//! `infraflux-lab up|down`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::faults::{FaultError, Faults, FaultsPatch};
use crate::lab::{Lab, LabError, LabOptions};

const USAGE: &str = "usage:
  infraflux-lab up --dir DIR [--seed N] [--latency-ms N] [--faults SPEC] [--talos-legacy-maintenance]
                   [--talos-version vX.Y.Z] [--git-repo URL=LOCAL_PATH]...
  infraflux-lab down --dir DIR

--talos-legacy-maintenance: Talos nodes answer as Talos <= 1.12's maintenance service.
--talos-version: the Talos release the VM image boots (default v1.13.9); 1.14 and later
  validate configs with Talos 1.14's schema and its multi-document contract.
--git-repo: Argo CD's simulated application controller reads the repository URL from the
  local directory (repeatable; the files as they are, reported at HEAD's commit).

SPEC is a comma list of key=value: latency_ms, error_rate_5xx, drop_connection_rate,
lock_timeouts, fail_next_task, slow_tasks_ms, drop_kubeconfig_stream, slow_talos_install_ms,
bootstrap_not_ready.";

/// Command-line errors.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    #[error(transparent)]
    Faults(#[from] FaultError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("no lab is running in {0} (no lab.pid)")]
    NotRunning(String),
    #[error("lab (pid {0}) did not stop within {1:?}")]
    StopTimeout(i32, Duration),
    #[error("a lab is already running in {0} (pid {1})")]
    AlreadyRunning(String, i32),
}

/// Parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Up(UpArgs),
    Down { dir: PathBuf },
}

/// What `up` runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpArgs {
    pub dir: PathBuf,
    pub seed: u64,
    pub latency_ms: Option<u64>,
    pub faults: Option<String>,
    pub talos_legacy: bool,
    pub talos_version: Option<String>,
    /// `--git-repo URL=LOCAL_PATH`, in order.
    pub git_repos: Vec<crate::k8s::controllers::argocd::GitRepo>,
}

/// Parse `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let Some(cmd) = args.first() else {
        return Err(CliError::Usage("missing command".into()));
    };
    let mut dir = None;
    let mut seed = 1u64;
    let mut latency_ms = None;
    let mut faults = None;
    let mut talos_legacy = false;
    let mut talos_version = None;
    let mut git_repos = Vec::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| CliError::Usage(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(val("--dir")?)),
            "--seed" => {
                seed = val("--seed")?
                    .parse()
                    .map_err(|_| CliError::Usage("--seed must be a number".into()))?
            }
            "--latency-ms" => {
                latency_ms = Some(
                    val("--latency-ms")?
                        .parse()
                        .map_err(|_| CliError::Usage("--latency-ms must be a number".into()))?,
                )
            }
            "--faults" => faults = Some(val("--faults")?),
            "--talos-legacy-maintenance" => talos_legacy = true,
            "--talos-version" => {
                let v = val("--talos-version")?;
                if !v.starts_with('v') || v[1..].split('.').count() < 3 {
                    return Err(CliError::Usage(
                        "--talos-version must look like v1.14.0".into(),
                    ));
                }
                talos_version = Some(v);
            }
            "--git-repo" => {
                let spec = val("--git-repo")?;
                let repo =
                    crate::k8s::controllers::argocd::GitRepo::parse(&spec).ok_or_else(|| {
                        CliError::Usage(format!(
                            "--git-repo must look like URL=LOCAL_PATH, not '{spec}'"
                        ))
                    })?;
                git_repos.push(repo);
            }
            "-h" | "--help" => return Err(CliError::Usage("help".into())),
            other => return Err(CliError::Usage(format!("unknown argument '{other}'"))),
        }
    }
    let dir = dir.ok_or_else(|| CliError::Usage("--dir is required".into()))?;
    match cmd.as_str() {
        "up" => Ok(Command::Up(UpArgs {
            dir,
            seed,
            latency_ms,
            faults,
            talos_legacy,
            talos_version,
            git_repos,
        })),
        "down" => Ok(Command::Down { dir }),
        other => Err(CliError::Usage(format!("unknown command '{other}'"))),
    }
}

/// Write `data` to `path` atomically (temp file + rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), CliError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| CliError::Io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| CliError::Io(path.display().to_string(), e))
}

/// Run `up` until SIGINT/SIGTERM.
pub async fn up(a: &UpArgs) -> Result<(), CliError> {
    let (dir, seed) = (a.dir.as_path(), a.seed);
    let mut f = Faults::default();
    if let Some(spec) = a.faults.as_deref() {
        let patch = FaultsPatch::parse_spec(spec)?;
        let state = crate::faults::FaultState::new(seed, f);
        f = state.patch(&patch);
    }
    if let Some(l) = a.latency_ms {
        f.latency_ms = l;
    }
    std::fs::create_dir_all(dir).map_err(|e| CliError::Io(dir.display().to_string(), e))?;
    let pid_path = dir.join("lab.pid");
    let json_path = dir.join("lab.json");
    if let Some(pid) = read_pid(&pid_path)
        && alive(pid)
    {
        return Err(CliError::AlreadyRunning(dir.display().to_string(), pid));
    }
    // lab.json exists exactly while a lab serves from this directory.
    let _ = std::fs::remove_file(&json_path);
    let mut opts = LabOptions {
        seed,
        faults: f,
        ..LabOptions::default()
    };
    opts.talos.legacy_maintenance = a.talos_legacy;
    opts.git_repos = a.git_repos.clone();
    if let Some(v) = &a.talos_version {
        opts.talos.version = v.clone();
    }
    let lab = Lab::start(opts).await?;
    write_atomic(&pid_path, format!("{}\n", std::process::id()).as_bytes())?;
    let doc = serde_json::to_vec_pretty(lab.info()).unwrap_or_default();
    write_atomic(&json_path, &doc)?;
    eprintln!(
        "infraflux-lab: Proxmox VE at {}, control at {}; lab.json in {}",
        lab.info().pve.endpoint,
        lab.info().control.endpoint,
        dir.display()
    );
    wait_for_signal().await;
    lab.shutdown().await;
    let _ = std::fs::remove_file(&json_path);
    let _ = std::fs::remove_file(&pid_path);
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut i), Ok(mut t)) => {
            tokio::select! {
                _ = i.recv() => {}
                _ = t.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Stop the lab whose pid is in `DIR/lab.pid` and wait for it to exit.
pub fn down(dir: &Path) -> Result<(), CliError> {
    let pid_path = dir.join("lab.pid");
    let pid = read_pid(&pid_path).ok_or_else(|| CliError::NotRunning(dir.display().to_string()))?;
    if !alive(pid) {
        let _ = std::fs::remove_file(&pid_path);
        return Ok(());
    }
    // SAFETY: sending SIGTERM to the pid the lab wrote for itself.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let limit = Duration::from_secs(10);
    let start = Instant::now();
    while alive(pid) && pid_path.exists() {
        if start.elapsed() > limit {
            return Err(CliError::StopTimeout(pid, limit));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse(&s(&[
                "up",
                "--dir",
                "/tmp/x",
                "--seed",
                "7",
                "--latency-ms",
                "5"
            ]))
            .unwrap(),
            Command::Up(UpArgs {
                dir: "/tmp/x".into(),
                seed: 7,
                latency_ms: Some(5),
                faults: None,
                talos_legacy: false,
                talos_version: None,
                git_repos: Vec::new(),
            })
        );
        let two = parse(&s(&[
            "up",
            "--dir",
            "d",
            "--git-repo",
            "https://git.example/a.git=/src/a",
            "--git-repo",
            "https://git.example/b=./b",
        ]));
        assert!(matches!(
            two,
            Ok(Command::Up(UpArgs { ref git_repos, .. }))
                if git_repos.len() == 2 && git_repos[0].url == "https://git.example/a.git"
                    && git_repos[1].path == std::path::Path::new("./b")
        ));
        assert!(parse(&s(&["up", "--dir", "d", "--git-repo", "no-path"])).is_err());
        assert!(matches!(
            parse(&s(&["up", "--dir", "d", "--talos-legacy-maintenance"])),
            Ok(Command::Up(UpArgs {
                talos_legacy: true,
                ..
            }))
        ));
        assert!(matches!(
            parse(&s(&["up", "--dir", "d", "--talos-version", "v1.14.0"])),
            Ok(Command::Up(UpArgs { talos_version: Some(v), .. })) if v == "v1.14.0"
        ));
        assert!(parse(&s(&["up", "--dir", "d", "--talos-version", "1.14"])).is_err());
        assert_eq!(
            parse(&s(&["down", "--dir", "d"])).unwrap(),
            Command::Down { dir: "d".into() }
        );
        assert!(parse(&s(&["up"])).is_err());
        assert!(parse(&s(&["sideways", "--dir", "d"])).is_err());
        assert!(parse(&s(&["up", "--dir", "d", "--seed", "x"])).is_err());
    }
}
