//! Table tests of the analyzers, on the simulated demo world and on hand-made states.

use aegis_cluster::Scope;
use aegis_cluster::sim::MockSource;
use aegis_core::ClusterState;
use serde_json::json;

use super::*;

fn demo() -> ClusterState {
    MockSource::demo_state().expect("the demo world simulates")
}

fn reasons(detections: &[Detection], workload: &str) -> Vec<String> {
    let mut reasons: Vec<String> = detections
        .iter()
        .filter(|d| d.workload.name == workload)
        .map(|d| format!("{}:{}", d.finding.analyzer, d.finding.reason))
        .collect();
    reasons.sort();
    reasons.dedup();
    reasons
}

#[test]
fn the_demo_world_yields_the_expected_findings_per_workload() {
    let detections = analyze(&demo().index(), &AnalyzerConfig::default(), None, None);
    let cases: [(&str, &[&str]); 10] = [
        (
            "orders-api",
            &[
                "Deployment:ProgressDeadlineExceeded",
                "Pod:CrashLoopBackOff",
            ],
        ),
        (
            "report-worker",
            &[
                "Deployment:ProgressDeadlineExceeded",
                "Pod:CrashLoopBackOff",
            ],
        ),
        (
            "payments-web",
            &[
                "Deployment:ProgressDeadlineExceeded",
                "Pod:ImagePullBackOff",
            ],
        ),
        (
            "inventory",
            &[
                "Deployment:ProgressDeadlineExceeded",
                "Pod:CrashLoopBackOff",
            ],
        ),
        (
            "catalog",
            &[
                "Deployment:ProgressDeadlineExceeded",
                "Pod:NotReady",
                "Service:NoReadyEndpoints",
            ],
        ),
        (
            "ml-trainer",
            &["Deployment:ProgressDeadlineExceeded", "Pod:Unschedulable"],
        ),
        ("storefront", &["Service:NoEndpoints"]),
        (
            "demo-nginx",
            &["Pod:ImagePullBackOff", "Service:NoReadyEndpoints"],
        ),
        (
            "api-gateway",
            &[
                "ConfigMap:ConfigMapMissing",
                "Deployment:ProgressDeadlineExceeded",
                "Pod:CreateContainerConfigError",
                "Service:NoReadyEndpoints",
            ],
        ),
        ("redis", &[]),
    ];
    for (workload, expected) in cases {
        assert_eq!(reasons(&detections, workload), expected, "{workload}");
    }
}

#[test]
fn a_scope_keeps_the_findings_of_its_workloads_and_nothing_else() {
    let state = demo();
    let index = state.index();
    let all = analyze(&index, &AnalyzerConfig::default(), None, None);
    let orders = all
        .iter()
        .find(|d| d.workload.name == "orders-api")
        .map(|d| d.workload.clone())
        .expect("orders-api has findings");
    let scope = std::collections::BTreeSet::from([orders.clone()]);
    let scoped = analyze(&index, &AnalyzerConfig::default(), None, Some(&scope));
    assert!(scoped.iter().all(|d| d.workload == orders), "{scoped:?}");
    let messages = |detections: &[Detection]| -> Vec<String> {
        detections
            .iter()
            .filter(|d| d.workload == orders)
            .map(|d| d.finding.message.clone())
            .collect()
    };
    assert_eq!(messages(&scoped), messages(&all));
}

#[test]
fn pods_are_owned_by_their_deployment_through_the_replica_set() {
    let detections = analyze(
        &demo().index(),
        &AnalyzerConfig::default(),
        Some(&[Analyzer::Pod]),
        None,
    );
    let orders = detections
        .iter()
        .find(|d| d.finding.resource.name.starts_with("orders-api-"))
        .expect("found");
    assert_eq!(
        orders.workload,
        ResourceRef::namespaced(ResourceKind::Deployment, "demo", "orders-api")
    );
    assert!(
        orders
            .evidence
            .iter()
            .any(|e| e.excerpt.contains("DATABASE_URL is not set"))
    );
    assert!(detections.iter().all(|d| d.finding.analyzer == "Pod"));
}

fn state_of(objects: serde_json::Value) -> ClusterState {
    let mut sink = aegis_cluster::ObjectSink::new(Scope::all());
    sink.add(objects).expect("valid objects");
    let mut state = sink.state;
    state.settle_now();
    state
}

#[test]
fn known_false_positives_are_not_reported() {
    let state = state_of(json!({"apiVersion": "v1", "kind": "List", "items": [
        // A node with a Node Problem Detector condition but Ready.
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"conditions": [
            {"type": "KernelDeadlock", "status": "True", "lastHeartbeatTime": "2026-01-01T00:10:00Z"},
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:10:00Z"}]}},
        // A completed Job pod.
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "done", "namespace": "a", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u", "controller": true}]},
         "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}},
        // A pod seconds old, still pending and not yet scheduled-or-failed.
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "young", "namespace": "a", "creationTimestamp": "2026-01-01T00:09:55Z"},
         "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": "2026-01-01T00:09:56Z"}]}},
        // A young pod still running its readiness checks.
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "starting", "namespace": "a", "creationTimestamp": "2026-01-01T00:09:50Z"},
         "status": {"phase": "Running", "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-01-01T00:09:52Z"}}}]}}
    ]}));
    assert!(analyze(&state.index(), &AnalyzerConfig::default(), None, None).is_empty());
}

