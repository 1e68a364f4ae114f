//! `[upstream]`: the protected backend, and the headers sent to it.

use super::*;

/// Default upstream connect (TCP + WebSocket handshake) timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time allowed for the upstream's answer to a plain HTTP request.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// `[upstream]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// WebSocket base URL (`ws://host:port[/prefix]`); the client's path and query are appended.
    pub url: String,
    /// HTTP base URL for non-upgrade requests; defaults to `url` with `http://`.
    #[serde(default)]
    pub http_url: Option<String>,
    /// Time allowed for the TCP connect plus the WebSocket handshake.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How often `url`'s host name is resolved again, in the background
    /// (`0s`: only at start).
    #[serde(default = "default_resolve_interval", with = "humantime_serde")]
    pub resolve_interval: Duration,
    /// Send the client's `Host` header upstream instead of the upstream's own.
    #[serde(default)]
    pub preserve_host: bool,
    /// Time allowed for a plain HTTP request's response headers.
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Pass the client's `Authorization` header upstream.
    #[serde(default)]
    pub forward_authorization: bool,
    /// Send the verified token upstream as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub forward_token: bool,
    /// WebSocket subprotocols the proxy may agree to: the first one the
    /// client offers that is listed here is answered in the 101 and asked of
    /// the upstream (which must then agree to it).
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// Query parameters removed from the URL before it goes upstream.
    #[serde(default = "default_token_params")]
    pub strip_query_params: Vec<String>,
    /// Client request headers removed before the request goes upstream (on
    /// the WebSocket and the plain HTTP path), besides those always removed;
    /// exact names, case-insensitive.
    #[serde(default)]
    pub strip_request_headers: Vec<String>,
    /// Identity header names.
    #[serde(default)]
    pub identity_headers: IdentityHeaders,
    /// Extra claim → header mappings, for example `email = "X-Auth-Email"`.
    #[serde(default)]
    pub claim_headers: std::collections::BTreeMap<String, String>,
    /// Frames a client may send before the upstream connection is open.
    #[serde(default = "default_pending_frames")]
    pub pending_max_frames: usize,
    /// Bytes a client may send before the upstream connection is open (as sent: frame headers included).
    #[serde(default = "default_pending_bytes")]
    pub pending_max_bytes: usize,
    /// PEM CA certificates a `wss://`/`https://` upstream's certificate must
    /// chain to, instead of the public (webpki) roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain the proxy presents to a TLS upstream that asks for one.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// Default interval at which `upstream.url`'s host is resolved again.
pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

pub(super) fn default_resolve_interval() -> Duration {
    DEFAULT_RESOLVE_INTERVAL
}

pub(super) fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

pub(super) fn default_response_timeout() -> Duration {
    DEFAULT_RESPONSE_TIMEOUT
}

pub(super) fn default_token_params() -> Vec<String> {
    vec!["token".into(), "access_token".into()]
}

pub(super) fn default_pending_frames() -> usize {
    64
}

pub(super) fn default_pending_bytes() -> usize {
    1024 * 1024
}

/// `[upstream.identity_headers]`: names of the headers carrying the verified identity.
/// An empty string switches a header off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeaders {
    /// Carries `sub`.
    pub subject: String,
    /// Carries `iss`, only when the provider pins an `issuer`.
    pub issuer: String,
    /// Carries `exp` as unix seconds.
    pub expires: String,
    /// Carries the verified claims as unpadded base64url JSON.
    pub claims: String,
    /// Carries the name of the provider that verified the token.
    pub provider: String,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        IdentityHeaders {
            subject: "X-Auth-Subject".into(),
            issuer: "X-Auth-Issuer".into(),
            expires: "X-Auth-Expires".into(),
            claims: "X-Auth-Claims".into(),
            provider: "X-Auth-Provider".into(),
        }
    }
}

pub(super) fn check_header_name(key: &str, name: &str) -> Result<(), ConfigError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| ConfigError::invalid(key, format!("{name:?} is not a valid header name")))
}

impl Config {
    /// `[upstream.identity_headers]` (empty = off) and `[upstream.claim_headers]`.
    pub(super) fn check_header_names(&self) -> Result<(), ConfigError> {
        let h = &self.upstream.identity_headers;
        for (key, name) in [
            ("upstream.identity_headers.subject", &h.subject),
            ("upstream.identity_headers.issuer", &h.issuer),
            ("upstream.identity_headers.expires", &h.expires),
            ("upstream.identity_headers.claims", &h.claims),
        ] {
            if !name.is_empty() {
                check_header_name(key, name)?;
            }
        }
        for (claim, name) in &self.upstream.claim_headers {
            check_header_name(&format!("upstream.claim_headers.{claim}"), name)?;
        }
        self.check_header_keys()
    }

    /// `upstream.identity_headers.provider` and `upstream.strip_request_headers`.
    pub(super) fn check_header_keys(&self) -> Result<(), ConfigError> {
        let provider = &self.upstream.identity_headers.provider;
        if !provider.is_empty() {
            check_header_name("upstream.identity_headers.provider", provider)?;
        }
        for (i, name) in self.upstream.strip_request_headers.iter().enumerate() {
            check_header_name(&format!("upstream.strip_request_headers[{i}]"), name)?;
        }
        Ok(())
    }
}
