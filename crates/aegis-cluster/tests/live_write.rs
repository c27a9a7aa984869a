//! The live source's writes against a mock API server (tower-test): server-side apply with the
//! field manager of AEGIS, patches, deletes, lists, errors that name the object, and waits that
//! are real watches.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_cluster::mock_api::{Answer, Handle, Requests, Sent, serve, source, status};
use aegis_cluster::{ClusterWrite, DryRun, ObjectRef, WriteError};
use aegis_core::PatchType;
use serde_json::{Value, json};

/// What an API server answers to an apply: the applied object, stored.
fn stored(sent: &Sent) -> Value {
    let mut object = sent.json();
    object["metadata"]["uid"] = json!("0b5e4c1e-uid");
    object["metadata"]["resourceVersion"] = json!("7");
    object
}

fn list(kind: &str, version: &str, items: &[Value], next: Option<&str>) -> Value {
    json!({"apiVersion": "v1", "kind": kind,
        "metadata": {"resourceVersion": version, "continue": next.unwrap_or_default()},
        "items": items})
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"},
            "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    })
}

fn web() -> ObjectRef {
    ObjectRef::new("apps/v1", "Deployment", Some("demo"), "web")
}

#[tokio::test]
async fn server_side_apply_sends_the_field_manager_and_force_and_a_dry_run_only_when_asked() {
    let (source, handle) = source();
    let (task, requests) = serve(handle, |sent, _| match sent.method.as_str() {
        "PATCH" => Answer::Json(200, stored(sent)),
        _ => Answer::Json(404, status(404, "NotFound", "not served")),
    });
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}});
    let applied = source
        .apply(&namespace, DryRun::No)
        .await
        .expect("the namespace is applied");
    let checked = source
        .apply(&deployment(), DryRun::All)
        .await
        .expect("the deployment is checked");
    source
        .apply(&deployment(), DryRun::No)
        .await
        .expect("the deployment is applied");
    task.abort();

    assert_eq!(applied["kind"], "Namespace");
    assert_eq!(applied["metadata"]["uid"], "0b5e4c1e-uid");
    assert_eq!(checked["apiVersion"], "apps/v1");
    assert_eq!(checked["spec"]["replicas"], 2);

    let requests = requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for sent in &requests {
        assert_eq!(sent.method, "PATCH");
        assert_eq!(sent.content_type, "application/apply-patch+yaml");
        assert_eq!(sent.param("fieldManager"), Some("aegis"), "{sent:?}");
        assert_eq!(sent.param("force"), Some("true"), "{sent:?}");
    }
    assert_eq!(requests[0].path, "/api/v1/namespaces/demo");
    assert_eq!(requests[0].param("dryRun"), None);
    assert_eq!(
        requests[1].path,
        "/apis/apps/v1/namespaces/demo/deployments/web"
    );
    assert_eq!(requests[1].param("dryRun"), Some("All"));
    assert_eq!(requests[2].param("dryRun"), None);
    let body = requests[2].json();
    assert_eq!(
        body["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert!(
        body["metadata"].get("managedFields").is_none(),
        "managed fields are not applied: {body}"
    );
}

