//! Shadows against a mock API server (tower-test): the order in which a shadow is built, the
//! clean-up when the API server fails on the way, a refused dry run, a verification whose watch
//! expires but which still reaches its verdict, and one interrupted mid-watch whose namespace
//! the tracker still deletes — all through the live source's requests.

use std::time::Duration;

use aegis_cluster::WriteError;
use aegis_cluster::mock_api::{Answer, Sent, recorded, serve, source, status};
use aegis_cluster::sim::MockSource;
use aegis_core::{
    Category, ClusterState, Fix, ResourceKind, ResourceRef, Verdict, VerificationPlan,
};
use aegis_k8sgpt::{AnalyzerConfig, Detection};
use aegis_rules::{Lookup, RulesEngine};
use aegis_shadow::clone::VARIANT_LABEL;
use aegis_shadow::{Creation, Error, Limits, NAMESPACE_PREFIX, ShadowRequest, Tracker};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// A request as the ordering assertions compare it: method, path, `dryRun`, `fieldManager`.
type Line = (String, String, Option<String>, Option<String>);

/// What these tests read from a request beyond what the mock API server offers.
trait ShadowSent {
    /// The shadow namespace the request is about, when it is about one.
    fn shadow(&self) -> Option<&str>;

    /// The request as the ordering assertions compare it.
    fn line(&self) -> Line;
}

impl ShadowSent for Sent {
    fn shadow(&self) -> Option<&str> {
        let rest = self.path.split("/namespaces/").nth(1)?;
        let name = rest.split('/').next()?;
        name.starts_with(NAMESPACE_PREFIX).then_some(name)
    }

    fn line(&self) -> Line {
        (
            self.method.clone(),
            self.path.clone(),
            self.decoded_param("dryRun"),
            self.decoded_param("fieldManager"),
        )
    }
}

fn list(items: &[Value]) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "100"},
        "items": items})
}

fn at(seconds_ago: i64) -> String {
    Timestamp::from_second(Timestamp::now().as_second() - seconds_ago)
        .expect("a valid time")
        .to_string()
}

/// The objects the shadow applied so far, of one kind, as the API server stores them.
fn applied(history: &[Sent], kind: &str) -> Vec<Value> {
    let mut objects: Vec<Value> = Vec::new();
    for sent in history.iter().filter(|s| s.is_apply()) {
        let mut object = sent.json();
        if object["kind"] != kind {
            continue;
        }
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        object["metadata"]["uid"] = json!(format!("uid-{}", name));
        object["metadata"]["resourceVersion"] = json!("7");
        object["metadata"]["creationTimestamp"] = json!(at(300));
        objects.retain(|o| o["metadata"]["name"] != name.as_str());
        objects.push(object);
    }
    objects
}

/// The pod-template hash every clone's ReplicaSet carries here.
const HASH: &str = "5d9f7c";

/// The ReplicaSet a Deployment clone runs its pods through.
fn replica_set(deployment: &Value) -> Value {
    let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{name}-{HASH}"),
            "namespace": deployment["metadata"]["namespace"],
            "uid": format!("uid-{name}-{HASH}"),
            "creationTimestamp": at(300),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                "uid": deployment["metadata"]["uid"], "controller": true}],
        },
        "spec": {"replicas": 1, "selector": deployment["spec"]["selector"],
            "template": deployment["spec"]["template"]},
        "status": {"replicas": 1},
    })
}

/// The one pod of a Deployment clone: the baseline's crash-loops on the missing variable (its
/// log unavailable, only the termination message the kubelet kept), the candidate's runs ready.
fn pod(deployment: &Value) -> Value {
    let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
    let template = &deployment["spec"]["template"];
    let labels = &template["metadata"]["labels"];
    let baseline = labels[VARIANT_LABEL] == "baseline";
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!("worker-1");
    let container = spec["containers"][0].clone();
    let (ready, container_status) = if baseline {
        (
            "False",
            json!({"name": container["name"], "image": container["image"], "imageID": "",
                "ready": false, "started": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": "back-off 2m40s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "startedAt": at(100), "finishedAt": at(99),
                    "message": "starting orders-api 2.3.1\nFATAL: required environment variable DATABASE_URL is not set\n"}}}),
        )
    } else {
        (
            "True",
            json!({"name": container["name"], "image": container["image"], "imageID": "",
                "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": at(240)}}}),
        )
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{name}-{HASH}-x7k2p"),
            "namespace": deployment["metadata"]["namespace"],
            "uid": format!("uid-{name}-pod"),
            "creationTimestamp": at(300),
            "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{name}-{HASH}"), "uid": format!("uid-{name}-{HASH}"),
                "controller": true}],
        },
        "spec": spec,
        "status": {
            "phase": "Running",
            "podIP": if baseline { "10.0.0.6" } else { "10.0.0.7" },
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": ready},
            ],
            "containerStatuses": [container_status],
        },
    })
}

