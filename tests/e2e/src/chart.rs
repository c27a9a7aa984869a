//! The Helm chart in `deploy/helm/aegis`, rendered by the real Helm, and the operator's
//! ServiceAccount installed from it: what lets a test run `aegis operator run` with exactly the
//! permissions the chart grants.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::binaries::{Binaries, HELM};
use crate::cluster::Cluster;

/// The release name and namespace the tests install the chart as.
pub const RELEASE: &str = "aegis";
pub const NAMESPACE: &str = crate::operator::NAMESPACE;
/// The operator's ServiceAccount as the API server names its user.
pub const OPERATOR_ACCOUNT: &str = "system:serviceaccount:aegis-system:aegis";

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    crate::workspace_root().join("deploy/helm/aegis")
}

/// Runs Helm with its cache, configuration and data in `home` (nothing of the user's is read).
pub fn helm(home: &Path, args: &[&str]) -> Result<Output> {
    let helm = HELM.ensure()?;
    Command::new(helm)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .args(args)
        .output()
        .context("cannot run helm")
}

/// The chart rendered as `helm install aegis -n aegis-system --set …` would install it, CRDs
/// first, for Kubernetes 1.34 with the Prometheus Operator's API served.
pub fn render(home: &Path, set: &[&str]) -> Result<String> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().context("the chart's path is not UTF-8")?,
        "--namespace",
        NAMESPACE,
        "--include-crds",
        "--kube-version",
        "1.34.4",
        "--api-versions",
        "monitoring.coreos.com/v1",
    ];
    for value in set {
        args.extend(["--set", value]);
    }
    let output = helm(home, &args)?;
    if !output.status.success() {
        bail!(
            "helm template failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The objects of a multi-document YAML text.
pub fn documents(text: &str) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document).context("invalid YAML")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The operator as the chart installs it, without its pods: its ServiceAccount and RBAC, its
/// configuration, and a kubeconfig holding a token of that ServiceAccount (from the
/// TokenRequest API), for running `aegis operator run` as the chart's pods would.
pub struct ChartAccount {
    pub kubeconfig: PathBuf,
    /// The `aegis.toml` the chart renders.
    pub config: PathBuf,
}

impl ChartAccount {
    /// Renders the chart with no replicas and applies it with kubectl.
    pub fn install(binaries: &Binaries, cluster: &Cluster, dir: &Path) -> Result<Self> {
        let home = dir.join("helm");
        let started = std::time::Instant::now();
        let rendered = render(&home, &["replicaCount=0"])?;
        let rendered_in = started.elapsed();
        let manifests = dir.join("chart.yaml");
        std::fs::write(&manifests, &rendered)?;
        kubectl(
            binaries,
            cluster,
            &["apply", "--server-side", "--force-conflicts", "-f"],
            Some(&manifests),
        )?;
        eprintln!(
            "the chart rendered in {:.2} s and applied in {:.2} s",
            rendered_in.as_secs_f64(),
            started.elapsed().saturating_sub(rendered_in).as_secs_f64()
        );
        // The API server's authorizer follows RBAC objects by its own watch: the operator
        // starts once it knows the account's roles (as a Deployment's pods start only after
        // the chart's objects exist), so none of its first requests is refused.
        let waiting = std::time::Instant::now();
        for (verb, resource) in [("get", "leases/aegis-operator"), ("list", "pods")] {
            loop {
                let allowed = kubectl(
                    binaries,
                    cluster,
                    &[
                        "auth",
                        "can-i",
                        verb,
                        resource,
                        "-n",
                        NAMESPACE,
                        "--as",
                        OPERATOR_ACCOUNT,
                    ],
                    None,
                );
                if allowed.is_ok_and(|answer| answer.trim() == "yes") {
                    break;
                }
                if waiting.elapsed() > std::time::Duration::from_secs(30) {
                    bail!("the chart's RBAC does not let the operator {verb} {resource}");
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let config = documents(&rendered)?
            .into_iter()
            .find(|o| o["kind"] == "ConfigMap" && o["data"]["aegis.toml"].is_string())
            .context("the chart renders no aegis.toml")?;
        let config_path = dir.join("aegis.toml");
        std::fs::write(
            &config_path,
            config["data"]["aegis.toml"].as_str().unwrap_or_default(),
        )?;
        let token = kubectl(
            binaries,
            cluster,
            &[
                "create",
                "token",
                RELEASE,
                "-n",
                NAMESPACE,
                "--duration",
                "3h",
            ],
            None,
        )?;
        let admin = std::fs::read_to_string(cluster.kubeconfig())?;
        let mut kubeconfig = String::new();
        for line in admin.lines() {
            if line.trim_start().starts_with("token:") {
                let indent = &line[..line.len() - line.trim_start().len()];
                kubeconfig.push_str(&format!("{indent}token: {}\n", token.trim()));
            } else {
                kubeconfig.push_str(line);
                kubeconfig.push('\n');
            }
        }
        let kubeconfig_path = dir.join("kubeconfig-chart");
        std::fs::write(&kubeconfig_path, kubeconfig)?;
        Ok(Self {
            kubeconfig: kubeconfig_path,
            config: config_path,
        })
    }
}

/// The cluster's kubectl as its administrator, with `file` after the arguments; its stdout.
fn kubectl(
    binaries: &Binaries,
    cluster: &Cluster,
    args: &[&str],
    file: Option<&Path>,
) -> Result<String> {
    let mut command = Command::new(binaries.path("kubectl"));
    command
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args);
    if let Some(file) = file {
        command.arg(file);
    }
    let output = command.output().context("cannot run kubectl")?;
    if !output.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
