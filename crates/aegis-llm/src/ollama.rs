//! The Ollama backend: one structured, non-streaming `/api/chat` call per incident.
//!
//! Requests and answers are ollama-rs's types (`ChatMessageRequest`, `ChatMessageResponse`,
//! `FormatType::StructuredJson` with the answer's inline schema); they travel over our own
//! reqwest client (rustls) because ollama-rs folds every HTTP status into one error string, and
//! the retry policy needs the status: 429 and 5xx answers and lost connections are retried with
//! exponential back-off (honouring `Retry-After`), a bounded number of times; timeouts, a missing
//! model, other 4xx answers and unparseable bodies are reported at once.
//!
//! Metrics (the `metrics` crate): `aegis_llm_calls_total{model}`,
//! `aegis_llm_failures_total{model,kind}`, `aegis_llm_latency_seconds{model}`,
//! `aegis_llm_prompt_tokens_total{model}`, `aegis_llm_completion_tokens_total{model}`.

use std::time::{Duration, Instant};

use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage, ChatMessageResponse};
use ollama_rs::generation::parameters::{FormatType, JsonStructure};
use ollama_rs::models::ModelOptions;
use serde_json::Value;

use crate::prompt::Prompt;

/// Where Ollama listens when nothing says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:11434";

/// How to reach Ollama and how to call it.
#[derive(Debug, Clone)]
pub struct OllamaConfig {
    /// Base URL (`http://127.0.0.1:11434`).
    pub url: String,
    /// The model of the diagnosis call.
    pub model: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub seed: i32,
    pub max_answer_tokens: i32,
    /// The first back-off; doubled at each retry.
    pub backoff: Duration,
}

impl OllamaConfig {
    /// How the `llm` settings say to call `model`.
    pub fn from_settings(llm: &aegis_core::settings::LlmSettings, model: &str) -> Self {
        Self {
            url: Self::resolve_url(llm.ollama_url.as_deref()),
            model: model.to_owned(),
            connect_timeout: Duration::from_millis(llm.connect_timeout_ms),
            request_timeout: Duration::from_secs(llm.request_timeout_secs),
            max_retries: llm.max_retries,
            seed: llm.seed,
            max_answer_tokens: llm.max_answer_tokens,
            backoff: Duration::from_millis(250),
        }
    }