#[test]
fn a_deployment_is_reported_unavailable_only_after_the_grace_period() {
    let deployment = |name: &str, since: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "a", "creationTimestamp": since},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"availableReplicas": 0, "conditions": [
                {"type": "Available", "status": "False", "lastTransitionTime": since, "lastUpdateTime": since}]}})
    };
    let state = state_of(json!({"apiVersion": "v1", "kind": "List", "items": [
        deployment("rolling-out", "2026-01-01T00:09:50Z"),
        deployment("down-for-long", "2026-01-01T00:00:00Z"),
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:10:00Z"}]}}
    ]}));
    let detections = analyze(&state.index(), &AnalyzerConfig::default(), None, None);
    let names: Vec<&str> = detections
        .iter()
        .map(|d| d.finding.resource.name.as_str())
        .collect();
    assert_eq!(names, ["down-for-long"]);
    assert_eq!(detections[0].finding.reason, "UnavailableReplicas");
}

#[test]
fn a_node_that_is_not_ready_is_reported() {
    let state = state_of(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.", "lastHeartbeatTime": "2026-01-01T00:10:00Z"}]}}),
    );
    let detections = analyze(&state.index(), &AnalyzerConfig::default(), None, None);
    assert_eq!(detections.len(), 1);
    assert_eq!(detections[0].finding.reason, "NotReady");
    assert_eq!(detections[0].workload.kind, ResourceKind::Node);
}

#[test]
fn ingresses_pointing_at_missing_services_and_secrets_are_reported() {
    let state = state_of(json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "a"}, "spec": {
            "tls": [{"hosts": ["x"], "secretName": "web-tls"}],
            "rules": [{"host": "x", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-svc", "port": {"number": 80}}}}]}}]}}
    ]}));
    let detections = analyze(&state.index(), &AnalyzerConfig::default(), None, None);
    let mut found: Vec<_> = detections
        .iter()
        .map(|d| d.finding.reason.as_str())
        .collect();
    found.sort_unstable();
    assert_eq!(found, ["BackendServiceMissing", "TLSSecretMissing"]);

    // Where Services and Secrets were not read (a snapshot without them, a list RBAC refused),
    // their absence proves nothing and nothing is reported.
    let mut unread = state.clone();
    unread.read_kinds = Some(["Ingress".to_owned()].into_iter().collect());
    assert!(analyze(&unread.index(), &AnalyzerConfig::default(), None, None).is_empty());
}

#[test]
fn claims_waiting_for_their_first_consumer_are_quiet_and_a_failing_claim_is_its_pods_workload() {
    let state = state_of(json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard-rwo",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": "pd.csi.storage.gke.io", "volumeBindingMode": "WaitForFirstConsumer"},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "later", "namespace": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Pending"}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-0", "namespace": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"storageClassName": "fast-ssd"}, "status": {"phase": "Pending"}},
        {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "a"}, "type": "Warning", "reason": "ProvisioningFailed",
         "message": "storageclass.storage.k8s.io \"fast-ssd\" not found", "lastTimestamp": "2026-01-01T00:10:00Z",
         "involvedObject": {"kind": "PersistentVolumeClaim", "namespace": "a", "name": "data-db-0"}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "a", "uid": "ss", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "db"}}, "serviceName": "", "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-0", "namespace": "a", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "ss", "controller": true}]},
         "spec": {"containers": [{"name": "db", "image": "postgres:16"}], "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]},
         "status": {"phase": "Pending"}}
    ]}));
    let detections = analyze(
        &state.index(),
        &AnalyzerConfig::default(),
        Some(&[Analyzer::PersistentVolumeClaim]),
        None,
    );
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(detections[0].finding.resource.name, "data-db-0");
    assert_eq!(
        detections[0].workload,
        ResourceRef::namespaced(ResourceKind::StatefulSet, "a", "db")
    );
}

#[test]
fn a_container_restarting_between_crashes_is_reported_by_how_it_dies_with_its_termination_message()
{
    // Running again after its fourth crash, not ready: the crashes explain it, and the message
    // the kubelet kept of its log is quoted line by line.
    let state = state_of(json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api", "namespace": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"containers": [{"name": "c", "image": "x"}]},
         "status": {"phase": "Running", "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "message": "starting\n\nFATAL: required environment variable DATABASE_URL is not set\n"}},
            "state": {"running": {"startedAt": "2026-01-01T00:09:58Z"}}}]}}
    ]}));
    let detections = analyze(&state.index(), &AnalyzerConfig::default(), None, None);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(detections[0].finding.reason, "Restarting");
    let quoted: Vec<(&str, &str)> = detections[0]
        .evidence
        .iter()
        .filter(|e| e.source == aegis_core::EvidenceSource::Log)
        .map(|e| (e.reference.as_str(), e.excerpt.as_str()))
        .collect();
    assert_eq!(
        quoted,
        [
            (
                "pod/a/api: status.containerStatuses[c].lastState.terminated.message:1",
                "starting"
            ),
            (
                "pod/a/api: status.containerStatuses[c].lastState.terminated.message:3",
                "FATAL: required environment variable DATABASE_URL is not set"
            )
        ]
    );
}
