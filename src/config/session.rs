//! `[session]`: per-connection timeouts, lifecycle and heartbeats.

use super::*;

/// Default time a client has to send its first (auth) frame.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Default limit on the first frame's size.
pub const DEFAULT_MAX_AUTH_FRAME_BYTES: usize = 16 * 1024;

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

/// Default time a peer may stop in the middle of a relayed frame.
pub const DEFAULT_FRAME_STALL_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// A peer that stops in the middle of a relayed frame for this long
    /// (counted while the other leg takes writes) is closed; `0s`: never.
    #[serde(with = "humantime_serde")]
    pub frame_stall_timeout: Duration,
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
    /// Close a connection after this long without an application message
    /// (off when absent; see `config/idle.rs`).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Whose application messages count as activity for `idle_timeout`.
    pub idle_counts: IdleCounts,
    /// `idle_warning` is sent this long before the idle close.
    #[serde(with = "humantime_serde")]
    pub idle_warning: Duration,
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
            frame_stall_timeout: DEFAULT_FRAME_STALL_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            max_connection_lifetime: None,
            close_codes: CloseCodes::Policy,
            upstream_notice: false,
            idle_timeout: None,
            idle_counts: IdleCounts::Client,
            idle_warning: DEFAULT_IDLE_WARNING,
        }
    }
}

impl Config {
    /// `[session]`'s timeouts and counts.
    pub(super) fn check_session(&self) -> Result<(), ConfigError> {
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
}
