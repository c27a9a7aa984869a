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
