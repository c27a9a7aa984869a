//! A mock Kubernetes API server for tests (feature `mock-api-server`): a [`LiveSource`] whose
//! client talks to a tower-test mock service, and a serve loop that records every request it is
//! sent and answers each one as a test's closure says — a JSON body with a status code, a watch
//! stream of JSON lines, or no answer at all.
//!
//! This is test support: it panics (with a message) where a test should fail anyway.

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

use crate::live::LiveSource;

/// The test's end of the mock API server: the requests the client sends arrive here.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Every request the mock API server was sent so far, in order.
pub type Requests = Arc<Mutex<Vec<Sent>>>;

/// One request the mock API server was sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The HTTP method, as `GET` or `PATCH`.
    pub method: String,
    /// The path of the URL, without its query.
    pub path: String,
    /// The query of the URL, as sent (still URL-encoded), or empty.
    pub query: String,
    /// The `Content-Type` header, or empty when there is none.
    pub content_type: String,
    /// The `Accept` header, or empty when there is none.
    pub accept: String,
    /// The body, as text.
    pub body: String,
}

impl Sent {
    /// The value of one query parameter, as sent (still URL-encoded).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// The value of one query parameter, URL-decoded.
    pub fn decoded_param(&self, name: &str) -> Option<String> {
        self.param(name).map(decode)
    }

    /// The body as JSON; it panics when the body is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the request body is JSON")
    }

    /// Whether the request is a watch.
    pub fn is_watch(&self) -> bool {
        self.param("watch") == Some("true")
    }

    /// Whether the request is a server-side apply that is made (not a dry run).
    pub fn is_apply(&self) -> bool {
        self.method == "PATCH"
            && self.content_type == "application/apply-patch+yaml"
            && self.param("dryRun").is_none()
    }
}

/// Percent-decoding of a query value (kube encodes spaces as `+`).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("a percent escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// How the mock API server answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A status code and a JSON body.
    Json(u16, Value),
    /// A watch stream: one JSON object a line, then the end of the stream.
    Lines(Vec<Value>),
    /// No answer at all, as a watch on which nothing happens.
    Hang,
}

/// Serves what `answer` says for each request, given the request and every request so far
/// (itself included), and records what was sent.
///
/// It returns the serving task, which runs until the client is dropped or the task is aborted,
/// and the requests recorded so far.
pub fn serve(
    mut handle: Handle,
    mut answer: impl FnMut(&Sent, &[Sent]) -> Answer + Send + 'static,
) -> (tokio::task::JoinHandle<()>, Requests) {
    let requests = Requests::default();
    let recorded = requests.clone();
    let task = tokio::spawn(async move {
        // The requests left unanswered stay open for as long as the server runs.
        let mut hanging = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let body = body
                .collect_bytes()
                .await
                .expect("the request body is read");
            let sent = Sent {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                content_type: header(&parts.headers, http::header::CONTENT_TYPE),
                accept: header(&parts.headers, http::header::ACCEPT),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let answered = {
                let mut all = recorded.lock().expect("the requests are not poisoned");
                all.push(sent.clone());
                answer(&sent, &all)
            };
            let (code, bytes) = match answered {
                Answer::Json(code, value) => (code, to_json(&value)),
                Answer::Lines(lines) => {
                    let mut bytes = Vec::new();
                    for line in lines {
                        bytes.extend(to_json(&line));
                        bytes.push(b'\n');
                    }
                    (200, bytes)
                }
                Answer::Hang => {
                    hanging.push(send);
                    continue;
                }
            };
            let response = Response::builder()
                .status(StatusCode::from_u16(code).expect("a valid status code"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(bytes))
                .expect("the response is built");
            send.send_response(response);
        }
    });
    (task, requests)
}

/// A header's value as text, or empty when there is none.
fn header(headers: &http::HeaderMap, name: http::header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The JSON text of a value.
fn to_json(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}

/// A copy of the requests recorded so far.
pub fn recorded(requests: &Requests) -> Vec<Sent> {
    requests
        .lock()
        .expect("the requests are not poisoned")
        .clone()
}

/// A live source whose client talks to the mock API server, and the handle to serve it with.
pub fn source() -> (LiveSource, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    (LiveSource::from_client(client, "https://mock", 200), handle)
}

/// A Kubernetes Status of a failure, as the API server answers one.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}
