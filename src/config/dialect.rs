//! `[dialect]`: the names of the control frames.

use super::*;

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
    /// Notice sent `session.idle_warning` before an idle close; empty = never sent.
    pub idle_warning: String,
    /// The drain's reconnect hint (`{"after_ms": N}`); empty = never sent.
    pub reconnect: String,
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
            idle_warning: "idle_warning".into(),
            reconnect: "reconnect".into(),
        }
    }
}

impl Config {
    /// `[dialect]`.
    pub(super) fn check_dialect(&self) -> Result<(), ConfigError> {
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
        )?;
        let lists = (d.auth.iter().enumerate()).map(|(i, n)| (format!("dialect.auth[{i}]"), n));
        let lists = lists
            .chain((d.reauth.iter().enumerate()).map(|(i, n)| (format!("dialect.reauth[{i}]"), n)));
        let single = [
            ("dialect.authenticated", &d.authenticated),
            ("dialect.auth_required", &d.auth_required),
            ("dialect.token_expired", &d.token_expired),
            ("dialect.error", &d.error),
            ("dialect.identity_refreshed", &d.identity_refreshed),
            ("dialect.idle_warning", &d.idle_warning),
            ("dialect.reconnect", &d.reconnect),
        ];
        let named = single.into_iter().map(|(k, n)| (k.to_owned(), n));
        for (key, name) in lists.chain(named) {
            require(
                name.len() <= MAX_NAME && name.bytes().all(name_byte),
                &key,
                "must be at most 64 characters of A-Z a-z 0-9 _ . : - (or \"\" to switch it off)",
            )?;
        }
        Ok(())
    }
}

/// Longest frame type name.
const MAX_NAME: usize = 64;

/// The characters a frame type name may have: no quote, backslash, space
/// or control character, so that only a `\\u` escape can spell one in JSON
/// (the cheap pre-check in `protocol` relies on that).
fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}
