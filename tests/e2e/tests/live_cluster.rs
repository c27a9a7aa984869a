//! End-to-end: AEGIS against a real control plane (etcd, kube-apiserver, controller-manager,
//! scheduler and kwok, built from Go modules) with the demo incidents applied by kubectl.

use std::process::Command;
use std::time::{Duration, Instant};

use aegis_agent::{Agent, AnalyzeRequest};
use aegis_cluster::live::{LiveOptions, LiveSource};
use aegis_cluster::{ClusterRead, Scope};
use aegis_core::settings::Settings;
use aegis_core::{AnalysisReport, Category, SourceKind};
use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::Cluster;

async fn analyze(cluster: &Cluster) -> AnalysisReport {
    let options = LiveOptions {
        kubeconfig: Some(cluster.kubeconfig()),
        context: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(30),
        log_tail_lines: 200,
    };
    let source = LiveSource::connect(&options)
        .await
        .expect("the live cluster answers");
    let loaded = source
        .load(&Scope::all())
        .await
        .expect("the live cluster is read");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    Agent::new(&Settings::default())
        .analyze(
            &loaded.state,
            SourceKind::Cluster,
            &AnalyzeRequest::default(),
        )
        .expect("analysis runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_incidents_applied_to_a_real_control_plane_are_found() {
    let binaries = Binaries::ensure().expect("the control plane builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(&binaries, dir.path())
        .await
        .expect("the control plane starts");
    let incidents = aegis_e2e::workspace_root().join("examples/incidents");
    let output = Command::new(binaries.path("kubectl"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["apply", "-f"])
        .arg(&incidents)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The scheduler and the controllers act on what was applied: poll until the incidents the
    // control plane itself produces are visible, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(120);
    let expected = [
        ("ml-trainer", Category::InsufficientResources),
        ("storefront", Category::ServiceSelectorMismatch),
    ];
    let report = loop {
        let report = analyze(&cluster).await;
        let found = expected.iter().all(|(workload, category)| {
            let of_workload: Vec<_> = report
                .incidents
                .iter()
                .filter(|i| i.workload.name == *workload)
                .collect();
            of_workload.len() == 1 && of_workload[0].rca.category == *category
        });
        if found || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(report.source, SourceKind::Cluster);
    for (workload, category) in expected {
        let incident = report
            .incidents
            .iter()
            .find(|i| i.workload.name == workload)
            .unwrap_or_else(|| {
                panic!(
                    "{workload}: no incident in {:#?}",
                    report
                        .incidents
                        .iter()
                        .map(|i| (&i.workload.name, i.rca.category))
                        .collect::<Vec<_>>()
                )
            });
        assert_eq!(incident.rca.category, category, "{workload}");
        let fix = incident
            .fix
            .as_ref()
            .unwrap_or_else(|| panic!("{workload}: {}", incident.rca.decision_rationale));
        assert!(
            fix.policy.allowed,
            "{workload}: {:?}",
            fix.policy.violations
        );
        assert_eq!(fix.target, incident.workload, "{workload}");
    }
}
