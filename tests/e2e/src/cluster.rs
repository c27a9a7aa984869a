//! Starting and stopping the control plane on loopback.
//!
//! Every run has its own directory (data, certificates, logs, kubeconfig) and free ports, so
//! several test binaries can each run a cluster at once. Each program runs in its own process
//! group; stopping sends SIGTERM to the groups, then SIGKILL past a deadline.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::binaries::Binaries;
pub use crate::process::stop_dir;
use crate::process::{Group, free_port, poll};

/// The bearer token of the cluster's administrator (in `system:masters`). The API server only
/// listens on 127.0.0.1.
const ADMIN_TOKEN: &str = "aegis-e2e-admin-token";

/// A second administrator, `aegis-operator`, for the operator under test: every request it
/// makes is in the audit log, so a test can count them.
const OPERATOR_TOKEN: &str = "aegis-e2e-operator-token";

/// The user of [`Cluster::operator_kubeconfig`].
pub const OPERATOR_USER: &str = "aegis-operator";

/// Fake nodes kwok manages, with the capacity of the mock world's nodes.
const NODES: [&str; 3] = ["worker-1", "worker-2", "worker-3"];

/// A running control plane.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    server: String,
    processes: Group,
    /// How the API server was started, to start it again.
    api_server_args: Vec<String>,
}

impl Cluster {
    /// Starts a control plane in `dir` (created; must not hold another cluster).
    pub async fn start(binaries: &Binaries, dir: &Path) -> Result<Self> {
        let started = Instant::now();
        for sub in ["etcd", "pki", "logs"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let dir = dir.canonicalize()?;
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let api_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");
        let mut cluster = Self {
            dir: dir.clone(),
            server: server.clone(),
            processes: Group::new(&dir)?,
            api_server_args: Vec::new(),
        };

        let sa_key = dir.join("pki/sa.key");
        let sa_pub = dir.join("pki/sa.pub");
        let status = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&sa_key)
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .context("openssl is needed to make the service-account key")?;
        if !status.success() {
            bail!("openssl genrsa failed");
        }
        let status = Command::new("openssl")
            .args(["rsa", "-in"])
            .arg(&sa_key)
            .args(["-pubout", "-out"])
            .arg(&sa_pub)
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("openssl rsa -pubout failed");
        }
        fs::write(
            dir.join("pki/tokens.csv"),
            format!(
                "{ADMIN_TOKEN},admin,admin,system:masters\n{OPERATOR_TOKEN},{OPERATOR_USER},{OPERATOR_USER},system:masters\n"
            ),
        )?;
        let kubeconfig = dir.join("kubeconfig");
        cluster.spawn(
            binaries,
            "etcd",
            &[
                "--name=aegis-e2e".to_owned(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-cluster=aegis-e2e=http://127.0.0.1:{peer_port}"),
                "--quota-backend-bytes=1073741824".to_owned(),
                "--unsafe-no-fsync=true".to_owned(),
            ],
        )?;
        poll("etcd", Duration::from_secs(30), || async move {
            Ok(TcpStream::connect(("127.0.0.1", etcd_port)).is_ok())
        })
        .await?;

        // Writes to workloads are audited, so tests can tell when each reached the API server.
        let audit_policy = dir.join("audit-policy.yaml");
        std::fs::write(&audit_policy, AUDIT_POLICY)
            .with_context(|| format!("cannot write {}", audit_policy.display()))?;
        cluster.api_server_args = vec![
            format!("--audit-policy-file={}", audit_policy.display()),
            format!("--audit-log-path={}", dir.join("audit.log").display()),
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", dir.join("pki").display()),
            format!("--token-auth-file={}", dir.join("pki/tokens.csv").display()),
            "--authorization-mode=RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!("--service-account-key-file={}", sa_pub.display()),
            format!("--service-account-signing-key-file={}", sa_key.display()),
            "--service-cluster-ip-range=10.96.0.0/16".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--enable-priority-and-fairness=false".to_owned(),
            "--endpoint-reconciler-type=none".to_owned(),
        ];
        let api_server_args = cluster.api_server_args.clone();
        cluster.spawn(binaries, "kube-apiserver", &api_server_args)?;
        // The API server makes a self-signed CA and serving certificate for 127.0.0.1 in its
        // certificate directory; clients trust that CA.
        let serving_cert = dir.join("pki/apiserver.crt");
        let watched = serving_cert.clone();
        poll(
            "the API server's certificate",
            Duration::from_secs(60),
            move || {
                let watched = watched.clone();
                async move {
                    Ok(fs::read_to_string(&watched)
                        .is_ok_and(|t| t.matches("END CERTIFICATE").count() >= 2))
                }
            },
        )
        .await?;
        let chain = fs::read_to_string(&serving_cert)?;
        let ca = chain
            .rfind("-----BEGIN CERTIFICATE-----")
            .map(|start| &chain[start..])
            .context("the API server's certificate file holds no CA")?;
        let ca_file = dir.join("pki/ca.crt");
        fs::write(&ca_file, ca)?;
        for (file, token) in [
            (kubeconfig.clone(), ADMIN_TOKEN),
            (dir.join("kubeconfig-operator"), OPERATOR_TOKEN),
        ] {
            fs::write(
                &file,
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: aegis-e2e\n  cluster:\n    server: {server}\n    certificate-authority: {}\ncontexts:\n- name: aegis-e2e\n  context:\n    cluster: aegis-e2e\n    user: admin\n    namespace: default\ncurrent-context: aegis-e2e\nusers:\n- name: admin\n  user:\n    token: {token}\n",
                    ca_file.display()
                ),
            )?;
        }
        let client = Self::client_for(&kubeconfig).await?;
        api_server_ready(&client).await?;

