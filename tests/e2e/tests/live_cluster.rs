//! End-to-end: AEGIS against a real control plane (etcd, kube-apiserver, controller-manager,
//! scheduler and kwok, built from Go modules) with the demo incidents applied by kubectl.
//!
//! kwok plays the kubelet with stages generated from the mock world model (`aegis_e2e::stages`),
//! so the same manifests fail here as in `--mock`; the scheduler and the EndpointSlice controller
//! are the real ones. Each incident must be found with its category and a policy-allowed fix, and
//! each fix, applied with kubectl, must make its workload healthy.

use std::process::Command;
use std::time::{Duration, Instant};

use aegis_core::{Incident, ResourceKind, SourceKind};
use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::Cluster;
use aegis_e2e::demo::{DEADLINE, EXPECTED, analyze, apply_and_wait, kubectl, of_workload, summary};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

/// Whether the object a fix targeted is healthy: a Deployment fully rolled out and available, a
/// Pod Ready, a Service with ready endpoints.
async fn healthy(client: &kube::Client, incident: &Incident) -> bool {
    let target = &incident.fix.as_ref().expect("a fix").target;
    let namespace = target.namespace.as_deref().unwrap_or("default");
    match target.kind {
        ResourceKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            let Ok(deployment) = api.get(&target.name).await else {
                return false;
            };
            let wanted = deployment.spec.and_then(|s| s.replicas).unwrap_or(1);
            deployment.status.is_some_and(|s| {
                s.available_replicas == Some(wanted)
                    && s.updated_replicas == Some(wanted)
                    && s.replicas == Some(wanted)
            })
        }
        ResourceKind::Pod => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            api.get(&target.name).await.is_ok_and(|pod| {
                pod.status
                    .and_then(|s| s.conditions)
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        }
        ResourceKind::Service => {
            let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
            let selector = format!("kubernetes.io/service-name={}", target.name);
            api.list(&ListParams::default().labels(&selector))
                .await
                .is_ok_and(|slices| {
                    slices.items.iter().any(|slice| {
                        slice
                            .endpoints
                            .iter()
                            .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
                    })
                })
        }
        other => panic!("{}: no health check for a fix on a {other:?}", target.name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_incidents_are_found_on_a_real_control_plane_and_their_fixes_heal_them() {
    let binaries = Binaries::ensure().expect("the control plane builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(&binaries, dir.path())
        .await
        .expect("the control plane starts");
    // kwok, the scheduler and the controllers act on what was applied: poll until every
    // incident is visible, with a deadline.
    let (_, report) = apply_and_wait(&binaries, &cluster).await;
    assert_eq!(report.source, SourceKind::Cluster);
    let mut fixed = Vec::new();
    for (workload, category) in EXPECTED {
        let incidents = of_workload(&report, workload);
        assert_eq!(
            incidents.len(),
            1,
            "{workload}: one incident expected in {:#?}",
            summary(&report)
        );
        let incident = incidents[0];
        assert_eq!(incident.rca.category, category, "{workload}");
        assert!(
            incident.rca.confidence >= 0.7,
            "{workload}: {}",
            incident.rca.confidence
        );
        let fix = incident
            .fix
            .as_ref()
            .unwrap_or_else(|| panic!("{workload}: {}", incident.rca.decision_rationale));
        assert!(
            fix.policy.allowed,
            "{workload}: {:?}",
            fix.policy.violations
        );
        let patch = serde_json::to_string(&fix.patch).expect("the patch serializes");
        let target = format!("{}/{}", fix.target.kind.as_str(), fix.target.name);
        kubectl(
            &binaries,
            &cluster,
            &[
                "patch",
                &target,
                "-n",
                fix.target.namespace.as_deref().unwrap_or("default"),
                "--type",
                fix.patch_type.kubectl_name(),
                "-p",
                &patch,
            ],
        );
        fixed.push(incident.clone());
    }

    // Every fix heals what it targets, and then AEGIS finds nothing wrong with those workloads.
    let client = cluster.client().await.expect("a client");
    let healed = Instant::now();
    let mut sick: Vec<String> = Vec::new();
    while healed.elapsed() < DEADLINE {
        sick.clear();
        for incident in &fixed {
            if !healthy(&client, incident).await {
                sick.push(incident.workload.name.clone());
            }
        }
        if sick.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if !sick.is_empty() {
        let pods = Command::new(binaries.path("kubectl"))
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["get", "deploy,rs,pods", "-A", "-o", "wide"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        panic!(
            "not healthy {} s after their fixes: {sick:?}\n{pods}",
            DEADLINE.as_secs()
        );
    }
    let after = loop {
        let (_, report) = analyze(&cluster).await;
        let clear = EXPECTED
            .iter()
            .all(|(workload, _)| of_workload(&report, workload).is_empty());
        if clear || healed.elapsed() > DEADLINE * 2 {
            break report;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    for (workload, _) in EXPECTED {
        assert!(
            of_workload(&after, workload).is_empty(),
            "{workload} still has incidents after its fix: {:#?}",
            summary(&after)
        );
    }
}