/// The EndpointSlice of a Service clone: ready for the candidate's, not for the baseline's.
fn endpoint_slice(service: &Value) -> Value {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    let ready = name.ends_with("candidate");
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-abcde"), "namespace": service["metadata"]["namespace"],
            "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [if ready { "10.0.0.7" } else { "10.0.0.6" }],
            "conditions": {"ready": ready}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// An API server that takes every write and serves the shadow it was given: the production
/// dry run passes, no shadow exists yet, applies are stored, deletes go through, and the
/// shadow namespace lists the applied objects with the pods its Deployments would run.
fn api_server(sent: &Sent, history: &[Sent]) -> Answer {
    let name = sent.path.rsplit('/').next().unwrap_or_default();
    match sent.method.as_str() {
        "PATCH" if sent.decoded_param("dryRun").as_deref() == Some("All") => Answer::Json(
            200,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "demo", "uid": "production-uid"}}),
        ),
        "PATCH" => {
            let mut object = sent.json();
            object["metadata"]["uid"] = json!(format!("uid-{name}"));
            object["metadata"]["resourceVersion"] = json!("7");
            Answer::Json(200, object)
        }
        "DELETE" => Answer::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "deletionTimestamp": at(0)},
                "status": {"phase": "Terminating"}}),
        ),
        "GET" if sent.path.ends_with("/log") => Answer::Json(
            400,
            status(
                400,
                "BadRequest",
                "the log is unavailable: the container is waiting to start",
            ),
        ),
        "GET" if sent.decoded_param("labelSelector").is_some() => Answer::Json(200, list(&[])),
        "GET" if sent.decoded_param("limit").as_deref() == Some("1") => {
            Answer::Json(200, list(&[]))
        }
        "GET" => {
            let deployments = applied(history, "Deployment");
            let items: Vec<Value> = match sent.path.rsplit('/').next().unwrap_or_default() {
                "namespaces" => applied(history, "Namespace")
                    .into_iter()
                    .map(|mut namespace| {
                        namespace["status"] = json!({"phase": "Active"});
                        namespace
                    })
                    .collect(),
                "deployments" => deployments,
                "replicasets" => deployments.iter().map(replica_set).collect(),
                "pods" => deployments.iter().map(pod).collect(),
                "services" => applied(history, "Service"),
                "endpointslices" => applied(history, "Service")
                    .iter()
                    .map(endpoint_slice)
                    .collect(),
                "configmaps" => applied(history, "ConfigMap"),
                "secrets" => applied(history, "Secret"),
                _ => Vec::new(),
            };
            Answer::Json(200, list(&items))
        }
        _ => Answer::Json(404, status(404, "NotFound", "not served")),
    }
}

/// The demo incident: production as the simulator holds it (with a Service in front of the
/// orders API, so Services are cloned too), the fix the rules propose for
/// `Deployment demo/orders-api`, and a short plan.
struct Incident {
    state: ClusterState,
    fix: Fix,
    plan: VerificationPlan,
}

fn orders_api() -> ResourceRef {
    ResourceRef::namespaced(ResourceKind::Deployment, "demo", "orders-api")
}

