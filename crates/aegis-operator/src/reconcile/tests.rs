//! One pass of the Incident controller against a mock API server, phase by phase: the exact
//! requests each phase sends (none where nothing is to be done), that a second pass over what
//! the first one wrote writes nothing, and that an API error ends in the status and an Event.

use std::sync::Arc;
use std::time::Duration;

use aegis_cluster::mock_api::{self, Answer, Sent};
use aegis_cluster::sim::MockSource;
use aegis_core::crd::{Decision, IncidentResource, IncidentSpec, IncidentStatus};
use aegis_core::lifecycle::Action as Move;
use aegis_core::settings::Settings;
use aegis_core::{Incident, SourceKind, Verdict};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::reconcile;
use crate::{Caches, Context, RunOptions, incidents};

const PATH: &str = "/apis/aegis.io/v1alpha1/namespaces/demo/incidents/inc-test";

/// A demo-world incident with a fix and a verification plan.
fn diagnosis() -> Incident {
    let state = MockSource::demo_state().expect("the demo world simulates");
    let mut incident = aegis_agent::Agent::new(&Settings::default())
        .analyze(
            &state,
            SourceKind::Mock,
            &aegis_agent::AnalyzeRequest::default(),
        )
        .expect("analyzes")
        .incidents
        .into_iter()
        .find(|i| i.fix.is_some() && i.verification.plan.is_some())
        .expect("a verifiable fix");
    incident.id = "inc-test".to_owned();
    if let Some(namespace) = incident.workload.namespace.as_mut() {
        "demo".clone_into(namespace);
    }
    incident
}

/// An Incident whose lifecycle went through `moves` (after its diagnosis), with `spec`'s
/// decisions.
fn incident_in(moves: &[Move], decide: impl FnOnce(&mut IncidentSpec, &IncidentStatus)) -> Value {
    let subject = diagnosis();
    let mut record =
        aegis_agent::store::first_seen(&subject, SourceKind::Cluster, "2026-12-03T01:00:00Z");
    for action in moves {
        record
            .lifecycle
            .advance(*action, "operator", "2026-12-03T01:00:01Z", "test")
            .expect("an allowed move");
    }
    let mut status = IncidentStatus {
        sources: vec!["aegis".to_owned()],
        ..IncidentStatus::default()
    };
    incidents::write_back(&mut status, record);
    let mut spec = IncidentSpec {
        workload: subject.workload.clone(),
        category: subject.rca.category,
        approval: None,
        rejection: None,
        rollback: None,
    };
    decide(&mut spec, &status);
    let mut object = IncidentResource::new("inc-test", spec);
    object.metadata.namespace = Some("demo".to_owned());
    object.metadata.resource_version = Some("1".to_owned());
    object.status = Some(status);
    serde_json::to_value(object).expect("serializes")
}

fn context(live: aegis_cluster::live::LiveSource) -> Arc<Context> {
    let client = live.client().clone();
    let settings = Settings::default();
    Arc::new(Context {
        agent: aegis_agent::Agent::new(&settings),
        recorder: kube::runtime::events::Recorder::new(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: crate::MANAGER.to_owned(),
                instance: Some("test".to_owned()),
            },
        ),
        client,
        live,
        settings,
        options: RunOptions {
            metrics_addr: ([127, 0, 0, 1], 0).into(),
            leader_elect: false,
            namespace: "aegis-system".to_owned(),
            identity: "test".to_owned(),
        },
        caches: Caches::detached(),
        tracker: aegis_shadow::Tracker::default(),
        verifying: std::sync::Mutex::default(),
        shadow_slots: tokio::sync::Semaphore::new(1),
        namespace_selector: None,
        consultant: None,
    })
}

/// The mock API server's Incident: read as it stands, its status replaced as sent.
fn incident_server(
    object: Value,
    mut other: impl FnMut(&Sent, &[Sent]) -> Option<Answer> + Send + 'static,
) -> impl FnMut(&Sent, &[Sent]) -> Answer + Send + 'static {
    let mut current = object;
    move |sent, all| {
        if let Some(answer) = other(sent, all) {
            return answer;
        }
        match (sent.method.as_str(), sent.path.as_str()) {
            ("GET" | "DELETE", PATH) => Answer::Json(200, current.clone()),
            ("PUT", path) if path == format!("{PATH}/status") => {
                let mut body = sent.json();
                let version: u64 = current["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                body["metadata"]["resourceVersion"] = json!((version + 1).to_string());
                current = body.clone();
                Answer::Json(200, body)
            }
            ("POST", "/apis/events.k8s.io/v1/namespaces/demo/events") => {
                Answer::Json(201, sent.json())
            }
            _ => Answer::Json(
                403,
                mock_api::status(403, "Forbidden", "not in this scenario"),
            ),
        }
    }
}

