//! The operator against a mock API server: the exact requests of a status write (and none when
//! nothing changed), a 409 answered by reading again, a watch that ends in 410 Gone answered by
//! listing again, the leader election's requests, and the pure parts of reconcile.

use std::sync::Arc;
use std::time::Duration;

use aegis_cluster::mock_api::{self, Answer, Sent};
use aegis_core::crd::{IncidentResource, IncidentSpec, IncidentStatus, LastError};
use aegis_core::lifecycle::Phase;
use aegis_core::{Category, ResourceKind, ResourceRef};
use kube::Api;
use serde_json::{Value, json};

use crate::incidents;
use crate::leader::{Lease, Timing};

fn incident_json(version: &str, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "aegis.io/v1alpha1", "kind": "Incident",
        "metadata": {"name": "inc-0001", "namespace": "demo", "resourceVersion": version},
        "spec": {"workload": {"kind": "Deployment", "namespace": "demo", "name": "web"},
                 "category": "oom-killed"},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

fn incidents_api(client: kube::Client) -> Api<IncidentResource> {
    Api::namespaced(client, "demo")
}

fn methods(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

#[tokio::test]
async fn a_status_write_reads_then_replaces_and_a_second_identical_one_only_reads() {
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, |sent, _| match sent.method.as_str() {
        "GET" => Answer::Json(200, incident_json("7", None)),
        "PUT" => {
            let mut body = sent.json();
            body["metadata"]["resourceVersion"] = json!("8");
            Answer::Json(200, body)
        }
        other => panic!("unexpected {other}"),
    });
    let api = incidents_api(live.client().clone());
    let written = incidents::update_status(&api, "inc-0001", |_, status| {
        status.phase = Some(Phase::Diagnosed);
    })
    .await
    .expect("written")
    .expect("exists");
    assert_eq!(written.metadata.resource_version.as_deref(), Some("8"));
    let sent = mock_api::recorded(&requests);
    assert_eq!(
        methods(&sent),
        [
            "GET /apis/aegis.io/v1alpha1/namespaces/demo/incidents/inc-0001",
            "PUT /apis/aegis.io/v1alpha1/namespaces/demo/incidents/inc-0001/status",
        ]
    );
    let body = sent[1].json();
    assert_eq!(
        body["metadata"]["resourceVersion"], "7",
        "the read is the precondition"
    );
    assert_eq!(body["status"]["phase"], "diagnosed");
    assert_eq!(sent[1].param("fieldManager"), Some("aegis-operator"));

    // The same change again on an object that already has it: one read, no write.
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, |sent, _| match sent.method.as_str() {
        "GET" => Answer::Json(200, incident_json("8", Some(json!({"phase": "diagnosed"})))),
        other => panic!("unexpected {other}: nothing changed, nothing is written"),
    });
    incidents::update_status(
        &incidents_api(live.client().clone()),
        "inc-0001",
        |_, status| {
            status.phase = Some(Phase::Diagnosed);
        },
    )
    .await
    .expect("nothing to write");
    assert_eq!(methods(&mock_api::recorded(&requests)).len(), 1);
}

#[tokio::test]
async fn a_conflicting_status_write_is_read_again_and_applied_to_what_the_other_writer_wrote() {
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, |sent, all| {
        let puts = all.iter().filter(|s| s.method == "PUT").count();
        match (sent.method.as_str(), puts) {
            // First read: the old object; second read: another writer's error recorded.
            ("GET", 0) => {
                Answer::Json(200, incident_json("7", Some(json!({"phase": "diagnosed"}))))
            }
            ("GET", _) => Answer::Json(
                200,
                incident_json(
                    "9",
                    Some(json!({"phase": "diagnosed", "sources": ["k8sgpt:ops/r1"]})),
                ),
            ),
            ("PUT", 1) => Answer::Json(
                409,
                mock_api::status(409, "Conflict", "the object has been modified"),
            ),
            ("PUT", _) => Answer::Json(200, sent.json()),
            (other, _) => panic!("unexpected {other}"),
        }
    });
    let written = incidents::update_status(
        &incidents_api(live.client().clone()),
        "inc-0001",
        |_, status| {
            status.phase = Some(Phase::Verifying);
        },
    )
    .await
    .expect("written on the second try")
    .expect("exists");
    let status = written.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Verifying));
    assert_eq!(
        status.sources,
        ["k8sgpt:ops/r1"],
        "the other writer's update is kept"
    );
    let sent = mock_api::recorded(&requests);
    assert_eq!(
        sent.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(),
        ["GET", "PUT", "GET", "PUT"]
    );
    assert_eq!(sent[3].json()["metadata"]["resourceVersion"], "9");
}