        let kubeconfig_flag = format!("--kubeconfig={}", kubeconfig.display());
        cluster.spawn(binaries, "kube-controller-manager", &[
            kubeconfig_flag.clone(),
            "--leader-elect=false".to_owned(),
            "--secure-port=0".to_owned(),
            format!("--service-account-private-key-file={}", sa_key.display()),
            "--use-service-account-credentials=false".to_owned(),
            // Thousands of pods (the K8sGPT comparison, the operator benchmark) are created
            // and reported on at the API server's pace, not the default 20 requests a second.
            "--kube-api-qps=200".to_owned(),
            "--kube-api-burst=400".to_owned(),
            "--controllers=*,-nodeipam,-csrsigning,-csrapproving,-csrcleaner,-bootstrapsigner,-tokencleaner".to_owned(),
        ])?;
        cluster.spawn(
            binaries,
            "kube-scheduler",
            &[
                kubeconfig_flag.clone(),
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
                "--kube-api-qps=200".to_owned(),
                "--kube-api-burst=400".to_owned(),
            ],
        )?;
        // kwok plays the kubelet by the world model of the mock mode.
        let world_file = crate::workspace_root().join("examples/mock-world.yaml");
        let world = aegis_cluster::sim::world::World::parse(
            &fs::read_to_string(&world_file)
                .with_context(|| format!("reading {}", world_file.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", world_file.display()))?;
        let stages = dir.join("kwok-stages.yaml");
        fs::write(&stages, crate::stages::pod_stages(&world))?;
        cluster.spawn(
            binaries,
            "kwok",
            &[
                kubeconfig_flag.clone(),
                format!("--config={}", stages.display()),
                "--manage-all-nodes=false".to_owned(),
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".to_owned(),
                "--cidr=10.244.0.0/16".to_owned(),
                "--node-ip=10.0.0.1".to_owned(),
                "--node-lease-duration-seconds=40".to_owned(),
            ],
        )?;
        cluster.create_nodes(&client).await?;
        // The default ServiceAccount exists once the controller manager runs; pods need it.
        let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(client.clone(), "default");
        poll(
            "the default service account",
            Duration::from_secs(60),
            move || {
                let accounts = accounts.clone();
                async move { Ok(accounts.get_opt("default").await?.is_some()) }
            },
        )
        .await?;
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        poll("kwok's nodes", Duration::from_secs(60), move || {
            let nodes = nodes.clone();
            async move {
                let list = nodes.list(&kube::api::ListParams::default()).await?;
                Ok(list.items.len() == NODES.len()
                    && list.items.iter().all(|n| {
                        n.status
                            .iter()
                            .flat_map(|s| s.conditions.iter().flatten())
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    }))
            }
        })
        .await?;
        fs::write(
            dir.join("ready"),
            format!("{:.1}\n", started.elapsed().as_secs_f64()),
        )?;
        Ok(cluster)
    }

    /// Stops the API server and starts it again on the same port, etcd and certificates;
    /// returns once it is ready. Clients keep their configuration.
    pub async fn restart_api_server(&mut self, binaries: &Binaries) -> Result<()> {
        self.processes.restart(
            "kube-apiserver",
            &binaries.path("kube-apiserver"),
            &self.api_server_args,
        )?;
        api_server_ready(&self.client().await?).await
    }

    async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A client of the cluster's administrator.
    pub async fn client(&self) -> Result<kube::Client> {
        Self::client_for(&self.kubeconfig()).await
    }

    async fn create_nodes(&self, client: &kube::Client) -> Result<()> {
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        for name in NODES {
            let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                        "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"},
                    },
                    "status": {
                        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                    },
                }),
            )?;
            nodes
                .create(&kube::api::PostParams::default(), &node)
                .await
                .with_context(|| format!("creating node {name}"))?;
        }
        Ok(())
    }

    fn spawn(&mut self, binaries: &Binaries, program: &str, args: &[String]) -> Result<()> {
        self.processes
            .spawn(program, &binaries.path(program), args, &[])
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The administrator's kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A kubeconfig of the `aegis-operator` administrator, whose every request is audited.
    pub fn operator_kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig-operator")
    }

    /// The API server's audit log: one JSON event per write to a workload or Service, and
    /// per request of [`OPERATOR_USER`].
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Leaves the programs running after this value is dropped (for `cargo xtask cluster up`);
    /// [`stop_dir`] stops them later.
    pub fn detach(mut self) {
        self.processes.detach();
    }
}

