//! The configuration file: its schema (serde, unknown keys rejected), its
//! defaults, and the checks that turn every mistake into an error naming the
//! key. Nothing here logs: the file may hold secrets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// Default bind address of the proxy.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default time a client has to send its first (auth) frame.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit on the first frame's size.
pub const DEFAULT_MAX_AUTH_FRAME_BYTES: usize = 16 * 1024;
/// Default limit on one message on either leg.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Default largest single read on a leg. Reads go into a buffer on the
/// stack, so this costs no memory per idle connection.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 16 * 1024;
/// Default verification leeway, for clock skew only.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default upstream connect (TCP + WebSocket handshake) timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default lead before `exp` at which `auth_required` is sent.
pub const DEFAULT_REAUTH_LEAD: Duration = Duration::from_secs(60);
/// Default spread of `auth_required` notices: each connection's notice
/// comes up to this much earlier than `reauth_lead`, picked at random, so
/// that tokens expiring in the same second do not all refresh at once.
pub const DEFAULT_REAUTH_JITTER: Duration = Duration::from_secs(1);
/// Default grace after `exp` during which a REAUTH still resumes the connection.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Default minimum interval between REAUTH attempts on one connection.
pub const DEFAULT_REAUTH_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default heartbeat interval on both legs.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// Default time a leg may refuse our writes before it is closed as a slow consumer.
pub const DEFAULT_SLOW_CONSUMER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed for the close handshake on both legs.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed for the upstream's answer to a plain HTTP request.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed for a client to send its HTTP request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A configuration error: which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{0}")]
    Parse(String),
    /// A key has a value that is not allowed.
    #[error("{key}: {problem}")]
    Invalid {
        /// The dotted path of the key, for example `auth.providers[0].algorithms`.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

impl ConfigError {
    /// An error about one key.
    pub fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the proxy listens and whom it trusts.
    #[serde(default)]
    pub listener: ListenerConfig,
    /// The protected backend.
    pub upstream: UpstreamConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// Per-connection behaviour: timeouts, lifecycle, heartbeats.
    #[serde(default)]
    pub session: SessionConfig,
    /// Buffer sizes and message limits of both WebSocket legs.
    #[serde(default)]
    pub websocket: WebSocketLimits,
    /// Names of the control frames.
    #[serde(default)]
    pub dialect: DialectConfig,
}

/// `[listener]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Address to bind, for example `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// Peers whose `X-Forwarded-For` is appended to and whose
    /// `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Request-Id` are kept.
    pub trusted_proxies: Vec<IpNet>,
    /// Time a client has to send its request head.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Number of workers: independent single-threaded event loops
    /// (nginx-style) that all accept from the listening socket; a connection
    /// stays on the worker that accepted it. Absent = one per CPU the process
    /// may use.
    pub worker_threads: Option<usize>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            worker_threads: None,
        }
    }
}

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
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn default_response_timeout() -> Duration {
    DEFAULT_RESPONSE_TIMEOUT
}
fn default_token_params() -> Vec<String> {
    vec!["token".into(), "access_token".into()]
}
fn default_pending_frames() -> usize {
    64
}
fn default_pending_bytes() -> usize {
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

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Clock-skew allowance at verification.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Verified tokens remembered (by the SHA-256 of their text, for at
    /// most 5 minutes) so that a token seen again skips the signature
    /// check; 0 turns the cache off.
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
    /// Token issuers and their keys.
    pub providers: Vec<ProviderConfig>,
}

fn default_leeway() -> Duration {
    DEFAULT_LEEWAY
}
fn default_cache_size() -> u64 {
    10_000
}

/// `[[auth.providers]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// A name for logs and errors.
    pub name: String,
    /// The `iss` this provider answers for; a provider without one takes tokens without `iss`
    /// or with an `iss` that no other provider claims.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values; when set, a token must carry one of them.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Allowed signature algorithms (`none` is never allowed).
    pub algorithms: Vec<String>,
    /// Claims a token must carry: a string claim must equal the value or
    /// contain it as a space-separated word (OAuth `scope`), an array claim
    /// must contain it.
    #[serde(default)]
    pub required_claims: std::collections::BTreeMap<String, String>,
    /// Verification keys.
    pub keys: Vec<KeyConfig>,
}

