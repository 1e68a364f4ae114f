//! `[http]`: the Origin allowlist (upgrades and CORS on wsguard's own
//! answers) and protected plain HTTP routes.

use super::*;

/// `[http]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Origins allowed to open a WebSocket (and to read wsguard's 401s):
    /// exact (`https://app.example.com`) or with `*` as exactly one DNS
    /// label (`https://*.example.com`). Empty: no Origin check.
    pub allowed_origins: Vec<String>,
    /// Whether an upgrade without `Origin` is allowed when
    /// `allowed_origins` is set. Absent: true, unless cookie auth is on.
    pub allow_missing_origin: Option<bool>,
    /// Require a valid token on plain HTTP requests (default false: they
    /// are passed through unauthenticated).
    pub protect: bool,
    /// Path prefixes that pass without a token when `protect` is on,
    /// matched on whole path segments after percent-decoding.
    pub public_prefixes: Vec<String>,
}

impl Config {
    /// Whether an upgrade without `Origin` passes the allowlist.
    pub fn allow_missing_origin(&self) -> bool {
        self.http
            .allow_missing_origin
            .unwrap_or(self.auth.legacy.cookie.is_none())
    }
}
