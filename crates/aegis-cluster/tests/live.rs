//! The live source against a mock API server (tower-test): one List per kind, logs only for
//! failing containers, secrets stripped, and clear errors when the server refuses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aegis_cluster::live::LiveSource;
use aegis_cluster::sim::MockSource;
use aegis_cluster::{ClusterRead, Error, Scope};
use aegis_core::ClusterState;
use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde::Serialize;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// What the mock API server serves, and what it was asked.
#[derive(Clone, Default)]
struct ApiServer {
    lists: BTreeMap<String, Value>,
    refuse: BTreeMap<String, u16>,
    requests: Arc<Mutex<Vec<String>>>,
}

fn list<T: Serialize>(kind: &str, items: &[T]) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "42"}, "items": items})
}

impl ApiServer {
    /// Serves the simulated demo world, as a real API server would.
    fn demo() -> (Self, ClusterState) {
        let state = MockSource::demo_state().expect("the demo world simulates");
        let mut lists = BTreeMap::new();
        let mut add = |path: &str, value: Value| {
            lists.insert(path.to_owned(), value);
        };
        add(
            "/api/v1/namespaces",
            list("NamespaceList", &state.namespaces),
        );
        add("/api/v1/nodes", list("NodeList", &state.nodes));
        add("/api/v1/pods", list("PodList", &state.pods));
        add(
            "/apis/apps/v1/deployments",
            list("DeploymentList", &state.deployments),
        );
        add(
            "/apis/apps/v1/replicasets",
            list("ReplicaSetList", &state.replica_sets),
        );
        add(
            "/apis/apps/v1/statefulsets",
            list("StatefulSetList", &state.stateful_sets),
        );
        add(
            "/apis/apps/v1/daemonsets",
            list("DaemonSetList", &state.daemon_sets),
        );
        add("/apis/batch/v1/jobs", list("JobList", &state.jobs));
        add(
            "/apis/batch/v1/cronjobs",
            list("CronJobList", &state.cron_jobs),
        );
        add("/api/v1/services", list("ServiceList", &state.services));
        add(
            "/apis/discovery.k8s.io/v1/endpointslices",
            list("EndpointSliceList", &state.endpoint_slices),
        );
        add(
            "/api/v1/persistentvolumeclaims",
            list("PersistentVolumeClaimList", &state.persistent_volume_claims),
        );
        add(
            "/apis/networking.k8s.io/v1/ingresses",
            list("IngressList", &state.ingresses),
        );
        add(
            "/apis/autoscaling/v2/horizontalpodautoscalers",
            list(
                "HorizontalPodAutoscalerList",
                &state.horizontal_pod_autoscalers,
            ),
        );
        add(
            "/api/v1/configmaps",
            list("ConfigMapList", &state.config_maps),
        );
        add(
            "/apis/apps/v1/controllerrevisions",
            list("ControllerRevisionList", &state.controller_revisions),
        );
        add(
            "/apis/storage.k8s.io/v1/storageclasses",
            list("StorageClassList", &state.storage_classes),
        );
        add(
            "/api/v1/secrets",
            json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": [
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "demo"}, "data": {"password": "aHVudGVyMg=="}}
            ]}),
        );
        add("/api/v1/events", list("EventList", &state.events));
        add(
            "/apis/policy/v1/poddisruptionbudgets",
            list("PodDisruptionBudgetList", &state.pod_disruption_budgets),
        );
        add(
            "/apis/networking.k8s.io/v1/networkpolicies",
            list("NetworkPolicyList", &state.network_policies),
        );
        add(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            list(
                "ValidatingWebhookConfigurationList",
                &state.validating_webhooks,
            ),
        );
        add(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            list("MutatingWebhookConfigurationList", &state.mutating_webhooks),
        );
        // Two custom kinds: one whose schema gives status conditions (listed), one without
        // (never listed).
        let definition = |plural: &str, kind: &str, status: Value| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.db.example.com")},
                "spec": {"group": "db.example.com", "scope": "Namespaced",
                    "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {"status": status}}}}]}})
        };
        add(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList", "metadata": {},
            "items": [
                definition("databases", "Database", json!({"type": "object", "properties": {
                    "conditions": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}})),
                definition("backups", "Backup", json!({"type": "object", "properties": {"phase": {"type": "string"}}})),
            ]}),
        );
        add(
            "/apis/db.example.com/v1/databases",
            json!({"apiVersion": "db.example.com/v1", "kind": "DatabaseList", "metadata": {}, "items": [
                {"apiVersion": "db.example.com/v1", "kind": "Database",
                 "metadata": {"name": "orders", "namespace": "demo", "generation": 1},
                 "spec": {"size": "1Gi"},
                 "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "VolumeFull", "observedGeneration": 1}]}}
            ]}),
        );
        (
            Self {
                lists,
                ..Self::default()
            },
            state,
        )
    }

    /// The List at `path`; a namespaced path (`…/namespaces/{ns}/pods`) holds that namespace's items.
    fn list_for(&self, path: &str) -> Option<Value> {
        if let Some(value) = self.lists.get(path) {
            return Some(value.clone());
        }
        let marker = "/namespaces/";
        let start = path.find(marker)?;
        let rest = &path[start + marker.len()..];
        let (namespace, plural) = rest.split_once('/')?;
        let mut value = self
            .lists
            .get(&format!("{}/{plural}", &path[..start]))?
            .clone();
        if let Some(items) = value["items"].as_array_mut() {
            items.retain(|item| item["metadata"]["namespace"] == namespace);
        }
        Some(value)
    }

    fn serve(self, mut handle: Handle, logs: ClusterState) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let path = request.uri().path().to_owned();
                let query = request.uri().query().unwrap_or_default().to_owned();
                self.requests
                    .lock()
                    .expect("lock")
                    .push(format!("{path}?{query}"));
                let response = if let Some(code) = self.refuse.get(&path) {
                    let status = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": format!("{path} is refused"), "reason": "Forbidden", "code": code});
                    Response::builder()
                        .status(StatusCode::from_u16(*code).expect("code"))
                        .body(Body::from(serde_json::to_vec(&status).expect("json")))
                } else if let Some(value) = self.list_for(&path) {
                    Response::builder().body(Body::from(serde_json::to_vec(&value).expect("json")))
                } else if let Some(rest) = path.strip_suffix("/log") {
                    // /api/v1/namespaces/{ns}/pods/{pod}/log
                    let parts: Vec<&str> = rest.split('/').collect();
                    let (namespace, pod) = (parts[4], parts[6]);
                    let container = query
                        .split('&')
                        .find_map(|p| p.strip_prefix("container="))
                        .unwrap_or_default();
                    let previous = query.contains("previous=true");
                    let text = logs
                        .log(namespace, pod, container, previous)
                        .unwrap_or_default()
                        .to_owned();
                    Response::builder().body(Body::from(text.into_bytes()))
                } else {
                    let status = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404});
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Body::from(serde_json::to_vec(&status).expect("json")))
                };
                send.send_response(response.expect("response"));
            }
        })
    }
}