/// `[[auth.providers.keys]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum KeyConfig {
    /// A shared HMAC secret, from an environment variable or a file.
    Hmac {
        /// Key id to match the token's `kid`.
        #[serde(default)]
        kid: Option<String>,
        /// Environment variable holding the secret.
        #[serde(default)]
        secret_env: Option<String>,
        /// File holding the secret (trailing newline removed).
        #[serde(default)]
        secret_file: Option<PathBuf>,
    },
    /// An RSA public key in PEM.
    Rsa {
        /// Key id to match the token's `kid`.
        #[serde(default)]
        kid: Option<String>,
        /// PEM file.
        pem_file: PathBuf,
    },
    /// An EC (P-256/P-384) public key in PEM.
    Ec {
        /// Key id to match the token's `kid`.
        #[serde(default)]
        kid: Option<String>,
        /// PEM file.
        pem_file: PathBuf,
    },
    /// An Ed25519 public key in PEM.
    Ed25519 {
        /// Key id to match the token's `kid`.
        #[serde(default)]
        kid: Option<String>,
        /// PEM file.
        pem_file: PathBuf,
    },
    /// A local JWKS file; keys are chosen by `kid` and, when a key has one,
    /// its `alg` (keys not for verifying signatures are left out, see
    /// `auth/jwk.rs`).
    Jwks {
        /// JSON file with `{"keys": [...]}`.
        file: PathBuf,
    },
}

/// How auth-related closes are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CloseCodes {
    /// 1008 (policy violation) for every auth close.
    #[default]
    Policy,
    /// 4400/4401/4403/4408/4419 by cause.
    Distinct,
}

/// `[session]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Time allowed for the first frame.
    #[serde(with = "humantime_serde")]
    pub auth_timeout: Duration,
    /// Largest first frame accepted, and the largest client text message
    /// inspected as a possible control frame after it.
    pub max_auth_frame_bytes: usize,
    /// `auth_required` is sent this long before `exp`.
    #[serde(with = "humantime_serde")]
    pub reauth_lead: Duration,
    /// Up to this much earlier still, at random per connection and token
    /// (spreads the notices of tokens that expire together).
    #[serde(with = "humantime_serde")]
    pub reauth_jitter: Duration,
    /// After `exp`, how long a REAUTH may still resume the suspended connection.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Consecutive failed REAUTHs before the connection is closed.
    pub max_reauth_failures: u32,
    /// Minimum interval between REAUTH attempts.
    #[serde(with = "humantime_serde")]
    pub reauth_min_interval: Duration,
    /// Frames held from the client while suspended.
    pub hold_max_frames: usize,
    /// Bytes held from the client while suspended (as sent: frame headers included).
    pub hold_max_bytes: usize,
    /// Heartbeat ping interval on both legs; `0s` turns heartbeats off.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Heartbeats a leg may leave unanswered before it is closed.
    pub max_missed_pongs: u32,
    /// Time a peer may refuse our writes before it is closed with 1013.
    #[serde(with = "humantime_serde")]
    pub slow_consumer_timeout: Duration,
    /// Time allowed for close handshakes before the sockets are dropped.
    #[serde(with = "humantime_serde")]
    pub close_timeout: Duration,
    /// Close the client with 1001 `max lifetime` after this long (off when absent).
    #[serde(with = "humantime_serde")]
    pub max_connection_lifetime: Option<Duration>,
    /// `policy` (1008 for all auth closes) or `distinct` (44xx codes).
    pub close_codes: CloseCodes,
    /// After a successful REAUTH, send the upstream an identity-refreshed frame.
    pub upstream_notice: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
            max_auth_frame_bytes: DEFAULT_MAX_AUTH_FRAME_BYTES,
            reauth_lead: DEFAULT_REAUTH_LEAD,
            reauth_jitter: DEFAULT_REAUTH_JITTER,
            grace: DEFAULT_GRACE,
            max_reauth_failures: 3,
            reauth_min_interval: DEFAULT_REAUTH_MIN_INTERVAL,
            hold_max_frames: 256,
            hold_max_bytes: 4 * 1024 * 1024,
            ping_interval: DEFAULT_PING_INTERVAL,
            max_missed_pongs: 3,
            slow_consumer_timeout: DEFAULT_SLOW_CONSUMER_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            max_connection_lifetime: None,
            close_codes: CloseCodes::Policy,
            upstream_notice: false,
        }
    }
}

