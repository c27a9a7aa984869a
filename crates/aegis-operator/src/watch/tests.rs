//! What a change marks: the object it touched, gathered by namespace; a whole-namespace mark
//! wins; objects to look at again are marked once their time comes.

use std::collections::BTreeSet;

use aegis_core::ResourceKind;
use serde_json::json;

use super::*;

fn parts(parts: &[Part]) -> BTreeSet<Part> {
    parts.iter().cloned().collect()
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

#[test]
fn a_pod_marks_its_controller_so_a_pod_that_is_gone_still_names_its_workload() {
    let pod = |owners: serde_json::Value| -> CachedPod {
        serde_json::from_value(
            json!({"metadata": {"name": "web-abc-1", "namespace": "shop",
            "ownerReferences": owners}, "spec": {"containers": []}}),
        )
        .expect("a pod")
    };
    assert_eq!(
        the_pod(&pod(
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
            "uid": "u", "controller": true}])
        )),
        Some(Touch::part(
            Some("shop"),
            Part::Owner(ResourceKind::ReplicaSet, "web-abc".to_owned())
        ))
    );
    assert_eq!(
        the_pod(&pod(json!([]))),
        Some(Touch::part(Some("shop"), Part::Pod("web-abc-1".to_owned())))
    );
}

/// A store holding `objects`, as a reflector's first list leaves it.
fn store_of<K>(objects: Vec<serde_json::Value>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + 'static,
{
    let (reader, mut writer) = reflector::store();
    for object in objects {
        let object: K = serde_json::from_value(object).expect("a valid object");
        writer.apply_watcher_event(&watcher::Event::Apply(object));
    }
    reader
}

#[test]
fn the_policies_of_a_namespace_and_the_webhooks_with_the_services_they_call_are_analysed() {
    let mut caches = Caches::detached();
    caches.namespaces = store_of(vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
    ]);
    caches.services = store_of(vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "checker", "namespace": "a"},
               "spec": {"selector": {"app": "checker"}, "ports": [{"port": 443}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    ]);
    caches.endpoint_slices = store_of(vec![json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "checker-x", "namespace": "a", "labels": {"kubernetes.io/service-name": "checker"}},
        "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": false}}]})]);
    caches.validating_webhooks = store_of(vec![json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policy"},
        "webhooks": [{"name": "check.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                      "clientConfig": {"service": {"namespace": "a", "name": "checker"}}}]})]);
    caches.network_policies = store_of(vec![json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "stale", "namespace": "a"},
        "spec": {"podSelector": {"matchLabels": {"app": "legacy"}}}})]);
    caches.disruption_budgets = store_of(vec![json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "typo", "namespace": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"selector": {"matchLabels": {"app": "wbe"}}, "minAvailable": 1}})]);

    let reasons = |state: &ClusterState| -> Vec<String> {
        let mut found: Vec<String> = aegis_k8sgpt::analyze(
            &state.index(),
            &aegis_k8sgpt::AnalyzerConfig::default(),
            None,
            None,
        )
        .into_iter()
        .map(|d| {
            format!(
                "{}:{} {}",
                d.finding.analyzer, d.finding.reason, d.finding.resource
            )
        })
        .collect();
        found.sort();
        found
    };
    // The pass over cluster-scoped objects holds the webhook and only the Service it calls.
    let cluster = caches.state_of(CLUSTER);
    assert_eq!(cluster.validating_webhooks.len(), 1);
    let services: Vec<_> = cluster
        .services
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .collect();
    assert_eq!(services, ["checker"]);
    assert!(
        reasons(&cluster)
            .contains(&"ValidatingWebhookConfiguration:NoReadyEndpoints ValidatingWebhookConfiguration/policy".to_owned()),
        "{:?}",
        reasons(&cluster)
    );
    // A namespace's pass holds its policies, not the webhooks.
    let namespace = caches.state_of("a");
    assert!(namespace.validating_webhooks.is_empty());
    let found = reasons(&namespace);
    for expected in [
        "NetworkPolicy:SelectsNoPods a/NetworkPolicy/stale",
        "PodDisruptionBudget:SelectsNoPods a/PodDisruptionBudget/typo",
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected}: {found:?}"
        );
    }
}