    /// The base URL from configuration, else `OLLAMA_HOST` (with or without a scheme), else
    /// [`DEFAULT_URL`].
    pub fn resolve_url(configured: Option<&str>) -> String {
        let raw = configured
            .map(str::to_owned)
            .or_else(|| std::env::var("OLLAMA_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let with_scheme = if raw.contains("://") {
            raw
        } else {
            format!("http://{raw}")
        };
        with_scheme.trim_end_matches('/').to_owned()
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("Ollama is not reachable at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("Ollama did not answer within {} s", .after.as_secs())]
    Timeout { after: Duration },
    #[error("model `{model}` is not available in Ollama at {url}")]
    ModelMissing { model: String, url: String },
    #[error("Ollama answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("Ollama's answer could not be read: {0}")]
    Malformed(String),
    #[error("the Ollama client could not be set up: {0}")]
    Setup(String),
}

impl LlmError {
    /// A short kind, for metrics and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::ModelMissing { .. } => "model-missing",
            Self::Http { status: 429, .. } => "rate-limited",
            Self::Http { status, .. } if *status >= 500 => "server-error",
            Self::Http { .. } => "http",
            Self::Malformed(_) => "malformed",
            Self::Setup(_) => "setup",
        }
    }

    fn transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// One answer of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The message content: the JSON text to validate.
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency: Duration,
    /// Attempts made (1 when the first succeeded).
    pub attempts: u32,
}

/// A client of one Ollama server.
#[derive(Debug, Clone)]
pub struct OllamaBackend {
    http: reqwest::Client,
    config: OllamaConfig,
}

impl OllamaBackend {
    pub fn new(config: OllamaConfig) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| LlmError::Setup(e.to_string()))?;
        Ok(Self { http, config })
    }

    /// `ollama:<model>`, as `rca.backend` names it.
    pub fn name(&self) -> String {
        format!("ollama:{}", self.config.model)
    }

    pub fn config(&self) -> &OllamaConfig {
        &self.config
    }

    fn error_of(&self, error: &reqwest::Error, timeout: Duration) -> LlmError {
        if error.is_timeout() {
            LlmError::Timeout { after: timeout }
        } else if error.is_connect() || error.is_request() {
            LlmError::Unreachable {
                url: self.config.url.clone(),
                detail: root_cause(error),
            }
        } else {
            LlmError::Malformed(root_cause(error))
        }
    }

    /// The models Ollama has, asked within the connect timeout.
    pub async fn models(&self) -> Result<Vec<String>, LlmError> {
        let timeout = self.config.connect_timeout.max(Duration::from_millis(100)) * 3;
        let url = format!("{}/api/tags", self.config.url);
        let response = self
            .http
            .get(&url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.error_of(&e, timeout))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| self.error_of(&e, timeout))?;
        if !status.is_success() {
            return Err(LlmError::Http {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        let tags: Value = serde_json::from_str(&body)
            .map_err(|e| LlmError::Malformed(format!("/api/tags: {e}")))?;
        Ok(tags["models"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str().or(m["model"].as_str()))
            .map(str::to_owned)
            .collect())
    }

    /// Checks, within the connect timeout, that Ollama answers and has the model.
    pub async fn probe(&self) -> Result<(), LlmError> {
        let models = self.models().await?;
        let wanted = &self.config.model;
        let present = models.iter().any(|name| {
            name == wanted || (!wanted.contains(':') && *name == format!("{wanted}:latest"))
        });
        if present {
            Ok(())
        } else {
            Err(LlmError::ModelMissing {
                model: wanted.clone(),
                url: self.config.url.clone(),
            })
        }
    }

    /// Sends one structured chat call and returns the model's answer text.
    pub async fn chat(&self, prompt: &Prompt, schema: Value) -> Result<Reply, LlmError> {
        let model = self.config.model.clone();
        let format = schemars::Schema::try_from(schema)
            .map(|s| FormatType::StructuredJson(Box::new(JsonStructure::new_for_schema(s))))
            .map_err(|e| LlmError::Setup(format!("the answer schema is not a schema: {e}")))?;
        let request = ChatMessageRequest::new(
            model.clone(),
            vec![
                ChatMessage::system(prompt.system.clone()),
                ChatMessage::user(prompt.user.clone()),
            ],
        )
        .format(format)
        .options(
            ModelOptions::default()
                .temperature(0.0)
                .seed(self.config.seed)
                .num_predict(self.config.max_answer_tokens),
        );
        let started = Instant::now();
        metrics::counter!("aegis_llm_calls_total", "model" => model.clone()).increment(1);
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match self.send(&request).await {
                Ok(response) => break Ok(response),
                Err((error, retry_after)) => {
                    if error.transient() && attempt <= self.config.max_retries {
                        let backoff = retry_after.unwrap_or_else(|| {
                            self.config.backoff * 2u32.saturating_pow(attempt - 1)
                        });
                        tracing::debug!(attempt, error = %error, ?backoff, "retrying the Ollama call");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    break Err(error);
                }
            }
        };
        let latency = started.elapsed();
        metrics::histogram!("aegis_llm_latency_seconds", "model" => model.clone())
            .record(latency.as_secs_f64());
        match result {
            Ok(response) => {
                let (prompt_tokens, completion_tokens) = response
                    .final_data
                    .as_ref()
                    .map_or((0, 0), |d| (d.prompt_eval_count, d.eval_count));
                metrics::counter!("aegis_llm_prompt_tokens_total", "model" => model.clone())
                    .increment(prompt_tokens);
                metrics::counter!("aegis_llm_completion_tokens_total", "model" => model)
                    .increment(completion_tokens);
                Ok(Reply {
                    content: response.message.content,
                    prompt_tokens,
                    completion_tokens,
                    latency,
                    attempts: attempt,
                })
            }
            Err(error) => {
                metrics::counter!("aegis_llm_failures_total", "model" => model, "kind" => error.kind())
                    .increment(1);
                Err(error)
            }
        }
    }

    /// One attempt; on failure, the error and the server's `Retry-After`.
    async fn send(
        &self,
        request: &ChatMessageRequest,
    ) -> Result<ChatMessageResponse, (LlmError, Option<Duration>)> {
        let timeout = self.config.request_timeout;
        let url = format!("{}/api/chat", self.config.url);
        let response = self
            .http
            .post(&url)
            .json(request)
            .send()
            .await
            .map_err(|e| (self.error_of(&e, timeout), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(30)));
        let body = response
            .bytes()
            .await
            .map_err(|e| (self.error_of(&e, timeout), None))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(300).collect());
            if status.as_u16() == 404 && message.contains("not found") {
                return Err((
                    LlmError::ModelMissing {
                        model: self.config.model.clone(),
                        url: self.config.url.clone(),
                    },
                    None,
                ));
            }
            return Err((
                LlmError::Http {
                    status: status.as_u16(),
                    body: message,
                },
                retry_after,
            ));
        }
        serde_json::from_slice::<ChatMessageResponse>(&body).map_err(|e| {
            (
                LlmError::Malformed(format!(
                    "{e}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
                None,
            )
        })
    }
}

/// The innermost cause of an error chain, which says what actually went wrong.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
