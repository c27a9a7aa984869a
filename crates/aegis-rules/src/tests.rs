//! Table tests of the rules engine on the simulated demo world and on hand-made cases.

use std::collections::BTreeMap;

use aegis_cluster::Scope;
use aegis_cluster::sim::MockSource;
use aegis_core::{ClusterState, Risk};
use aegis_k8sgpt::{AnalyzerConfig, analyze};
use serde_json::{Value, json};

use super::*;

fn diagnose_all(state: &ClusterState, config: RulesConfig) -> Vec<(ResourceRef, Diagnosis)> {
    let lookup = Lookup::new(state);
    let index = lookup.index();
    let detections = analyze(index, &AnalyzerConfig::default(), None, None);
    let mut by_workload: BTreeMap<ResourceRef, Vec<&Detection>> = BTreeMap::new();
    for detection in &detections {
        by_workload
            .entry(detection.workload.clone())
            .or_default()
            .push(detection);
    }
    let engine = RulesEngine::new(config);
    by_workload
        .into_iter()
        .flat_map(|(workload, detections)| {
            engine
                .diagnose(&lookup, &workload, &detections)
                .into_iter()
                .map(move |d| (workload.clone(), d))
        })
        .collect()
}

fn demo() -> ClusterState {
    MockSource::demo_state().expect("the demo world simulates")
}

fn container_field(patch: &Value, field: &str) -> Value {
    patch
        .pointer("/spec/template/spec/containers/0")
        .or_else(|| patch.pointer("/spec/containers/0"))
        .and_then(|c| c.get(field))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn every_demo_incident_gets_its_category_and_a_policy_allowed_fix_on_the_workload() {
    let diagnoses = diagnose_all(&demo(), RulesConfig::default());
    let cases: [(&str, Category, &str, Value); 9] = [
        (
            "orders-api",
            Category::MissingEnvVar,
            "env",
            json!([{"name": "DATABASE_URL", "valueFrom": {"configMapKeyRef": {"name": "orders-api-config", "key": "DATABASE_URL"}}}]),
        ),
        (
            "report-worker",
            Category::OomKilled,
            "resources",
            json!({"limits": {"memory": "256Mi"}}),
        ),
        (
            "payments-web",
            Category::ImageNotFound,
            "image",
            json!("nginx:1.27.2"),
        ),
        (
            "inventory",
            Category::LivenessProbeFailure,
            "livenessProbe",
            json!({"httpGet": {"port": "http"}}),
        ),
        (
            "catalog",
            Category::ReadinessProbeFailure,
            "readinessProbe",
            json!({"timeoutSeconds": 5}),
        ),
        (
            "ml-trainer",
            Category::InsufficientResources,
            "resources",
            json!({"requests": {"memory": "6Gi"}, "limits": {"memory": "8Gi"}}),
        ),
        (
            "demo-nginx",
            Category::ImageNotFound,
            "image",
            json!("nginx:1.25.3"),
        ),
        (
            "api-gateway",
            Category::MissingConfigRef,
            "env",
            json!([{"name": "UPSTREAM_URL", "valueFrom": {"configMapKeyRef": {"name": "api-gateway-config", "key": "UPSTREAM_URL"}}}]),
        ),
        (
            "storefront",
            Category::ServiceSelectorMismatch,
            "",
            json!({"spec": {"selector": {"app": "storefront", "tier": "web"}}}),
        ),
    ];
    for (workload, category, field, expected) in cases {
        let found: Vec<_> = diagnoses
            .iter()
            .filter(|(w, _)| w.name == workload)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{workload}: one incident, got {:?}",
            found.iter().map(|(_, d)| d.category).collect::<Vec<_>>()
        );
        let (owner, diagnosis) = found[0];
        assert_eq!(diagnosis.category, category, "{workload}");
        assert!(diagnosis.rca.confidence >= 0.7, "{workload}");
        assert!(
            !diagnosis.rca.evidence.is_empty(),
            "{workload} cites evidence"
        );
        let fix = diagnosis
            .fix
            .as_ref()
            .unwrap_or_else(|| panic!("{workload}: {}", diagnosis.rca.decision_rationale));
        assert_eq!(
            &fix.target, owner,
            "{workload}: the fix targets the owning workload"
        );
        assert!(
            fix.policy.allowed,
            "{workload}: {:?}",
            fix.policy.violations
        );
        let patched = if field.is_empty() {
            fix.patch.clone()
        } else {
            container_field(&fix.patch, field)
        };
        assert_eq!(patched, expected, "{workload}");
        assert_ne!(fix.patch, fix.inverse_patch, "{workload}");
        assert!(
            diagnosis.plan.is_some(),
            "{workload} has a verification plan"
        );
    }
}

