//! The Ollama transport against a scripted mock server: retries with back-off on 429 and 5xx,
//! no retry on timeouts or a missing model, clear errors for slow and malformed answers and for
//! an unreachable server, and the metrics of every call.

use std::time::Duration;

use aegis_llm::mock_server::{MockOllama, Script};
use aegis_llm::ollama::{LlmError, OllamaBackend, OllamaConfig};
use aegis_llm::prompt::Prompt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;

const MODEL: &str = "smollm2:135m";

fn config(url: String) -> OllamaConfig {
    OllamaConfig {
        url,
        model: MODEL.to_owned(),
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(800),
        max_retries: 2,
        seed: 42,
        max_answer_tokens: 256,
        backoff: Duration::from_millis(10),
    }
}

fn prompt() -> Prompt {
    Prompt {
        system: "system".to_owned(),
        user: "user".to_owned(),
        evidence: Vec::new(),
        dropped: 0,
        estimated_tokens: 2,
        masked: 0,
    }
}

async fn backend(script: Vec<Script>) -> (MockOllama, OllamaBackend) {
    let server = MockOllama::start(&[MODEL], script).await.expect("server");
    let backend = OllamaBackend::new(config(server.url())).expect("client");
    (server, backend)
}

fn schema() -> serde_json::Value {
    json!({"type": "object", "properties": {"category": {"type": "string"}}})
}

fn status(status: u16, retry_after: Option<u64>) -> Script {
    Script::Status {
        status,
        body: json!({"error": "busy"}).to_string(),
        retry_after,
    }
}

#[tokio::test]
async fn a_structured_call_sends_schema_temperature_seed_and_reads_tokens() {
    let (server, backend) =
        backend(vec![Script::Answer("{\"category\":\"unknown\"}".into())]).await;
    let reply = backend.chat(&prompt(), schema()).await.expect("answer");
    assert_eq!(reply.content, "{\"category\":\"unknown\"}");
    assert_eq!((reply.prompt_tokens, reply.completion_tokens), (321, 45));
    assert_eq!(reply.attempts, 1);
    let sent = &server.requests()[0];
    assert_eq!(sent["model"], MODEL);
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["format"], schema());
    assert_eq!(sent["options"]["temperature"], 0.0);
    assert_eq!(sent["options"]["seed"], 42);
    assert_eq!(sent["options"]["num_predict"], 256);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][1]["content"], "user");
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_with_back_off() {
    let (server, backend) = backend(vec![
        status(503, None),
        status(429, Some(0)),
        Script::Answer("{}".into()),
    ])
    .await;
    let reply = backend.chat(&prompt(), schema()).await.expect("third try");
    assert_eq!(reply.attempts, 3);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (server, backend) = backend(vec![
        status(500, None),
        status(502, None),
        status(500, None),
        status(500, None),
    ])
    .await;
    let error = backend
        .chat(&prompt(), schema())
        .await
        .expect_err("gives up");
    assert_eq!(error.kind(), "server-error");
    assert_eq!(server.requests().len(), 3, "one call and two retries");
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (server, backend) = backend(vec![status(400, None), Script::Answer("{}".into())]).await;
    let error = backend.chat(&prompt(), schema()).await.expect_err("400");
    assert!(
        matches!(error, LlmError::Http { status: 400, .. }),
        "{error}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_is_a_timeout_not_a_hang() {
    let (server, backend) = backend(vec![
        Script::Delay(Duration::from_secs(5), "{}".into()),
        Script::Answer("{}".into()),
    ])
    .await;
    let started = std::time::Instant::now();
    let error = backend
        .chat(&prompt(), schema())
        .await
        .expect_err("timeout");
    assert!(matches!(error, LlmError::Timeout { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(server.requests().len(), 1, "timeouts are not retried");
}

#[tokio::test]
async fn a_body_that_trickles_past_the_timeout_is_a_timeout() {
    let (_server, backend) = backend(vec![Script::Trickle(
        Duration::from_millis(20),
        "{\"category\": \"unknown\"}".into(),
    )])
    .await;
    let error = backend
        .chat(&prompt(), schema())
        .await
        .expect_err("timeout");
    assert!(matches!(error, LlmError::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn a_malformed_body_is_reported() {
    let (_server, backend) = backend(vec![Script::Malformed("<html>gateway</html>".into())]).await;
    let error = backend
        .chat(&prompt(), schema())
        .await
        .expect_err("malformed");
    assert!(matches!(error, LlmError::Malformed(_)), "{error}");
    assert!(error.to_string().contains("gateway"), "{error}");
}

#[tokio::test]
async fn a_missing_model_is_named_by_the_probe_and_by_the_call() {
    let server = MockOllama::start(&["llama3:8b"], vec![])
        .await
        .expect("server");
    let backend = OllamaBackend::new(config(server.url())).expect("client");
    let probe = backend.probe().await.expect_err("model missing");
    assert!(matches!(probe, LlmError::ModelMissing { .. }), "{probe}");
    assert!(probe.to_string().contains(MODEL), "{probe}");
    let call = backend.chat(&prompt(), schema()).await.expect_err("404");
    assert!(matches!(call, LlmError::ModelMissing { .. }), "{call}");
    assert_eq!(server.requests().len(), 1, "not retried");
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let backend = OllamaBackend::new(config(format!("http://127.0.0.1:{port}"))).expect("client");
    let probe = backend.probe().await.expect_err("down");
    assert!(matches!(probe, LlmError::Unreachable { .. }), "{probe}");
    assert!(probe.to_string().contains(&port.to_string()), "{probe}");
    let call = backend.chat(&prompt(), schema()).await.expect_err("down");
    assert_eq!(call.kind(), "unreachable");
}

#[test]
fn every_call_is_counted_with_its_latency_tokens_and_failures() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (_server, backend) =
                backend(vec![Script::Answer("{}".into()), status(400, None)]).await;
            backend.chat(&prompt(), schema()).await.expect("answer");
            backend.chat(&prompt(), schema()).await.expect_err("400");
        });
    });
    let values: Vec<(String, Vec<String>, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (key.key().name().to_owned(), labels, value)
        })
        .collect();
    let counter = |name: &str| {
        values
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, labels, value)| match value {
                DebugValue::Counter(c) => (labels.clone(), *c),
                other => panic!("{name} is {other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counter("aegis_llm_calls_total"),
        [(vec![format!("model={MODEL}")], 2)]
    );
    assert_eq!(counter("aegis_llm_prompt_tokens_total")[0].1, 321);
    assert_eq!(counter("aegis_llm_completion_tokens_total")[0].1, 45);
    assert_eq!(
        counter("aegis_llm_failures_total"),
        [(vec![format!("model={MODEL}"), "kind=http".to_owned()], 1)]
    );
    let latencies = values
        .iter()
        .find(|(n, _, _)| n == "aegis_llm_latency_seconds")
        .map(|(_, _, v)| v);
    assert!(
        matches!(latencies, Some(DebugValue::Histogram(h)) if h.len() == 2),
        "{latencies:?}"
    );
}