#[tokio::test]
async fn a_status_that_keeps_conflicting_is_an_error_not_a_lost_update() {
    let (live, handle) = mock_api::source();
    let (_task, _requests) = mock_api::serve(handle, |sent, _| match sent.method.as_str() {
        "GET" => Answer::Json(200, incident_json("7", None)),
        _ => Answer::Json(409, mock_api::status(409, "Conflict", "modified")),
    });
    let error = incidents::update_status(
        &incidents_api(live.client().clone()),
        "inc-0001",
        |_, status| {
            status.phase = Some(Phase::Verifying);
        },
    )
    .await
    .expect_err("gives up");
    assert!(
        error.to_string().contains("changed under each of 5 writes"),
        "{error}"
    );
}

#[tokio::test]
async fn an_incident_is_created_once_and_a_second_create_is_not_an_error() {
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, |_, all| {
        if all.len() == 1 {
            Answer::Json(201, incident_json("1", None))
        } else {
            Answer::Json(409, mock_api::status(409, "AlreadyExists", "exists"))
        }
    });
    let spec = IncidentSpec {
        workload: ResourceRef::namespaced(ResourceKind::Deployment, "demo", "web"),
        category: Category::OomKilled,
        approval: None,
        rejection: None,
        rollback: None,
    };
    let api = incidents_api(live.client().clone());
    incidents::create(&api, "inc-0001", spec.clone())
        .await
        .expect("created");
    incidents::create(&api, "inc-0001", spec)
        .await
        .expect("already there is fine");
    let sent = mock_api::recorded(&requests);
    assert_eq!(sent[0].method, "POST");
    let body = sent[0].json();
    assert_eq!(body["metadata"]["name"], "inc-0001");
    assert_eq!(
        body["metadata"]["labels"]["aegis.io/category"],
        "oom-killed"
    );
    assert!(body.get("status").is_none_or(Value::is_null), "{body}");
}

fn lease_json(holder: &str, version: &str, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "aegis-operator", "namespace": "ops", "resourceVersion": version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 1,
                 "renewTime": "2026-12-03T00:00:00.000000Z", "leaseTransitions": transitions},
    })
}

fn timing() -> Timing {
    Timing {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(600),
        retry_period: Duration::from_millis(100),
    }
}

#[tokio::test]
async fn the_first_candidate_creates_the_lease() {
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, |sent, _| match sent.method.as_str() {
        "GET" => Answer::Json(404, mock_api::status(404, "NotFound", "not found")),
        "POST" => Answer::Json(201, {
            let mut body = sent.json();
            body["metadata"]["resourceVersion"] = json!("1");
            body
        }),
        other => panic!("unexpected {other}"),
    });
    let lease = Lease::new(live.client().clone(), "ops", "replica-a", timing());
    tokio::time::timeout(Duration::from_secs(5), lease.acquire())
        .await
        .expect("acquired at once")
        .expect("no error");
    let sent = mock_api::recorded(&requests);
    let created = sent[1].json();
    assert_eq!(created["spec"]["holderIdentity"], "replica-a");
    assert_eq!(created["spec"]["leaseTransitions"], 0);
}

#[tokio::test]
async fn a_held_lease_is_taken_only_after_it_went_unrenewed_for_its_duration() {
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, |sent, _| match sent.method.as_str() {
        // The holder never renews: the same resourceVersion every time.
        "GET" => Answer::Json(200, lease_json("replica-a", "5", 2)),
        "PUT" => Answer::Json(200, {
            let mut body = sent.json();
            body["metadata"]["resourceVersion"] = json!("6");
            body
        }),
        other => panic!("unexpected {other}"),
    });
    let lease = Lease::new(live.client().clone(), "ops", "replica-b", timing());
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), lease.acquire())
        .await
        .expect("acquired once expired")
        .expect("no error");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the lease duration: {:?}",
        started.elapsed()
    );
    let sent = mock_api::recorded(&requests);
    let puts: Vec<&Sent> = sent.iter().filter(|s| s.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "one takeover");
    let taken = puts[0].json();
    assert_eq!(taken["spec"]["holderIdentity"], "replica-b");
    assert_eq!(taken["spec"]["leaseTransitions"], 3);
    assert_eq!(
        taken["metadata"]["resourceVersion"], "5",
        "the read is the precondition"
    );
}

