//! Tests of the simulator: the demo world behaves as its world model says.

use aegis_core::ClusterState;
use k8s_openapi::api::core::v1::Pod;

use super::*;

fn demo() -> ClusterState {
    MockSource::demo_state().expect("the demo world simulates")
}

fn pods_of<'a>(state: &'a ClusterState, namespace: &str, prefix: &str) -> Vec<&'a Pod> {
    state
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.container_statuses.as_ref()?[0]
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[test]
fn each_demo_scenario_fails_the_way_its_world_model_says() {
    let state = demo();
    let orders = pods_of(&state, "demo", "orders-api-");
    assert_eq!(orders.len(), 2);
    assert_eq!(
        waiting_reason(orders[0]).as_deref(),
        Some("CrashLoopBackOff")
    );
    let name = orders[0].metadata.name.clone().unwrap_or_default();
    let log = state.log("demo", &name, "api", true).expect("previous log");
    assert!(log.contains("DATABASE_URL is not set"), "{log}");

    let worker = pods_of(&state, "demo", "report-worker-");
    let last = worker[0]
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .expect("statuses")[0]
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated before");
    assert_eq!(last.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(last.exit_code, 137);

    let payments = pods_of(&state, "demo", "payments-web-");
    assert_eq!(
        payments.len(),
        3,
        "two old pods stay while the surge pod fails"
    );
    assert_eq!(payments.iter().filter(|p| ready(p)).count(), 2);
    assert!(
        payments
            .iter()
            .any(|p| waiting_reason(p).as_deref() == Some("ImagePullBackOff"))
    );

    assert!(pods_of(&state, "demo", "inventory-").iter().all(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .expect("statuses")[0]
            .restart_count
            > 0
    }));
    assert!(
        pods_of(&state, "demo", "catalog-")
            .iter()
            .all(|p| !ready(p))
    );
    let trainer = pods_of(&state, "demo", "ml-trainer-");
    assert_eq!(
        trainer[0].status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    assert!(
        pods_of(&state, "demo", "storefront-")
            .iter()
            .all(|p| ready(p))
    );
    assert_eq!(
        waiting_reason(pods_of(&state, "default", "demo-nginx")[0]).as_deref(),
        Some("ImagePullBackOff")
    );
    assert!(
        pods_of(&state, "production", "api-gateway-")
            .iter()
            .all(|p| waiting_reason(p).as_deref() == Some("CreateContainerConfigError"))
    );
    assert!(ready(pods_of(&state, "production", "redis-0")[0]));
}

#[test]
fn services_get_endpoints_only_from_pods_their_selector_matches() {
    let state = demo();
    let slice = |service: &str| {
        state
            .endpoint_slices
            .iter()
            .find(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .map(String::as_str)
                    == Some(service)
            })
            .expect("slice exists")
    };
    assert!(
        slice("storefront").endpoints.is_empty(),
        "wrong selector matches nothing"
    );
    let catalog = &slice("catalog").endpoints;
    assert_eq!(catalog.len(), 2);
    assert!(
        catalog
            .iter()
            .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(false))
    );
    assert!(
        slice("redis")
            .endpoints
            .iter()
            .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
    );
}

#[test]
fn a_fixed_spec_becomes_ready() {
    let mut source = MockSource::demo().expect("demo");
    let mut fixed: Value =
        serde_yaml::from_str(DEMO_MANIFESTS[2].1.split("---").nth(1).expect("deployment"))
            .expect("yaml");
    fixed["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("env")
        .push(json!({"name": "DATABASE_URL", "valueFrom": {"configMapKeyRef": {"name": "orders-api-config", "key": "DATABASE_URL"}}}));
    source.apply(fixed);
    let state = source
        .observe(&Scope::namespace("demo"))
        .expect("simulates")
        .state;
    let orders = pods_of(&state, "demo", "orders-api-");
    assert!(
        orders.iter().filter(|p| ready(p)).count() >= 2,
        "fixed revision is ready"
    );
}

#[test]
fn the_simulation_is_deterministic() {
    let a = demo();
    let b = demo();
    let names = |s: &ClusterState| {
        s.pods
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b));
    assert_eq!(a.events.len(), b.events.len());
    assert_eq!(a.logs, b.logs);
}

