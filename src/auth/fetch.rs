//! Fetching identity-provider documents (discovery, JWKS) over HTTPS:
//! hyper-util's client with hyper-rustls, rustls with its aws-lc-rs provider,
//! the web roots or a provider's own `ca_file`. Every fetch is bounded in
//! time and size; failures are classed for the logs (never the body).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{ConfigError, JwksConfig, ProviderConfig};

/// Why a fetch (or what was fetched) failed; the text is the reason class
/// logged and reported, never the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not a URL the client can fetch.
    #[error("bad URL")]
    Url,
    /// Connecting, TLS or the HTTP exchange failed.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within `auth.jwks.fetch_timeout`.
    #[error("timed out")]
    Timeout,
    /// An answer other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body is over `auth.jwks.max_document_bytes`.
    #[error("document over the size limit")]
    TooLarge,
    /// The body is not the JSON document expected.
    #[error("not a valid {0} document")]
    Garbage(&'static str),
    /// The discovery document names another issuer.
    #[error("the discovery document's issuer is not the configured issuer")]
    IssuerMismatch,
    /// The discovered `jwks_uri` is not `https://` (and insecure HTTP is not allowed).
    #[error("jwks_uri is not https://")]
    InsecureUri,
    /// The set has no key that may verify tokens of the provider.
    #[error("no usable key in the set")]
    NoUsableKey,
    /// An allowed algorithm has no key of its family in the set.
    #[error("no key for allowed algorithm {0}")]
    AlgorithmWithoutKey(String),
}

/// A fetched document.
pub struct Fetched {
    /// Its bytes (at most the size limit).
    pub body: Bytes,
    /// The answer's `Cache-Control: max-age`, if any.
    pub max_age: Option<Duration>,
}

/// One provider's HTTPS client.
pub struct Fetcher {
    /// The client (pooled connections).
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// Limit on one fetch.
    timeout: Duration,
    /// Largest body accepted.
    max_bytes: usize,
}

impl Fetcher {
    /// A client for provider `at` (`auth.providers[i]`): its `ca_file` or the web roots.
    pub fn new(at: &str, p: &ProviderConfig, jwks: &JwksConfig) -> Result<Fetcher, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let tls = |e: rustls::Error| ConfigError::invalid(at, format!("TLS setup failed: {e}"));
        let builder = match &p.ca_file {
            None => builder
                .with_provider_and_webpki_roots(provider)
                .map_err(tls)?,
            Some(path) => {
                let key = format!("{at}.ca_file");
                let roots = crate::tls::files::roots(path)
                    .map_err(|e| ConfigError::invalid(&key, e.to_string()))?;
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(tls)?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                builder.with_tls_config(config)
            }
        };
        let builder = if p.allow_insecure_http {
            builder.https_or_http()
        } else {
            builder.https_only()
        };
        let connector = builder.enable_http1().build();
        Ok(Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: jwks.fetch_timeout,
            max_bytes: jwks.max_document_bytes,
        })
    }

    /// GETs `url`, bounded by the timeout and the size limit.
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(self.timeout, self.get_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn get_unbounded(&self, url: &str) -> Result<Fetched, FetchError> {
        let uri: http::Uri = url.parse().map_err(|_| FetchError::Url)?;
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|_| FetchError::Url)?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Unreachable(error_chain(&e)))?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let body = Limited::new(response.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Unreachable("the body was cut short".into())
                }
            })?
            .to_bytes();
        Ok(Fetched { body, max_age })
    }
}

/// An error and its sources, one line (the client's errors nest the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `max-age=N` of one `Cache-Control` value (`no-store`/`no-cache` count as 0).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        let seconds = lower.strip_prefix("max-age=")?.trim_matches('"');
        seconds.parse::<u64>().ok().map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("Max-Age=\"5\""), Some(Duration::from_secs(5)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=x"), None);
    }
}
