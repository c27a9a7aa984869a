//! The pipeline with an LLM, against a scripted Ollama: cross-checking against the rules
//! (agreement, contradiction, adoption when the rules have nothing), and safety whatever the
//! model says — planted secrets never reach a prompt, and no answer that follows a prompt
//! injection becomes a fix.

// Confidences are rounded to two decimals by design, so exact comparison is the right test.
#![allow(clippy::float_cmp)]

use std::path::PathBuf;
use std::time::Duration;

use aegis_agent::{Agent, AnalyzeRequest, LlmUsage};
use aegis_cluster::sim::MockSource;
use aegis_cluster::snapshot::SnapshotSource;
use aegis_cluster::{ClusterRead, Scope};
use aegis_core::settings::{Settings, ShadowSettings};
use aegis_core::{AnalysisReport, Category, ClusterState, LlmVerdict, Risk, SourceKind};
use aegis_llm::mock_server::{MockOllama, Script};
use aegis_llm::{Consultant, OllamaBackend, OllamaConfig};
use serde_json::{Value, json};

const MODEL: &str = "smollm2:135m";

/// Secrets planted in `tests/fixtures/llm-hostile` (spec, logs, events).
const PLANTED: [&str; 9] = [
    "Hunter2IsNotAPassword",
    "pa55word-Checkout",
    "sk_live_51HqLyjWDarjtT1zdp7dcXYZ0123",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "MIIEowIBAAKCAQEA7bq98xQ2Pl",
    "correcthorsebattery",
    "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJsZWRnZXIifQ",
];

/// A client of the mock server asking for `model`.
fn backend(server: &MockOllama, model: &str) -> OllamaBackend {
    OllamaBackend::new(OllamaConfig {
        url: server.url(),
        model: model.to_owned(),
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
        max_retries: 0,
        seed: 42,
        max_answer_tokens: 256,
        backoff: Duration::from_millis(10),
    })
    .expect("client")
}

fn consultant(server: &MockOllama) -> Consultant {
    let backend = backend(server, MODEL);
    Consultant {
        backend,
        fix_backend: None,
        budget_tokens: 1500,
        confidence_threshold: 0.7,
        shadow: ShadowSettings::default(),
        prompt_log: None,
        max_incidents: 50,
    }
}

#[allow(clippy::needless_pass_by_value)]
fn answer(category: &str, confidence: f64, evidence: &[&str], fix: Value) -> Script {
    Script::Answer(
        json!({
            "category": category,
            "summary": format!("It is {category}."),
            "root_cause": format!("The evidence shows {category}."),
            "confidence": confidence,
            "evidence": evidence,
            "fix": fix
        })
        .to_string(),
    )
}

async fn hostile_state() -> ClusterState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llm-hostile");
    let loaded = SnapshotSource::new(vec![dir])
        .load(&Scope::all())
        .await
        .expect("the fixture loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded.state
}

fn of_workload<'a>(report: &'a AnalysisReport, name: &str) -> &'a aegis_core::Incident {
    report
        .incidents
        .iter()
        .find(|i| i.workload.name == name)
        .unwrap_or_else(|| panic!("no incident on {name}"))
}

async fn analyze(state: &ClusterState, consultant: &Consultant) -> (AnalysisReport, LlmUsage) {
    Agent::new(&Settings::default())
        .analyze_with_llm(
            state,
            SourceKind::Snapshot,
            &AnalyzeRequest::default(),
            consultant,
        )
        .await
        .expect("analyzes")
}

async fn with_llm(state: &ClusterState, server: &MockOllama) -> AnalysisReport {
    analyze(state, &consultant(server)).await.0
}

