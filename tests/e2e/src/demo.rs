//! The demo incidents on the real control plane: applying them, what AEGIS must find, and
//! analysing the cluster through the live source — shared by the e2e tests.

use std::process::Command;
use std::time::{Duration, Instant};

use aegis_agent::{Agent, AnalyzeRequest};
use aegis_cluster::live::{LiveOptions, LiveSource};
use aegis_cluster::{ClusterRead, Scope};
use aegis_core::settings::Settings;
use aegis_core::{AnalysisReport, Category, Incident, SourceKind};

use crate::binaries::Binaries;
use crate::cluster::Cluster;

/// The incidents kwok's stages and the control plane produce from `examples/incidents/`. (The
/// api-gateway's missing ConfigMap key is the kubelet's to find, and kwok does not read
/// ConfigMaps, so it runs here.)
pub const EXPECTED: [(&str, Category); 8] = [
    ("demo-nginx", Category::ImageNotFound),
    ("payments-web", Category::ImageNotFound),
    ("orders-api", Category::MissingEnvVar),
    ("report-worker", Category::OomKilled),
    ("inventory", Category::LivenessProbeFailure),
    ("catalog", Category::ReadinessProbeFailure),
    ("ml-trainer", Category::InsufficientResources),
    ("storefront", Category::ServiceSelectorMismatch),
];

/// How long anything in the cluster is given to happen.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The live source on a cluster's kubeconfig.
pub async fn source(cluster: &Cluster) -> LiveSource {
    let options = LiveOptions {
        kubeconfig: Some(cluster.kubeconfig()),
        context: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(30),
        log_tail_lines: 200,
    };
    LiveSource::connect(&options)
        .await
        .expect("the live cluster answers")
}

/// The settings the e2e tests analyse with: the pods are seconds old, so states that need time
/// to count as failures get a short grace.
pub fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.agent.grace_period_seconds = 5;
    settings
}

/// Analyses the whole cluster; returns the state read and the report.
pub async fn analyze(cluster: &Cluster) -> (aegis_core::ClusterState, AnalysisReport) {
    let loaded = source(cluster)
        .await
        .load(&Scope::all())
        .await
        .expect("the live cluster is read");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let report = Agent::new(&settings())
        .analyze(
            &loaded.state,
            SourceKind::Cluster,
            &AnalyzeRequest::default(),
        )
        .expect("analysis runs");
    (loaded.state, report)
}

/// Applies `examples/incidents/` and analyses until every expected incident shows, or the
/// deadline passes; returns the last analysis.
pub async fn apply_and_wait(
    binaries: &Binaries,
    cluster: &Cluster,
) -> (aegis_core::ClusterState, AnalysisReport) {
    let incidents = crate::workspace_root().join("examples/incidents");
    kubectl(
        binaries,
        cluster,
        &["apply", "-f", incidents.to_str().expect("a UTF-8 path")],
    );
    let started = Instant::now();
    loop {
        let (state, report) = analyze(cluster).await;
        let found = EXPECTED.iter().all(|(workload, category)| {
            let incidents = of_workload(&report, workload);
            incidents.len() == 1 && incidents[0].rca.category == *category
        });
        if found || started.elapsed() > DEADLINE {
            return (state, report);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The incidents of one workload.
pub fn of_workload<'a>(report: &'a AnalysisReport, workload: &str) -> Vec<&'a Incident> {
    report
        .incidents
        .iter()
        .filter(|i| i.workload.name == workload)
        .collect()
}

/// (workload, category) of every incident, for failure messages.
pub fn summary(report: &AnalysisReport) -> Vec<(String, Category)> {
    report
        .incidents
        .iter()
        .map(|i| (i.workload.name.clone(), i.rca.category))
        .collect()
}

/// Runs the cluster's kubectl; fails the test when it fails.
pub fn kubectl(binaries: &Binaries, cluster: &Cluster, args: &[&str]) {
    let output = Command::new(binaries.path("kubectl"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