/// `[websocket]`: the same limits apply to the client and the upstream leg.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketLimits {
    /// Largest message (after reassembly of fragments).
    pub max_message_bytes: usize,
    /// Largest single frame.
    pub max_frame_bytes: usize,
    /// Largest single read on a leg (256 to 65536 bytes).
    pub read_buffer_bytes: usize,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        WebSocketLimits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_frame_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            read_buffer_bytes: DEFAULT_READ_BUFFER_BYTES,
        }
    }
}

/// `[dialect]`: the control frames' names. An empty string switches a frame off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialectConfig {
    /// Types accepted as the first (auth) frame.
    pub auth: Vec<String>,
    /// Types accepted as a re-authentication after the first auth.
    pub reauth: Vec<String>,
    /// Success answer to auth and REAUTH; empty = never sent.
    pub authenticated: String,
    /// Notice sent before `exp`; empty = never sent.
    pub auth_required: String,
    /// Notice sent at `exp`; empty = never sent (the connection is still suspended).
    pub token_expired: String,
    /// Error answers to bad REAUTHs.
    pub error: String,
    /// Frame injected upstream after REAUTH when `session.upstream_notice` is on.
    pub identity_refreshed: String,
    /// Dotted path of the token inside a control frame.
    pub token_path: String,
}

impl Default for DialectConfig {
    fn default() -> Self {
        DialectConfig {
            auth: vec!["auth".into(), "AUTHENTICATE".into()],
            reauth: vec!["REAUTH".into(), "auth".into(), "AUTHENTICATE".into()],
            authenticated: "AUTHENTICATED".into(),
            auth_required: "auth_required".into(),
            token_expired: "TOKEN_EXPIRED".into(),
            error: "error".into(),
            identity_refreshed: "identity_refreshed".into(),
            token_path: "payload.token".into(),
        }
    }
}

impl Config {
    /// Reads and parses a configuration file (see [`Config::parse`]).
    /// Relative key file paths are taken relative to the file's own folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text)?;
        if let Some(base) = path.parent() {
            config.resolve_paths(base);
        }
        Ok(config)
    }

    /// Makes relative key file paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for provider in &mut self.auth.providers {
            for key in &mut provider.keys {
                let path = match key {
                    KeyConfig::Hmac {
                        secret_file: Some(p),
                        ..
                    } => p,
                    KeyConfig::Hmac { .. } => continue,
                    KeyConfig::Rsa { pem_file, .. }
                    | KeyConfig::Ec { pem_file, .. }
                    | KeyConfig::Ed25519 { pem_file, .. } => pem_file,
                    KeyConfig::Jwks { file } => file,
                };
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
    }

    /// Parses configuration text against the schema (unknown keys, types).
    /// The values are checked once, with everything built from them, by
    /// [`crate::proxy::Proxy::new`] (which runs [`Config::validate`]).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Checks the values that the schema alone cannot, section by section.
    /// Two checks happen where their values are turned into what they
    /// configure: the upstream URLs in [`crate::upstream::Target::from_config`]
    /// and the providers' algorithms and keys in
    /// [`crate::auth::Verifier::from_config`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_header_names()?;
        self.check_bounds()?;
        self.check_listener()?;
        self.check_session()?;
        self.check_sizes()?;
        self.check_dialect()?;
        self.check_auth()
    }

    /// `[upstream.identity_headers]` (empty = off) and `[upstream.claim_headers]`.
    fn check_header_names(&self) -> Result<(), ConfigError> {
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

    /// `[listener]`.
    fn check_listener(&self) -> Result<(), ConfigError> {
        require(
            !matches!(self.listener.worker_threads, Some(0) | Some(1025..)),
            "listener.worker_threads",
            "must be between 1 and 1024",
        )
    }

    /// `[session]`'s timeouts and counts.
    fn check_session(&self) -> Result<(), ConfigError> {
        let s = &self.session;
        require(
            !s.auth_timeout.is_zero(),
            "session.auth_timeout",
            "must be more than 0s",
        )?;
        require(
            s.max_missed_pongs > 0,
            "session.max_missed_pongs",
            "must be at least 1",
        )?;
        require(
            s.max_reauth_failures > 0,
            "session.max_reauth_failures",
            "must be at least 1",
        )?;
        require(
            !s.slow_consumer_timeout.is_zero(),
            "session.slow_consumer_timeout",
            "must be more than 0s",
        )
    }

    /// `[websocket]`'s limits and `session.max_auth_frame_bytes`, which must fit them.
    fn check_sizes(&self) -> Result<(), ConfigError> {
        let w = &self.websocket;
        require(
            w.max_message_bytes >= 125,
            "websocket.max_message_bytes",
            "must be at least 125",
        )?;
        require(
            (1..=w.max_message_bytes).contains(&w.max_frame_bytes),
            "websocket.max_frame_bytes",
            "must be between 1 and websocket.max_message_bytes",
        )?;
        require(
            (1..=w.max_message_bytes).contains(&self.session.max_auth_frame_bytes),
            "session.max_auth_frame_bytes",
            "must be between 1 and websocket.max_message_bytes",
        )?;
        require(
            (256..=crate::relay::MAX_READ).contains(&w.read_buffer_bytes),
            "websocket.read_buffer_bytes",
            "must be between 256 and 65536",
        )
    }

    /// `[dialect]`.
    fn check_dialect(&self) -> Result<(), ConfigError> {
        let d = &self.dialect;
        require(
            d.auth.iter().any(|t| !t.is_empty()),
            "dialect.auth",
            "needs at least one frame type",
        )?;
        require(
            !d.token_path.split('.').any(str::is_empty),
            "dialect.token_path",
            "must be a dotted path such as \"payload.token\"",
        )
    }

    /// `[auth]`: at least one provider (each is checked as it is built).
    fn check_auth(&self) -> Result<(), ConfigError> {
        require(
            !self.auth.providers.is_empty(),
            "auth.providers",
            "at least one provider is required",
        )
    }
}

