//! AEGIS and K8sGPT side by side on one cluster: the demo incidents plus filler workloads
//! (Deployments of 20 pods, each with its Service; one in ten pulls an image that does not exist),
//! both tools run in turn with the same kubeconfig and judged the same way — wall time, peak
//! RSS, the API requests each sent (from the API server's audit log), and which demo failures each
//! found, missed or raised falsely.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

use aegis_core::state::pod_is_ready;

use crate::cluster::{Cluster, OPERATOR_USER, requests_by};
use crate::demo::EXPECTED;
use crate::k8sgpt::K8sgpt;
use crate::measure::Measurer;

/// The filler's namespace.
pub const NAMESPACE: &str = "bench";
/// Pods per filler Deployment.
const REPLICAS: usize = 20;
/// One filler Deployment in this many pulls an image that does not exist.
const FAILING_EVERY: usize = 10;
/// An image kwok's stages run as healthy, and one the world does not have.
const HEALTHY_IMAGE: &str = "nginx:1.27.2";
const MISSING_IMAGE: &str = "ghcr.io/aegis-demo/filler:0.0.0-missing";
/// Pods a filler node holds; its 16 GiB keep the demo's 24 GiB trainer unschedulable.
const NODE_PODS: usize = 250;

/// The demo workloads broken on the control plane: those the e2e tests expect, and the
/// api-gateway, whose container reads a key of a ConfigMap that does not exist (kwok runs it
/// anyway, a kubelet would refuse to start it).
pub fn demo_failures() -> Vec<&'static str> {
    let mut names: Vec<&str> = EXPECTED.iter().map(|(name, _)| *name).collect();
    names.push("api-gateway");
    names
}

/// The filler workloads created so far.
#[derive(Debug, Default)]
pub struct Filler {
    pub deployments: usize,
}

impl Filler {
    fn name(i: usize) -> String {
        format!("filler-{i:04}")
    }

    fn failing(i: usize) -> bool {
        i % FAILING_EVERY == FAILING_EVERY - 1
    }

    /// The filler's pods.
    pub fn pods(&self) -> usize {
        self.deployments * REPLICAS
    }

    /// The filler Deployments whose pods cannot pull their image.
    pub fn failing_names(&self) -> BTreeSet<String> {
        (0..self.deployments)
            .filter(|i| Self::failing(*i))
            .map(Self::name)
            .collect()
    }

    /// Grows the filler to `pods` pods (nodes, Deployments and Services), and waits until every
    /// healthy pod runs Ready and every failing one has failed to pull.
    pub async fn grow(&mut self, client: &kube::Client, pods: usize) -> Result<()> {
        let post = PostParams::default();
        if self.deployments == 0 {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            let namespace: Namespace =
                serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
            namespaces.create(&post, &namespace).await?;
        }
        let nodes: Api<Node> = Api::all(client.clone());
        let have = nodes
            .list_metadata(&ListParams::default().labels("aegis.dev/filler=true"))
            .await?
            .items
            .len();
        for i in have..=pods.div_ceil(NODE_PODS) {
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": format!("filler-node-{i}"),
                             "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                             "labels": {"kubernetes.io/hostname": format!("filler-node-{i}"), "kubernetes.io/os": "linux",
                                        "type": "kwok", "aegis.dev/filler": "true"}},
                "status": {"allocatable": {"cpu": "16", "memory": "16Gi", "pods": NODE_PODS.to_string()},
                           "capacity": {"cpu": "16", "memory": "16Gi", "pods": NODE_PODS.to_string()}},
            }))?;
            nodes.create(&post, &node).await?;
        }
        let wanted = pods.div_ceil(REPLICAS);
        let created: Vec<Result<()>> = futures::stream::iter(self.deployments..wanted)
            .map(|i| create_filler(client, i))
            .buffer_unordered(8)
            .collect()
            .await;
        created.into_iter().collect::<Result<()>>()?;
        self.deployments = self.deployments.max(wanted);
        self.settled(client).await
    }

    /// Waits until the filler's pods are in the states they are meant to reach, and the
    /// controllers have said so: the healthy Deployments' status counts every replica available
    /// and their Services' EndpointSlices (and Endpoints) every pod ready.
    async fn settled(&self, client: &kube::Client) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
        let legacy: Api<Endpoints> = Api::namespaced(client.clone(), NAMESPACE);
        let failing_names = self.failing_names();
        let failing = failing_names.len() * REPLICAS;
        let healthy = self.pods() - failing;
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let list = pods.list(&ListParams::default()).await?;
            let ready = list.items.iter().filter(|p| pod_is_ready(p)).count();
            let pulling = list.items.iter().filter(|p| cannot_pull(p)).count();
            let available: usize = deployments
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter_map(|d| d.status.as_ref()?.available_replicas)
                .map(|n| usize::try_from(n).unwrap_or_default())
                .sum();
            let endpoints = slices
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter())
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .count();
            // K8sGPT reads the older Endpoints objects, which their own controller keeps.
            let addresses = legacy
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .flat_map(|e| e.subsets.iter().flatten())
                .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
            if ready == healthy
                && pulling == failing
                && list.items.len() == self.pods()
                && available == healthy
                && endpoints == healthy
                && addresses == healthy
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the filler did not settle: {} pods, {ready} ready of {healthy}, {pulling} failing to pull of {failing}, {available} available in Deployments' status, {endpoints} ready endpoints, {addresses} ready Endpoints addresses",
                    list.items.len()
                );
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
}