fn incident() -> Incident {
    let mut state = MockSource::demo_state().expect("the demo world simulates");
    state.services.push(
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "orders-api", "namespace": "demo", "labels": {"app": "orders-api"}},
            "spec": {"selector": {"app": "orders-api"}, "clusterIP": "10.96.12.7",
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }))
        .expect("a Service"),
    );
    let (fix, plan) = {
        let lookup = Lookup::new(&state);
        let config = AnalyzerConfig {
            grace_period_seconds: 0,
            ..AnalyzerConfig::default()
        };
        let detections = aegis_k8sgpt::analyze(lookup.index(), &config, None, None);
        let workload = orders_api();
        let mine: Vec<&Detection> = detections
            .iter()
            .filter(|d| d.workload == workload)
            .collect();
        let diagnosis = RulesEngine::default()
            .diagnose(&lookup, &workload, &mine)
            .into_iter()
            .find(|d| d.category == Category::MissingEnvVar)
            .expect("the rules diagnose the missing variable");
        let fix = diagnosis.fix.expect("the rules propose a fix");
        let plan = diagnosis.plan.expect("the fix comes with a plan");
        (fix, plan)
    };
    Incident {
        state,
        fix,
        plan: VerificationPlan {
            interval_seconds: 1,
            success_threshold: 1,
            failure_limit: 0,
            timeout_seconds: 5,
            ..plan
        },
    }
}

impl Incident {
    fn request(&self) -> ShadowRequest<'_> {
        ShadowRequest {
            state: &self.state,
            workload: orders_api(),
            category: Category::MissingEnvVar,
            fixes: vec![self.fix.clone()],
            plan: self.plan.clone(),
            incident: Some("inc-orders-api".to_owned()),
            limits: Limits {
                ttl: Duration::from_secs(30 * 60),
                max_concurrent: 3,
                max_candidates: 1,
                keep: false,
                grant: None,
            },
        }
    }
}

fn line(method: &str, path: &str, dry_run: Option<&str>, manager: Option<&str>) -> Line {
    (
        method.to_owned(),
        path.to_owned(),
        dry_run.map(str::to_owned),
        manager.map(str::to_owned),
    )
}

/// The requests `create` sends when everything succeeds, in order, for the shadow `namespace`.
fn creation_order(namespace: &str) -> Vec<Line> {
    let apply = |path: String| line("PATCH", &path, None, Some("aegis"));
    let core = format!("/api/v1/namespaces/{namespace}");
    vec![
        line(
            "PATCH",
            "/apis/apps/v1/namespaces/demo/deployments/orders-api",
            Some("All"),
            Some("aegis"),
        ),
        line("GET", "/api/v1/namespaces", None, None),
        apply(core.clone()),
        apply(format!("{core}/serviceaccounts/default")),
        apply(format!(
            "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/aegis-default-deny"
        )),
        apply(format!("{core}/resourcequotas/aegis-shadow-quota")),
        apply(format!("{core}/limitranges/aegis-shadow-limits")),
        apply(format!("{core}/configmaps/orders-api-config")),
        apply(format!("{core}/services/orders-api-baseline")),
        apply(format!("{core}/services/orders-api-candidate")),
        apply(format!(
            "/apis/apps/v1/namespaces/{namespace}/deployments/orders-api-baseline"
        )),
        apply(format!(
            "/apis/apps/v1/namespaces/{namespace}/deployments/orders-api-candidate"
        )),
    ]
}

/// The shadow namespace `create` applied, read from its requests.
fn shadow_namespace(requests: &[Sent]) -> String {
    requests
        .iter()
        .find(|s| s.is_apply() && s.path.starts_with("/api/v1/namespaces/"))
        .and_then(Sent::shadow)
        .expect("a shadow namespace was applied")
        .to_owned()
}

fn is_delete_of(sent: &Sent, namespace: &str) -> bool {
    sent.method == "DELETE" && sent.path == format!("/api/v1/namespaces/{namespace}")
}

