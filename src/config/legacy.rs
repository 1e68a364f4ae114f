//! `[auth.legacy]`: tokens taken from the upgrade request itself (header,
//! cookie, query parameter) for clients that predate first-message auth.
//! Every method is off by default.

use super::*;

/// `[auth.legacy]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LegacyAuthConfig {
    /// Accept `Authorization: Bearer <JWT>` on the upgrade request.
    pub header: bool,
    /// Accept the token from the cookie of this name (removed from the
    /// `Cookie` header sent upstream); needs `http.allowed_origins`.
    pub cookie: Option<String>,
    /// Accept the token from the query parameter of this name (removed
    /// from the URL sent upstream, never logged).
    pub query: Option<String>,
    /// Answer an invalid header, cookie or query token with HTTP 401
    /// instead of accepting the upgrade and closing it with 1008.
    pub reject_with_http: bool,
}

impl LegacyAuthConfig {
    /// Whether any legacy method is on.
    pub fn any(&self) -> bool {
        self.header || self.cookie.is_some() || self.query.is_some()
    }
}

impl Config {
    /// `[auth.legacy]`: names are plain tokens; cookie auth needs an Origin
    /// allowlist (the cookie travels cross-site: without the check any web
    /// page could open an authenticated socket).
    pub(super) fn check_legacy(&self) -> Result<(), ConfigError> {
        let legacy = &self.auth.legacy;
        if let Some(name) = &legacy.cookie {
            let plain = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            require(
                plain,
                "auth.legacy.cookie",
                "must be a cookie name (letters, digits, '-', '_', '.')",
            )?;
            require(
                !self.http.allowed_origins.is_empty(),
                "auth.legacy.cookie",
                "cookie auth needs http.allowed_origins: without an Origin check any web page could open an authenticated socket",
            )?;
        }
        if let Some(name) = &legacy.query {
            require(!name.is_empty(), "auth.legacy.query", "must not be empty")?;
        }
        Ok(())
    }
}