/// One reconcile pass over `object`: what it returned and every request it sent.
async fn pass(
    object: &Value,
    other: impl FnMut(&Sent, &[Sent]) -> Option<Answer> + Send + 'static,
) -> (Result<Action, super::ReconcileError>, Vec<Sent>) {
    let (live, handle) = mock_api::source();
    let (_task, requests) = mock_api::serve(handle, incident_server(object.clone(), other));
    let incident: IncidentResource = serde_json::from_value(object.clone()).expect("an Incident");
    let outcome = Box::pin(reconcile(Arc::new(incident), context(live))).await;
    (outcome, mock_api::recorded(&requests))
}

fn methods(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

fn nothing(_: &Sent, _: &[Sent]) -> Option<Answer> {
    None
}

/// One pass that follows a decision in the spec: it reads the Incident once and writes its
/// status once; returns what it wrote and every request.
async fn decided(object: &Value) -> (Value, Vec<Sent>) {
    let (outcome, sent) = Box::pin(pass(object, nothing)).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(
        methods(&sent),
        [format!("GET {PATH}"), format!("PUT {PATH}/status")]
    );
    (sent[1].json(), sent)
}

const VERIFIED: &[Move] = &[Move::Verify, Move::Verdict(Verdict::Successful)];

fn approve(by: &str, fix_hash: Option<String>) -> Decision {
    Decision {
        by: by.to_owned(),
        fix_hash,
        reason: String::new(),
    }
}

#[tokio::test]
async fn a_phase_with_nothing_to_do_sends_no_request() {
    let cases: Vec<(&str, Value)> = vec![
        ("verified, nobody decided", incident_in(VERIFIED, |_, _| {})),
        (
            "verified, approval of another fix",
            incident_in(VERIFIED, |spec, _| {
                spec.approval = Some(approve("alice", Some("another-fix".to_owned())));
            }),
        ),
        (
            "verified, approval without a fix hash",
            incident_in(VERIFIED, |spec, _| {
                spec.approval = Some(approve("alice", None));
            }),
        ),
        (
            "escalated, nobody decided",
            incident_in(
                &[Move::Verify, Move::Verdict(Verdict::Inconclusive)],
                |_, _| {},
            ),
        ),
        (
            "rejected, approval written afterwards",
            incident_in(
                &[Move::Verify, Move::Verdict(Verdict::Failed), Move::Reject],
                |spec, status| {
                    spec.approval = Some(approve("alice", status.fix_hash.clone()));
                },
            ),
        ),
    ];
    for (name, object) in cases {
        let (outcome, sent) = Box::pin(pass(&object, nothing)).await;
        assert!(outcome.is_ok(), "{name}: {outcome:?}");
        assert_eq!(methods(&sent), Vec::<String>::new(), "{name}");
    }
}

#[tokio::test]
async fn an_approval_of_the_verified_fix_reads_once_and_writes_the_status_once() {
    let object = incident_in(VERIFIED, |spec, status| {
        spec.approval = Some(approve("alice", status.fix_hash.clone()));
    });
    let (written, sent) = decided(&object).await;
    assert_eq!(written["status"]["phase"], "approved");
    assert_eq!(
        written["metadata"]["resourceVersion"], "1",
        "the read is the precondition"
    );
    let last = written["status"]["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("a history");
    assert_eq!(last["by"], "alice");
    assert_eq!(sent[1].param("fieldManager"), Some("aegis-operator"));
}

#[tokio::test]
async fn a_rejection_is_written_once_and_the_pass_over_what_it_wrote_sends_nothing() {
    let object = incident_in(
        &[Move::Verify, Move::Verdict(Verdict::Inconclusive)],
        |spec, _| {
            spec.rejection = Some(Decision {
                by: "bob".to_owned(),
                fix_hash: None,
                reason: "not during the freeze".to_owned(),
            });
        },
    );
    let (written, _) = decided(&object).await;
    assert_eq!(written["status"]["phase"], "rejected");
    // The second pass sees the object the first one wrote: nothing left to do.
    let (outcome, again) = Box::pin(pass(&written, nothing)).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(methods(&again), Vec::<String>::new());
}

#[tokio::test]
async fn a_resolved_incident_is_deleted_after_its_retention_and_left_alone_before() {
    let resolved = |at: String| {
        let mut object = incident_in(&[Move::Resolve], |_, _| {});
        object["status"]["resolvedAt"] = json!(at);
        object
    };
    let fresh = resolved(incidents::now());
    let (outcome, sent) = Box::pin(pass(&fresh, nothing)).await;
    assert_eq!(methods(&sent), Vec::<String>::new());
    let requeue = outcome.expect("a pass");
    assert_ne!(
        requeue,
        Action::await_change(),
        "it comes back when the retention ends"
    );

    let retention = Settings::default().operator.retention_seconds;
    let old = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(i64::try_from(retention).unwrap_or(0) + 60);
    let expired = resolved(
        old.round(k8s_openapi::jiff::Unit::Second)
            .expect("rounds")
            .to_string(),
    );
    let (outcome, sent) = Box::pin(pass(&expired, nothing)).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(methods(&sent), [format!("DELETE {PATH}")]);
}

#[tokio::test]
async fn an_api_error_is_recorded_in_the_status_and_as_an_event_and_the_backoff_is_kept() {
    let object = incident_in(VERIFIED, |spec, status| {
        spec.approval = Some(approve("alice", status.fix_hash.clone()));
    });
    // The first status write fails with a server error; the error's own write goes through.
    let (outcome, sent) = Box::pin(pass(&object, |sent, all| {
        let puts = all.iter().filter(|s| s.method == "PUT").count();
        (sent.method == "PUT" && puts == 1).then(|| {
            Answer::Json(
                500,
                mock_api::status(500, "InternalError", "etcdserver: request timed out"),
            )
        })
    }))
    .await;
    let error = outcome.expect_err("the pass failed");
    assert_eq!(error.during, "decide");
    assert_eq!(
        methods(&sent),
        [
            format!("GET {PATH}"),
            format!("PUT {PATH}/status"),
            format!("GET {PATH}"),
            format!("PUT {PATH}/status"),
            "POST /apis/events.k8s.io/v1/namespaces/demo/events".to_owned(),
        ]
    );
    let recorded = sent[3].json();
    assert_eq!(
        recorded["status"]["phase"], "verified",
        "the decision did not happen"
    );
    let last_error = &recorded["status"]["lastError"];
    assert_eq!(last_error["during"], "decide");
    assert_eq!(last_error["attempts"], 1);
    assert!(
        last_error["message"]
            .as_str()
            .is_some_and(|m| m.contains("etcdserver: request timed out")),
        "{last_error}"
    );
    let event = sent[4].json();
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "ReconcileFailed");
    assert_eq!(event["regarding"]["name"], "inc-test");
    // The next pass, within the backoff, sends nothing and comes back when it ends.
    let (outcome, again) = Box::pin(pass(&recorded, nothing)).await;
    assert_eq!(methods(&again), Vec::<String>::new());
    let requeued = outcome.expect("a pass");
    assert_ne!(requeued, Action::await_change());
    assert_ne!(requeued, Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn a_diagnosed_fix_goes_verifying_before_its_shadow_and_a_shadow_that_cannot_run_is_an_error_not_a_verdict()
 {
    let object = incident_in(&[], |_, _| {});
    assert_eq!(object["status"]["phase"], "diagnosed");
    let (outcome, sent) = Box::pin(pass(&object, nothing)).await;
    let error = outcome.expect_err("no shadow ran");
    assert_eq!(error.during, "verify");
    assert!(
        error.message.starts_with(aegis_agent::SHADOW_NOT_RUN),
        "{}",
        error.message
    );
    let all = methods(&sent);
    assert!(all.len() >= 5, "{all:#?}");
    assert_eq!(
        all[..2],
        [format!("GET {PATH}"), format!("PUT {PATH}/status")]
    );
    assert_eq!(
        sent[1].json()["status"]["phase"],
        "verifying",
        "before the shadow starts"
    );
    assert_eq!(
        all[all.len() - 3..],
        [
            format!("GET {PATH}"),
            format!("PUT {PATH}/status"),
            "POST /apis/events.k8s.io/v1/namespaces/demo/events".to_owned(),
        ]
    );
    let recorded = sent[sent.len() - 2].json();
    assert_eq!(
        recorded["status"]["phase"], "verifying",
        "no verdict: it is retried"
    );
    assert_eq!(recorded["status"]["lastError"]["during"], "verify");
    // Between them, the shadow's attempt: nothing written to the production namespace.
    for request in &sent[2..sent.len() - 3] {
        assert!(
            request.method == "GET" || !request.path.contains("/namespaces/demo/"),
            "{} {}",
            request.method,
            request.path
        );
    }
}