/// With `shadow.grant`, the shadow's RoleBinding is written right after the namespace, and the
/// first object only once an access review says the binding took effect: no write is tried
/// before (the authorizer learns of RoleBindings a moment later).
#[tokio::test]
async fn a_granted_shadow_binds_its_role_and_waits_for_it_before_any_write() {
    let incident = incident();
    let mut request = incident.request();
    request.limits.grant = Some(aegis_core::settings::ShadowGrant {
        cluster_role: "aegis-shadow".to_owned(),
        service_account: "aegis".to_owned(),
        namespace: "aegis-system".to_owned(),
    });
    let (source, handle) = source();
    let (task, requests) = serve(handle, |sent, history| {
        if sent.path.ends_with("/selfsubjectaccessreviews") {
            // Refused twice, as while the authorizer has not seen the binding yet.
            let asked = history
                .iter()
                .filter(|s| s.path.ends_with("/selfsubjectaccessreviews"))
                .count();
            let mut review = sent.json();
            review["status"] = json!({"allowed": asked > 2});
            return Answer::Json(201, review);
        }
        api_server(sent, history)
    });
    let tracker = Tracker::default();
    let creation = aegis_shadow::create(&source, &source, &request, &incident.fix, &tracker)
        .await
        .expect("the shadow is created");
    let Creation::Created(created) = creation else {
        panic!("the dry run passed, so a shadow is created");
    };
    let namespace = created.namespace.clone();
    let sent = recorded(&requests);
    let paths: Vec<&str> = sent.iter().map(|s| s.path.as_str()).collect();
    let binding = format!(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/aegis-shadow"
    );
    let reviews = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    assert_eq!(
        paths[2],
        format!("/api/v1/namespaces/{namespace}"),
        "{paths:#?}"
    );
    assert_eq!(paths[3], binding, "{paths:#?}");
    assert_eq!(&paths[4..7], [reviews; 3], "{paths:#?}");
    assert_eq!(
        paths[7],
        format!("/api/v1/namespaces/{namespace}/serviceaccounts/default"),
        "{paths:#?}"
    );
    let bound = sent[3].json();
    assert_eq!(bound["roleRef"]["name"], "aegis-shadow");
    assert_eq!(
        bound["subjects"],
        json!([{"kind": "ServiceAccount", "name": "aegis", "namespace": "aegis-system"}])
    );
    let review = sent[4].json();
    assert_eq!(
        review["spec"]["resourceAttributes"],
        json!({"group": "", "namespace": namespace, "resource": "serviceaccounts", "verb": "create"})
    );
    // Everything after the dry run and the capacity list stays inside the shadow.
    for other in &sent[2..] {
        assert!(
            other.path == reviews || other.shadow() == Some(namespace.as_str()),
            "{other:?}"
        );
    }
    task.abort();
}

