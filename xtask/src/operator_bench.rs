//! The operator's benchmark (SPEC §13: watching 10,000 pods in under 100 MB RSS), on the real
//! control plane with kwok nodes: the release `aegis operator run` started once 1,000 and
//! then 10,000 running pods exist, its resident memory once its caches are filled and its
//! first passes are done, its peak, how long its caches took to fill, and — at 10,000 pods,
//! idle — every request it sends, counted from the API server's audit log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::{Cluster, OPERATOR_USER, requests_by};
use aegis_e2e::process::{free_port, http_get, stop_dir};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

/// kwok nodes, and the pods each may hold.
const NODES: usize = 40;
const PODS_PER_NODE: usize = 250;
/// The namespace of the benchmark's pods.
const NAMESPACE: &str = "bench";
/// The operator's memory target at 10,000 pods, in MB (10^6 bytes).
const TARGET_MB: f64 = 100.0;

/// Runs the benchmark with `aegis` (a release build); returns the report's rows.
pub fn run(aegis: &Path, dir: &Path, idle: Duration) -> Result<String> {
    fresh_runtime(dir)?.block_on(measure(aegis, dir, idle))
}

/// A runtime for a benchmark on the control plane, with `dir` emptied of an earlier run (its
/// programs stopped first).
pub(crate) fn fresh_runtime(dir: &Path) -> Result<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if dir.exists() {
        stop_dir(dir)?;
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(runtime)
}

async fn measure(aegis: &Path, dir: &Path, idle: Duration) -> Result<String> {
    let binaries = Binaries::ensure()?;
    eprintln!("starting the control plane in {}…", dir.display());
    let cluster = Cluster::start(&binaries, &dir.join("cluster")).await?;
    let client = cluster.client().await?;
    let owner = prepare(&client).await?;
    let mut rows = String::new();
    for pods in [1_000, 10_000] {
        eprintln!("creating pods up to {pods}…");
        let created = Instant::now();
        create_pods(&client, &owner, pods).await?;
        wait_running(&client, pods).await?;
        eprintln!(
            "{pods} pods running ({:.0} s)",
            created.elapsed().as_secs_f64()
        );
        let mut operator = Operator::start(aegis, &cluster, dir, pods)?;
        let filled = operator.wait_leading(Duration::from_secs(300))?;
        // Its first passes over every namespace, then a quiet period measured.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let mut resident = 0_u64;
        for _ in 0..30 {
            resident = resident.max(operator.memory("VmRSS")?);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let peak = operator.memory("VmHWM")?;
        let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
        let (target, verdict) = if pods == 10_000 {
            let met = mb(resident) < TARGET_MB && mb(peak) < TARGET_MB;
            (
                format!("< {TARGET_MB:.0} MB"),
                if met { "meets" } else { "MISSES" },
            )
        } else {
            ("—".to_owned(), "reported")
        };
        rows.push_str(&format!(
            "| `aegis operator run` watching {} running pods (release build; leading {filled:.1} s after start, its caches filled) | RSS {:.1} MB, peak {:.1} MB | {target} | {verdict} |\n",
            thousands(pods),
            mb(resident),
            mb(peak)
        ));
        if pods == 10_000 {
            eprintln!(
                "counting the idle operator's requests for {} s…",
                idle.as_secs()
            );
            let from = k8s_openapi::jiff::Timestamp::now();
            tokio::time::sleep(idle).await;
            let to = k8s_openapi::jiff::Timestamp::now();
            operator.still_running()?;
            let counted = requests_by(&cluster.audit_log(), OPERATOR_USER, from, to);
            let total: usize = counted.values().sum();
            let per_hour = total as f64 * 3600.0 / idle.as_secs_f64();
            let detail: Vec<String> = counted
                .iter()
                .map(|(what, count)| format!("{what} {count}"))
                .collect();
            rows.push_str(&format!(
                "| API requests of the idle operator (10,000 pods, one replica, default Lease timings; {total} in {} s: {}) | {per_hour:.0} an hour | — | reported |\n",
                idle.as_secs(),
                detail.join(", ")
            ));
        }
        operator.stop();
    }
    Ok(rows)
}

/// `10000` as `10,000`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The kwok nodes, the pods' namespace and owner, the Incident CRD and the operator's
/// namespace; returns the owner's uid.
async fn prepare(client: &kube::Client) -> Result<String> {
    let post = PostParams::default();
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..NODES {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("bench-node-{i}"),
                         "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": format!("bench-node-{i}"), "type": "kwok"}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": PODS_PER_NODE.to_string()},
                       "capacity": {"cpu": "64", "memory": "256Gi", "pods": PODS_PER_NODE.to_string()}},
        }))?;
        nodes.create(&post, &node).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in [NAMESPACE, "aegis-system"] {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        namespaces.create(&post, &namespace).await?;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_yaml::from_str(&aegis_operator::crd::yaml()?)?;
    crds.create(&post, &crd).await?;
    // The pods' owner: a kind no controller manages, so the pods stay as created.
    let owners: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let owner: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "owner", "namespace": NAMESPACE}}))?;
    let owner = owners.create(&post, &owner).await?;
    owner.metadata.uid.context("the owner has a uid")
}