#[tokio::test]
async fn each_patch_type_is_sent_with_its_content_type_and_the_field_manager() {
    let (source, handle) = source();
    let (task, requests) = serve(handle, |_, _| {
        let mut object = deployment();
        object["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("managedFields");
        Answer::Json(200, object)
    });
    let target = web();
    let replicas = json!({"spec": {"replicas": 3}});
    source
        .patch(&target, PatchType::StrategicMerge, &replicas, DryRun::All)
        .await
        .expect("strategic merge");
    source
        .patch(&target, PatchType::Merge, &replicas, DryRun::No)
        .await
        .expect("merge");
    let operations = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]);
    let patched = source
        .patch(&target, PatchType::Json, &operations, DryRun::No)
        .await
        .expect("json patch");
    let not_a_json_patch = source
        .patch(&target, PatchType::Json, &replicas, DryRun::No)
        .await;
    task.abort();

    assert_eq!(patched["metadata"]["name"], "web");
    match not_a_json_patch {
        Err(WriteError::Invalid { object, .. }) => assert_eq!(object, "Deployment demo/web"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let requests = requests.lock().expect("lock").clone();
    assert_eq!(
        requests.len(),
        3,
        "a patch that is not a JSON patch is not sent: {requests:#?}"
    );
    let content_types: Vec<&str> = requests.iter().map(|s| s.content_type.as_str()).collect();
    assert_eq!(
        content_types,
        [
            "application/strategic-merge-patch+json",
            "application/merge-patch+json",
            "application/json-patch+json",
        ]
    );
    for sent in &requests {
        assert_eq!(sent.method, "PATCH");
        assert_eq!(sent.path, "/apis/apps/v1/namespaces/demo/deployments/web");
        assert_eq!(sent.param("fieldManager"), Some("aegis"), "{sent:?}");
        assert_eq!(sent.param("force"), None, "only apply forces");
    }
    assert_eq!(requests[0].param("dryRun"), Some("All"));
    assert_eq!(requests[1].param("dryRun"), None);
    assert_eq!(requests[2].json(), operations);
}

#[tokio::test]
async fn a_conflict_maps_to_a_conflict_that_names_the_object_and_keeps_the_servers_message() {
    let (source, handle) = source();
    let (task, _) = serve(handle, |_, _| {
        Answer::Json(
            409,
            status(
                409,
                "Conflict",
                "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified",
            ),
        )
    });
    let result = source.apply(&deployment(), DryRun::No).await;
    task.abort();
    match result {
        Err(error @ WriteError::Conflict { .. }) => {
            let text = error.to_string();
            assert!(text.contains("Deployment demo/web"), "{text}");
            assert!(text.contains("the object has been modified"), "{text}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn each_api_error_code_maps_to_its_write_error() {
    let cases: [(u16, &str); 5] = [
        (403, "Refused"),
        (422, "Invalid"),
        (400, "Invalid"),
        (404, "NotFound"),
        (500, "Transport"),
    ];
    for (code, expected) in cases {
        let (source, handle) = source();
        let (task, _) = serve(handle, move |_, _| {
            Answer::Json(code, status(code, "Failure", "the server says no"))
        });
        let result = source
            .patch(
                &web(),
                PatchType::Merge,
                &json!({"spec": {"replicas": 1}}),
                DryRun::No,
            )
            .await;
        task.abort();
        let error = result.expect_err("the patch fails");
        let variant = match &error {
            WriteError::Refused { .. } => "Refused",
            WriteError::Invalid { .. } => "Invalid",
            WriteError::NotFound { .. } => "NotFound",
            WriteError::Transport { .. } => "Transport",
            WriteError::Conflict { .. } => "Conflict",
            WriteError::UnsupportedKind { .. } => "UnsupportedKind",
        };
        assert_eq!(variant, expected, "HTTP {code}: {error}");
        let text = error.to_string();
        assert!(text.contains("Deployment demo/web"), "{text}");
        if code != 404 {
            assert!(text.contains("the server says no"), "{text}");
        }
    }
}

#[tokio::test]
async fn deleting_an_object_that_is_already_gone_gives_false() {
    let (source, handle) = source();
    let (task, requests) = serve(handle, |_, _| {
        Answer::Json(
            404,
            status(404, "NotFound", "deployments.apps \"web\" not found"),
        )
    });
    let deleted = source
        .delete(&web())
        .await
        .expect("a missing object is no error");
    task.abort();
    assert!(!deleted);
    let requests = requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "DELETE");
    assert_eq!(
        requests[0].path,
        "/apis/apps/v1/namespaces/demo/deployments/web"
    );
}

#[tokio::test]
async fn deleting_a_namespace_gives_true_and_again_while_it_is_terminating() {
    let (source, handle) = source();
    let first = Arc::new(Mutex::new(true));
    let (task, requests) = serve(handle, move |_, _| {
        let mut first = first.lock().expect("lock");
        if std::mem::replace(&mut *first, false) {
            Answer::Json(
                200,
                json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "demo", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                    "status": {"phase": "Terminating"}}),
            )
        } else {
            Answer::Json(
                409,
                status(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on namespaces \"demo\": The system is ensuring all content is removed from this namespace.",
                ),
            )
        }
    });
    let namespace = ObjectRef::new("v1", "Namespace", None, "demo");
    let first = source.delete(&namespace).await.expect("deleted");
    let again = source.delete(&namespace).await.expect("already going");
    task.abort();
    assert!(first);
    assert!(again);
    let requests = requests.lock().expect("lock").clone();
    assert_eq!(requests[0].path, "/api/v1/namespaces/demo");
    assert_eq!(requests[0].json()["propagationPolicy"], "Background");
}

#[tokio::test]
async fn reading_a_missing_object_gives_none() {
    let (source, handle) = source();
    let (task, _) = serve(handle, |_, _| {
        Answer::Json(404, status(404, "NotFound", "not found"))
    });
    let found = source
        .get(&web())
        .await
        .expect("a missing object is no error");
    task.abort();
    assert!(found.is_none());
}

#[tokio::test]
async fn listing_follows_pages_and_fills_in_api_version_and_kind() {
    let (source, handle) = source();
    let (task, requests) = serve(handle, |sent, _| {
        let item = |name: &str| json!({"metadata": {"name": name, "namespace": "demo"}, "spec": {"replicas": 1}});
        if sent.param("continue").is_none() {
            Answer::Json(
                200,
                list("DeploymentList", "9", &[item("web")], Some("page-2")),
            )
        } else {
            Answer::Json(200, list("DeploymentList", "9", &[item("api")], None))
        }
    });
    let items = source
        .list("apps/v1", "Deployment", Some("demo"), "app=web")
        .await
        .expect("listed");
    task.abort();
    let names: Vec<&str> = items
        .iter()
        .filter_map(|item| item["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["web", "api"]);
    assert!(
        items
            .iter()
            .all(|item| item["apiVersion"] == "apps/v1" && item["kind"] == "Deployment"),
        "{items:#?}"
    );
    let requests = requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].path,
        "/apis/apps/v1/namespaces/demo/deployments"
    );
    assert_eq!(requests[0].param("labelSelector"), Some("app%3Dweb"));
    assert_eq!(requests[0].param("limit"), Some("500"));
    assert_eq!(requests[1].param("continue"), Some("page-2"));
}

#[tokio::test]
async fn an_unsupported_kind_is_refused_without_any_request() {
    let (source, handle) = source();
    let (task, requests) = serve(handle, |_, _| Answer::Json(200, json!({})));
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "demo"}});
    let applied = source.apply(&widget, DryRun::No).await;
    let old_api = source
        .get(&ObjectRef::new(
            "extensions/v1beta1",
            "Deployment",
            Some("demo"),
            "web",
        ))
        .await;
    let listed = source.list("v1", "Node", None, "").await;
    task.abort();
    match applied {
        Err(WriteError::UnsupportedKind { api_version, kind }) => {
            assert_eq!(api_version, "example.com/v1");
            assert_eq!(kind, "Widget");
        }
        other => panic!("expected UnsupportedKind, got {other:?}"),
    }
    assert!(matches!(old_api, Err(WriteError::UnsupportedKind { .. })));
    assert!(matches!(listed, Err(WriteError::UnsupportedKind { .. })));
    assert!(requests.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_namespaced_object_without_a_namespace_is_invalid_without_any_request() {
    let (source, handle) = source();
    let (task, requests) = serve(handle, |_, _| Answer::Json(200, json!({})));
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}});
    let result = source.apply(&config, DryRun::No).await;
    task.abort();
    match result {
        Err(WriteError::Invalid { object, .. }) => assert_eq!(object, "ConfigMap settings"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(requests.lock().expect("lock").is_empty());
}

/// A mock API server for waits: lists of pods and events with their resource versions, the pod
/// watch answered by `pod_watch`, and the event watch never answered.
fn serve_watch(
    handle: Handle,
    pod_watch: impl Fn() -> Answer + Send + 'static,
) -> (tokio::task::JoinHandle<()>, Requests) {
    serve(handle, move |sent, _| {
        let watching = sent.param("watch") == Some("true");
        match (sent.path.as_str(), watching) {
            ("/api/v1/namespaces/demo/pods", false) => {
                Answer::Json(200, list("PodList", "100", &[], None))
            }
            ("/api/v1/namespaces/demo/pods", true) => pod_watch(),
            ("/api/v1/namespaces/demo/events", false) => {
                Answer::Json(200, list("EventList", "200", &[], None))
            }
            ("/api/v1/namespaces/demo/events", true) => Answer::Hang,
            _ => Answer::Json(404, status(404, "NotFound", "not served")),
        }
    })
}

#[tokio::test]
async fn waiting_returns_on_the_first_watch_event() {
    let (source, handle) = source();
    let (task, requests) = serve_watch(handle, || {
        Answer::Lines(vec![json!({"type": "ADDED", "object": {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "demo", "resourceVersion": "101"}}})])
    });
    let started = Instant::now();
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        source.wait("demo", Duration::from_secs(60)),
    )
    .await
    .expect("the wait ends on the event, not at its timeout");
    task.abort();
    waited.expect("a change ends the wait");
    assert!(started.elapsed() < Duration::from_secs(20));

    let requests = requests.lock().expect("lock").clone();
    let pod_list = requests
        .iter()
        .find(|s| s.path.ends_with("/pods") && s.param("watch").is_none())
        .expect("pods are listed");
    assert_eq!(pod_list.param("limit"), Some("1"));
    let pod_watch = requests
        .iter()
        .find(|s| s.path.ends_with("/pods") && s.param("watch") == Some("true"))
        .expect("pods are watched");
    assert_eq!(pod_watch.param("resourceVersion"), Some("100"));
    assert_eq!(pod_watch.param("timeoutSeconds"), Some("60"));
    let event_watch = requests
        .iter()
        .find(|s| s.path.ends_with("/events") && s.param("watch") == Some("true"))
        .expect("events are watched");
    assert_eq!(event_watch.param("resourceVersion"), Some("200"));
}