#[tokio::test]
async fn a_leader_renews_with_one_write_and_reads_only_after_a_conflict() {
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, |sent, all| {
        let puts = all.iter().filter(|s| s.method == "PUT").count();
        match (sent.method.as_str(), puts) {
            ("GET", _) => Answer::Json(404, mock_api::status(404, "NotFound", "not found")),
            ("POST", _) => Answer::Json(201, {
                let mut body = sent.json();
                body["metadata"]["resourceVersion"] = json!("1");
                body
            }),
            // Three renewals go through; the fourth finds another replica took over.
            ("PUT", 1..=3) => Answer::Json(200, {
                let mut body = sent.json();
                body["metadata"]["resourceVersion"] = json!((puts + 1).to_string());
                body
            }),
            ("PUT", _) => Answer::Json(409, mock_api::status(409, "Conflict", "modified")),
            (other, _) => panic!("unexpected {other}"),
        }
    });
    let lease = Lease::new(live.client().clone(), "ops", "replica-a", timing());
    lease.acquire().await.expect("acquired");
    // After the conflict, the read says no Lease exists: the renewal path creates it again,
    // and `hold` goes on; stop it once the requests show the pattern.
    let _ = tokio::time::timeout(Duration::from_millis(550), lease.hold()).await;
    let sent = methods(&mock_api::recorded(&requests));
    let path = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";
    assert_eq!(
        sent[..7],
        [
            format!("GET {path}/aegis-operator"),
            format!("POST {path}"),
            format!("PUT {path}/aegis-operator"),
            format!("PUT {path}/aegis-operator"),
            format!("PUT {path}/aegis-operator"),
            format!("PUT {path}/aegis-operator"),
            format!("GET {path}/aegis-operator"),
        ],
        "{sent:#?}"
    );
    let renewals: Vec<Value> = mock_api::recorded(&requests)
        .iter()
        .filter(|s| s.method == "PUT")
        .map(Sent::json)
        .collect();
    let versions: Vec<&Value> = renewals[..4]
        .iter()
        .map(|r| &r["metadata"]["resourceVersion"])
        .collect();
    assert_eq!(
        versions,
        [&json!("1"), &json!("2"), &json!("3"), &json!("4")],
        "each renewal's precondition is the previous write"
    );
}

#[tokio::test]
async fn a_leader_that_loses_the_race_or_cannot_renew_stops_acting() {
    // Another replica renewed in between: the renewal conflicts, and the lease is lost.
    let (live, handle) = mock_api::source();
    let (_task, _requests) = mock_api::serve(handle, |sent, _| match sent.method.as_str() {
        "GET" => Answer::Json(200, lease_json("replica-a", "5", 0)),
        "PUT" => Answer::Json(409, mock_api::status(409, "Conflict", "modified")),
        other => panic!("unexpected {other}"),
    });
    let lease = Lease::new(live.client().clone(), "ops", "replica-a", timing());
    let lost = tokio::time::timeout(Duration::from_secs(5), lease.hold())
        .await
        .expect("returns")
        .expect_err("lost");
    assert!(lost.to_string().contains("another replica"), "{lost}");

    // The API server stops answering: lost after the renew deadline, not before.
    let (live, handle) = mock_api::source();
    let (_task, _requests) = mock_api::serve(handle, |_, _| {
        Answer::Json(500, mock_api::status(500, "InternalError", "etcd is down"))
    });
    let lease = Lease::new(live.client().clone(), "ops", "replica-a", timing());
    let started = std::time::Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(5), lease.hold())
        .await
        .expect("returns")
        .expect_err("lost");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert!(lost.to_string().contains("not renewed within"), "{lost}");

    // The API server takes the request and never answers: lost by the renew deadline, not
    // left hanging while a standby takes over.
    let (live, handle) = mock_api::source();
    let (_task, _requests) = mock_api::serve(handle, |_, _| Answer::Hang);
    let lease = Lease::new(live.client().clone(), "ops", "replica-a", timing());
    let started = std::time::Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(5), lease.hold())
        .await
        .expect("returns by the renew deadline")
        .expect_err("lost");
    assert!(
        started.elapsed() < timing().lease_duration,
        "before a standby could take over: {:?}",
        started.elapsed()
    );
    assert!(lost.to_string().contains("did not answer"), "{lost}");
}

