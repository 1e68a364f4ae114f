//! Everything built once from the configuration and shared by all
//! connections: the verifier, the dialect, the upstream target, the header
//! rules, socket settings and the HTTP client.

use std::sync::Arc;

use http_body_util::combinators::BoxBody;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::Verifier;
use crate::config::{Config, ConfigError, SessionConfig, WebSocketLimits};
use crate::headers::HeaderPolicy;
use crate::protocol::Dialect;
use crate::upstream::Target;

/// The body type of forwarded HTTP requests and responses.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Shared, read-only proxy state.
pub struct Proxy {
    /// Per-connection settings.
    pub session: SessionConfig,
    /// `[upstream]` settings that are read per request.
    pub upstream: crate::config::UpstreamConfig,
    /// Token verification.
    pub verifier: Verifier,
    /// Control-frame names.
    pub dialect: Dialect,
    /// Where the upstream is.
    pub target: Target,
    /// Which headers go upstream.
    pub headers: HeaderPolicy,
    /// Socket settings for both legs.
    pub ws_config: WebSocketConfig,
    /// Client for plain HTTP pass-through.
    pub http: Client<HttpConnector, Body>,
}

/// tungstenite settings from `[websocket]`: small read buffers, eager
/// writes, and a write buffer bounded to one message.
pub fn ws_config(limits: &WebSocketLimits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.read_buffer_bytes)
        .write_buffer_size(limits.write_buffer_bytes)
        .max_write_buffer_size(limits.write_buffer_bytes + limits.max_message_bytes + 64 * 1024)
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

impl Proxy {
    /// Builds the shared state; fails with an error naming the key.
    pub fn new(config: &Config) -> Result<Arc<Proxy>, ConfigError> {
        config.validate()?;
        let verifier = Verifier::from_config(&config.auth)?;
        let target = Target::from_config(&config.upstream)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.upstream.connect_timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Arc::new(Proxy {
            session: config.session.clone(),
            upstream: config.upstream.clone(),
            verifier,
            dialect: Dialect::new(&config.dialect, config.session.upstream_notice),
            target,
            headers: HeaderPolicy::new(&config.upstream, &config.listener.trusted_proxies),
            ws_config: ws_config(&config.websocket),
            http,
        }))
    }
}
