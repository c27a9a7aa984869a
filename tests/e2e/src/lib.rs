//! A real Kubernetes control plane on loopback, built from Go modules, for AEGIS's end-to-end
//! tests and demos: etcd, kube-apiserver, kube-controller-manager and kube-scheduler of one
//! pinned release, and kwok standing in for kubelets on fake nodes.
//!
//! [`binaries::Binaries::ensure`] builds the programs once (cached under `target/`);
//! [`cluster::Cluster::start`] runs them with per-run ports and data directories, so parallel
//! test binaries do not collide, and stops them (process groups and all) when dropped.

pub mod binaries;
pub mod chart;
pub mod cluster;
pub mod demo;
pub mod k8sgpt;
pub mod measure;
pub mod ollama;
pub mod operator;
pub mod process;
pub mod stages;
pub mod versus;

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `tests/e2e`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// A command running the `aegis` binary at `binary` with none of the caller's `AEGIS_*`
/// settings or `OLLAMA_HOST`, so a test sets exactly what it means to.
pub fn aegis_command(binary: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("AEGIS_") || key == "OLLAMA_HOST" {
            command.env_remove(&key);
        }
    }
    command
}

/// The `aegis` binary, built from this workspace. The build unifies features as the
/// workspace's `cargo test --workspace --all-targets` does, so after that command it is a
/// no-op and does not rebuild the binary other tests run.
pub fn aegis_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--locked", "--workspace", "--all-targets"])
        .current_dir(workspace_root())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "cargo build -p aegis-cli failed ({status})"
    );
    let path = target_dir().join("debug").join("aegis");
    anyhow::ensure!(path.is_file(), "{} was not built", path.display());
    Ok(path)
}
