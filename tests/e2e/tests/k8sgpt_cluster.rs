//! End-to-end: the real K8sGPT beside AEGIS on the local control plane.
//!
//! K8sGPT is built from its pinned source (`aegis_e2e::k8sgpt`); the cluster holds the demo
//! incidents and 1,000 filler pods (Deployments with Services, one in ten unable to pull its
//! image). Both tools analyse it in turn with the same kubeconfig, measured and judged alike
//! (`aegis_e2e::versus`): AEGIS must find every demo failure K8sGPT finds — every one, in fact —
//! and every failing filler Deployment, with fewer API requests and no more false alarms. Then
//! AEGIS reads the report K8sGPT just wrote (`--k8sgpt`): K8sGPT's findings join the diagnoses of
//! the workloads they are about instead of making incidents of their own.

use std::collections::BTreeMap;
use std::path::Path;

use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::Cluster;
use aegis_e2e::demo::apply_and_wait;
use aegis_e2e::k8sgpt::K8sgpt;
use aegis_e2e::measure::Measurer;
use aegis_e2e::versus::{self, Filler, Run, demo_failures, judge};
use serde_json::Value;

/// Filler pods beside the demo incidents.
const FILLER_PODS: usize = 1_000;

/// (workload, category) of every incident of a report's JSON about the demo failures.
fn demo_diagnoses(report: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for incident in report["incidents"].as_array().expect("incidents") {
        let workload = incident["workload"]["name"].as_str().unwrap_or_default();
        if demo_failures().contains(&workload) {
            out.entry(workload.to_owned()).or_default().push(
                incident["rca"]["category"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    for categories in out.values_mut() {
        categories.sort();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aegis_finds_every_demo_failure_k8sgpt_finds_with_fewer_requests_and_reads_its_report() {
    let binaries = Binaries::ensure().expect("the control plane builds");
    let k8sgpt = K8sgpt::ensure().expect("K8sGPT builds from its pinned source");
    let aegis = aegis_e2e::aegis_binary().expect("the aegis binary builds");
    let measurer = Measurer::binary(Path::new(env!("CARGO_BIN_EXE_aegis-e2e-measure")));
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(&binaries, &dir.path().join("cluster"))
        .await
        .expect("the control plane starts");
    let scratch = dir.path().join("runs");

    let (_, settled) = apply_and_wait(&binaries, &cluster).await;
    let client = cluster.client().await.expect("a client");
    let mut filler = Filler::default();
    filler
        .grow(&client, FILLER_PODS)
        .await
        .expect("the filler settles");

    let theirs =
        versus::run_k8sgpt(&k8sgpt, &measurer, &cluster, &scratch).expect("K8sGPT analyses");
    let (ours, _) =
        versus::run_aegis(&aegis, &measurer, &cluster, &scratch, &[]).expect("AEGIS analyses");
    let runs: [&Run; 2] = [&ours, &theirs];
    eprintln!(
        "{}{}",
        versus::HEADER,
        versus::rows(&format!("{FILLER_PODS} + demo"), &filler, &runs)
    );
    let (mine, k8sgpt_s) = (judge(&ours, &filler), judge(&theirs, &filler));
    assert!(
        k8sgpt_s.found.is_subset(&mine.found),
        "AEGIS missed demo failures K8sGPT found: {:?} (AEGIS found {:?}; in-process analysis: {:?})",
        k8sgpt_s.found.difference(&mine.found).collect::<Vec<_>>(),
        mine.found,
        aegis_e2e::demo::summary(&settled)
    );
    assert!(mine.missed.is_empty(), "AEGIS missed {:?}", mine.missed);
    assert_eq!(
        mine.filler_found,
        filler.failing_names().len(),
        "every filler Deployment that cannot pull its image is an incident"
    );
    assert!(
        mine.false_alarms.len() <= k8sgpt_s.false_alarms.len(),
        "AEGIS raised more false alarms ({:?}) than K8sGPT ({:?})",
        mine.false_alarms,
        k8sgpt_s.false_alarms
    );
    assert!(
        ours.request_count() < theirs.request_count(),
        "AEGIS sent {} requests ({:?}), K8sGPT {} ({:?})",
        ours.request_count(),
        ours.requests,
        theirs.request_count(),
        theirs.requests
    );

    // The report K8sGPT just wrote, read by AEGIS: its findings join the rules' diagnoses.
    let report = scratch.join("k8sgpt.json");
    std::fs::write(&report, &theirs.stdout).expect("write K8sGPT's report");
    let alone: Value = serde_json::from_str(&ours.stdout).expect("AEGIS's JSON");
    let (joined_run, stderr) = versus::run_aegis(
        &aegis,
        &measurer,
        &cluster,
        &scratch,
        &["--k8sgpt", report.to_str().expect("a UTF-8 path")],
    )
    .expect("AEGIS analyses with K8sGPT's report");
    let joined: Value = serde_json::from_str(&joined_run.stdout).expect("AEGIS's JSON");
    assert_eq!(
        demo_diagnoses(&joined),
        demo_diagnoses(&alone),
        "K8sGPT's findings make no incidents of their own about the demo workloads"
    );
    for workload in &k8sgpt_s.found {
        let carried = joined["incidents"]
            .as_array()
            .expect("incidents")
            .iter()
            .filter(|i| i["workload"]["name"] == workload.as_str())
            .flat_map(|i| i["findings"].as_array().into_iter().flatten())
            .any(|f| f["analyzer"] == "K8sGPT");
        assert!(
            carried,
            "{workload}: K8sGPT's finding is among its incident's findings ({stderr})"
        );
    }
}