/// `Ok` when `ok`, else the error `key: problem`.
fn require(ok: bool, key: &str, problem: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, problem))
    }
}

/// The longest duration any key accepts (ten years).
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);
/// The largest size any key accepts (1 GiB).
const MAX_BYTES: usize = 1 << 30;

impl Config {
    /// Upper bounds, so that no value can overflow a clock or a buffer sum.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        let s = &self.session;
        let durations = [
            (
                "listener.header_read_timeout",
                self.listener.header_read_timeout,
            ),
            ("upstream.connect_timeout", self.upstream.connect_timeout),
            ("upstream.response_timeout", self.upstream.response_timeout),
            ("auth.leeway", self.auth.leeway),
            ("session.auth_timeout", s.auth_timeout),
            ("session.reauth_lead", s.reauth_lead),
            ("session.reauth_jitter", s.reauth_jitter),
            ("session.grace", s.grace),
            ("session.reauth_min_interval", s.reauth_min_interval),
            ("session.ping_interval", s.ping_interval),
            ("session.slow_consumer_timeout", s.slow_consumer_timeout),
            ("session.close_timeout", s.close_timeout),
            (
                "session.max_connection_lifetime",
                s.max_connection_lifetime.unwrap_or_default(),
            ),
        ];
        for (key, value) in durations {
            if value > MAX_DURATION {
                return Err(ConfigError::invalid(key, "must be at most ten years"));
            }
        }
        let w = &self.websocket;
        let sizes = [
            ("websocket.max_message_bytes", w.max_message_bytes),
            ("websocket.max_frame_bytes", w.max_frame_bytes),
            ("websocket.read_buffer_bytes", w.read_buffer_bytes),
            ("session.hold_max_bytes", s.hold_max_bytes),
            (
                "upstream.pending_max_bytes",
                self.upstream.pending_max_bytes,
            ),
        ];
        for (key, value) in sizes {
            if value > MAX_BYTES {
                return Err(ConfigError::invalid(
                    key,
                    "must be at most 1 GiB (1073741824)",
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// `upstream.identity_headers.provider` and `upstream.strip_request_headers`.
    fn check_header_keys(&self) -> Result<(), ConfigError> {
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

fn check_header_name(key: &str, name: &str) -> Result<(), ConfigError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| ConfigError::invalid(key, format!("{name:?} is not a valid header name")))
}
