//! `infraflux-lab`: run the simulated Proxmox VE lab standalone.

use infraflux_lab::cli::{self, Command};

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INFRAFLUX_LAB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match cli::parse(&args) {
        Ok(Command::Down { dir }) => cli::down(&dir),
        Ok(Command::Up(a)) => {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(cli::up(&a)),
                Err(e) => Err(cli::CliError::Io("tokio runtime".into(), e)),
            }
        }
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("infraflux-lab: {e}");
        std::process::exit(2);
    }
}
