//! `cargo xtask cluster up|down|env|status` and `cargo xtask ollama up|down|env|status`: a real
//! control plane and a real Ollama on loopback for demos and manual testing, built from Go
//! modules (see `tests/e2e`).

use std::path::{Path, PathBuf};

use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::Cluster;
use aegis_e2e::ollama::{self, Artifacts, Ollama};
use aegis_e2e::process::{programs, stop_dir};
use anyhow::{Context, Result, bail};

/// One of the services xtask runs.
#[derive(Clone, Copy)]
enum Service {
    Cluster,
    Ollama,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::Ollama => "ollama",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Cluster => "control plane",
            Self::Ollama => "Ollama server",
        }
    }

    fn default_dir(self) -> PathBuf {
        match self {
            Self::Cluster => aegis_e2e::target_dir().join("controlplane").join("run"),
            Self::Ollama => aegis_e2e::target_dir().join("ollama").join("run"),
        }
    }

    /// Starts the service in `dir` and leaves it running; prints how to use it.
    fn up(self, dir: &Path) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        match self {
            Self::Cluster => {
                let binaries = Binaries::ensure()?;
                let cluster = runtime.block_on(Cluster::start(&binaries, dir))?;
                eprintln!(
                    "control plane ready in {} s at {}",
                    ready_seconds(dir),
                    cluster.server()
                );
                eprintln!("logs: {}", dir.join("logs").display());
                eprintln!(
                    "try: aegis analyze --all (with the KUBECONFIG below); stop: cargo xtask cluster down"
                );
                println!("{}", self.env_line(dir));
                cluster.detach();
            }
            Self::Ollama => {
                let artifacts = Artifacts::ensure()?;
                let server = runtime.block_on(Ollama::start(&artifacts, dir))?;
                eprintln!(
                    "Ollama ready in {} s at {} with model {}",
                    ready_seconds(dir),
                    server.url(),
                    ollama::MODEL
                );
                eprintln!("logs: {}", dir.join("logs").display());
                eprintln!(
                    "try: aegis analyze --all --mock --llm ollama (with the variables below); stop: cargo xtask ollama down"
                );
                println!("{}", self.env_line(dir));
                server.detach();
            }
        }
        Ok(())
    }

    /// The shell line that points clients at the running service.
    fn env_line(self, dir: &Path) -> String {
        match self {
            Self::Cluster => format!("export KUBECONFIG={}", dir.join("kubeconfig").display()),
            Self::Ollama => {
                let url = std::fs::read_to_string(dir.join("url")).unwrap_or_default();
                // Both the `ollama` CLI and AEGIS (when `llm.ollama_url` is unset) read it.
                format!("export OLLAMA_HOST={}", url.trim())
            }
        }
    }

    fn started_marker(self, dir: &Path) -> PathBuf {
        match self {
            Self::Cluster => dir.join("kubeconfig"),
            Self::Ollama => dir.join("url"),
        }
    }
}

fn ready_seconds(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ready"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn dir_from(service: Service, args: &[String]) -> PathBuf {
    args.iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| service.default_dir(), PathBuf::from)
}

pub fn cluster(args: &[String]) -> Result<()> {
    run(Service::Cluster, args)
}

pub fn ollama(args: &[String]) -> Result<()> {
    run(Service::Ollama, args)
}

fn run(service: Service, args: &[String]) -> Result<()> {
    let dir = dir_from(service, args);
    let name = service.name();
    match args.first().map(String::as_str) {
        Some("up") => {
            if programs(&dir).iter().any(|(_, alive)| *alive) {
                bail!(
                    "a {} already runs in {}; `cargo xtask {name} down` stops it",
                    service.what(),
                    dir.display()
                );
            }
            let _ = std::fs::remove_dir_all(&dir);
            service.up(&dir)
        }
        Some("down") => {
            let stopped = stop_dir(&dir)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            }
            if stopped.is_empty() {
                eprintln!("no {} was running in {}", service.what(), dir.display());
            } else {
                eprintln!("stopped {}", stopped.join(", "));
            }
            Ok(())
        }
        Some("env") => {
            if !service.started_marker(&dir).is_file() {
                bail!(
                    "no {} in {}; start one with `cargo xtask {name} up`",
                    service.what(),
                    dir.display()
                );
            }
            println!("{}", service.env_line(&dir));
            Ok(())
        }
        Some("status") => {
            let programs = programs(&dir);
            if programs.is_empty() {
                println!("not running ({})", dir.display());
                return Ok(());
            }
            for (program, alive) in &programs {
                println!(
                    "{program:<24} {}",
                    if *alive { "running" } else { "STOPPED" }
                );
            }
            if programs.iter().any(|(_, alive)| !alive) {
                bail!(
                    "some programs of the {} have stopped; see {}",
                    service.what(),
                    dir.join("logs").display()
                );
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask {name} up|down|env|status [--dir DIR]"),
    }
}
