//! What a change marks, and the scope of a change: the workloads it concerns, the Services
//! serving them and every workload those Services select, or the whole namespace when that is
//! most of it anyway.

use std::collections::BTreeSet;

use aegis_core::{ResourceKind, ResourceRef};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::{reflector, watcher};
use serde_json::{Value, json};

use super::*;

fn store<K>(objects: Vec<Value>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + 'static,
{
    let (reader, mut writer) = reflector::store();
    for object in objects {
        let object: K = serde_json::from_value(object).expect("an object");
        writer.apply_watcher_event(&watcher::Event::Apply(object));
    }
    reader
}

fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}])
}

/// A Deployment `name` with its ReplicaSet and `pods` pods labelled `labels`.
fn workload(name: &str, pods: usize, labels: &Value) -> (Value, Value, Vec<Value>) {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("d-{name}")}});
    let rs = format!("{name}-abc");
    let replica_set = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": rs, "namespace": "shop", "uid": format!("r-{name}"),
                     "ownerReferences": owner("Deployment", name, &format!("d-{name}"))}});
    let pods = (0..pods)
        .map(|n| {
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{rs}-{n}"), "namespace": "shop", "uid": format!("p-{name}-{n}"),
                             "labels": labels,
                             "ownerReferences": owner("ReplicaSet", &rs, &format!("r-{name}"))},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
                "status": {"phase": "Running"}})
        })
        .collect();
    (deployment, replica_set, pods)
}

fn service(name: &str, selector: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"}, "spec": {"selector": selector}})
}

/// `web` (2 pods) and `api` (6) share the `front` Service; `batch` (20) has none.
fn caches() -> Caches {
    let mut deployments = Vec::new();
    let mut replica_sets = Vec::new();
    let mut pods = Vec::new();
    for (name, count, labels) in [
        ("web", 2, json!({"app": "web", "tier": "front"})),
        ("api", 6, json!({"app": "api", "tier": "front"})),
        ("batch", 20, json!({"app": "batch"})),
    ] {
        let (deployment, replica_set, more) = workload(name, count, &labels);
        deployments.push(deployment);
        replica_sets.push(replica_set);
        pods.extend(more);
    }
    let incident = json!({"apiVersion": "aegis.io/v1alpha1", "kind": "Incident",
        "metadata": {"name": "inc-gone", "namespace": "shop"},
        "spec": {"workload": {"kind": "Deployment", "namespace": "shop", "name": "api"},
                 "category": "oom-killed"},
        "status": {"incident": serde_json::to_value(gone_pod_incident()).expect("serializes")}});
    Caches {
        pods: store(pods),
        deployments: store::<Deployment>(deployments),
        replica_sets: store::<ReplicaSet>(replica_sets),
        services: store::<Service>(vec![
            service("web-svc", &json!({"app": "web"})),
            service("front", &json!({"tier": "front"})),
            service("batch-svc", &json!({"app": "batch"})),
        ]),
        incidents: store(vec![incident]),
        ..Caches::detached()
    }
}

/// An incident about pod `api-abc-gone` (no longer cached) of Deployment `api`.
fn gone_pod_incident() -> aegis_core::Incident {
    serde_json::from_value(json!({
        "id": "inc-gone", "resource": {"kind": "Pod", "namespace": "shop", "name": "api-abc-gone"},
        "workload": {"kind": "Deployment", "namespace": "shop", "name": "api"},
        "findings": [], "fix": null,
        "rca": {"category": "oom-killed", "summary": "s", "root_cause": "r", "confidence": 0.9,
                "evidence": [], "analysis_steps": [], "decision_rationale": "", "backend": "rules",
                "llm": null},
        "verification": {"plan": null, "result": {"verdict": "skipped", "reason": "x"}}
    }))
    .expect("an incident")
}

fn deployment(name: &str) -> ResourceRef {
    ResourceRef::namespaced(ResourceKind::Deployment, "shop", name)
}

fn service_ref(name: &str) -> ResourceRef {
    ResourceRef::namespaced(ResourceKind::Service, "shop", name)
}

fn parts(parts: &[Part]) -> BTreeSet<Part> {
    parts.iter().cloned().collect()
}