#[tokio::test]
async fn creating_a_shadow_sends_the_isolation_before_any_workload() {
    let incident = incident();
    let request = incident.request();
    let (source, handle) = source();
    let (task, requests) = serve(handle, api_server);
    let tracker = Tracker::default();
    let creation = aegis_shadow::create(&source, &source, &request, &incident.fix, &tracker)
        .await
        .expect("the shadow is created");
    let Creation::Created(created) = creation else {
        panic!("the dry run passed, so a shadow is created");
    };
    let namespace = created.namespace.clone();
    assert!(namespace.starts_with(NAMESPACE_PREFIX), "{namespace}");
    assert!(
        created.placeholders.is_empty(),
        "{:?}",
        created.placeholders
    );
    assert_eq!(tracker.pending(), std::slice::from_ref(&namespace));

    let sent = recorded(&requests);
    let lines: Vec<Line> = sent.iter().map(Sent::line).collect();
    assert_eq!(lines, creation_order(&namespace), "{sent:#?}");

    // The dry run carries the fix itself, and the capacity check looks for shadows by label.
    assert_eq!(sent[0].json(), incident.fix.patch);
    assert_ne!(sent[0].content_type, "application/apply-patch+yaml");
    assert_eq!(
        sent[1].decoded_param("labelSelector").as_deref(),
        Some("aegis.io/shadow=true")
    );
    // Nothing but the dry run leaves the shadow: every other request is the cluster-wide
    // capacity list or lies in the shadow namespace, and so does every object applied.
    for other in &sent[1..] {
        assert!(
            other.path == "/api/v1/namespaces" || other.shadow() == Some(namespace.as_str()),
            "{other:?}"
        );
        if other.is_apply() {
            let object = other.json();
            let name = &object["metadata"]["name"];
            let inside = object["metadata"]["namespace"] == namespace.as_str()
                || (object["kind"] == "Namespace" && name == namespace.as_str());
            assert!(inside, "{object}");
        }
    }
    let namespace_object = sent[2].json();
    assert_eq!(
        namespace_object["metadata"]["labels"]["aegis.io/shadow"],
        "true"
    );
    // Only the candidate has the fix: the variable the baseline lacks.
    let env_names = |sent: &Sent| -> Vec<String> {
        sent.json()["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(!env_names(&sent[10]).contains(&"DATABASE_URL".to_owned()));
    assert!(env_names(&sent[11]).contains(&"DATABASE_URL".to_owned()));

    // The tracker deletes what was created, as an interrupted command would.
    assert!(tracker.clean_up(&source).await.is_empty());
    task.abort();
    let sent = recorded(&requests);
    assert_eq!(sent.len(), 13);
    assert!(is_delete_of(&sent[12], &namespace), "{:?}", sent[12]);
    assert!(tracker.pending().is_empty());
}

#[tokio::test]
async fn an_api_error_mid_create_deletes_the_namespace() {
    let incident = incident();
    let request = incident.request();
    let (source, handle) = source();
    let (task, requests) = serve(handle, |sent, history| {
        if sent.is_apply() && sent.path.contains("/limitranges/") {
            Answer::Json(
                500,
                status(500, "InternalError", "etcdserver: request timed out"),
            )
        } else {
            api_server(sent, history)
        }
    });
    let tracker = Tracker::default();
    let result = aegis_shadow::create(&source, &source, &request, &incident.fix, &tracker).await;
    task.abort();
    match result {
        Err(Error::Write(error @ WriteError::Transport { .. })) => {
            let text = error.to_string();
            assert!(text.contains("LimitRange"), "{text}");
            assert!(text.contains("etcdserver: request timed out"), "{text}");
        }
        other => panic!("expected the LimitRange's transport error, got {other:?}"),
    }
    let sent = recorded(&requests);
    let namespace = shadow_namespace(&sent);
    let failed = sent
        .iter()
        .position(|s| s.path.contains("/limitranges/"))
        .expect("the LimitRange was applied");
    assert_eq!(sent.len(), failed + 2, "{sent:#?}");
    assert!(is_delete_of(&sent[failed + 1], &namespace), "{sent:#?}");
    assert!(
        !sent
            .iter()
            .any(|s| s.path.contains("/deployments/orders-api-")),
        "no workload is created after the failure"
    );
    assert!(tracker.pending().is_empty(), "{:?}", tracker.pending());
}

#[tokio::test]
async fn a_conflict_on_create_is_reported_and_cleans_up() {
    let incident = incident();
    let request = incident.request();
    let (source, handle) = source();
    let (task, requests) = serve(handle, |sent, history| {
        if sent.is_apply() && sent.path.ends_with("/deployments/orders-api-candidate") {
            Answer::Json(
                409,
                status(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on deployments.apps \"orders-api-candidate\": the object has been modified; please apply your changes to the latest version and try again",
                ),
            )
        } else {
            api_server(sent, history)
        }
    });
    let tracker = Tracker::default();
    let result = aegis_shadow::create(&source, &source, &request, &incident.fix, &tracker).await;
    task.abort();
    let error = match result {
        Err(Error::Write(error @ WriteError::Conflict { .. })) => error,
        other => panic!("expected a conflict, got {other:?}"),
    };
    let text = error.to_string();
    assert!(text.contains("conflicts with a change"), "{text}");
    assert!(text.contains("orders-api-candidate"), "{text}");
    assert!(text.contains("the object has been modified"), "{text}");
    let sent = recorded(&requests);
    let namespace = shadow_namespace(&sent);
    let last = sent.last().expect("requests");
    assert!(is_delete_of(last, &namespace), "{sent:#?}");
    assert!(
        sent[sent.len() - 2]
            .path
            .ends_with("/deployments/orders-api-candidate")
    );
    assert!(tracker.pending().is_empty(), "{:?}", tracker.pending());
}

#[tokio::test]
async fn a_namespace_stuck_terminating_is_refused_without_leaking() {
    let incident = incident();
    let request = incident.request();
    for (code, reason) in [(403, "Forbidden"), (409, "Conflict")] {
        let (source, handle) = source();
        let (task, requests) = serve(handle, move |sent, history| {
            let namespace_apply =
                sent.is_apply() && sent.path.rsplit('/').nth(1) == Some("namespaces");
            if namespace_apply {
                let name = sent.shadow().unwrap_or_default();
                Answer::Json(
                    code,
                    status(
                        code,
                        reason,
                        &format!(
                            "namespaces \"{name}\" is forbidden: unable to create new content in namespace {name} because it is being terminated"
                        ),
                    ),
                )
            } else {
                api_server(sent, history)
            }
        });
        let tracker = Tracker::default();
        let result =
            aegis_shadow::create(&source, &source, &request, &incident.fix, &tracker).await;
        task.abort();
        let error = result.expect_err("a terminating namespace cannot hold a shadow");
        let text = error.to_string();
        assert!(text.contains("is being terminated"), "HTTP {code}: {text}");
        assert!(
            matches!(
                error,
                Error::Write(WriteError::Refused { .. } | WriteError::Conflict { .. })
            ),
            "HTTP {code}: {error:?}"
        );
        let sent = recorded(&requests);
        let lines: Vec<Line> = sent.iter().map(Sent::line).collect();
        let namespace = shadow_namespace(&sent);
        assert_eq!(
            lines,
            creation_order(&namespace)[..3],
            "HTTP {code}: nothing is written after the namespace is refused"
        );
        assert!(tracker.pending().is_empty(), "{:?}", tracker.pending());
    }
}

#[tokio::test]
async fn a_refused_dry_run_is_a_failed_verdict_and_creates_nothing() {
    let incident = incident();
    let request = incident.request();
    let (source, handle) = source();
    let (task, requests) = serve(handle, |sent, history| {
        if sent.decoded_param("dryRun").as_deref() == Some("All") {
            Answer::Json(
                422,
                status(
                    422,
                    "Invalid",
                    "Deployment.apps \"orders-api\" is invalid: spec.template.spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
                ),
            )
        } else {
            api_server(sent, history)
        }
    });
    let tracker = Tracker::default();
    let creation = aegis_shadow::create(&source, &source, &request, &incident.fix, &tracker)
        .await
        .expect("a refused dry run is a verdict, not an error");
    task.abort();
    let Creation::Refused(result) = creation else {
        panic!("the API server refused the patch, so no shadow is created");
    };
    assert_eq!(result.verdict, Verdict::Failed);
    assert!(result.reason.contains("dry run"), "{}", result.reason);
    assert!(
        result.reason.contains("may not be specified"),
        "the server's message is kept: {}",
        result.reason
    );
    assert!(result.shadow.is_none());
    let sent = recorded(&requests);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        sent[0].line(),
        creation_order("unused")[0],
        "only the dry run was sent"
    );
    assert!(tracker.pending().is_empty());
}

/// Whether a request belongs to a wait (the one-object list before a watch, or the watch).
fn part_of_wait(sent: &Sent) -> bool {
    sent.is_watch() || sent.decoded_param("limit").as_deref() == Some("1")
}

/// What reading a shadow namespace lists: its own objects, one List per kind, and nothing
/// cluster-wide (no Nodes, no Namespaces).
fn load_paths(namespace: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for plural in [
        "pods",
        "services",
        "persistentvolumeclaims",
        "configmaps",
        "secrets",
        "events",
    ] {
        paths.push(format!("/api/v1/namespaces/{namespace}/{plural}"));
    }
    for (group, plural) in [
        ("apps/v1", "deployments"),
        ("apps/v1", "replicasets"),
        ("apps/v1", "statefulsets"),
        ("apps/v1", "daemonsets"),
        ("apps/v1", "controllerrevisions"),
        ("batch/v1", "jobs"),
        ("batch/v1", "cronjobs"),
        ("discovery.k8s.io/v1", "endpointslices"),
        ("networking.k8s.io/v1", "ingresses"),
        ("autoscaling/v2", "horizontalpodautoscalers"),
    ] {
        paths.push(format!("/apis/{group}/namespaces/{namespace}/{plural}"));
    }
    paths.sort();
    paths
}

#[tokio::test(start_paused = true)]
async fn an_expired_watch_does_not_stop_the_verification() {
    let incident = incident();
    let request = incident.request();
    let expired = [
        // The watch opens, then the server says its resource version is too old.
        || {
            Answer::Lines(vec![json!({"type": "ERROR", "object": status(
                410,
                "Expired",
                "too old resource version: 100 (150)",
            )})])
        },
        // The watch request itself is answered 410 Gone.
        || {
            Answer::Json(
                410,
                status(410, "Gone", "too old resource version: 100 (150)"),
            )
        },
    ];
    for (case, expire) in expired.into_iter().enumerate() {
        let (source, handle) = source();
        let mut pod_watches = 0;
        let (task, requests) = serve(handle, move |sent, history| {
            if sent.is_watch() && sent.path.ends_with("/pods") {
                pod_watches += 1;
                if pod_watches == 1 {
                    return expire();
                }
            }
            if sent.is_watch() {
                return Answer::Hang;
            }
            api_server(sent, history)
        });
        let tracker = Tracker::default();
        // The clock is paused and moves only when every task waits on a timer: a wait ended
        // by the expired watch takes no time, one ended by its one-second timeout takes a second.
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            aegis_shadow::verify(&source, &source, &request, &tracker),
        )
        .await
        .expect("the verification ends")
        .expect("the verification runs");
        task.abort();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "case {case}: the expired watch ended the wait, not its timeout"
        );

        let sent = recorded(&requests);
        let namespace = shadow_namespace(&sent);
        assert_eq!(
            result.verdict,
            Verdict::Successful,
            "case {case}: {}\n{:#?}",
            result.reason,
            result.checks
        );
        let baseline = result.baseline.as_ref().expect("a baseline ran");
        assert!(baseline.reproduced, "case {case}: {baseline:?}");
        assert_eq!(result.shadow.as_deref(), Some(namespace.as_str()));
        assert_eq!(result.candidates.len(), 1);

        // The pod watch expired; what followed it (leaving aside the rest of that wait) is
        // one List per kind of the shadow namespace, the failing baseline's logs, and the
        // deletion of the shadow after the verdict.
        let watch = sent
            .iter()
            .position(|s| s.is_watch() && s.path == format!("/api/v1/namespaces/{namespace}/pods"))
            .expect("the pods of the shadow were watched");
        assert_eq!(
            sent[watch].decoded_param("timeoutSeconds").as_deref(),
            Some("1"),
            "the watch lasts one interval"
        );
        let after: Vec<&Sent> = sent[watch + 1..]
            .iter()
            .filter(|s| !part_of_wait(s))
            .collect();
        let kinds = load_paths(&namespace).len();
        assert!(after.len() > kinds, "case {case}: {after:#?}");
        let mut listed: Vec<String> = after[..kinds]
            .iter()
            .inspect(|s| {
                assert_eq!(s.method, "GET", "{s:?}");
                assert_eq!(s.decoded_param("limit").as_deref(), Some("500"), "{s:?}");
            })
            .map(|s| s.path.clone())
            .collect();
        listed.sort();
        assert_eq!(listed, load_paths(&namespace), "case {case}");
        let rest = &after[kinds..];
        let (logs, end) = rest.split_at(rest.len() - 1);
        assert!(
            logs.iter()
                .all(|s| s.path.ends_with("/log") && s.path.contains("orders-api-baseline")),
            "case {case}: {logs:#?}"
        );
        assert!(is_delete_of(end[0], &namespace), "case {case}: {end:#?}");
        assert!(tracker.pending().is_empty(), "{:?}", tracker.pending());
    }
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_verification_leaves_its_namespace_to_the_tracker() {
    let incident = incident();
    let request = incident.request();
    let (source, handle) = source();
    // Nothing ever changes in the shadow: its watches are never answered.
    let (task, requests) = serve(handle, |sent, history| {
        if sent.is_watch() {
            Answer::Hang
        } else {
            api_server(sent, history)
        }
    });
    let tracker = Tracker::default();
    let interrupted = tokio::time::timeout(
        Duration::from_millis(500),
        aegis_shadow::verify(&source, &source, &request, &tracker),
    )
    .await;
    assert!(
        interrupted.is_err(),
        "the verification is still watching: {interrupted:?}"
    );
    let sent = recorded(&requests);
    let namespace = shadow_namespace(&sent);
    assert!(sent.iter().any(Sent::is_watch), "{sent:#?}");
    assert!(!sent.iter().any(|s| s.method == "DELETE"), "{sent:#?}");
    // What Ctrl-C does: the tracker still knows the shadow, and deletes it.
    assert_eq!(tracker.pending(), std::slice::from_ref(&namespace));
    let failed = tracker.clean_up(&source).await;
    task.abort();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(tracker.pending().is_empty());
    let sent = recorded(&requests);
    assert!(
        is_delete_of(sent.last().expect("requests"), &namespace),
        "{sent:#?}"
    );
}
