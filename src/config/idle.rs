//! `[session]`'s inactivity timeout: `idle_timeout`, `idle_counts`, `idle_warning`.

use super::*;

/// Default lead of the `idle_warning` frame before the idle close.
pub const DEFAULT_IDLE_WARNING: Duration = Duration::from_secs(60);

/// Whose application messages keep a connection from being idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdleCounts {
    /// Only the client's messages (text or binary data) count.
    #[default]
    Client,
    /// The client's and the upstream's messages count.
    Both,
}

impl Config {
    /// `session.idle_timeout` and `session.idle_warning`.
    pub(super) fn check_idle(&self) -> Result<(), ConfigError> {
        let s = &self.session;
        let Some(timeout) = s.idle_timeout else {
            return Ok(());
        };
        require(
            !timeout.is_zero() && timeout <= MAX_DURATION,
            "session.idle_timeout",
            "must be more than 0s and at most ten years (leave it out to switch it off)",
        )?;
        require(
            s.idle_warning < timeout,
            "session.idle_warning",
            "must be less than session.idle_timeout",
        )
    }
}
