//! `/metrics`, `/healthz` and `/readyz` over HTTP/1.1.
//!
//! `/healthz` answers while the process serves; `/readyz` once the watch caches are filled
//! (a standby replica is ready: it takes over at once when the leader goes).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// What the probes report.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    leader: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
        metrics::gauge!(crate::metrics::LEADER).set(if leader { 1.0 } else { 0.0 });
    }
}

/// Binds `addr` and serves until the task is aborted.
pub async fn spawn(
    addr: SocketAddr,
    handle: PrometheusHandle,
    health: Health,
) -> Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Serve { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "serving /metrics, /healthz, /readyz");
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            };
            let handle = handle.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = respond(&request, &handle, &health);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(error) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
    }))
}

fn respond(
    request: &Request<Incoming>,
    handle: &PrometheusHandle,
    health: &Health,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &str| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = http::HeaderValue::from_str(content_type) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        response
    };
    if request.method() != http::Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET\n".to_owned(),
            "text/plain",
        );
    }
    match request.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            handle.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        "/readyz" => {
            if health.ready.load(Ordering::SeqCst) {
                let role = if health.leader.load(Ordering::SeqCst) {
                    "leader"
                } else {
                    "standby"
                };
                text(StatusCode::OK, format!("ready ({role})\n"), "text/plain")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "watch caches filling\n".to_owned(),
                    "text/plain",
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz\n".to_owned(),
            "text/plain",
        ),
    }
}
