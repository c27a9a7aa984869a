//! End-to-end: `aegis operator run` with the real Ollama serving the real SmolLM2-135M model, on
//! the real control plane.
//!
//! - with `llm.backend = ollama` and no Ollama listening, the operator refuses to start and says
//!   so;
//! - a new diagnosis is recorded, then the model's second opinion on it (`status.consulted`,
//!   the opinion in the diagnosis), with the calls and tokens in `/metrics`;
//! - the opinion stands while the rules make the same diagnosis: more events about the pod
//!   make more passes but no second call.
//!
//! What a 135M model concludes is not asserted; what became of its answer is recorded, and the
//! rules' diagnosis stands unless the model's was adopted where the rules had none.

use std::time::{Duration, Instant};

use aegis_core::Category;
use aegis_core::crd::IncidentResource;
use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::Cluster;
use aegis_e2e::demo::kubectl;
use aegis_e2e::ollama::{Artifacts, MODEL, Ollama};
use aegis_e2e::operator::{NAMESPACE, Replica, install_crds, warning_events};
use kube::Api;
use kube::api::ListParams;

/// A counter's value in Prometheus text, summed over its label sets.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_records_the_real_models_second_opinion_once_per_diagnosis() {
    let artifacts = Artifacts::ensure().expect("Ollama builds and the model is fetched");
    let binaries = Binaries::ensure().expect("the control plane builds");
    let binary = aegis_e2e::aegis_binary().expect("aegis builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Ollama::start(&artifacts, &dir.path().join("ollama"))
        .await
        .expect("Ollama starts");
    let cluster = Cluster::start(&binaries, &dir.path().join("cluster"))
        .await
        .expect("the control plane starts");
    let client = cluster.client().await.expect("a client");
    install_crds(&binaries, &cluster, &binary, false);

    // `llm.backend = ollama` and nothing listening: no start, and the reason.
    let refused = aegis_e2e::aegis_command(&binary)
        .args(["operator", "run", "--metrics-addr", "127.0.0.1:0"])
        .args(["-n", NAMESPACE])
        .env("KUBECONFIG", cluster.operator_kubeconfig())
        .env("AEGIS_LLM__BACKEND", "ollama")
        .env("AEGIS_LLM__OLLAMA_URL", "http://127.0.0.1:9")
        .output()
        .expect("aegis runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Ollama is not reachable"), "{stderr}");

    let llm = [
        ("AEGIS_LLM__BACKEND", "ollama"),
        ("AEGIS_LLM__OLLAMA_URL", server.url()),
        ("AEGIS_LLM__RCA_MODEL", MODEL),
        ("AEGIS_LLM__FIX_MODEL", MODEL),
        ("AEGIS_LLM__SEED", "42"),
        ("AEGIS_LLM__MAX_ANSWER_TOKENS", "256"),
        ("AEGIS_LLM__REQUEST_TIMEOUT_SECS", "300"),
    ];
    let replica = Replica::start(&binary, &cluster, dir.path(), "replica-llm", &llm);
    let ready = Instant::now();
    while !replica.get("/readyz").1.contains("leader") {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "the operator leads within a minute:\n{}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let example = aegis_e2e::workspace_root().join("examples/incidents/demo-nginx.yaml");
    kubectl(
        &binaries,
        &cluster,
        &["apply", "-f", example.to_str().expect("UTF-8")],
    );
    kubectl(
        &binaries,
        &cluster,
        &[
            "annotate",
            "pod/demo-nginx",
            "-n",
            "default",
            "aegis.io/monitor=true",
        ],
    );
    let incidents: Api<IncidentResource> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    // Every Incident of demo-nginx (the pod's image, and whatever else the rules report) with
    // the model's opinion on record.
    let consulted = loop {
        let all: Vec<IncidentResource> = incidents
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.spec.workload.name == "demo-nginx")
            .collect();
        let asked = |i: &IncidentResource| i.status.as_ref().is_some_and(|s| s.consulted.is_some());
        if all
            .iter()
            .any(|i| i.spec.category == Category::ImageNotFound)
            && all.iter().all(asked)
        {
            break all;
        }
        assert!(
            started.elapsed() < Duration::from_secs(400),
            "the model's opinions recorded within 400 s:\n{}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!(
        "diagnoses and opinions recorded {:.1} s after kubectl apply",
        started.elapsed().as_secs_f64()
    );
    let mut records = Vec::new();
    for incident in &consulted {
        let status = incident.status.clone().expect("a status");
        let record = status.consulted.clone().expect("consulted");
        let diagnosis = status.incident.clone().expect("a diagnosis");
        let opinion = diagnosis.rca.llm.clone().expect("the model's opinion");
        eprintln!(
            "{}: asked about {:?}; the model {} ({:?})",
            diagnosis.id,
            record.about,
            record.verdict.as_str(),
            opinion.reasons
        );
        assert_eq!(opinion.verdict, record.verdict);
        assert_eq!(opinion.backend, format!("ollama:{MODEL}"));
        assert_eq!(
            incident.metadata.name.as_deref(),
            Some(diagnosis.id.as_str()),
            "the Incident keeps the id the rules gave it"
        );
        assert!(
            record
                .about
                .starts_with(&format!("{}: ", incident.spec.category.id())),
            "asked about the rules' diagnosis: {}",
            record.about
        );
        if incident.spec.category == Category::ImageNotFound {
            assert_ne!(
                record.verdict,
                aegis_core::LlmVerdict::Adopted,
                "the rules had a diagnosis"
            );
            assert_eq!(
                diagnosis.rca.category,
                Category::ImageNotFound,
                "the rules' diagnosis stands"
            );
        }
        records.push((
            incident.metadata.name.clone().unwrap_or_default(),
            record,
            opinion,
        ));
    }

    let (code, metrics) = replica.get("/metrics");
    assert_eq!(code, 200);
    let calls = counter(&metrics, "aegis_llm_calls_total{");
    assert!(calls >= 1, "{metrics}");
    assert_eq!(
        counter(&metrics, "aegis_llm_opinions_total{"),
        records.len() as u64,
        "one opinion per diagnosis: {metrics}"
    );
    if records
        .iter()
        .any(|(_, record, _)| record.verdict != aegis_core::LlmVerdict::Failed)
    {
        assert!(
            counter(&metrics, "aegis_llm_prompt_tokens_total{") > 0,
            "{metrics}"
        );
    }

    // More passes over the same failure: the opinion stands, no second call.
    let pod: k8s_openapi::api::core::v1::Pod = Api::namespaced(client.clone(), "default")
        .get("demo-nginx")
        .await
        .expect("the pod");
    warning_events(
        &client,
        &pod,
        "again",
        20,
        "Back-off pulling image \"nginx:1.25.33\"",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, metrics) = replica.get("/metrics");
    assert_eq!(
        counter(&metrics, "aegis_llm_calls_total{"),
        calls,
        "no second call for the same diagnosis"
    );
    for (name, record, opinion) in records {
        let again = incidents.get(&name).await.expect("read");
        let status = again.status.as_ref();
        assert_eq!(
            status.and_then(|s| s.consulted.clone()),
            Some(record),
            "{name}: the consultation on record is the first one"
        );
        assert_eq!(
            status
                .and_then(|s| s.incident.as_ref())
                .and_then(|i| i.rca.llm.clone()),
            Some(opinion),
            "{name}: the opinion carried over every pass"
        );
    }
}
