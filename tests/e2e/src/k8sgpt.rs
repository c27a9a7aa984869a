//! K8sGPT, the peer AEGIS is measured against, built from its pinned source.
//!
//! Its Go module is not served by the module proxy, but its dependencies are: the source comes as
//! a tarball in the peers directory beside the workspace (`shared/peers/k8sgpt-<commit>.tar.gz`,
//! see that directory's README) and is built once per pin into `target/peers/`. Its analyzers
//! need no AI backend: `k8sgpt analyze --kubeconfig FILE -o json` without `--explain`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::binaries::{run, which_go};

/// The pinned source's file name (without `.tar.gz`): K8sGPT at commit 05247a85 (2026-08-19,
/// after v0.4.36).
pub const PINNED: &str = "k8sgpt-05247a85";

/// The environment variable naming the tarball when it is not in a `shared/peers/` directory
/// beside (or above) the workspace.
pub const SOURCE_ENV: &str = "AEGIS_K8SGPT_SOURCE";

/// The built K8sGPT.
#[derive(Debug, Clone)]
pub struct K8sgpt {
    pub path: PathBuf,
}

impl K8sgpt {
    /// Where the built program is cached.
    pub fn cache_path() -> PathBuf {
        crate::target_dir()
            .join("peers")
            .join(PINNED)
            .join("k8sgpt")
    }

    /// Returns the cached K8sGPT, building it from the pinned source first when it is missing.
    pub fn ensure() -> Result<Self> {
        let path = Self::cache_path();
        if path.is_file() {
            return Ok(Self { path });
        }
        let tarball = source()?;
        let go = which_go()?;
        let dir = path.parent().context("the cache path has a parent")?;
        // Unpacked and built in a scratch directory, moved into place when done, so an
        // interrupted or concurrent build never leaves half a program behind.
        let scratch = dir.with_extension(format!("building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let started = Instant::now();
        run(
            Command::new("tar")
                .arg("xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&scratch),
            &format!("unpacking {}", tarball.display()),
        )?;
        let module = scratch.join("k8sgpt");
        run(
            Command::new(&go).current_dir(&module).args([
                "build",
                "-trimpath",
                "-o",
                "k8sgpt",
                ".",
            ]),
            "go build of K8sGPT",
        )?;
        std::fs::create_dir_all(dir)?;
        std::fs::rename(module.join("k8sgpt"), &path)
            .with_context(|| format!("cannot move K8sGPT to {}", path.display()))?;
        let _ = std::fs::remove_dir_all(&scratch);
        eprintln!("built K8sGPT in {:.0} s", started.elapsed().as_secs_f64());
        Ok(Self { path })
    }

    /// `k8sgpt analyze -o json` on `kubeconfig`, as a command; its configuration and cache go to
    /// `home` (K8sGPT writes `~/.config/k8sgpt/` on first use), so the caller's are untouched.
    pub fn analyze(&self, kubeconfig: &Path, home: &Path) -> Command {
        let mut command = Command::new(&self.path);
        command
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .args(["analyze", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["-o", "json"]);
        command
    }
}

/// The pinned source tarball: `$AEGIS_K8SGPT_SOURCE`, else `shared/peers/<PINNED>.tar.gz` in the
/// workspace's parent directory or any directory above it, or in `/work/shared/peers/`.
pub fn source() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(SOURCE_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{SOURCE_ENV}={} is not a file", path.display());
    }
    let file = format!("{PINNED}.tar.gz");
    let root = crate::workspace_root();
    let mut candidates: Vec<PathBuf> = root
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared").join("peers").join(&file))
        .collect();
    // The project machine keeps the peers beside its checkout in /work; a clone made elsewhere
    // (CI's) still finds them there.
    let machine = Path::new("/work/shared/peers").join(&file);
    if !candidates.contains(&machine) {
        candidates.push(machine);
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    bail!(
        "K8sGPT's pinned source {file} was not found (looked in {}); set {SOURCE_ENV} to its path",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