#[test]
fn the_stuck_rollout_and_service_symptoms_join_the_root_cause() {
    let diagnoses = diagnose_all(&demo(), RulesConfig::default());
    let (_, catalog) = diagnoses
        .iter()
        .find(|(w, _)| w.name == "catalog")
        .expect("catalog");
    let analyzers: Vec<&str> = catalog
        .findings
        .iter()
        .map(|f| f.analyzer.as_str())
        .collect();
    assert!(
        analyzers.contains(&"Deployment")
            && analyzers.contains(&"Service")
            && analyzers.contains(&"Pod"),
        "{analyzers:?}"
    );
    assert_eq!(
        catalog.resource.kind,
        ResourceKind::Pod,
        "the most telling object is a pod"
    );
}

#[test]
fn below_the_threshold_no_fix_is_proposed_and_the_rationale_says_why() {
    let config = RulesConfig {
        confidence_threshold: 0.99,
        ..RulesConfig::default()
    };
    let diagnoses = diagnose_all(&demo(), config);
    let (_, orders) = diagnoses
        .iter()
        .find(|(w, _)| w.name == "orders-api")
        .expect("orders");
    assert!(orders.fix.is_none());
    assert!(
        orders
            .rca
            .decision_rationale
            .contains("below the threshold"),
        "{}",
        orders.rca.decision_rationale
    );
}

#[test]
fn a_missing_variable_with_no_source_gets_no_invented_value() {
    let mut source = MockSource::demo().expect("demo");
    source.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orders-api-config", "namespace": "demo"}, "data": {"LOG_LEVEL": "info"}}));
    let state = source
        .observe(&Scope::namespace("demo"))
        .expect("simulates")
        .state;
    let diagnoses = diagnose_all(&state, RulesConfig::default());
    let (_, orders) = diagnoses
        .iter()
        .find(|(w, _)| w.name == "orders-api")
        .expect("orders");
    assert_eq!(orders.category, Category::MissingEnvVar);
    assert!(orders.fix.is_none());
    assert!(
        orders.rca.decision_rationale.contains("never invents"),
        "{}",
        orders.rca.decision_rationale
    );
}

#[test]
fn a_bare_pod_gets_only_image_fixes() {
    let mut source = MockSource::new(aegis_cluster::sim::DEMO_WORLD, &[]).expect("world");
    source.apply(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": "default"},
        "spec": {"containers": [{"name": "w", "image": "ghcr.io/aegis-demo/report-worker:1.8.0", "resources": {"limits": {"memory": "64Mi"}}}]}}));
    let state = source.observe(&Scope::all()).expect("simulates").state;
    let diagnoses = diagnose_all(&state, RulesConfig::default());
    let (_, solo) = diagnoses
        .iter()
        .find(|(w, _)| w.name == "solo")
        .expect("solo");
    assert_eq!(solo.category, Category::OomKilled);
    assert!(solo.fix.is_none());
    assert!(
        solo.rca
            .decision_rationale
            .contains("cannot be changed in place")
    );
}

#[test]
fn fix_risks_follow_what_the_change_touches() {
    let diagnoses = diagnose_all(&demo(), RulesConfig::default());
    let risk = |name: &str| {
        diagnoses
            .iter()
            .find(|(w, _)| w.name == name)
            .and_then(|(_, d)| d.fix.as_ref())
            .map(|f| f.risk)
    };
    assert_eq!(
        risk("payments-web"),
        Some(Risk::Low),
        "rolling back to a known revision"
    );
    assert_eq!(
        risk("demo-nginx"),
        Some(Risk::Medium),
        "a tag seen elsewhere"
    );
    assert_eq!(risk("report-worker"), Some(Risk::Medium));
}

