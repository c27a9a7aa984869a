//! End-to-end: the real Ollama, built from its Go module, serving the real SmolLM2-135M model
//! from PyPI — the backend the LLM tests run against. Ollama constrains the answer to the JSON
//! schema it is given; what a 135M model concludes is not asserted.

use std::time::Instant;

use aegis_e2e::ollama::{Artifacts, MODEL, Ollama};
use ollama_rs::generation::chat::ChatMessage;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::parameters::{FormatType, JsonStructure};
use ollama_rs::models::ModelOptions;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_model_answers_in_the_json_schema_it_is_given() {
    let artifacts = Artifacts::ensure().expect("Ollama builds and the model is fetched");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Ollama::start(&artifacts, dir.path())
        .await
        .expect("Ollama starts");
    let client = ollama_rs::Ollama::builder()
        .host("http://127.0.0.1")
        .port(server.port())
        .build();

    let models = client.list_local_models().await.expect("/api/tags answers");
    assert!(
        models.iter().any(|m| m.name == MODEL),
        "{MODEL} in {:?}",
        models.iter().map(|m| &m.name).collect::<Vec<_>>()
    );

    let schema = json!({
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["oom-killed", "image-not-found", "unknown"]}
        },
        "required": ["category"]
    });
    let format = FormatType::StructuredJson(Box::new(JsonStructure::new_for_schema(
        schemars::Schema::try_from(schema).expect("a schema"),
    )));
    let request = ChatMessageRequest::new(
        MODEL.to_owned(),
        vec![
            ChatMessage::system("You diagnose Kubernetes incidents. Answer in JSON.".to_owned()),
            ChatMessage::user(
                "Container worker last terminated with reason OOMKilled, exit code 137.".to_owned(),
            ),
        ],
    )
    .format(format)
    .options(
        ModelOptions::default()
            .temperature(0.0)
            .seed(42)
            .num_predict(128),
    );
    let started = Instant::now();
    let answer = client
        .send_chat_messages(request)
        .await
        .expect("/api/chat answers");
    let elapsed = started.elapsed();
    let body: Value = serde_json::from_str(&answer.message.content)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.message.content));
    let category = body["category"].as_str().expect("a category string");
    assert!(
        ["oom-killed", "image-not-found", "unknown"].contains(&category),
        "{body}"
    );
    let usage = answer
        .final_data
        .expect("a final answer carries its counts");
    assert!(usage.prompt_eval_count > 0 && usage.eval_count > 0);
    eprintln!(
        "{MODEL}: {} prompt tokens, {} completion tokens, {} ms",
        usage.prompt_eval_count,
        usage.eval_count,
        elapsed.as_millis()
    );
}
