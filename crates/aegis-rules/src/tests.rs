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
    let detections = analyze(index, &AnalyzerConfig::default(), None);
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