#[tokio::test]
async fn waiting_ends_without_error_when_the_watch_has_expired() {
    let (source, handle) = source();
    let (task, _) = serve_watch(handle, || {
        Answer::Lines(vec![json!({"type": "ERROR", "object": status(
            410,
            "Expired",
            "too old resource version: 100 (150)",
        )})])
    });
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        source.wait("demo", Duration::from_secs(60)),
    )
    .await
    .expect("an expired watch ends the wait");
    task.abort();
    waited.expect("an expired watch is no error");
}

#[tokio::test]
async fn waiting_ends_without_error_when_the_watch_request_is_gone() {
    let (source, handle) = source();
    let (task, _) = serve_watch(handle, || {
        Answer::Json(410, status(410, "Gone", "too old resource version"))
    });
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        source.wait("demo", Duration::from_secs(60)),
    )
    .await
    .expect("a 410 answer ends the wait");
    task.abort();
    waited.expect("a 410 answer is no error");
}

#[tokio::test]
async fn waiting_without_any_change_ends_at_the_timeout() {
    let (source, handle) = source();
    let (task, requests) = serve_watch(handle, || Answer::Hang);
    let started = Instant::now();
    source
        .wait("demo", Duration::from_millis(300))
        .await
        .expect("a quiet namespace is no error");
    let elapsed = started.elapsed();
    task.abort();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let requests = requests.lock().expect("lock").clone();
    let pod_watch = requests
        .iter()
        .find(|s| s.path.ends_with("/pods") && s.param("watch") == Some("true"))
        .expect("pods are watched");
    assert_eq!(
        pod_watch.param("timeoutSeconds"),
        Some("1"),
        "rounded up to a second"
    );
}

#[tokio::test]
async fn a_watch_the_server_fails_is_a_transport_error_naming_the_namespace() {
    let (source, handle) = source();
    let (task, _) = serve_watch(handle, || {
        Answer::Json(500, status(500, "InternalError", "etcd is unavailable"))
    });
    let result = source.wait("demo", Duration::from_secs(60)).await;
    task.abort();
    match result {
        Err(error @ WriteError::Transport { .. }) => {
            let text = error.to_string();
            assert!(text.contains("namespace demo"), "{text}");
            assert!(text.contains("etcd is unavailable"), "{text}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
}
