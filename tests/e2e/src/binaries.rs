//! Building the control-plane programs from their Go modules, once per version.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The Kubernetes release the control plane runs (`tools/controlplane/go.mod` pins it too).
pub const KUBERNETES_VERSION: &str = "v1.34.4";
/// The kwok release that plays the kubelets.
pub const KWOK_VERSION: &str = "v0.7.0";

/// The programs, by file name.
pub const PROGRAMS: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
];

/// A directory holding every control-plane program.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    /// The path of one program.
    pub fn path(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }

    /// The cache directory for the pinned versions.
    pub fn cache_dir() -> PathBuf {
        crate::target_dir()
            .join("controlplane")
            .join(format!("k8s-{KUBERNETES_VERSION}-kwok-{KWOK_VERSION}"))
    }

    /// Returns the cached programs, building the missing ones first.
    pub fn ensure() -> Result<Self> {
        let dir = Self::cache_dir();
        let binaries = Self { dir: dir.clone() };
        if PROGRAMS.iter().all(|p| binaries.path(p).is_file()) {
            return Ok(binaries);
        }
        let go = which_go()?;
        std::fs::create_dir_all(&dir)?;
        // Build into a scratch directory and move into place, so a concurrent or interrupted
        // build never leaves half a program behind.
        let scratch = dir.with_extension(format!("building-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        let module = crate::workspace_root().join("tools").join("controlplane");
        let started = Instant::now();
        run(
            Command::new(&go)
                .current_dir(&module)
                .args(["build", "-trimpath", "-o"])
                .arg(&scratch)
                .args([
                    "k8s.io/kubernetes/cmd/kube-apiserver",
                    "k8s.io/kubernetes/cmd/kube-controller-manager",
                    "k8s.io/kubernetes/cmd/kube-scheduler",
                    "k8s.io/kubernetes/cmd/kubectl",
                    "./etcd",
                ]),
            "go build of the Kubernetes control plane",
        )?;
        run(
            Command::new(&go).env("GOBIN", &scratch).args([
                "install",
                "-trimpath",
                &format!("sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"),
            ]),
            "go install of kwok",
        )?;
        for program in PROGRAMS {
            std::fs::rename(scratch.join(program), binaries.path(program))
                .with_context(|| format!("{program} was not built"))?;
        }
        let _ = std::fs::remove_dir_all(&scratch);
        eprintln!(
            "built the control plane in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(binaries)
    }
}

pub(crate) fn which_go() -> Result<PathBuf> {
    let output = Command::new("go").arg("version").output();
    match output {
        Ok(output) if output.status.success() => Ok(PathBuf::from("go")),
        _ => bail!(
            "the Go toolchain (go 1.24 or newer) is needed to build the control plane from its modules; install Go and run again"
        ),
    }
}

pub(crate) fn run(command: &mut Command, what: &str) -> Result<()> {
    eprintln!("{what}…");
    let status = command
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