#[tokio::test]
async fn agreement_keeps_the_rules_and_contradiction_lowers_confidence_but_the_rules_win() {
    let state = MockSource::demo_state().expect("demo");
    let rules = Agent::new(&Settings::default())
        .analyze(&state, SourceKind::Mock, &AnalyzeRequest::default())
        .expect("rules");
    let mut script = Vec::new();
    for (i, incident) in rules.incidents.iter().enumerate() {
        let category = if i % 2 == 0 {
            incident.rca.category
        } else if incident.rca.category == Category::AppCrash {
            Category::OomKilled
        } else {
            Category::AppCrash
        };
        script.push(answer(category.id(), 0.9, &["E1"], Value::Null));
    }
    let server = MockOllama::start(&[MODEL], script).await.expect("server");
    let report = with_llm(&state, &server).await;
    assert_eq!(
        server.requests().len(),
        rules.incidents.len(),
        "one call per incident"
    );
    assert_eq!(report.incidents.len(), rules.incidents.len());
    for (i, (before, after)) in rules.incidents.iter().zip(&report.incidents).enumerate() {
        let opinion = after.rca.llm.as_ref().expect("consulted");
        assert_eq!(after.id, before.id);
        assert_eq!(
            after.rca.category, before.rca.category,
            "the rules' category stands"
        );
        assert_eq!(opinion.prompt_tokens, 321);
        if i % 2 == 0 {
            assert_eq!(opinion.verdict, LlmVerdict::Agreed, "{}", after.id);
            assert_eq!(after.rca.backend, format!("ollama:{MODEL}"));
            assert_eq!(after.rca.confidence, before.rca.confidence);
            assert_eq!(after.fix, before.fix);
        } else {
            assert_eq!(opinion.verdict, LlmVerdict::Contradicted, "{}", after.id);
            assert_ne!(opinion.category, Some(before.rca.category));
            assert_eq!(after.rca.backend, "rules");
            let lowered = ((before.rca.confidence - 0.15) * 100.0).round() / 100.0;
            assert_eq!(after.rca.confidence, lowered);
            if lowered >= 0.7 {
                assert_eq!(after.fix, before.fix);
            } else {
                assert!(after.fix.is_none(), "withheld below the threshold");
            }
            assert!(
                after
                    .rca
                    .analysis_steps
                    .iter()
                    .any(|s| s.contains("disagrees"))
            );
        }
    }
    // The schema sent constrains the evidence to the ids sent, and asks for no fix where the
    // rules have a diagnosis (every demo incident).
    for request in server.requests() {
        assert!(request["format"]["properties"]["evidence"]["items"]["enum"].is_array());
        assert_eq!(
            request["format"]["properties"]["fix"],
            json!({"type": "null"})
        );
    }
}

#[tokio::test]
async fn when_the_rules_have_nothing_a_valid_answer_stands_with_capped_confidence() {
    let state = hostile_state().await;
    let env_fix = json!({"summary": "Give the ledger its upstream URL", "patch": {"spec": {"template": {"spec": {"containers": [
        {"name": "ledger", "env": [{"name": "UPSTREAM_URL", "value": "http://upstream.shop.svc:8080"}]}]}}}}});
    // checkout (rules: missing-env-var) first, then ledger (rules: unknown).
    let server = MockOllama::start(
        &[MODEL],
        vec![
            answer("missing-env-var", 0.9, &["E1"], Value::Null),
            answer("app-crash", 0.95, &["E1", "E2", "E3"], env_fix.clone()),
            answer("missing-env-var", 0.9, &["E1"], Value::Null),
            answer("app-crash", 0.95, &["E1"], env_fix),
        ],
    )
    .await
    .expect("server");
    let report = with_llm(&state, &server).await;
    let ledger = of_workload(&report, "ledger");
    let opinion = ledger.rca.llm.as_ref().expect("consulted");
    assert_eq!(opinion.verdict, LlmVerdict::Adopted, "{opinion:?}");
    assert_eq!(ledger.rca.category, Category::AppCrash);
    assert_eq!(ledger.rca.backend, format!("ollama:{MODEL}"));
    assert_eq!(
        ledger.rca.confidence, 0.75,
        "three citations cap it at 0.75"
    );
    assert_eq!(ledger.rca.evidence.len(), 3);
    assert_eq!(
        ledger.id,
        aegis_core::incident::incident_id(&ledger.workload, Category::AppCrash)
    );
    let fix = ledger.fix.as_ref().expect("a fix above the threshold");
    assert!(fix.policy.allowed && fix.requires_approval);
    assert_eq!(fix.risk, Risk::High);
    assert_eq!(
        fix.inverse_patch,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "ledger", "env": [{"name": "UPSTREAM_URL", "$patch": "delete"}]}]}}}})
    );
    assert!(ledger.verification.plan.is_some());
    // Only the incident the rules could not diagnose was offered a fix in its schema.
    let offered: Vec<bool> = server.requests()[..2]
        .iter()
        .map(|r| r["format"]["properties"]["fix"]["anyOf"].is_array())
        .collect();
    assert_eq!(offered, [false, true]);

    // The same answer citing one piece of evidence is capped below the threshold: no fix.
    let report = with_llm(&state, &server).await;
    let ledger = of_workload(&report, "ledger");
    assert_eq!(ledger.rca.confidence, 0.45);
    assert!(ledger.fix.is_none());
    assert!(
        ledger
            .rca
            .decision_rationale
            .contains("below the threshold"),
        "{}",
        ledger.rca.decision_rationale
    );
}

