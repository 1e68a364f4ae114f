//! `[revocation]`: revoked tokens (by `sub`, `jti` or a session id), kept
//! in bounded memory and, with a Redis URL, shared by every replica.

use super::*;

/// How long a revocation applies when the request gives neither `until` nor `ttl`.
pub const DEFAULT_REVOCATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most revocations kept in memory.
pub const DEFAULT_REVOCATION_MAX_ENTRIES: u64 = 100_000;
/// The claim that carries a session id.
pub const DEFAULT_SID_CLAIM: &str = "sid";
/// The pub/sub channel revocations are announced on.
pub const DEFAULT_REDIS_CHANNEL: &str = "wsguard:revocations";
/// The prefix of the Redis keys revocations are stored under.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "wsguard:revocation:";
/// Revocations waiting for Redis while it is unreachable.
pub const DEFAULT_REDIS_QUEUE: usize = 1000;
/// The longest wait between two attempts to reach Redis.
pub const DEFAULT_REDIS_RETRY_MAX: Duration = Duration::from_secs(5);

/// `[revocation]` (restart-only: a reload compares it with `==` and keeps it)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationConfig {
    /// How long a revocation applies without `until` or `ttl`.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// Most revocations kept in memory (the least recently used goes first).
    pub max_entries: u64,
    /// The name of the session-id claim (`{"sid": ...}` revocations).
    pub sid_claim: String,
    /// A `redis://` or `rediss://` URL: revocations are shared through it.
    pub redis_url: Option<String>,
    /// An environment variable holding that URL (so a password stays out of the file).
    pub redis_url_env: Option<String>,
    /// The pub/sub channel revocations are announced on.
    pub redis_channel: String,
    /// The prefix of the keys revocations are stored under.
    pub redis_key_prefix: String,
    /// Revocations kept for Redis while it is unreachable (the oldest are kept).
    pub redis_queue: usize,
    /// The longest wait between two attempts to reach Redis (from 100 ms, doubling).
    #[serde(with = "humantime_serde")]
    pub redis_retry_max: Duration,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            default_ttl: DEFAULT_REVOCATION_TTL,
            max_entries: DEFAULT_REVOCATION_MAX_ENTRIES,
            sid_claim: DEFAULT_SID_CLAIM.to_owned(),
            redis_url: None,
            redis_url_env: None,
            redis_channel: DEFAULT_REDIS_CHANNEL.to_owned(),
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            redis_queue: DEFAULT_REDIS_QUEUE,
            redis_retry_max: DEFAULT_REDIS_RETRY_MAX,
        }
    }
}

impl RevocationConfig {
    /// The Redis URL (from `redis_url` or the variable `redis_url_env`
    /// names), if one is configured. Errors never show the URL: it may hold
    /// a password.
    pub fn redis(&self) -> Result<Option<String>, ConfigError> {
        let (url, key) = match (&self.redis_url, &self.redis_url_env) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "revocation.redis_url",
                    "set redis_url or redis_url_env, not both",
                ))
            }
            (Some(url), None) => (url.clone(), "revocation.redis_url"),
            (None, Some(var)) => {
                let url = std::env::var(var).map_err(|_| {
                    ConfigError::invalid(
                        "revocation.redis_url_env",
                        format!("environment variable {var} is not set"),
                    )
                })?;
                (url, "revocation.redis_url_env")
            }
            (None, None) => return Ok(None),
        };
        let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
        if !scheme_ok || redis::Client::open(url.as_str()).is_err() {
            return Err(ConfigError::invalid(
                key,
                "not a redis:// or rediss:// URL (the value is not shown: it may hold a password)",
            ));
        }
        Ok(Some(url))
    }
}

impl Config {
    /// `[revocation]`.
    pub(super) fn check_revocation(&self) -> Result<(), ConfigError> {
        let r = &self.revocation;
        require(
            r.default_ttl >= Duration::from_secs(1) && r.default_ttl <= MAX_DURATION,
            "revocation.default_ttl",
            "must be between 1s and ten years",
        )?;
        require(
            (1..=10_000_000).contains(&r.max_entries),
            "revocation.max_entries",
            "must be between 1 and 10000000",
        )?;
        require(
            !r.sid_claim.is_empty(),
            "revocation.sid_claim",
            "must not be empty",
        )?;
        require(
            !r.redis_channel.is_empty(),
            "revocation.redis_channel",
            "must not be empty",
        )?;
        require(
            (1..=1_000_000).contains(&r.redis_queue),
            "revocation.redis_queue",
            "must be between 1 and 1000000",
        )?;
        require(
            r.redis_retry_max >= Duration::from_millis(10) && r.redis_retry_max <= MAX_DURATION,
            "revocation.redis_retry_max",
            "must be between 10ms and ten years",
        )?;
        r.redis().map(|_| ())
    }
}