fn client() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

#[tokio::test]
async fn each_kind_is_listed_once_and_only_failing_containers_logs_are_read() {
    let (server, simulated) = ApiServer::demo();
    let requests = server.requests.clone();
    let (client, handle) = client();
    let task = server.serve(handle, simulated.clone());
    let source = LiveSource::from_client(client, "https://mock", 200);
    let loaded = source.load(&Scope::all()).await.expect("loads");
    drop(source);
    task.abort();

    let requests = requests.lock().expect("lock").clone();
    let lists: Vec<&String> = requests.iter().filter(|r| !r.contains("/log?")).collect();
    assert_eq!(
        lists.len(),
        25,
        "one List per kind, the CustomResourceDefinitions, and the one custom kind with conditions: {lists:#?}"
    );
    assert!(!lists.iter().any(|r| r.contains("backups")), "{lists:#?}");
    let mut paths: Vec<&str> = lists
        .iter()
        .map(|r| r.split('?').next().unwrap_or_default())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), 25, "no kind listed twice");
    assert!(
        lists.iter().all(|r| r.contains("limit=500")),
        "lists are paginated"
    );

    let log_requests: Vec<&String> = requests.iter().filter(|r| r.contains("/log?")).collect();
    assert!(!log_requests.is_empty());
    assert!(
        log_requests
            .iter()
            .all(|r| !r.contains("storefront") && !r.contains("redis")),
        "healthy pods' logs are not read: {log_requests:#?}"
    );
    let orders_logs = log_requests
        .iter()
        .filter(|r| r.contains("/pods/orders-api-"))
        .count();
    assert_eq!(
        orders_logs, 2,
        "one pod per owner, current and previous: {log_requests:#?}"
    );

    let state = loaded.state;
    assert_eq!(state.pods.len(), simulated.pods.len());
    assert_eq!(state.custom_objects.len(), 1);
    assert_eq!(state.custom_objects[0].kind, "Database");
    assert_eq!(state.custom_objects[0].conditions()[0].status, "False");
    assert!(state.has_read("Database"));
    assert!(!state.has_read("Backup"));
    assert_eq!(state.events.len(), simulated.events.len());
    let secret = &state.secrets[0];
    assert!(
        secret
            .data
            .as_ref()
            .expect("keys")
            .values()
            .all(|v| v.0.is_empty()),
        "secret values are stripped"
    );
    let orders = state
        .pods
        .iter()
        .find(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("orders-api-"))
        })
        .expect("pod");
    let name = orders.metadata.name.as_deref().unwrap_or_default();
    let logs_read = [
        state.log("demo", name, "api", true),
        state.log("demo", name, "api", false),
    ];
    assert!(
        logs_read
            .iter()
            .flatten()
            .any(|l| l.contains("DATABASE_URL is not set")),
        "failing logs are read"
    );
}

