//! The protected backend: its URLs, and opening a WebSocket to it with the
//! verified identity as request headers.

use std::time::Duration;

use http::Uri;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::config::{ConfigError, UpstreamConfig};

/// An open upstream WebSocket.
pub type UpstreamSocket = WebSocketStream<TcpStream>;

/// Why the upstream WebSocket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    /// The WebSocket handshake failed or was refused.
    #[error("handshake failed: {0}")]
    Handshake(#[source] tokio_tungstenite::tungstenite::Error),
    /// Connect plus handshake took longer than `upstream.connect_timeout`.
    #[error("timed out")]
    Timeout,
    /// The URL built from the client's path is not valid.
    #[error("bad upstream URL")]
    Url,
}

/// Where the upstream is.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` for TCP.
    authority: String,
    /// Path prefix of the WebSocket base URL, without a trailing `/`.
    ws_prefix: String,
    /// `http://host:port` plus prefix for plain HTTP requests.
    http_base: String,
    /// Query parameters removed before forwarding.
    strip: Vec<String>,
}

fn parse_base(key: &str, url: &str, scheme: &str) -> Result<(String, String), ConfigError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ConfigError::invalid(key, format!("{url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some(s) if s == scheme => {}
        Some("wss") | Some("https") => {
            return Err(ConfigError::invalid(
                key,
                "TLS to the upstream is not supported yet; the upstream should listen on localhost",
            ))
        }
        _ => {
            return Err(ConfigError::invalid(
                key,
                format!("must start with {scheme}://"),
            ))
        }
    }
    let authority = uri
        .authority()
        .ok_or_else(|| ConfigError::invalid(key, "has no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    if uri.query().is_some() {
        return Err(ConfigError::invalid(key, "must not have a query string"));
    }
    let prefix = uri.path().trim_end_matches('/').to_owned();
    Ok((format!("{}:{port}", authority.host()), prefix))
}

impl Target {
    /// Checks and parses `[upstream]`'s URLs.
    pub fn from_config(config: &UpstreamConfig) -> Result<Target, ConfigError> {
        let (authority, ws_prefix) = parse_base("upstream.url", &config.url, "ws")?;
        let http_base = match &config.http_url {
            Some(url) => {
                let (a, p) = parse_base("upstream.http_url", url, "http")?;
                format!("http://{a}{p}")
            }
            None => format!("http://{authority}{ws_prefix}"),
        };
        Ok(Target {
            authority,
            ws_prefix,
            http_base,
            strip: config.strip_query_params.clone(),
        })
    }

    /// The client's path and query with token parameters removed.
    pub fn forwarded_path(&self, path_and_query: &str) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        let kept: Vec<&str> = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                !key.is_empty() && !self.strip.iter().any(|s| s == key)
            })
            .collect();
        if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", kept.join("&"))
        }
    }

    /// The upstream WebSocket URL for a client request.
    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!(
            "ws://{}{}{}",
            self.authority,
            self.ws_prefix,
            self.forwarded_path(path_and_query)
        )
    }

    /// The upstream HTTP URL for a client request.
    pub fn http_url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.http_base, self.forwarded_path(path_and_query))
    }

    /// Opens the upstream WebSocket. `prepare` adds the forwarded and identity headers.
    pub async fn connect(
        &self,
        path_and_query: &str,
        prepare: impl FnOnce(&mut http::HeaderMap),
        config: WebSocketConfig,
        timeout: Duration,
    ) -> Result<UpstreamSocket, UpstreamError> {
        let mut request = self
            .ws_url(path_and_query)
            .into_client_request()
            .map_err(|_| UpstreamError::Url)?;
        prepare(request.headers_mut());
        let attempt = async {
            let tcp = TcpStream::connect(&self.authority)
                .await
                .map_err(UpstreamError::Connect)?;
            let _ = tcp.set_nodelay(true);
            let (socket, _response) =
                tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
                    .await
                    .map_err(UpstreamError::Handshake)?;
            Ok(socket)
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        let cfg: UpstreamConfig =
            toml::from_str("url = \"ws://127.0.0.1:9000/base/\"").unwrap_or_else(|e| panic!("{e}"));
        Target::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn token_params_are_stripped() {
        let t = target();
        assert_eq!(
            t.ws_url("/chat?room=1&token=abc&access_token=x&b"),
            "ws://127.0.0.1:9000/base/chat?room=1&b"
        );
        assert_eq!(t.ws_url("/chat?token=abc"), "ws://127.0.0.1:9000/base/chat");
        assert_eq!(t.http_url("/"), "http://127.0.0.1:9000/base/");
    }

    #[test]
    fn wss_is_a_config_error() {
        let cfg: UpstreamConfig =
            toml::from_str("url = \"wss://x\"").unwrap_or_else(|e| panic!("{e}"));
        let err = Target::from_config(&cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("upstream.url:"), "{err}");
    }
}