/// Creates pods `bench-<n>` until `total` exist, bound to the kwok nodes, with an image kwok
/// runs as healthy.
async fn create_pods(client: &kube::Client, owner: &str, total: usize) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let existing = api.list_metadata(&ListParams::default()).await?.items.len();
    let results: Vec<Result<()>> = futures::stream::iter(existing..total)
        .map(|i| {
            let api = api.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("bench-{i}"), "namespace": NAMESPACE,
                        "labels": {"app": format!("bench-{}", i % 50), "tier": "bench"},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner}]},
                    "spec": {"nodeName": format!("bench-node-{}", i % NODES),
                        "containers": [{"name": "app", "image": "nginx:1.27.2",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                            "env": [{"name": "MODE", "value": "bench"}],
                            "ports": [{"containerPort": 8080}]}]},
                }))?;
                api.create(&PostParams::default(), &pod).await?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Waits until `total` pods of the benchmark are Running.
async fn wait_running(client: &kube::Client, total: usize) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let waiting = api
            .list_metadata(
                &ListParams::default()
                    .fields("status.phase!=Running")
                    .limit(1),
            )
            .await?;
        if waiting.items.is_empty() {
            let all = api.list_metadata(&ListParams::default()).await?.items.len();
            if all >= total {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the {total} pods were not all Running after 20 minutes");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One `aegis operator run` process.
struct Operator {
    child: Child,
    port: u16,
}

impl Operator {
    fn start(aegis: &Path, cluster: &Cluster, dir: &Path, pods: usize) -> Result<Self> {
        let port = free_port()?;
        let log = std::fs::File::create(dir.join(format!("operator-{pods}.log")))?;
        let child = Command::new(aegis)
            .args(["operator", "run", "--leader-elect", "--identity", "bench"])
            .args(["-n", "aegis-system", "--metrics-addr"])
            .arg(format!("127.0.0.1:{port}"))
            .env("KUBECONFIG", cluster.operator_kubeconfig())
            .env("AEGIS_AGENT__STATE_DIR", dir.join("state"))
            .env("AEGIS_LLM__BACKEND", "rules")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", aegis.display()))?;
        Ok(Self { child, port })
    }

    /// Waits until it leads (its caches are filled before it does); returns the seconds.
    fn wait_leading(&mut self, timeout: Duration) -> Result<f64> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            self.still_running()?;
            let (code, body) = http_get(self.port, "/readyz");
            if code == 200 && body.contains("leader") {
                return Ok(started.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("the operator did not lead within {} s", timeout.as_secs())
    }

    fn still_running(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                bail!("the operator stopped ({status}); see its log in the bench directory")
            }
        }
    }

    /// A memory figure of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
    fn memory(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|line| {
                line.strip_prefix(field)?
                    .trim_start_matches(':')
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
            .with_context(|| format!("no {field} in /proc/{}/status", self.child.id()))
    }

    /// SIGTERM, as Kubernetes stops a pod; SIGKILL past 10 s.
    fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
