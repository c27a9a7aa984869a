//! A scripted Ollama stand-in for tests (feature `mock-server`): an HTTP/1.1 server on loopback
//! that answers `/api/tags` with its model list and `/api/chat` with the next scripted reply —
//! an answer text, an HTTP error, a delay, a body that trickles in, or a malformed body — and
//! records every chat request it received.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one `/api/chat` request.
#[derive(Debug, Clone)]
pub enum Script {
    /// A successful answer whose message content is this text.
    Answer(String),
    /// An HTTP error status with a body, and optionally a `Retry-After` (seconds).
    Status {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// Waits this long, then answers with this text.
    Delay(Duration, String),
    /// Sends the headers of a successful answer, then its body a byte per `interval`.
    Trickle(Duration, String),
    /// A 200 with a body that is not an Ollama answer.
    Malformed(String),
}

#[derive(Debug, Default)]
struct Shared {
    script: VecDeque<Script>,
    requests: Vec<Value>,
}

/// A running mock server; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct MockOllama {
    pub port: u16,
    models: Vec<String>,
    shared: Arc<Mutex<Shared>>,
}

impl MockOllama {
    /// Starts a server that knows `models` and plays `script` in order (when it runs out, every
    /// chat gets a 500).
    pub async fn start(models: &[&str], script: Vec<Script>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let server = Self {
            port,
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            shared: Arc::new(Mutex::new(Shared {
                script: script.into(),
                requests: Vec::new(),
            })),
        };
        let running = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = running.clone();
                tokio::spawn(async move {
                    let _ = server.serve(stream).await;
                });
            }
        });
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The chat requests received so far, as JSON.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// Adds replies to the end of the script.
    pub fn push(&self, script: impl IntoIterator<Item = Script>) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.script.extend(script);
        }
    }

    async fn serve(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let header_end = loop {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        while buffer.len() < header_end + length {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let body = &buffer[header_end..];
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        if path == "/api/tags" {
            let models: Vec<Value> = self
                .models
                .iter()
                .map(|m| json!({"name": m, "model": m}))
                .collect();
            return respond(
                &mut stream,
                200,
                &json!({"models": models}).to_string(),
                &[],
            )
            .await;
        }
        if path != "/api/chat" {
            return respond(&mut stream, 404, "404 page not found", &[]).await;
        }
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let model = request["model"].as_str().unwrap_or_default().to_owned();
        let next = {
            let mut shared = self
                .shared
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            shared.requests.push(request);
            shared.script.pop_front()
        };
        if !self.models.contains(&model) {
            let error =
                json!({"error": format!("model \"{model}\" not found, try pulling it first")});
            return respond(&mut stream, 404, &error.to_string(), &[]).await;
        }
        match next {
            None => respond(&mut stream, 500, r#"{"error":"script exhausted"}"#, &[]).await,
            Some(Script::Answer(content)) => {
                respond(&mut stream, 200, &answer(&model, &content), &[]).await
            }
            Some(Script::Status {
                status,
                body,
                retry_after,
            }) => {
                let headers: Vec<(String, String)> = retry_after
                    .map(|s| vec![("Retry-After".to_owned(), s.to_string())])
                    .unwrap_or_default();
                respond(&mut stream, status, &body, &headers).await
            }
            Some(Script::Delay(delay, content)) => {
                tokio::time::sleep(delay).await;
                respond(&mut stream, 200, &answer(&model, &content), &[]).await
            }
            Some(Script::Trickle(interval, content)) => {
                let body = answer(&model, &content);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                for byte in body.bytes() {
                    stream.write_all(&[byte]).await?;
                    stream.flush().await?;
                    tokio::time::sleep(interval).await;
                }
                Ok(())
            }
            Some(Script::Malformed(body)) => respond(&mut stream, 200, &body, &[]).await,
        }
    }
}

/// The body of a successful non-streaming chat answer.
fn answer(model: &str, content: &str) -> String {
    json!({
        "model": model,
        "created_at": "2026-11-25T12:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": true,
        "done_reason": "stop",
        "total_duration": 1_000_000,
        "load_duration": 1000,
        "prompt_eval_count": 321,
        "prompt_eval_duration": 1000,
        "eval_count": 45,
        "eval_duration": 1000
    })
    .to_string()
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    headers: &[(String, String)],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}