fn cannot_pull(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .any(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("ImagePullBackOff")
        })
}

/// Filler Deployment `i` and its Service.
async fn create_filler(client: &kube::Client, i: usize) -> Result<()> {
    let name = Filler::name(i);
    let image = if Filler::failing(i) {
        MISSING_IMAGE
    } else {
        HEALTHY_IMAGE
    };
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"nodeSelector": {"aegis.dev/filler": "true"},
                              "containers": [{"name": "web", "image": image,
                                  "ports": [{"name": "http", "containerPort": 80}],
                                  "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                                "limits": {"memory": "64Mi"}}}]}}},
    }))?;
    let service: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]},
    }))?;
    let post = PostParams::default();
    Api::namespaced(client.clone(), NAMESPACE)
        .create(&post, &deployment)
        .await
        .with_context(|| format!("creating Deployment {name}"))?;
    Api::namespaced(client.clone(), NAMESPACE)
        .create(&post, &service)
        .await
        .with_context(|| format!("creating Service {name}"))?;
    Ok(())
}

/// One object a tool reported on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The workload the tool named for it, when it named one.
    pub workload: Option<String>,
}

/// The kinds through which a workload's failure shows: the workload, its pods and ReplicaSets,
/// its Service, its claims.
const FAILURE_KINDS: [&str; 9] = [
    "Pod",
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Service",
    "PersistentVolumeClaim",
];

impl Finding {
    /// Whether it names `workload` of `namespace`: the workload itself, or an object carrying
    /// its name as a prefix (its pods, ReplicaSets, Service, ConfigMaps).
    fn concerns(&self, namespace: Option<&str>, workload: &str) -> bool {
        let of = |name: &str| {
            name == workload
                || name
                    .strip_prefix(workload)
                    .is_some_and(|rest| rest.starts_with('-'))
        };
        namespace.is_none_or(|ns| ns == self.namespace)
            && (of(&self.name) || self.workload.as_deref().is_some_and(of))
    }

