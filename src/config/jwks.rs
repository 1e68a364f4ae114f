//! `[auth.jwks]`: keys fetched from identity providers (a `jwks_url` key or
//! `discovery = true`): refresh, refetch on an unknown `kid`, limits,
//! start-up, and what happens to live connections whose key is removed.

use super::*;

/// Default time between two refreshes of a provider's key set.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// Default lower bound on a `Cache-Control: max-age` (and the first retry after a failure).
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(60);
/// Default upper bound on a `Cache-Control: max-age` (and on the retry backoff).
pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(86_400);
/// Default time after a refetch for an unknown `kid` before the next one.
pub const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);
/// Default limit on one fetch (connect, TLS, headers and body).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit on a JWKS or discovery document's size.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Default time start-up waits for every provider's first key set.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What happens to a live connection whose token's key left its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnKeyRemoved {
    /// `auth_required` now; closed with `key revoked` unless a REAUTH comes
    /// within `session.grace`.
    #[default]
    Reauth,
    /// Closed at once with `key revoked`.
    Close,
}

/// `[auth.jwks]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksConfig {
    /// Time between refreshes when the answer has no `Cache-Control: max-age`.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Lower bound on `max-age`; also the first retry delay after a failure.
    #[serde(with = "humantime_serde")]
    pub min_refresh: Duration,
    /// Upper bound on `max-age` and on the retry backoff.
    #[serde(with = "humantime_serde")]
    pub max_refresh: Duration,
    /// After a refetch for an unknown `kid`, the time before the next one
    /// (per provider); an unknown `kid` meanwhile is refused at once.
    #[serde(with = "humantime_serde")]
    pub refetch_cooldown: Duration,
    /// Limit on one fetch, from connecting to the last byte.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// Largest JWKS or discovery document accepted.
    pub max_document_bytes: usize,
    /// Time `wsguard run` waits for every provider's first key set.
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// Start at once, refusing a provider's tokens until its keys arrive,
    /// instead of waiting and refusing to start without them.
    pub start_without_keys: bool,
    /// What happens to live connections whose key is removed from its set.
    pub on_key_removed: OnKeyRemoved,
}

impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig {
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            min_refresh: DEFAULT_MIN_REFRESH,
            max_refresh: DEFAULT_MAX_REFRESH,
            refetch_cooldown: DEFAULT_REFETCH_COOLDOWN,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            start_without_keys: false,
            on_key_removed: OnKeyRemoved::Reauth,
        }
    }
}

impl Config {
    /// `[auth.jwks]`: durations bounded and ordered, sizes positive.
    pub(super) fn check_jwks(&self) -> Result<(), ConfigError> {
        let j = &self.auth.jwks;
        let durations = [
            ("auth.jwks.refresh_interval", j.refresh_interval),
            ("auth.jwks.min_refresh", j.min_refresh),
            ("auth.jwks.max_refresh", j.max_refresh),
            ("auth.jwks.fetch_timeout", j.fetch_timeout),
            ("auth.jwks.startup_timeout", j.startup_timeout),
        ];
        for (key, value) in durations {
            require(!value.is_zero(), key, "must be more than 0s")?;
            require(value <= MAX_DURATION, key, "must be at most ten years")?;
        }
        require(
            j.refetch_cooldown <= MAX_DURATION,
            "auth.jwks.refetch_cooldown",
            "must be at most ten years",
        )?;
        require(
            j.min_refresh <= j.max_refresh,
            "auth.jwks.min_refresh",
            "must not exceed auth.jwks.max_refresh",
        )?;
        require(
            (1..=MAX_BYTES).contains(&j.max_document_bytes),
            "auth.jwks.max_document_bytes",
            "must be between 1 and 1073741824",
        )
    }
}