#[tokio::test]
async fn a_kind_the_credentials_may_not_list_is_a_warning_not_a_failure() {
    let (mut server, simulated) = ApiServer::demo();
    server.refuse.insert("/api/v1/secrets".to_owned(), 403);
    let (client, handle) = client();
    let task = server.serve(handle, simulated);
    let loaded = LiveSource::from_client(client, "https://mock", 200)
        .load(&Scope::all())
        .await
        .expect("loads");
    task.abort();
    assert!(loaded.state.secrets.is_empty());
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].location, "Secret");
    assert!(loaded.warnings[0].reason.contains("403"));
    // A refused kind is known to be unread: its objects' absence proves nothing.
    assert!(!loaded.state.has_read("Secret"));
    assert!(loaded.state.has_read("ConfigMap"));
}

#[tokio::test]
async fn a_server_error_on_a_list_fails_the_load_with_the_kind_named() {
    let (mut server, simulated) = ApiServer::demo();
    server.refuse.insert("/api/v1/pods".to_owned(), 500);
    let (client, handle) = client();
    let task = server.serve(handle, simulated);
    let result = LiveSource::from_client(client, "https://mock", 200)
        .load(&Scope::all())
        .await;
    task.abort();
    match result {
        Err(Error::ListFailed { kind, reason }) => {
            assert_eq!(kind, "Pod");
            assert!(reason.contains("refused"), "{reason}");
        }
        other => panic!("expected ListFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_namespace_scope_lists_inside_that_namespace() {
    let (server, simulated) = ApiServer::demo();
    let requests = server.requests.clone();
    let (client, handle) = client();
    let task = server.serve(handle, simulated);
    let loaded = LiveSource::from_client(client, "https://mock", 200)
        .load(&Scope::namespace("demo"))
        .await
        .expect("loads");
    task.abort();
    let requests = requests.lock().expect("lock").clone();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("/api/v1/namespaces/demo/pods?")),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with("/api/v1/nodes?")),
        "cluster-scoped kinds are still listed"
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(!loaded.state.pods.is_empty());
    assert!(
        loaded
            .state
            .pods
            .iter()
            .all(|p| p.metadata.namespace.as_deref() == Some("demo"))
    );
    assert_eq!(
        loaded.state.namespaces.len(),
        1,
        "only the scoped namespace is kept"
    );
}

#[tokio::test]
async fn a_second_load_reads_previous_logs_from_memory_and_current_ones_again() {
    let (server, simulated) = ApiServer::demo();
    let requests = server.requests.clone();
    let (client, handle) = client();
    let task = server.serve(handle, simulated.clone());
    let source = LiveSource::from_client(client, "https://mock", 200);
    let first = source.load(&Scope::all()).await.expect("loads");
    let logs_of = |requests: &[String], previous: bool| {
        requests
            .iter()
            .filter(|r| r.contains("/log?") && r.contains("previous=true") == previous)
            .count()
    };
    let before = requests.lock().expect("lock").clone();
    let second = source.load(&Scope::all()).await.expect("loads again");
    drop(source);
    task.abort();
    let after = requests.lock().expect("lock").clone();
    let again = &after[before.len()..];
    assert!(logs_of(&before, true) > 0, "previous logs were read once");
    assert_eq!(
        logs_of(again, true),
        0,
        "previous logs do not change: {again:#?}"
    );
    assert_eq!(
        logs_of(again, false),
        logs_of(&before, false),
        "current logs are read again"
    );
    assert_eq!(
        first.state.logs, second.state.logs,
        "the same logs either way"
    );
}