#[test]
fn an_ingress_to_a_misspelled_service_is_pointed_at_the_real_one() {
    let mut source = MockSource::demo().expect("demo");
    source.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "shop", "namespace": "demo"},
        "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "store-front", "port": {"number": 80}}}},
            {"path": "/pay", "pathType": "Prefix", "backend": {"service": {"name": "payments-web", "port": {"number": 80}}}}
        ]}}]}}));
    let state = source
        .observe(&Scope::namespace("demo"))
        .expect("simulates")
        .state;
    let diagnoses = diagnose_all(&state, RulesConfig::default());
    let (_, shop) = diagnoses
        .iter()
        .find(|(w, _)| w.name == "shop")
        .expect("ingress incident");
    assert_eq!(shop.category, Category::IngressBackendMissing);
    let fix = shop.fix.as_ref().expect("a fix");
    assert!(fix.policy.allowed, "{:?}", fix.policy.violations);
    let paths = &fix.patch["spec"]["rules"][0]["http"]["paths"];
    assert_eq!(paths[0]["backend"]["service"]["name"], "storefront");
    assert_eq!(
        paths[1]["backend"]["service"]["name"], "payments-web",
        "other backends are untouched"
    );
    assert_eq!(
        fix.inverse_patch["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "store-front"
    );
    assert_every_inverse_undoes_its_patch(&state);
}

/// For every fix the rules propose on `state`: the patch changes the target, and the inverse
/// applied after it gives the target back, as the API server would store it.
fn assert_every_inverse_undoes_its_patch(state: &ClusterState) -> usize {
    let lookup = Lookup::new(state);
    let mut checked = 0;
    for (workload, diagnosis) in diagnose_all(state, RulesConfig::default()) {
        let Some(fix) = diagnosis.fix else { continue };
        let original = lookup
            .object(&fix.target)
            .expect("the target is in the state");
        let patched = aegis_core::patch::apply(&original, fix.patch_type, &fix.patch)
            .unwrap_or_else(|e| panic!("{workload}: the patch applies: {e}"));
        assert!(
            !aegis_core::patch::same_object(&patched, &original),
            "{workload}: the patch changes nothing"
        );
        let back = aegis_core::patch::apply(&patched, fix.patch_type, &fix.inverse_patch)
            .unwrap_or_else(|e| panic!("{workload}: the inverse applies: {e}"));
        assert!(
            aegis_core::patch::same_object(&back, &original),
            "{workload}: the inverse does not undo the patch:\n{}",
            aegis_core::patch::diff(&original, &back, 2).join("\n")
        );
        checked += 1;
    }
    checked
}

#[test]
fn every_demo_fix_is_undone_by_its_inverse() {
    assert_eq!(assert_every_inverse_undoes_its_patch(&demo()), 9);
}

fn state_of(objects: Value) -> ClusterState {
    let mut sink = aegis_cluster::ObjectSink::new(Scope::all());
    sink.add(objects).expect("valid objects");
    let mut state = sink.state;
    state.settle_now();
    state
}

fn deployment(name: &str, labels: &Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "a", "uid": name},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": name, "image": "nginx:1.27.2"}]}}}})
}

#[test]
fn a_selector_sharing_labels_with_exactly_one_workload_selects_it_by_the_keys_siblings_use() {
    let state = state_of(json!({"apiVersion": "v1", "kind": "List", "items": [
        deployment("api", &json!({"app": "api", "team": "shop"})),
        deployment("web", &json!({"app": "web", "team": "shop"})),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "a"},
         "spec": {"selector": {"app": "api", "tier": "backend"}, "ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
        // A selector whose shared labels pick two workloads has no safe fix.
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop", "namespace": "a"},
         "spec": {"selector": {"team": "shop", "tier": "frontend"}, "ports": [{"port": 80}]}}
    ]}));
    let diagnoses = diagnose_all(&state, RulesConfig::default());
    let api = diagnoses
        .iter()
        .find(|(w, _)| w.name == "api" && w.kind == ResourceKind::Service)
        .map(|(_, d)| d)
        .expect("the api Service is diagnosed");
    assert_eq!(api.category, Category::ServiceSelectorMismatch);
    let fix = api.fix.as_ref().expect("a fix");
    assert_eq!(
        fix.patch,
        json!({"spec": {"selector": {"app": "api", "tier": null}}})
    );
    let shop = diagnoses
        .iter()
        .find(|(w, _)| w.name == "shop")
        .map(|(_, d)| d)
        .expect("the shop Service is diagnosed");
    assert!(shop.fix.is_none(), "{:?}", shop.fix);
    assert!(
        shop.rca
            .decision_rationale
            .contains("picks exactly one workload"),
        "{}",
        shop.rca.decision_rationale
    );
}