#[test]
fn a_pod_change_concerns_its_workload_the_services_serving_it_and_what_they_select() {
    let caches = caches();
    let expected: BTreeSet<ResourceRef> = [
        deployment("web"),
        deployment("api"),
        service_ref("web-svc"),
        service_ref("front"),
    ]
    .into_iter()
    .collect();
    for (what, changed) in [
        ("a pod", parts(&[Part::Pod("web-abc-0".to_owned())])),
        (
            "its ReplicaSet",
            parts(&[Part::Owner(ResourceKind::ReplicaSet, "web-abc".to_owned())]),
        ),
        (
            "a Service serving it",
            parts(&[Part::Service("web-svc".to_owned())]),
        ),
    ] {
        let scope = caches.scope_of("shop", &changed).expect("a scope");
        assert_eq!(scope.workloads, expected, "{what}");
        assert_eq!(scope.pods.len(), 8, "{what}: web's 2 and api's 6");
        assert_eq!(
            scope.services,
            ["front", "web-svc"]
                .map(str::to_owned)
                .into_iter()
                .collect(),
            "{what}"
        );
    }
    // The analysis sees those pods and Services only.
    let scope = caches
        .scope_of("shop", &parts(&[Part::Pod("web-abc-0".to_owned())]))
        .expect("a scope");
    let state = caches.state_of_scope("shop", &scope);
    assert_eq!(state.pods.len(), 8);
    assert_eq!(state.services.len(), 2);
    assert_eq!(state.deployments.len(), 3, "workload objects stay whole");
    assert_eq!(caches.state_of("shop").pods.len(), 28);
}

#[test]
fn a_pod_that_is_gone_concerns_its_own_incident_and_any_incident_about_it() {
    let scope = caches()
        .scope_of("shop", &parts(&[Part::Pod("api-abc-gone".to_owned())]))
        .expect("a scope");
    assert!(scope.workloads.contains(&ResourceRef::namespaced(
        ResourceKind::Pod,
        "shop",
        "api-abc-gone"
    )));
    assert!(scope.workloads.contains(&deployment("api")), "{scope:?}");
}

#[test]
fn a_change_concerning_most_of_a_namespace_analyzes_all_of_it() {
    let changed = parts(&[Part::Owner(ResourceKind::Deployment, "batch".to_owned())]);
    assert_eq!(caches().scope_of("shop", &changed), None, "20 of 28 pods");
}

#[test]
fn marks_gather_by_namespace_and_a_whole_namespace_mark_wins() {
    let dirty = Dirty::default();
    dirty.touch(Touch::part(Some("shop"), Part::Pod("a".to_owned())));
    dirty.touch(Touch::part(Some("shop"), Part::Service("s".to_owned())));
    dirty.touch(Touch::part(Some("bank"), Part::Pod("b".to_owned())));
    dirty.mark("bank");
    dirty.touch(Touch::part(Some("bank"), Part::Pod("c".to_owned())));
    let marked = dirty.take_now();
    assert_eq!(
        marked.get("shop"),
        Some(&Changed::Parts(parts(&[
            Part::Pod("a".to_owned()),
            Part::Service("s".to_owned())
        ])))
    );
    assert_eq!(marked.get("bank"), Some(&Changed::All));
    assert!(dirty.take_now().is_empty(), "taken");
}

#[test]
fn an_event_marks_what_it_is_about() {
    let event = |kind: &str, name: &str| -> k8s_openapi::api::core::v1::Event {
        serde_json::from_value(json!({"metadata": {"name": "e", "namespace": "shop"},
            "involvedObject": {"kind": kind, "name": name, "namespace": "shop"}}))
        .expect("an event")
    };
    assert_eq!(
        the_subject(&event("Pod", "p")),
        Some(Touch::part(Some("shop"), Part::Pod("p".to_owned())))
    );
    assert_eq!(
        the_subject(&event("ReplicaSet", "r")),
        Some(Touch::part(
            Some("shop"),
            Part::Owner(ResourceKind::ReplicaSet, "r".to_owned())
        ))
    );
    assert_eq!(
        the_subject(&event("Node", "n")),
        Some(Touch::namespace(CLUSTER))
    );
    assert_eq!(
        the_subject(&event("PersistentVolumeClaim", "c")),
        Some(Touch::namespace("shop"))
    );
}

#[test]
fn an_object_asked_to_be_looked_at_again_is_marked_once_its_time_comes() {
    let dirty = Dirty::default();
    assert_eq!(dirty.next_due(), None);
    let now = std::time::Instant::now();
    let soon = now + std::time::Duration::from_secs(3600);
    dirty.touch_at(
        soon,
        Touch::part(Some("shop"), Part::Pod("later".to_owned())),
    );
    // Asked twice: looked at once.
    let past = now
        .checked_sub(std::time::Duration::from_secs(1))
        .expect("a past instant");
    dirty.touch_at(past, Touch::part(Some("shop"), Part::Pod("now".to_owned())));
    dirty.touch_at(past, Touch::part(Some("shop"), Part::Pod("now".to_owned())));
    assert_eq!(dirty.next_due(), Some(past));
    let due = dirty.take_due();
    assert_eq!(
        due.get("shop"),
        Some(&Changed::Parts(parts(&[Part::Pod("now".to_owned())])))
    );
    assert!(dirty.take_due().is_empty(), "taken once");
    assert_eq!(dirty.next_due(), Some(soon), "the later one waits");
    assert!(dirty.take_now().is_empty(), "not marked before its time");
}
