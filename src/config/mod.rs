//! The configuration file: its schema (serde, unknown keys rejected), its
//! defaults, and the checks that turn every mistake into an error naming the
//! key. Nothing here logs: the file may hold secrets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

mod admin;
mod auth;
mod dialect;
mod drain;
mod http_rules;
mod idle;
mod jwks;
mod legacy;
mod limits;
mod listener;
mod log;
mod overrides;
mod revocation;
mod session;
mod tls;
mod upstream;
mod websocket;

pub use admin::*;
pub use auth::*;
pub use dialect::*;
pub use drain::*;
pub use http_rules::*;
pub use idle::*;
pub use jwks::*;
pub use legacy::*;
pub use limits::*;
pub use listener::*;
pub use log::*;
pub use overrides::Overrides;
pub use revocation::*;
pub use session::*;
pub use tls::*;
pub use upstream::*;
pub use websocket::*;

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
    /// The Origin allowlist and protected plain HTTP routes.
    #[serde(default)]
    pub http: HttpConfig,
    /// The admin listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Log format and level.
    #[serde(default)]
    pub log: LogConfig,
    /// How the proxy leaves: the reconnect hint and its timings.
    #[serde(default)]
    pub drain: DrainConfig,
    /// Revoked tokens, and the Redis link that shares them.
    #[serde(default)]
    pub revocation: RevocationConfig,
    /// Connection caps and per-client rates.
    #[serde(default)]
    pub limits: LimitsConfig,
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

/// The key set on line `line` of `text` (1-based), with its table's name
/// (`session.auth_timeout`): the part of the line before `=`, never the value.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (key, _) = lines.get(line.checked_sub(1)?)?.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let header = l.trim().strip_prefix('[')?;
        let header = header.split(']').next()?.trim_start_matches('[').trim();
        Some(header.to_owned())
    });
    Some(match table {
        Some(table) if !table.is_empty() => format!("{table}.{key}"),
        _ => key.to_owned(),
    })
}

/// A TOML error as line, column and message, without toml's quote of the
/// offending line: that line may hold a secret (an inline
/// `revocation.redis_url` with its password), and this text reaches the
/// log and `POST /reload`'s answer.
fn describe(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
            match key_at(text, line) {
                Some(key) => {
                    format!("TOML parse error at line {line}, column {column}: {key}: {message}")
                }
                None => format!("TOML parse error at line {line}, column {column}: {message}"),
            }
        }
        None => format!("TOML parse error: {message}"),
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
            config.resolve_tls_paths(base);
        }
        Ok(config)
    }

    /// Parses configuration text against the schema (unknown keys, types).
    /// The values are checked once, with everything built from them, by
    /// [`crate::proxy::Proxy::new`] (which runs [`Config::validate`]).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e: toml::de::Error| ConfigError::Parse(describe(&e, text)))
    }

    /// Checks the values that the schema alone cannot, section by section.
    /// Some checks happen where their values are turned into what they
    /// configure: the upstream URLs in [`crate::upstream::Target::from_config`],
    /// the providers' algorithms and keys in
    /// [`crate::auth::Verifier::from_config`], `http.allowed_origins` in
    /// [`crate::origin::OriginPolicy::from_config`] and
    /// `http.public_prefixes` in [`crate::http_auth::HttpRules::new`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_header_names()?;
        self.check_bounds()?;
        self.check_listener()?;
        self.check_tls()?;
        self.check_session()?;
        self.check_idle()?;
        self.check_sizes()?;
        self.check_dialect()?;
        self.check_legacy()?;
        self.check_admin()?;
        self.check_log()?;
        self.check_jwks()?;
        self.check_drain()?;
        self.check_revocation()?;
        self.limits.check()?;
        self.check_auth()
    }

    /// Upper bounds, so that no value can overflow a clock or a buffer sum.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        let s = &self.session;
        let durations = [
            (
                "listener.header_read_timeout",
                self.listener.header_read_timeout,
            ),
            ("upstream.connect_timeout", self.upstream.connect_timeout),
            ("upstream.resolve_interval", self.upstream.resolve_interval),
            ("upstream.response_timeout", self.upstream.response_timeout),
            ("auth.leeway", self.auth.leeway),
            ("session.auth_timeout", s.auth_timeout),
            ("session.reauth_lead", s.reauth_lead),
            ("session.reauth_jitter", s.reauth_jitter),
            ("session.grace", s.grace),
            ("session.reauth_min_interval", s.reauth_min_interval),
            ("session.ping_interval", s.ping_interval),
            ("session.slow_consumer_timeout", s.slow_consumer_timeout),
            ("session.frame_stall_timeout", s.frame_stall_timeout),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_names_the_place_without_quoting_the_line() {
        let text = "[upstream]\nurl = \"ws://127.0.0.1:9\"\n[revocation]\nredis_url = \"redis://u:hunter2@h\" junk\n";
        let Err(ConfigError::Parse(message)) = Config::parse(text) else {
            panic!("a parse error");
        };
        assert!(
            message.starts_with("TOML parse error at line 4, column"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
}