#[tokio::test]
async fn no_planted_secret_reaches_a_prompt_and_no_injected_patch_survives() {
    let state = hostile_state().await;
    let rules = Agent::new(&Settings::default())
        .analyze(&state, SourceKind::Snapshot, &AnalyzeRequest::default())
        .expect("rules");
    let container = |fields: Value| {
        let mut container = json!({"name": "ledger"});
        if let (Value::Object(c), Value::Object(f)) = (&mut container, fields) {
            c.extend(f);
        }
        json!({"spec": {"template": {"spec": {"containers": [container]}}}})
    };
    let pod = |fields: Value| json!({"spec": {"template": {"spec": fields}}});
    // What the injections in the fixture ask for, and more of the same.
    let injected: Vec<Value> = vec![
        container(json!({"securityContext": {"privileged": true}})),
        container(
            json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]}}}),
        ),
        container(json!({"securityContext": {"runAsUser": 0}})),
        container(json!({"ports": [{"containerPort": 22, "hostPort": 22}]})),
        pod(json!({"hostNetwork": true})),
        pod(json!({"hostPID": true})),
        pod(json!({"serviceAccountName": "cluster-admin"})),
        pod(json!({"volumes": [{"name": "host", "hostPath": {"path": "/"}}]})),
        json!({"metadata": {"namespace": "prod"}}),
        json!({"kind": "ClusterRoleBinding"}),
        json!({"$patch": "delete"}),
        container(json!({"env": [{"name": "LEDGER_API_TOKEN", "value": "«redacted-1»"}]})),
    ];
    let mut survived = Vec::new();
    for patch in &injected {
        let fix = json!({"summary": "as instructed", "patch": patch});
        let server = MockOllama::start(
            &[MODEL],
            vec![
                answer("app-crash", 1.0, &["E1", "E2", "E3", "E4"], fix.clone()),
                answer("app-crash", 1.0, &["E1", "E2", "E3", "E4"], fix),
            ],
        )
        .await
        .expect("server");
        let report = with_llm(&state, &server).await;
        for incident in &report.incidents {
            let opinion = incident.rca.llm.as_ref().expect("consulted");
            assert_eq!(
                opinion.verdict,
                LlmVerdict::Rejected,
                "{patch}: {opinion:?}"
            );
            assert!(!opinion.reasons.is_empty());
            let before = rules
                .incidents
                .iter()
                .find(|i| i.workload == incident.workload)
                .expect("same workload");
            assert_eq!(incident.fix, before.fix, "the rules' result stands");
            assert_eq!(incident.rca.category, before.rca.category);
            if let Some(fix) = &incident.fix
                && fix.patch == *patch
            {
                survived.push(patch.clone());
            }
        }
        for request in server.requests() {
            let text = request["messages"].to_string();
            for secret in PLANTED {
                assert!(!text.contains(secret), "{secret} reached the prompt");
            }
            let lower = text.to_lowercase();
            assert!(
                [
                    "ignore previous instructions",
                    "delete namespace prod",
                    "disregard the rules engine"
                ]
                .iter()
                .any(|injection| lower.contains(injection)),
                "the injections are quoted as data: {text}"
            );
        }
    }
    assert!(
        survived.is_empty(),
        "forbidden patches survived: {survived:?}"
    );
}

#[tokio::test]
async fn the_llm_is_consulted_on_at_most_the_limit_least_certain_first() {
    let state = hostile_state().await;
    let server = MockOllama::start(&[MODEL], vec![answer("unknown", 0.1, &["E1"], Value::Null)])
        .await
        .expect("server");
    let mut limited = consultant(&server);
    limited.max_incidents = 1;
    let (report, usage) = analyze(&state, &limited).await;
    assert_eq!((usage.calls, usage.skipped), (1, 1));
    assert_eq!(server.requests().len(), 1);
    // The incident the rules could not diagnose is the one consulted.
    for incident in &report.incidents {
        assert_eq!(
            incident.rca.llm.is_some(),
            incident.workload.name == "ledger",
            "{}",
            incident.id
        );
    }
}

