//! The scope of a change. That narrowing an analysis to it changes nothing about the incidents
//! it reports is tested on the demo world and the real-world corpus (`tests/real_world.rs`).

use std::collections::BTreeSet;

use aegis_core::{ClusterState, ResourceKind, ResourceRef};
use serde_json::{Value, json};

use super::*;

fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}])
}

/// `web` (2 pods) and `api` (6) share the `front` Service; `batch` (20) has its own.
fn shop() -> ClusterState {
    let mut state = ClusterState::default();
    for (name, count, labels) in [
        ("web", 2, json!({"app": "web", "tier": "front"})),
        ("api", 6, json!({"app": "api", "tier": "front"})),
        ("batch", 20, json!({"app": "batch"})),
    ] {
        let rs = format!("{name}-abc");
        state.deployments.push(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop",
                "uid": format!("d-{name}")}}))
            .expect("a Deployment"),
        );
        state.replica_sets.push(
            serde_json::from_value(json!({"metadata": {"name": rs, "namespace": "shop",
                "uid": format!("r-{name}"),
                "ownerReferences": owner("Deployment", name, &format!("d-{name}"))}}))
            .expect("a ReplicaSet"),
        );
        for n in 0..count {
            state.pods.push(
                serde_json::from_value(json!({"metadata": {"name": format!("{rs}-{n}"),
                    "namespace": "shop", "uid": format!("p-{name}-{n}"), "labels": labels,
                    "ownerReferences": owner("ReplicaSet", &rs, &format!("r-{name}"))}}))
                .expect("a Pod"),
            );
        }
    }
    for (name, selector) in [
        ("web-svc", json!({"app": "web"})),
        ("front", json!({"tier": "front"})),
        ("batch-svc", json!({"app": "batch"})),
        ("external", json!({})),
    ] {
        state.services.push(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"},
                "spec": {"selector": selector}}))
            .expect("a Service"),
        );
    }
    state
}

fn shop_ref(kind: ResourceKind, name: &str) -> ResourceRef {
    ResourceRef::namespaced(kind, "shop", name)
}

fn changed(refs: &[ResourceRef]) -> BTreeSet<ResourceRef> {
    refs.iter().cloned().collect()
}

#[test]
fn a_change_concerns_its_workload_the_services_serving_it_and_what_they_select() {
    let state = shop();
    let expected: BTreeSet<ResourceRef> = [
        shop_ref(ResourceKind::Deployment, "web"),
        shop_ref(ResourceKind::Deployment, "api"),
        shop_ref(ResourceKind::Service, "web-svc"),
        shop_ref(ResourceKind::Service, "front"),
    ]
    .into_iter()
    .collect();
    for (what, reference) in [
        ("a pod", shop_ref(ResourceKind::Pod, "web-abc-0")),
        (
            "its ReplicaSet",
            shop_ref(ResourceKind::ReplicaSet, "web-abc"),
        ),
        ("its Deployment", shop_ref(ResourceKind::Deployment, "web")),
        (
            "a Service serving it",
            shop_ref(ResourceKind::Service, "web-svc"),
        ),
    ] {
        let scope = change_scope(&state, &changed(&[reference])).expect("a scope");
        assert_eq!(scope.workloads, expected, "{what}");
        assert_eq!(scope.pods.len(), 8, "{what}: web's 2 pods and api's 6");
    }
    // A Service without a selector selects nothing: it concerns itself alone.
    let scope = change_scope(
        &state,
        &changed(&[shop_ref(ResourceKind::Service, "external")]),
    )
    .expect("a scope");
    assert_eq!(
        scope.workloads,
        changed(&[shop_ref(ResourceKind::Service, "external")])
    );
    assert!(scope.pods.is_empty());
    // Gone from the state: the object concerns itself (a bare pod's incident is its own).
    let gone = shop_ref(ResourceKind::Pod, "gone");
    let scope = change_scope(&state, &changed(std::slice::from_ref(&gone))).expect("a scope");
    assert_eq!(scope.workloads, changed(&[gone]));
}

#[test]
fn a_change_concerning_most_of_the_state_analyzes_all_of_it() {
    let state = shop();
    let batch = changed(&[shop_ref(ResourceKind::Deployment, "batch")]);
    assert_eq!(change_scope(&state, &batch), None, "20 of 28 pods");
}
