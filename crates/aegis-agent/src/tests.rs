//! Tests of the pipeline on the simulated demo world.

use aegis_cluster::sim::MockSource;
use aegis_core::{Category, ClusterState};

use super::*;

fn demo() -> ClusterState {
    MockSource::demo_state().expect("the demo world simulates")
}

fn agent() -> Agent {
    Agent::new(&Settings::default())
}

#[test]
fn one_incident_per_workload_and_category_with_stable_ids() {
    let state = demo();
    let report = agent()
        .analyze(&state, SourceKind::Mock, &AnalyzeRequest::default())
        .expect("analyzes");
    let mut keys: Vec<(String, Category)> = report
        .incidents
        .iter()
        .map(|i| (i.workload.name.clone(), i.rca.category))
        .collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "no duplicate (workload, category)");
    assert_eq!(total, 9);
    let again = agent()
        .analyze(&state, SourceKind::Mock, &AnalyzeRequest::default())
        .expect("analyzes");
    let ids = |r: &AnalysisReport| r.incidents.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&report), ids(&again));
    let orders = report
        .incidents
        .iter()
        .find(|i| i.workload.name == "orders-api")
        .expect("orders");
    let pods = orders
        .findings
        .iter()
        .filter(|f| f.resource.kind == ResourceKind::Pod)
        .count();
    assert_eq!(
        pods, 2,
        "both crash-looping replicas are findings of one incident"
    );
}

#[test]
fn a_target_selects_the_incidents_that_concern_it() {
    let state = demo();
    let cases = [
        (
            ResourceRef::namespaced(ResourceKind::Pod, "default", "demo-nginx"),
            vec![Category::ImageNotFound],
        ),
        (
            ResourceRef::namespaced(ResourceKind::Deployment, "production", "api-gateway"),
            vec![Category::MissingConfigRef],
        ),
        (
            ResourceRef::namespaced(ResourceKind::Service, "demo", "storefront"),
            vec![Category::ServiceSelectorMismatch],
        ),
        (
            ResourceRef::namespaced(ResourceKind::Service, "demo", "catalog"),
            vec![Category::ReadinessProbeFailure],
        ),
        (
            ResourceRef::namespaced(ResourceKind::StatefulSet, "production", "redis"),
            vec![],
        ),
    ];
    for (target, expected) in cases {
        let request = AnalyzeRequest {
            target: Some(target.clone()),
            ..AnalyzeRequest::default()
        };
        let report = agent()
            .analyze(&state, SourceKind::Mock, &request)
            .expect("analyzes");
        let categories: Vec<Category> = report.incidents.iter().map(|i| i.rca.category).collect();
        assert_eq!(categories, expected, "{target}");
    }
}

#[test]
fn an_unknown_target_is_not_found() {
    let request = AnalyzeRequest {
        target: Some(ResourceRef::namespaced(
            ResourceKind::Pod,
            "default",
            "nope",
        )),
        ..AnalyzeRequest::default()
    };
    let error = agent()
        .analyze(&demo(), SourceKind::Mock, &request)
        .expect_err("not found");
    assert_eq!(
        error.to_string(),
        "Pod \"nope\" not found in namespace \"default\""
    );
}

#[test]
fn label_selectors_and_analyzer_filters_narrow_the_analysis() {
    let state = demo();
    let request = AnalyzeRequest {
        selector: Some("app=catalog".parse().expect("selector")),
        ..AnalyzeRequest::default()
    };
    let report = agent()
        .analyze(&state, SourceKind::Mock, &request)
        .expect("analyzes");
    assert_eq!(report.incidents.len(), 1);
    assert_eq!(report.incidents[0].workload.name, "catalog");
    let request = AnalyzeRequest {
        filter: Some(vec![Analyzer::Service]),
        ..AnalyzeRequest::default()
    };
    let report = agent()
        .analyze(&state, SourceKind::Mock, &request)
        .expect("analyzes");
    assert!(
        report
            .incidents
            .iter()
            .all(|i| i.findings.iter().all(|f| f.analyzer == "Service"))
    );
    assert!(
        report
            .incidents
            .iter()
            .any(|i| i.rca.category == Category::ServiceSelectorMismatch)
    );
}

#[test]
fn the_findings_of_every_analyzer_are_filed_under_their_category() {
    let old = "2026-01-01T00:00:00Z";
    let mut sink = aegis_cluster::ObjectSink::new(aegis_cluster::Scope::all());
    sink.add(serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"conditions": [
            {"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory", "message": "low memory"},
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:10:00Z"}]}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "a",
         "metadata": {"name": "one", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "b",
         "metadata": {"name": "two", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "a", "uid": "d-web", "creationTimestamp": old},
         "spec": {"replicas": 1, "selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}},
         "status": {"replicas": 1, "availableReplicas": 1, "readyReplicas": 1}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "web", "namespace": "a", "creationTimestamp": old},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "a", "creationTimestamp": old},
         "spec": {"schedule": "0 25 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "typo", "namespace": "a", "creationTimestamp": old},
         "spec": {"selector": {"matchLabels": {"app": "wbe"}}, "minAvailable": 1}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "stale", "namespace": "a"},
         "spec": {"podSelector": {"matchLabels": {"app": "legacy"}}}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "policy"},
         "webhooks": [{"name": "check.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                       "clientConfig": {"service": {"namespace": "a", "name": "checker"}}}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"}, "spec": {"selector": {"app": "none"}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gated", "namespace": "a", "creationTimestamp": old},
         "spec": {"schedulingGates": [{"name": "example.com/queue"}], "containers": [{"name": "c", "image": "x:1"}]},
         "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "shop", "namespace": "a", "creationTimestamp": old},
         "spec": {"rules": [{"backendRefs": [{"name": "gone", "port": 80}]}]}},
        {"apiVersion": "db.example.com/v1", "kind": "Database",
         "metadata": {"name": "orders", "namespace": "a", "generation": 1, "creationTimestamp": old},
         "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "VolumeFull", "observedGeneration": 1}]}}
    ]}))
    .expect("valid objects");
    let mut state = sink.state;
    state.read_kinds = Some(sink.kinds);
    state.settle_now();
    let report = agent()
        .analyze(&state, SourceKind::Snapshot, &AnalyzeRequest::default())
        .expect("analyzes");
    let mut filed: Vec<String> = report
        .incidents
        .iter()
        .map(|i| format!("{} {}/{}", i.rca.category, i.workload.kind, i.workload.name))
        .collect();
    filed.sort();
    assert_eq!(
        filed,
        [
            "custom-resource-unhealthy Database/orders",
            "gateway-misconfigured HTTPRoute/shop",
            "hpa-misconfigured Deployment/web",
            "job-failed CronJob/nightly",
            "network-policy-misconfigured NetworkPolicy/stale",
            "node-pressure Node/n1",
            "pdb-misconfigured PodDisruptionBudget/typo",
            "service-selector-mismatch Service/web",
            "storage-misconfigured StorageClass/one",
            "storage-misconfigured StorageClass/two",
            "unschedulable-constraints Pod/gated",
            "webhook-unavailable ValidatingWebhookConfiguration/policy",
        ]
    );
    let security = AnalyzeRequest {
        filter: Some(vec![Analyzer::Security]),
        ..AnalyzeRequest::default()
    };
    let report = agent()
        .analyze(&state, SourceKind::Snapshot, &security)
        .expect("analyzes");
    assert!(!report.incidents.is_empty());
    assert!(
        report
            .incidents
            .iter()
            .all(|i| i.rca.category == Category::SecurityRisk && i.fix.is_none())
    );
}