#[test]
fn a_crash_falls_back_to_the_log_tail_in_the_termination_message_only_when_asked() {
    let terminated_message = |pod: &Pod| {
        pod.status.as_ref()?.container_statuses.as_ref()?[0]
            .last_state
            .as_ref()?
            .terminated
            .as_ref()?
            .message
            .clone()
    };
    let state = demo();
    // orders-api asks for FallbackToLogsOnError; report-worker (OOMKilled) does not.
    let orders = pods_of(&state, "demo", "orders-api-");
    let message = terminated_message(orders[0]).expect("a termination message");
    assert!(
        message.ends_with("FATAL: required environment variable DATABASE_URL is not set"),
        "{message}"
    );
    let worker = pods_of(&state, "demo", "report-worker-");
    assert_eq!(terminated_message(worker[0]), None);

    let long = (0..200)
        .map(|i| format!("line {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    let tail = pod::log_tail(&long);
    assert!(
        tail.starts_with("line 120\n") && tail.ends_with("line 199"),
        "{tail}"
    );
    let wide = "x".repeat(5000);
    assert_eq!(pod::log_tail(&wide).len(), 2048);
}

/// Runs a future that never waits on anything but the simulator.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(future)
}

fn write(source: &MockSource, object: &Value) {
    block_on(crate::ClusterWrite::apply(
        source,
        object,
        crate::DryRun::No,
    ))
    .expect("applied");
}

#[test]
fn a_fresh_clone_is_seconds_old_and_becomes_ready_as_the_clock_moves() {
    let source = MockSource::demo().expect("demo");
    write(
        &source,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "copy"}}),
    );
    write(
        &source,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "copy"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27.2",
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 5}}]}}}}),
    );
    let look = |source: &MockSource| {
        let state = source
            .observe(&Scope::namespace_only("copy"))
            .expect("simulates")
            .state;
        let pod = pods_of(&state, "copy", "web-")[0].clone();
        (
            waiting_reason(&pod),
            ready(&pod),
            state.age_seconds(&pod.metadata),
        )
    };
    assert_eq!(
        look(&source),
        (Some("ContainerCreating".to_owned()), false, 0)
    );
    source.advance(Duration::from_secs(4));
    assert_eq!(
        look(&source),
        (None, false, 4),
        "running, first readiness probe not yet run"
    );
    source.advance(Duration::from_secs(5));
    assert_eq!(look(&source), (None, true, 9));
    // The demo's own workloads stay as old as they were, plus the time that passed.
    let state = source
        .observe(&Scope::namespace("demo"))
        .expect("simulates")
        .state;
    let orders = pods_of(&state, "demo", "orders-api-")[0];
    assert_eq!(state.age_seconds(&orders.metadata), 2700 + 9);
    // Reading one namespace alone lists no Node or Namespace.
    let alone = source
        .observe(&Scope::namespace_only("copy"))
        .expect("simulates")
        .state;
    assert!(alone.nodes.is_empty() && alone.namespaces.is_empty());
}

#[test]
fn a_shadow_namespace_does_not_change_what_production_pods_do() {
    let source = MockSource::demo().expect("demo");
    let statuses = |source: &MockSource| {
        let state = source.observe(&Scope::all()).expect("simulates").state;
        state
            .pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() != Some("copy"))
            .map(|p| {
                (
                    p.metadata.name.clone(),
                    p.spec.as_ref().and_then(|s| s.node_name.clone()),
                    waiting_reason(p),
                    ready(p),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = statuses(&source);
    write(
        &source,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "copy"}}),
    );
    // A clone that takes most of a node's memory, and one that takes a node's name-sake pods.
    write(
        &source,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big", "namespace": "copy"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "big"}}, "template": {"metadata": {"labels": {"app": "big"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27.2", "resources": {"requests": {"memory": "7Gi", "cpu": "3"}}}]}}}}),
    );
    assert_eq!(statuses(&source), before);
}

#[test]
fn limit_ranges_default_requests_and_quotas_refuse_one_pod_too_many() {
    let source = MockSource::demo().expect("demo");
    write(
        &source,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "copy"}}),
    );
    write(
        &source,
        &json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "copy"},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "10m", "memory": "16Mi"}}]}}),
    );
    write(
        &source,
        &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "copy"},
        "spec": {"hard": {"pods": "2"}}}),
    );
    write(
        &source,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "copy"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27.2"}]}}}}),
    );
    source.advance(Duration::from_secs(10));
    let state = source
        .observe(&Scope::namespace("copy"))
        .expect("simulates")
        .state;
    let pods = pods_of(&state, "copy", "web-");
    assert_eq!(pods.len(), 2, "the quota admits two pods");
    let requests = pods[0].spec.as_ref().expect("spec").containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .expect("requests defaulted");
    assert_eq!(requests["memory"].0, "16Mi");
    let refused = state
        .events
        .iter()
        .find(|e| e.reason.as_deref() == Some("FailedCreate"))
        .expect("the third pod is refused");
    assert!(
        refused
            .message
            .as_deref()
            .is_some_and(|m| m.contains("exceeded quota: q")),
        "{refused:?}"
    );
}