/// Whether one analysis step says all of `needles`.
fn has_step(diagnosis: &Diagnosis, needles: &[&str]) -> bool {
    diagnosis
        .rca
        .analysis_steps
        .iter()
        .any(|step| needles.iter().all(|n| step.contains(n)))
}

/// A Deployment at revision 2 (which dropped `DATABASE_URL`), its two ReplicaSets, and one
/// crash-looping pod of the revision `pod_hash`.
fn rolled_out(previous_ready: i32, pod_hash: &str) -> ClusterState {
    let template = |hash: &str, env: Value| {
        json!({"metadata": {"labels": {"app": "api", "pod-template-hash": hash}},
            "spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:2", "env": env}]}})
    };
    let replica_set = |hash: &str, revision: &str, ready: i32, env: Value| {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("api-{hash}"), "namespace": "a", "uid": format!("rs-{hash}"),
                "labels": {"app": "api", "pod-template-hash": hash},
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": "d", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": template(hash, env)},
            "status": {"replicas": 2, "readyReplicas": ready}})
    };
    let old_env = json!([{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}]);
    state_of(json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "a", "uid": "d",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {"metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:2", "env": []}]}}}},
        replica_set("h1", "1", previous_ready, old_env),
        replica_set("h2", "2", 0, json!([])),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("api-{pod_hash}-x"), "namespace": "a", "uid": "p",
            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "api", "pod-template-hash": pod_hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("api-{pod_hash}"), "uid": format!("rs-{pod_hash}"), "controller": true}]},
         "spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:2"}]},
         "status": {"phase": "Running", "containerStatuses": [{"name": "api", "image": "ghcr.io/acme/api:2", "imageID": "", "ready": false, "restartCount": 7,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-01-01T00:30:00Z",
                "message": "FATAL: required environment variable DATABASE_URL is not set"}}}]}}
    ]}))
}

#[test]
fn a_rollback_is_offered_only_when_the_failing_pods_run_the_newest_revision_and_an_older_one_runs_ready()
 {
    let rollback_of = |state: &ClusterState| {
        let diagnoses = diagnose_all(state, RulesConfig::default());
        let (_, diagnosis) = diagnoses
            .into_iter()
            .find(|(w, _)| w.name == "api")
            .expect("the api incident");
        assert_eq!(diagnosis.category, Category::MissingEnvVar);
        diagnosis
    };
    // Revision 1 runs ready and dropped nothing: the rollback restores its reference exactly.
    let state = rolled_out(2, "h2");
    let diagnosis = rollback_of(&state);
    let fix = diagnosis.fix.as_ref().expect("the rollback");
    let rollback = fix.rollback.as_ref().expect("a rollback fix");
    assert_eq!((rollback.from_revision, rollback.to_revision), (2, 1));
    assert_eq!(rollback.source, "ReplicaSet/api-h1");
    assert!(fix.policy.allowed, "{:?}", fix.policy);
    assert!(
        diagnosis
            .rca
            .decision_rationale
            .contains("No targeted fix was found"),
        "{}",
        diagnosis.rca.decision_rationale
    );
    let lookup = Lookup::new(&state);
    let original = lookup.object(&fix.target).expect("target");
    let patched = aegis_core::patch::apply(&original, PatchType::StrategicMerge, &fix.patch)
        .expect("applies");
    assert_eq!(
        patched.pointer("/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name"),
        Some(&json!("db"))
    );
    // No earlier revision runs ready: nothing is known to be healthy.
    let diagnosis = rollback_of(&rolled_out(0, "h2"));
    assert!(diagnosis.fix.is_none());
    assert!(
        has_step(&diagnosis, &["no earlier revision", "ready pods"]),
        "{:?}",
        diagnosis.rca.analysis_steps
    );
    // The failing pod runs the old revision: the last rollout did not bring the failure.
    let diagnosis = rollback_of(&rolled_out(2, "h1"));
    assert!(diagnosis.fix.is_none());
    assert!(
        has_step(&diagnosis, &["does not run the newest revision"]),
        "{:?}",
        diagnosis.rca.analysis_steps
    );
}
