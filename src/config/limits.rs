//! `[limits]`: connection caps and per-client rates (see `crate::limits`).

use super::*;

/// Default cap on WebSocket connections per process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;
/// Default cap on connections upgraded but not yet authenticated.
pub const DEFAULT_MAX_UNAUTHENTICATED: usize = 10_000;
/// Default `Retry-After` of a 503 `over_capacity` or 429 answer.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Default new WebSocket connections per second per client address.
pub const DEFAULT_PER_ADDRESS_RATE: u32 = 20;
/// Default burst of new connections per client address.
pub const DEFAULT_PER_ADDRESS_BURST: u32 = 40;
/// Default concurrent WebSocket connections per client address.
pub const DEFAULT_PER_ADDRESS_CONNECTIONS: usize = 256;
/// Default failed authentications per client address within
/// [`DEFAULT_FAILED_AUTH_WINDOW`] before a cool-down.
pub const DEFAULT_FAILED_AUTH_MAX: u32 = 10;
/// Default window of [`DEFAULT_FAILED_AUTH_MAX`].
pub const DEFAULT_FAILED_AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Default cool-down of a client address that failed too often.
pub const DEFAULT_FAILED_AUTH_COOLDOWN: Duration = Duration::from_secs(60);
/// Default number of client addresses whose rates are remembered.
pub const DEFAULT_ADDRESS_CAPACITY: u64 = 100_000;
/// Default time after which an address not seen is forgotten.
pub const DEFAULT_ADDRESS_IDLE: Duration = Duration::from_secs(600);
/// Default prefix length by which IPv6 client addresses are grouped.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// What happens when a subject opens one connection more than
/// `limits.max_connections_per_subject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Evict {
    /// The new connection is closed with `too many connections`.
    #[default]
    Refuse,
    /// The subject's oldest connection is closed instead.
    Oldest,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// WebSocket connections per process; over it: 503 `over_capacity`.
    pub max_connections: usize,
    /// Connections upgraded but not yet authenticated; over it: 503 `over_capacity`.
    pub max_unauthenticated: usize,
    /// The `Retry-After` of a 503 or 429 answer (whole seconds).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// New WebSocket connections per second per client address (0: no
    /// rate); over it: 429 `rate_limited`.
    pub per_address_rate: u32,
    /// How many of them may come at once.
    pub per_address_burst: u32,
    /// Concurrent WebSocket connections per client address; over it: 429 `rate_limited`.
    pub per_address_connections: usize,
    /// Failed authentications per client address within
    /// `failed_auth_window` (0: no limit); one more starts the cool-down.
    pub failed_auth_max: u32,
    /// The window of `failed_auth_max`.
    #[serde(with = "humantime_serde")]
    pub failed_auth_window: Duration,
    /// How long a client address that failed too often is refused (1008
    /// `too many attempts` at its first frame).
    #[serde(with = "humantime_serde")]
    pub failed_auth_cooldown: Duration,
    /// Client addresses whose rates are remembered (least recently used
    /// ones are forgotten first).
    pub address_capacity: u64,
    /// An address not seen for this long is forgotten.
    #[serde(with = "humantime_serde")]
    pub address_idle: Duration,
    /// IPv6 client addresses are grouped by this prefix length (a client
    /// usually has a whole /64).
    pub ipv6_prefix: u8,
    /// Authenticated connections per subject (`iss` + `sub`); absent: no cap.
    pub max_connections_per_subject: Option<usize>,
    /// Over `max_connections_per_subject`: close the new connection
    /// (`refuse`) or the subject's oldest (`oldest`).
    pub evict: Evict,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_unauthenticated: DEFAULT_MAX_UNAUTHENTICATED,
            retry_after: DEFAULT_RETRY_AFTER,
            per_address_rate: DEFAULT_PER_ADDRESS_RATE,
            per_address_burst: DEFAULT_PER_ADDRESS_BURST,
            per_address_connections: DEFAULT_PER_ADDRESS_CONNECTIONS,
            failed_auth_max: DEFAULT_FAILED_AUTH_MAX,
            failed_auth_window: DEFAULT_FAILED_AUTH_WINDOW,
            failed_auth_cooldown: DEFAULT_FAILED_AUTH_COOLDOWN,
            address_capacity: DEFAULT_ADDRESS_CAPACITY,
            address_idle: DEFAULT_ADDRESS_IDLE,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            max_connections_per_subject: None,
            evict: Evict::Refuse,
        }
    }
}

impl LimitsConfig {
    /// The checks of `[limits]`.
    pub fn check(&self) -> Result<(), ConfigError> {
        let at_least_one = [
            ("limits.max_connections", self.max_connections),
            ("limits.max_unauthenticated", self.max_unauthenticated),
            (
                "limits.per_address_connections",
                self.per_address_connections,
            ),
            (
                "limits.max_connections_per_subject",
                self.max_connections_per_subject.unwrap_or(1),
            ),
            (
                "limits.address_capacity",
                usize::try_from(self.address_capacity).unwrap_or(usize::MAX),
            ),
        ];
        for (key, value) in at_least_one {
            require(value >= 1, key, "must be at least 1")?;
        }
        require(
            self.per_address_rate == 0 || self.per_address_burst >= 1,
            "limits.per_address_burst",
            "must be at least 1 when limits.per_address_rate is set",
        )?;
        require(
            (1..=128).contains(&self.ipv6_prefix),
            "limits.ipv6_prefix",
            "must be between 1 and 128",
        )?;
        let durations = [
            ("limits.retry_after", self.retry_after),
            ("limits.failed_auth_window", self.failed_auth_window),
            ("limits.failed_auth_cooldown", self.failed_auth_cooldown),
            ("limits.address_idle", self.address_idle),
        ];
        for (key, value) in durations {
            require(value <= MAX_DURATION, key, "must be at most ten years")?;
        }
        require(
            !self.address_idle.is_zero(),
            "limits.address_idle",
            "must be more than 0s",
        )?;
        require(
            self.failed_auth_max == 0 || !self.failed_auth_window.is_zero(),
            "limits.failed_auth_window",
            "must be more than 0s when limits.failed_auth_max is set",
        )
    }
}