/// The successful, non-dry-run writes (`patch`) AEGIS made to one object (kubectl's are the
/// test's own), from the API server's audit log, with when the server received each.
pub fn audited_writes(log: &Path, resource: &str, name: &str) -> Vec<k8s_openapi::jiff::Timestamp> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            event["verb"] == "patch"
                && event["objectRef"]["resource"] == resource
                && event["objectRef"]["name"] == name
                && event["objectRef"]["subresource"].is_null()
                && event["responseStatus"]["code"] == 200
                && !event["userAgent"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("kubectl")
                && !event["requestURI"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("dryRun")
        })
        .filter_map(|event| event["requestReceivedTimestamp"].as_str()?.parse().ok())
        .collect()
}

/// Waits until the API server says it is ready.
async fn api_server_ready(client: &kube::Client) -> Result<()> {
    poll("kube-apiserver", Duration::from_secs(90), move || {
        let client = client.clone();
        async move {
            let request = http::Request::get("/readyz").body(Vec::new())?;
            Ok(client
                .request_text(request)
                .await
                .is_ok_and(|body| body.trim() == "ok"))
        }
    })
    .await
}

/// The API server's audit policy: the metadata of every write to workloads and Services.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - group: apps
        resources: [deployments, statefulsets, daemonsets]
      - group: \"\"
        resources: [services, pods]
  - level: Metadata
    users: [aegis-operator, \"system:serviceaccount:aegis-system:aegis\"]
  - level: None
";

/// Every request of `user` in the API server's audit log, once each (its last stage).
pub fn audit_events_of(log: &Path, user: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut by_id: std::collections::BTreeMap<String, serde_json::Value> =
        std::collections::BTreeMap::new();
    for event in text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["user"]["username"] == user)
    {
        by_id.insert(
            event["auditID"].as_str().unwrap_or_default().to_owned(),
            event,
        );
    }
    by_id.into_values().collect()
}

/// The requests `user` started in `[from, to)`, from the API server's audit log, counted by
/// `verb resource` (a watch is one request however long it lasts).
pub fn requests_by(
    log: &Path,
    user: &str,
    from: k8s_openapi::jiff::Timestamp,
    to: k8s_openapi::jiff::Timestamp,
) -> std::collections::BTreeMap<String, usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    let mut counts = std::collections::BTreeMap::new();
    for event in text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
    {
        let received = event["requestReceivedTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
        if event["user"]["username"] != user
            || !received.is_some_and(|t| from <= t && t < to)
            || !seen.insert(event["auditID"].as_str().unwrap_or_default().to_owned())
        {
            continue;
        }
        let resource = event["objectRef"]["resource"]
            .as_str()
            .or_else(|| event["requestURI"].as_str())
            .unwrap_or_default();
        *counts
            .entry(format!(
                "{} {resource}",
                event["verb"].as_str().unwrap_or_default()
            ))
            .or_insert(0) += 1;
    }
    counts
}
