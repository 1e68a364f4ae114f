//! Everything built once from the configuration and shared by all
//! connections: the verifier, the dialect, the upstream target, the header
//! rules, socket settings and the HTTP client.

use std::sync::Arc;

use http_body_util::combinators::BoxBody;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::auth::Verifier;
use crate::config::{Config, ConfigError, SessionConfig, WebSocketLimits};
use crate::headers::HeaderPolicy;
use crate::protocol::Dialect;
use crate::relay::MAX_READ;
use crate::tls::{ServerTls, UpstreamTls};
use crate::upstream::Target;
use crate::wire::Limits;

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
    pub dialect: Arc<Dialect>,
    /// Where the upstream is.
    pub target: Target,
    /// Which headers go upstream.
    pub headers: HeaderPolicy,
    /// Frame limits and read size of both legs.
    pub wire: WireSettings,
    /// Client for HTTP pass-through (`http://` or `https://` upstreams).
    pub http: Client<HttpsConnector<HttpConnector>, Body>,
    /// TLS on the listener (`[listener.tls]`); `None` for plain TCP.
    pub tls: Option<ServerTls>,
    /// Legacy auth methods on the upgrade request (`[auth.legacy]`).
    pub legacy: crate::auth::legacy::LegacyAuth,
    /// The Origin allowlist (`http.allowed_origins`).
    pub origins: crate::origin::OriginPolicy,
    /// Protected plain HTTP routes (`[http]`).
    pub http_rules: crate::http_auth::HttpRules,
    /// Largest request head (`listener.max_header_bytes`; hyper answers 431 over it).
    pub max_header_bytes: usize,
    /// Most request headers (`listener.max_headers`; hyper answers 431 over it).
    pub max_headers: usize,
    /// When the proxy was built: the origin of the heartbeat grid shared by
    /// all connections (see `session::beat_after`).
    pub epoch: tokio::time::Instant,
    /// `auth.max_connections_per_token` (see [`crate::replay`]).
    pub max_connections_per_token: Option<u32>,
}

/// Frame limits and read size of both legs, from `[websocket]` and `[session]`.
#[derive(Debug, Clone, Copy)]
pub struct WireSettings {
    /// The client leg: text messages up to `session.max_auth_frame_bytes` are
    /// inspected (they may be control frames of the dialect).
    pub client: Limits,
    /// The upstream leg: nothing is inspected.
    pub upstream: Limits,
    /// Largest single read on either leg.
    pub read_limit: usize,
}

impl WireSettings {
    /// Settings from the configuration.
    pub fn new(limits: &WebSocketLimits, session: &SessionConfig) -> WireSettings {
        let upstream = Limits {
            max_frame: limits.max_frame_bytes,
            max_message: limits.max_message_bytes,
            inspect_limit: 0,
        };
        WireSettings {
            client: Limits {
                inspect_limit: session.max_auth_frame_bytes,
                ..upstream
            },
            upstream,
            read_limit: limits.read_buffer_bytes.min(MAX_READ),
        }
    }
}

impl Proxy {
    /// Checks the configuration and builds the shared state, each once;
    /// fails with an error naming the key. The order is that in which
    /// `wsguard check` reports a configuration's first mistake: the
    /// upstream's TLS files, its URLs, the other values, the listener's TLS
    /// files, then the providers and their keys.
    pub fn new(config: &Config) -> Result<Arc<Proxy>, ConfigError> {
        let upstream_tls = UpstreamTls::from_config(&config.upstream)?;
        let mut target = Target::from_config(&config.upstream, &upstream_tls)?;
        config.validate()?;
        let tls = config
            .listener
            .tls
            .as_ref()
            .map(ServerTls::from_config)
            .transpose()?;
        let origins = crate::origin::OriginPolicy::from_config(config)?;
        let http_rules = crate::http_auth::HttpRules::new(&config.http)?;
        let legacy = crate::auth::legacy::LegacyAuth::new(&config.auth.legacy);
        if let Some(name) = &config.auth.legacy.query {
            target.also_strip(name);
        }
        let verifier = Verifier::from_config(&config.auth)?;
        let http = http_client(&config.upstream, &upstream_tls);
        Ok(Arc::new(Proxy {
            session: config.session.clone(),
            upstream: config.upstream.clone(),
            verifier,
            dialect: Arc::new(Dialect::new(
                &config.dialect,
                config.session.upstream_notice,
            )),
            target,
            headers: HeaderPolicy::new(&config.upstream, &config.listener.trusted_proxies)
                .strip_cookie(legacy.cookie_name()),
            wire: WireSettings::new(&config.websocket, &config.session),
            http,
            http_rules,
            legacy,
            origins,
            tls,
            max_header_bytes: config.listener.max_header_bytes,
            max_headers: config.listener.max_headers,
            epoch: tokio::time::Instant::now(),
            max_connections_per_token: config.auth.max_connections_per_token,
        }))
    }
}

/// The pass-through client: `http://` and `https://` (verified as the
/// WebSocket leg is), HTTP/1 only.
fn http_client(
    config: &crate::config::UpstreamConfig,
    tls: &UpstreamTls,
) -> Client<HttpsConnector<HttpConnector>, Body> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls.http).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new()).build(connector)
}
