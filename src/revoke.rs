//! `wsguard revoke`: asks a running proxy's admin API to revoke (`POST
//! /revoke`) or lift (`DELETE /revoke`) a revocation, and says how many
//! live connections it closed. The server checks the request; its error is
//! printed as it answered it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};

/// What to ask.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The admin listener's base URL (`http://127.0.0.1:9901`).
    pub admin: String,
    /// The admin bearer token, if one is needed.
    pub token: Option<String>,
    /// The request body's members (`sub`, `iss`, `jti`, `sid`, `ttl`, `until`).
    pub body: Map<String, Value>,
    /// Lift the revocation instead (`DELETE`).
    pub lift: bool,
}

/// Longest wait for the admin API's answer.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends the request; `Ok` is the line to print, `Err` the server's (or
/// the connection's) error.
pub async fn run(options: Options) -> anyhow::Result<String> {
    let base = options.admin.trim_end_matches('/');
    if !base.starts_with("http://") {
        anyhow::bail!("--admin must be an http:// URL like http://127.0.0.1:9901");
    }
    let method = if options.lift {
        http::Method::DELETE
    } else {
        http::Method::POST
    };
    let body = Value::Object(options.body).to_string();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{base}/revoke"))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(token) = &options.token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| anyhow::anyhow!("--admin is not a valid URL"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| anyhow::anyhow!("{base}: no answer within 10s"))?
        .map_err(|e| anyhow::anyhow!("{base}: cannot reach the admin API: {e}"))?;
    let status = response.status();
    let bytes = tokio::time::timeout(TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| anyhow::anyhow!("{base}: the answer did not finish within 10s"))?
        .map_err(|e| anyhow::anyhow!("{base}: the answer was cut: {e}"))?
        .to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        let text = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut line = format!(
            "{} {}",
            status.as_u16(),
            text("error").unwrap_or_else(|| "error".into())
        );
        if let Some(message) = text("message") {
            line.push_str(&format!(": {message}"));
        }
        if let Some(detail) = text("detail") {
            line.push_str(&format!(" ({detail})"));
        }
        anyhow::bail!("{line}");
    }
    if options.lift {
        return Ok("revocation lifted".into());
    }
    let closed = answer.get("closed").and_then(Value::as_u64).unwrap_or(0);
    let until = answer
        .pointer("/revocation/until")
        .and_then(Value::as_str)
        .unwrap_or("?");
    Ok(format!(
        "revoked until {until}; closed {closed} live connection{}",
        if closed == 1 { "" } else { "s" }
    ))
}