#[tokio::test]
async fn a_watch_ended_by_410_gone_lists_again_and_the_cache_follows() {
    let (live, handle) = mock_api::source();
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "shop", "resourceVersion": "10",
                            "managedFields": [{"manager": "kubectl"}],
                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"}}})
    };
    let (_task, requests) = mock_api::serve(handle, move |sent, all| {
        let lists = all.iter().filter(|s| !s.is_watch()).count();
        if sent.is_watch() {
            if lists == 1 {
                // The watch's resourceVersion is too old.
                Answer::Lines(vec![json!({"type": "ERROR", "object":
                    mock_api::status(410, "Expired", "too old resource version")})])
            } else {
                Answer::Hang
            }
        } else {
            let items = if lists == 1 {
                vec![pod("a")]
            } else {
                vec![pod("a"), pod("b")]
            };
            Answer::Json(
                200,
                json!({"apiVersion": "v1", "kind": "PodList",
                "metadata": {"resourceVersion": "20"}, "items": items}),
            )
        }
    });
    let dirty = Arc::new(crate::watch::Dirty::default());
    let store =
        crate::watch::cache_for_tests::<k8s_openapi::api::core::v1::Pod>(live.client(), &dirty);
    tokio::time::timeout(Duration::from_secs(30), async {
        while store.len() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the cache recovers with a new list");
    let sent = mock_api::recorded(&requests);
    assert!(
        sent.iter().filter(|s| !s.is_watch()).count() >= 2,
        "listed again"
    );
    let cached = store.state();
    let first = cached
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("a"))
        .expect("a");
    assert!(
        first.metadata.managed_fields.is_none(),
        "managed fields stripped"
    );
    let annotations = first.metadata.annotations.clone().unwrap_or_default();
    assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert_eq!(annotations.get("team").map(String::as_str), Some("a"));
    assert!(
        dirty.take_now().contains_key("shop"),
        "the namespace is marked for analysis"
    );
}

