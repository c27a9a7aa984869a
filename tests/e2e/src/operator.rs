//! `aegis operator run` on the local control plane: replicas as processes, the CRDs installed
//! as a user installs them, and the events a test adds to give it more passes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::binaries::Binaries;
use crate::cluster::Cluster;
use crate::demo::kubectl;
use crate::process::http_get;

/// The operator's namespace in the tests.
pub const NAMESPACE: &str = "aegis-system";

/// One `aegis operator run` replica.
pub struct Replica {
    pub identity: String,
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Replica {
    /// Starts a replica taking part in leader election, with the test's short timings and
    /// the rules engine; `env` overrides or adds settings.
    pub fn start(
        binary: &Path,
        cluster: &Cluster,
        dir: &Path,
        identity: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_as(
            binary,
            &cluster.operator_kubeconfig(),
            None,
            dir,
            identity,
            env,
        )
    }

    /// [`Replica::start`] with the credentials of `kubeconfig` and, when given, the
    /// configuration file `config` beneath the test's settings (the chart's `aegis.toml`).
    pub fn start_as(
        binary: &Path,
        kubeconfig: &Path,
        config: Option<&Path>,
        dir: &Path,
        identity: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let port = crate::process::free_port().expect("a free port");
        let log = dir.join(format!("{identity}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut command = crate::aegis_command(binary);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .args([
                "operator",
                "run",
                "--leader-elect",
                "--identity",
                identity,
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "-n",
                NAMESPACE,
                "-v",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env(
                "AEGIS_AGENT__STATE_DIR",
                dir.join(format!("state-{identity}")),
            )
            .env("AEGIS_AGENT__GRACE_PERIOD_SECONDS", "5")
            .env("AEGIS_LLM__BACKEND", "rules")
            .env("AEGIS_OPERATOR__NAMESPACE_SELECTOR", "aegis.io/watch=true")
            .env("AEGIS_OPERATOR__RETENTION_SECONDS", "20")
            .env("AEGIS_OPERATOR__DEBOUNCE_MILLIS", "300")
            .env("AEGIS_OPERATOR__LEASE_DURATION_SECONDS", "6")
            .env("AEGIS_OPERATOR__RENEW_DEADLINE_SECONDS", "4")
            .env("AEGIS_OPERATOR__RETRY_PERIOD_SECONDS", "1")
            .env("AEGIS_OBSERVABILITY__LOG_LEVEL", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("aegis operator starts");
        Self {
            identity: identity.to_owned(),
            child,
            port,
            log,
        }
    }

    /// A GET on its metrics and probes server: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the cluster's kubectl with `input` on its stdin; fails the test when it fails.
pub fn kubectl_stdin(binaries: &Binaries, cluster: &Cluster, args: &[&str], input: &str) {
    use std::io::Write;
    let mut child = Command::new(binaries.path("kubectl"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writes");
    let output = child.wait_with_output().expect("kubectl ends");
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Installs the Incident CRD as `aegis operator crd` prints it (and, with `k8sgpt`, K8sGPT's
/// Result CRD), waits until they are established, and creates the operator's namespace.
pub fn install_crds(binaries: &Binaries, cluster: &Cluster, binary: &Path, k8sgpt: bool) {
    let crd = Command::new(binary)
        .args(["operator", "crd"])
        .output()
        .expect("aegis runs");
    assert!(crd.status.success());
    kubectl_stdin(
        binaries,
        cluster,
        &["apply", "-f", "-"],
        &String::from_utf8_lossy(&crd.stdout),
    );
    let mut established = vec!["crd/incidents.aegis.io"];
    if k8sgpt {
        let results_crd =
            serde_json::to_string(&aegis_k8sgpt::result::result_crd()).expect("serializes");
        kubectl_stdin(binaries, cluster, &["apply", "-f", "-"], &results_crd);
        established.push("crd/results.core.k8sgpt.ai");
    }
    let mut args = vec!["wait", "--for=condition=established"];
    args.extend(established);
    args.push("--timeout=60s");
    kubectl(binaries, cluster, &args);
    kubectl(binaries, cluster, &["create", "namespace", NAMESPACE]);
}

/// Creates `count` Warning events (`BackOff`, `message`) about `pod`, named `<prefix>-<n>`.
pub async fn warning_events(
    client: &kube::Client,
    pod: &k8s_openapi::api::core::v1::Pod,
    prefix: &str,
    count: usize,
    message: &str,
) {
    use k8s_openapi::api::core::v1::Event;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let events: kube::Api<Event> = kube::Api::namespaced(client.clone(), namespace);
    for n in 0..count {
        let event: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{prefix}-{n}"), "namespace": namespace},
            "involvedObject": {"kind": "Pod", "namespace": namespace,
                "name": pod.metadata.name, "uid": pod.metadata.uid},
            "reason": "BackOff", "type": "Warning",
            "message": message,
            "count": 1,
        }))
        .expect("an event");
        events
            .create(&kube::api::PostParams::default(), &event)
            .await
            .expect("event created");
    }
}
