//! The admin listener: `/metrics`, `/healthz`, `/readyz`,
//! `/connections`, `/drain`, `/reload`, and `/revoke` with `/revocations`
//! ([`revoke`]), served with hyper on the control thread (never on a
//! worker), so that a flood on the public port cannot starve it.
//!
//! Every endpoint but the probes (`/healthz`, `/readyz`) requires
//! `Authorization: Bearer <token>` when `admin.token_env` is set.

pub mod connections;
pub mod drain;
pub mod health;
pub mod reload;
pub mod revoke;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub use health::Health;

use crate::process::Process;
use crate::rescue::HttpError;

/// Time an admin client has to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the Prometheus recorder's upkeep runs (histogram buffers are
/// drained into their buckets).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// What the admin endpoints answer from.
pub struct Admin {
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The readiness checks.
    pub health: Arc<Health>,
    /// The process-owned state (the live connections, ...).
    pub process: Arc<Process>,
    /// SHA-256 of the bearer token, when one is required (compared as
    /// digests, so the comparison's time says nothing about the token).
    token: Option<[u8; 32]>,
    /// The drain behind `/drain` (none: `/drain` is not found).
    pub drain: Option<Arc<crate::drain::Drain>>,
    /// `GET /drain?wait=true` without the token (`admin.drain_without_token`).
    pub drain_without_token: bool,
    /// The reloader behind `POST /reload` (none: `/reload` is not found).
    pub reloader: Option<Arc<crate::reload::Reloader>>,
}

impl Admin {
    /// The admin state; `token` from `admin.token_env`.
    pub fn new(
        metrics: PrometheusHandle,
        health: Arc<Health>,
        process: Arc<Process>,
        token: Option<&str>,
    ) -> Admin {
        Admin {
            metrics,
            health,
            process,
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            drain: None,
            drain_without_token: false,
            reloader: None,
        }
    }

    /// With `/drain` answered by `drain` (`without_token`: `GET
    /// /drain?wait=true` needs no token).
    pub fn with_drain(mut self, drain: Arc<crate::drain::Drain>, without_token: bool) -> Admin {
        self.drain = Some(drain);
        self.drain_without_token = without_token;
        self
    }

    /// With `POST /reload` answered by `reloader`.
    pub fn with_reload(mut self, reloader: Arc<crate::reload::Reloader>) -> Admin {
        self.reloader = Some(reloader);
        self
    }

    /// Answers one request, the endpoints that act included (`/drain`, `/reload`).
    pub async fn respond<B>(
        &self,
        request: &Request<B>,
        slot: &drain::Slot,
    ) -> Response<Full<Bytes>> {
        match request.uri().path() {
            "/drain" => drain::answer(self, request, slot).await,
            "/reload" => reload::answer(self, request).await,
            _ => self.answer(request),
        }
    }

    /// Whether the request carries the token (or none is required).
    pub(crate) fn authorized<B>(&self, request: &Request<B>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        given.is_some_and(|t| <[u8; 32]>::from(Sha256::digest(t.trim().as_bytes())) == *expected)
    }

    /// Answers one request (the routes).
    pub fn answer<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        let probe = matches!(path, "/healthz" | "/readyz");
        if !probe && !matches!(path, "/metrics" | "/connections") {
            return HttpError::AdminNotFound.response();
        }
        if request.method() != Method::GET {
            return HttpError::AdminMethodNotAllowed.response();
        }
        if !probe && !self.authorized(request) {
            return HttpError::AdminUnauthorized.response();
        }
        match path {
            "/healthz" => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
            "/readyz" => self.readyz(),
            "/metrics" => text(self.metrics.render()),
            _ => match connections::Query::parse(request.uri().query()) {
                Ok(query) => json(
                    StatusCode::OK,
                    &connections::page(&self.process.registry, &query),
                ),
                Err(e) => e.response(),
            },
        }
    }

    /// 200 when every check passes, else 503 naming the failing ones.
    fn readyz(&self) -> Response<Full<Bytes>> {
        let failing = self.health.failing();
        if failing.is_empty() {
            return json(StatusCode::OK, &serde_json::json!({"status": "ready"}));
        }
        let mut extra = serde_json::Map::new();
        extra.insert("failing".into(), failing.into());
        HttpError::NotReady.response_with(extra)
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The Prometheus text exposition.
fn text(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Serves the admin endpoints on `listener` forever (on the control
/// thread's runtime); each connection is a task of its own.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(tcp, peer, admin.clone()));
    }
}

/// One admin HTTP/1 connection.
async fn serve_connection(tcp: tokio::net::TcpStream, peer: SocketAddr, admin: Arc<Admin>) {
    let slot = drain::Slot::default();
    let service = {
        let slot = slot.clone();
        service_fn(move |request: Request<hyper::body::Incoming>| {
            let (admin, slot) = (admin.clone(), slot.clone());
            async move {
                if revoke::routes(request.uri().path()) {
                    return Ok::<_, Infallible>(revoke::answer(&admin, request).await);
                }
                Ok::<_, Infallible>(admin.respond(&request, &slot).await)
            }
        })
    };
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service)
        .await;
    // A `GET /drain?wait=true` answer is written now.
    drop(slot);
    if let Err(e) = served {
        tracing::debug!(peer = %peer, error = %e, "admin connection ended with an error");
    }
}

/// Every second: whether every provider has a key set (readiness), the
/// key sets' metrics and the TLS metrics.
pub async fn watch_keys(
    proxy: std::sync::Arc<crate::proxy::Proxy>,
    health: std::sync::Arc<Health>,
    process: std::sync::Arc<Process>,
) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        ticks.tick().await;
        // The current configuration's (a reload swaps it).
        let proxy = process.proxy.load_full().unwrap_or_else(|| proxy.clone());
        let sets = proxy.verifier.key_stats();
        let loaded = sets
            .iter()
            .all(|(_, s)| s.loaded_at.load(std::sync::atomic::Ordering::Relaxed) > 0);
        health.set_keys_loaded(loaded);
        crate::metrics::key_sets(&sets, crate::auth::unix_now());
        crate::metrics::tls(proxy.tls.as_ref(), std::time::SystemTime::now());
    }
}

/// Runs the recorder's upkeep every [`UPKEEP_INTERVAL`] (on the control
/// thread; histograms would grow without it).
pub async fn upkeep(metrics: PrometheusHandle) {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        ticks.tick().await;
        metrics.run_upkeep();
    }
}