    fn shown(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One tool's run.
#[derive(Debug)]
pub struct Run {
    pub tool: String,
    pub wall: Duration,
    pub peak_mb: f64,
    /// Its API requests, by verb and resource.
    pub requests: BTreeMap<String, usize>,
    pub findings: Vec<Finding>,
    /// What it printed on standard output.
    pub stdout: String,
}

impl Run {
    pub fn request_count(&self) -> usize {
        self.requests.values().sum()
    }
}

/// Runs `command` measured, with `cluster`'s audited user, and counts its requests.
fn measured_run(
    tool: &str,
    command: &Command,
    measurer: &Measurer,
    cluster: &Cluster,
    scratch: &Path,
) -> Result<(Run, String)> {
    let from = k8s_openapi::jiff::Timestamp::now();
    let measured = measurer.run(command, scratch)?;
    if !measured.output.status.success() {
        bail!(
            "{tool} failed ({}): {}",
            measured.output.status,
            String::from_utf8_lossy(&measured.output.stderr)
        );
    }
    // The audit log is written as requests finish; give the last entries a moment.
    std::thread::sleep(Duration::from_secs(1));
    let to = k8s_openapi::jiff::Timestamp::now();
    let requests = requests_by(&cluster.audit_log(), OPERATOR_USER, from, to);
    let run = Run {
        tool: tool.to_owned(),
        wall: measured.wall,
        peak_mb: measured.peak_mb(),
        requests,
        findings: Vec::new(),
        stdout: String::from_utf8_lossy(&measured.output.stdout).into_owned(),
    };
    let stderr = String::from_utf8_lossy(&measured.output.stderr).into_owned();
    Ok((run, stderr))
}

/// `k8sgpt analyze -o json` (its default analyzers, no AI backend) on the cluster.
pub fn run_k8sgpt(
    k8sgpt: &K8sgpt,
    measurer: &Measurer,
    cluster: &Cluster,
    scratch: &Path,
) -> Result<Run> {
    let home = scratch.join("k8sgpt-home");
    std::fs::create_dir_all(&home)?;
    let command = k8sgpt.analyze(&cluster.operator_kubeconfig(), &home);
    let (mut run, _) = measured_run("K8sGPT", &command, measurer, cluster, scratch)?;
    let report = aegis_k8sgpt::result::Report::parse(&run.stdout)
        .with_context(|| format!("K8sGPT's output is not its JSON report: {}", run.stdout))?;
    run.findings = report
        .results
        .iter()
        .map(|result| {
            let (namespace, name) = result
                .name
                .split_once('/')
                .unwrap_or(("", result.name.as_str()));
            Finding {
                kind: result.kind.clone(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                workload: result
                    .parent_object
                    .rsplit('/')
                    .next()
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            }
        })
        .collect();
    Ok(run)
}

/// `aegis analyze --all --no-verify -o json` (detection and diagnosis; no shadows) on the
/// cluster, with `extra` arguments; returns the run and what it said on standard error.
pub fn run_aegis(
    aegis: &Path,
    measurer: &Measurer,
    cluster: &Cluster,
    scratch: &Path,
    extra: &[&str],
) -> Result<(Run, String)> {
    let mut command = crate::aegis_command(aegis);
    command
        .args([
            "analyze",
            "--all",
            "--no-verify",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(cluster.operator_kubeconfig())
        .args(extra)
        .env("AEGIS_AGENT__STATE_DIR", scratch.join("aegis-state"))
        .env("AEGIS_AGENT__GRACE_PERIOD_SECONDS", "5")
        .env("AEGIS_LLM__BACKEND", "rules");
    let (mut run, stderr) = measured_run("AEGIS", &command, measurer, cluster, scratch)?;
    let report: Value = serde_json::from_str(&run.stdout)
        .with_context(|| format!("AEGIS's output is not JSON: {}", run.stdout))?;
    run.findings = report["incidents"]
        .as_array()
        .context("AEGIS's report has no incidents")?
        .iter()
        .map(|incident| {
            let resource = &incident["resource"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            Finding {
                kind: text(&resource["kind"]),
                namespace: text(&resource["namespace"]),
                name: text(&resource["name"]),
                workload: incident["workload"]["name"].as_str().map(str::to_owned),
            }
        })
        .collect();
    Ok((run, stderr))
}

/// What one tool found, missed and raised falsely.
#[derive(Debug, Default)]
pub struct Judged {
    /// The demo failures it reported.
    pub found: BTreeSet<String>,
    pub missed: BTreeSet<String>,
    /// Failing filler Deployments it reported.
    pub filler_found: usize,
    /// Objects it reported that belong to no failing workload.
    pub false_alarms: BTreeSet<String>,
    /// Objects of other kinds it reported that carry a failing workload's name (a ConfigMap):
    /// neither the failure found nor a false alarm.
    pub related: BTreeSet<String>,
}

/// Judges a run's findings against the demo failures and the failing filler.
pub fn judge(run: &Run, filler: &Filler) -> Judged {
    let demo = demo_failures();
    let failing = filler.failing_names();
    let mut judged = Judged::default();
    let mut filler_found = BTreeSet::new();
    for finding in &run.findings {
        let demo_hit = demo
            .iter()
            .find(|w| finding.namespace != NAMESPACE && finding.concerns(None, w));
        let filler_hit = failing
            .iter()
            .find(|w| finding.concerns(Some(NAMESPACE), w));
        let shows_failure = FAILURE_KINDS.contains(&finding.kind.as_str());
        if (demo_hit.is_some() || filler_hit.is_some()) && !shows_failure {
            judged.related.insert(finding.shown());
        } else if let Some(workload) = demo_hit {
            judged.found.insert((*workload).to_owned());
        } else if let Some(workload) = filler_hit {
            filler_found.insert(workload.clone());
        } else {
            judged.false_alarms.insert(finding.shown());
        }
    }
    judged.filler_found = filler_found.len();
    judged.missed = demo
        .iter()
        .filter(|w| !judged.found.contains(**w))
        .map(|w| (*w).to_owned())
        .collect();
    judged
}

/// The comparison at one size (`pods` says which), as Markdown table rows.
pub fn rows(pods: &str, filler: &Filler, runs: &[&Run]) -> String {
    let mut out = String::new();
    for run in runs {
        let judged = judge(run, filler);
        let top: Vec<String> = {
            let mut by_count: Vec<(&String, &usize)> = run.requests.iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            by_count
                .iter()
                .take(3)
                .map(|(what, count)| format!("{what} {count}"))
                .collect()
        };
        let _ = writeln!(
            out,
            "| {pods} | {} | {:.2} s | {:.1} MB | {} ({}) | {}/{} | {} | {}/{} | {} | {} |",
            run.tool,
            run.wall.as_secs_f64(),
            run.peak_mb,
            run.request_count(),
            top.join(", "),
            judged.found.len(),
            judged.found.len() + judged.missed.len(),
            if judged.missed.is_empty() {
                "—".to_owned()
            } else {
                judged.missed.iter().cloned().collect::<Vec<_>>().join(", ")
            },
            judged.filler_found,
            filler.failing_names().len(),
            if judged.false_alarms.is_empty() {
                "0".to_owned()
            } else {
                format!(
                    "{}: {}",
                    judged.false_alarms.len(),
                    judged
                        .false_alarms
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            if judged.related.is_empty() {
                "—".to_owned()
            } else {
                judged
                    .related
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
    }
    out
}

/// The header of [`rows`]' table.
pub const HEADER: &str = "| pods | tool | wall | peak RSS | API requests (most) | demo failures found | missed | failing filler found | false alarms | other findings naming a failing workload |\n|---|---|---|---|---|---|---|---|---|---|\n";