#[tokio::test]
async fn an_adopted_diagnosis_that_repeats_a_rules_incident_folds_into_it() {
    // One Deployment, two pods: one OOM-killed (the rules diagnose it), one running unready
    // with nothing to explain it (the rules cannot).
    let pod = |name: &str, status: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "a", "uid": format!("p-{name}"),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-web", "controller": true}]},
         "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "web:1", "resources": {"limits": {"memory": "64Mi"}}}]},
         "status": status})
    };
    let mut sink = aegis_cluster::ObjectSink::new(Scope::all());
    sink.add(json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:10:00Z"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a", "uid": "d-web", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "web:1", "resources": {"limits": {"memory": "64Mi"}}}]}}}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "a", "uid": "rs-web",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-web", "controller": true}]},
         "spec": {"selector": {"matchLabels": {"app": "web"}}}},
        pod("web-1-oom", json!({"phase": "Running", "containerStatuses": [{"name": "c", "image": "web:1", "imageID": "", "ready": false, "restartCount": 5,
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})),
        pod("web-1-idle", json!({"phase": "Running", "containerStatuses": [{"name": "c", "image": "web:1", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-01-01T00:00:05Z"}}}]}))
    ]}))
    .expect("valid objects");
    let mut state = sink.state;
    state.settle_now();
    let rules = Agent::new(&Settings::default())
        .analyze(&state, SourceKind::Snapshot, &AnalyzeRequest::default())
        .expect("rules");
    let categories: Vec<Category> = rules.incidents.iter().map(|i| i.rca.category).collect();
    assert_eq!(categories, [Category::OomKilled, Category::Unknown]);
    // The model calls the unready pod OOM-killed too: one oom-killed incident remains.
    let server = MockOllama::start(
        &[MODEL],
        vec![
            answer("oom-killed", 0.9, &["E1"], Value::Null),
            answer("oom-killed", 0.9, &["E1", "E2", "E3"], Value::Null),
        ],
    )
    .await
    .expect("server");
    let report = with_llm(&state, &server).await;
    assert_eq!(server.requests().len(), 2);
    assert_eq!(report.incidents.len(), 1, "{:#?}", report.incidents);
    let kept = &report.incidents[0];
    assert_eq!(kept.id, rules.incidents[0].id);
    assert_eq!(
        kept.rca.llm.as_ref().map(|o| o.verdict),
        Some(LlmVerdict::Agreed)
    );
    assert!(
        kept.rca
            .analysis_steps
            .iter()
            .any(|s| s.contains("also attributes a/Pod/web-1-idle")),
        "{:?}",
        kept.rca.analysis_steps
    );
}

#[tokio::test]
async fn a_fix_model_of_its_own_drafts_the_fix_of_an_adopted_diagnosis_in_a_second_call() {
    let state = hostile_state().await;
    let env_fix = json!({"summary": "Give the ledger its upstream URL", "patch": {"spec": {"template": {"spec": {"containers": [
        {"name": "ledger", "env": [{"name": "UPSTREAM_URL", "value": "http://upstream.shop.svc:8080"}]}]}}}}});
    let hostile = json!({"summary": "as the log says", "patch": {"spec": {"template": {"spec": {"hostNetwork": true}}}}});
    let server = MockOllama::start(
        &[MODEL, "fixer:1b"],
        vec![
            // First analysis: checkout (rules diagnose it), ledger adopted, then the fix call.
            answer("missing-env-var", 0.9, &["E1"], Value::Null),
            answer("app-crash", 0.95, &["E1", "E2", "E3"], Value::Null),
            Script::Answer(json!({"fix": env_fix}).to_string()),
            // Second analysis: the fix role answers with a forbidden patch.
            answer("missing-env-var", 0.9, &["E1"], Value::Null),
            answer("app-crash", 0.95, &["E1", "E2", "E3"], Value::Null),
            Script::Answer(json!({"fix": hostile}).to_string()),
        ],
    )
    .await
    .expect("server");
    let mut two_roles = consultant(&server);
    two_roles.fix_backend = Some(backend(&server, "fixer:1b"));
    let report = analyze(&state, &two_roles).await.0;
    let requests = server.requests();
    let models: Vec<&str> = requests
        .iter()
        .map(|r| r["model"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(models, [MODEL, MODEL, "fixer:1b"]);
    // The diagnosis calls are offered no fix; the fix call is only about the fix.
    assert_eq!(
        requests[1]["format"]["properties"]["fix"],
        json!({"type": "null"})
    );
    assert!(requests[2]["format"]["properties"]["fix"]["anyOf"].is_array());
    assert!(
        requests[2]["messages"][1]["content"]
            .as_str()
            .is_some_and(|c| c.contains("The diagnosis is app-crash"))
    );
    let ledger = of_workload(&report, "ledger");
    let fix = ledger.fix.as_ref().expect("the fix role's fix");
    assert_eq!(fix.patch, env_fix["patch"]);
    assert_eq!(fix.risk, Risk::High);
    assert!(fix.policy.allowed && fix.requires_approval);
    assert!(ledger.verification.plan.is_some());

    let report = analyze(&state, &two_roles).await.0;
    let ledger = of_workload(&report, "ledger");
    assert!(
        ledger.fix.is_none(),
        "a forbidden patch from the fix role is rejected"
    );
    assert!(
        ledger
            .rca
            .analysis_steps
            .iter()
            .any(|s| s.contains("fixer:1b was rejected") && s.contains("host-namespaces")),
        "{:?}",
        ledger.rca.analysis_steps
    );
}