#[tokio::test]
async fn namespaces_are_listed_and_watched_as_metadata_only() {
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, |sent, _| {
        if sent.is_watch() {
            Answer::Hang
        } else {
            Answer::Json(
                200,
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                       "metadata": {"resourceVersion": "20"},
                       "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                  "metadata": {"name": "shop", "resourceVersion": "10",
                                               "labels": {"aegis.io/watch": "true"}}}]}),
            )
        }
    });
    let dirty = Arc::new(crate::watch::Dirty::default());
    let store = crate::watch::cache_for_tests::<
        kube::api::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>,
    >(live.client(), &dirty);
    tokio::time::timeout(Duration::from_secs(30), async {
        while store.is_empty() || mock_api::recorded(&requests).len() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("listed, then watched");
    let sent = mock_api::recorded(&requests);
    for request in &sent[..2] {
        assert_eq!(request.path, "/api/v1/namespaces");
        assert!(
            request.accept.contains("as=PartialObjectMetadata"),
            "metadata only: {:?}",
            request.accept
        );
    }
    assert!(sent[1].is_watch());
}

#[test]
fn repeated_failures_keep_their_start_and_count_and_back_off_exponentially() {
    let error = crate::reconcile::ReconcileError {
        during: "verify",
        message: "the API refused".to_owned(),
    };
    let first = crate::reconcile::next_error(None, &error, "2026-12-03T01:00:00Z");
    assert_eq!(first.attempts, 1);
    let second = crate::reconcile::next_error(Some(&first), &error, "2026-12-03T01:00:05Z");
    assert_eq!(
        (second.attempts, second.since.as_str()),
        (2, "2026-12-03T01:00:00Z")
    );
    let other = crate::reconcile::ReconcileError {
        during: "collect",
        message: "x".to_owned(),
    };
    let third: LastError =
        crate::reconcile::next_error(Some(&second), &other, "2026-12-03T01:00:09Z");
    assert_eq!((third.attempts, third.during.as_str()), (1, "collect"));
    let delays: Vec<u64> = (0..9)
        .map(|a| crate::reconcile::backoff(a).as_secs())
        .collect();
    assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn the_status_keeps_what_only_the_operator_tracks_when_a_record_is_written_back() {
    let incident = aegis_core::Incident {
        id: "inc-0001".to_owned(),
        resource: ResourceRef::namespaced(ResourceKind::Pod, "demo", "web-1"),
        workload: ResourceRef::namespaced(ResourceKind::Deployment, "demo", "web"),
        findings: Vec::new(),
        rca: aegis_core::Rca {
            category: Category::OomKilled,
            summary: "s".to_owned(),
            root_cause: "r".to_owned(),
            confidence: 0.8765,
            evidence: Vec::new(),
            analysis_steps: Vec::new(),
            decision_rationale: "no fix".to_owned(),
            backend: "rules".to_owned(),
            llm: None,
        },
        fix: None,
        alternative_fixes: Vec::new(),
        verification: aegis_core::Verification {
            plan: None,
            result: aegis_core::VerificationResult::skipped("no fix"),
        },
    };
    let record = aegis_agent::store::first_seen(
        &incident,
        aegis_core::SourceKind::Cluster,
        "2026-12-03T01:00:00Z",
    );
    let mut status = IncidentStatus {
        sources: vec!["aegis".to_owned()],
        ..IncidentStatus::default()
    };
    incidents::write_back(&mut status, record);
    assert_eq!(status.phase, Some(Phase::Escalated));
    assert_eq!(status.confidence, Some(0.88));
    assert_eq!(status.verdict, None, "skipped is no verdict");
    assert_eq!(status.sources, ["aegis"]);
    let again = incidents::stored(&status).expect("a record");
    let moved = aegis_agent::store::seen_again(
        again,
        &incident,
        aegis_core::SourceKind::Cluster,
        "2026-12-03T01:05:00Z",
    );
    let mut next = status.clone();
    incidents::write_back(&mut next, moved);
    assert_eq!(
        next, status,
        "seen again unchanged: the same status, nothing to write"
    );
}

#[tokio::test]
async fn custom_kinds_with_status_conditions_are_found_from_their_definitions_and_watched() {
    // Replicas have conditions too, but the operator may not watch them: asked first, and
    // left out (a refused kind would never fill its cache and the operator never be ready).
    let (live, handle) = mock_api::source();
    let definition = |plural: &str, kind: &str, conditions: bool| {
        let status = if conditions {
            json!({"type": "object", "properties": {"conditions": {"type": "array"}}})
        } else {
            json!({"type": "object"})
        };
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.db.example.com")},
            "spec": {"group": "db.example.com", "scope": "Namespaced",
                "names": {"plural": plural, "kind": kind},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"status": status}}}}]}})
    };
    let (_task, requests) = mock_api::serve(handle, move |sent, _| {
        if sent.is_watch() {
            return Answer::Hang;
        }
        match sent.path.as_str() {
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions" => Answer::Json(
                200,
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList",
                    "metadata": {"resourceVersion": "1"},
                    "items": [definition("databases", "Database", true), definition("backups", "Backup", false),
                        definition("replicas", "Replica", true)]}),
            ),
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => {
                let review: Value = serde_json::from_str(&sent.body).unwrap_or_default();
                let attributes = &review["spec"]["resourceAttributes"];
                let allowed = attributes["group"] == "db.example.com"
                    && attributes["resource"] == "databases";
                let mut answered = review.clone();
                answered["status"] = json!({"allowed": allowed});
                Answer::Json(201, answered)
            }
            "/apis/db.example.com/v1/databases" => Answer::Json(
                200,
                json!({"apiVersion": "db.example.com/v1", "kind": "DatabaseList",
                    "metadata": {"resourceVersion": "5"},
                    "items": [{"apiVersion": "db.example.com/v1", "kind": "Database",
                        "metadata": {"name": "orders", "namespace": "shop", "generation": 1, "resourceVersion": "5"},
                        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "VolumeFull", "observedGeneration": 1}]}}]}),
            ),
            _ => Answer::Json(
                404,
                mock_api::status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            ),
        }
    });
    let dirty = Arc::new(crate::watch::Dirty::default());
    let custom = crate::watch::custom_caches(live.client(), &dirty).await;
    assert_eq!(custom.len(), 1, "only the kind with status conditions");
    let (resource, namespaced, store) = &custom[0];
    assert_eq!((resource.kind.as_str(), *namespaced), ("Database", true));
    tokio::time::timeout(Duration::from_secs(30), store.wait_until_ready())
        .await
        .expect("listed")
        .expect("the writer lives");
    assert!(
        !mock_api::recorded(&requests)
            .iter()
            .any(|s| s.path.contains("backups")),
        "a kind without conditions is never listed"
    );
    let reviews: Vec<Value> = mock_api::recorded(&requests)
        .iter()
        .filter(|s| s.path.ends_with("/selfsubjectaccessreviews"))
        .map(|s| serde_json::from_str(&s.body).expect("a review"))
        .collect();
    assert!(
        reviews
            .iter()
            .any(|r| r["spec"]["resourceAttributes"]["resource"] == "replicas"),
        "the refused kind was asked about: {reviews:?}"
    );
    assert!(
        !mock_api::recorded(&requests)
            .iter()
            .any(|s| s.path.ends_with("/replicas")),
        "a kind the operator may not watch is never listed"
    );
    assert!(
        dirty.take_now().contains_key("shop"),
        "its namespace is marked"
    );
    let mut caches = crate::watch::Caches::detached();
    caches.custom = custom;
    let state = caches.state_of("shop");
    assert_eq!(state.custom_objects.len(), 1);
    assert!(state.has_read("Database"));
    assert!(
        caches
            .state_of(crate::watch::CLUSTER)
            .custom_objects
            .is_empty()
    );
}
