//! `cargo xtask cluster up|down|env|status`: a real control plane on loopback for demos and
//! manual testing, built from Go modules (see `tests/e2e`).

use std::path::{Path, PathBuf};

use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::{Cluster, stop_dir};
use anyhow::{Context, Result, bail};

fn default_dir() -> PathBuf {
    aegis_e2e::target_dir().join("controlplane").join("run")
}

fn dir_from(args: &[String]) -> PathBuf {
    args.iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map_or_else(default_dir, PathBuf::from)
}

fn running_programs(dir: &Path) -> Vec<(String, bool)> {
    let Ok(text) = std::fs::read_to_string(dir.join("pids")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            let alive = Path::new(&format!("/proc/{}", pid.trim())).exists();
            Some((name.to_owned(), alive))
        })
        .collect()
}

pub fn run(args: &[String]) -> Result<()> {
    let dir = dir_from(args);
    match args.first().map(String::as_str) {
        Some("up") => {
            if running_programs(&dir).iter().any(|(_, alive)| *alive) {
                bail!(
                    "a control plane already runs in {}; `cargo xtask cluster down` stops it",
                    dir.display()
                );
            }
            let _ = std::fs::remove_dir_all(&dir);
            let binaries = Binaries::ensure()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let cluster = runtime.block_on(Cluster::start(&binaries, &dir))?;
            let ready = std::fs::read_to_string(cluster.dir().join("ready")).unwrap_or_default();
            eprintln!(
                "control plane ready in {} s at {}",
                ready.trim(),
                cluster.server()
            );
            eprintln!("logs: {}", cluster.dir().join("logs").display());
            eprintln!(
                "try: aegis analyze --all (with the KUBECONFIG below); stop: cargo xtask cluster down"
            );
            println!("export KUBECONFIG={}", cluster.kubeconfig().display());
            cluster.detach();
            Ok(())
        }
        Some("down") => {
            let stopped = stop_dir(&dir)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            }
            if stopped.is_empty() {
                eprintln!("no control plane was running in {}", dir.display());
            } else {
                eprintln!("stopped {}", stopped.join(", "));
            }
            Ok(())
        }
        Some("env") => {
            let kubeconfig = dir.join("kubeconfig");
            if !kubeconfig.is_file() {
                bail!(
                    "no control plane in {}; start one with `cargo xtask cluster up`",
                    dir.display()
                );
            }
            println!("export KUBECONFIG={}", kubeconfig.display());
            Ok(())
        }
        Some("status") => {
            let programs = running_programs(&dir);
            if programs.is_empty() {
                println!("not running ({})", dir.display());
                return Ok(());
            }
            for (name, alive) in &programs {
                println!("{name:<24} {}", if *alive { "running" } else { "STOPPED" });
            }
            if programs.iter().any(|(_, alive)| !alive) {
                bail!(
                    "some programs of the control plane have stopped; see {}",
                    dir.join("logs").display()
                );
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask cluster up|down|env|status [--dir DIR]"),
    }
}
