//! `[drain]`: how the proxy leaves (SIGTERM, SIGINT, `POST /drain`).

use super::*;

/// Default spread of the reconnect hints' `after_ms`.
pub const DEFAULT_RECONNECT_SPREAD: Duration = Duration::from_secs(10);

/// What `drain.close_after` adds to the spread when it is not set.
pub const DEFAULT_CLOSE_AFTER_MARGIN: Duration = Duration::from_secs(2);

/// Default longest drain (under Kubernetes' default grace of 30 s).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// `[drain]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrainConfig {
    /// The reconnect hint's `after_ms` is drawn per connection uniformly
    /// over this.
    #[serde(with = "humantime_serde")]
    pub reconnect_spread: Duration,
    /// Each connection is closed with 1001 `going away` this long after the
    /// drain began; default: the spread plus 2 s.
    #[serde(with = "humantime_serde")]
    pub close_after: Option<Duration>,
    /// The process exits at the latest this long after the drain began,
    /// closing what is left.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            reconnect_spread: DEFAULT_RECONNECT_SPREAD,
            close_after: None,
            timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl DrainConfig {
    /// `close_after`, or its default (the spread plus 2 s).
    pub fn close_after(&self) -> Duration {
        self.close_after
            .unwrap_or(self.reconnect_spread + DEFAULT_CLOSE_AFTER_MARGIN)
    }
}

impl Config {
    /// `[drain]`.
    pub(super) fn check_drain(&self) -> Result<(), ConfigError> {
        let d = &self.drain;
        for (key, value) in [
            ("drain.reconnect_spread", d.reconnect_spread),
            ("drain.close_after", d.close_after.unwrap_or_default()),
            ("drain.timeout", d.timeout),
        ] {
            require(value <= MAX_DURATION, key, "must be at most ten years")?;
        }
        require(
            d.close_after() >= d.reconnect_spread,
            "drain.close_after",
            "must be at least drain.reconnect_spread (every hint comes before the close)",
        )?;
        require(
            d.timeout >= d.close_after(),
            "drain.timeout",
            "must be at least drain.close_after (the default close_after is the spread plus 2s)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_drain(drain: &str) -> Result<(), ConfigError> {
        let text = format!(
            "[upstream]\nurl = \"ws://127.0.0.1:1\"\n[[auth.providers]]\nname = \"p\"\nalgorithms = [\"HS256\"]\n[[auth.providers.keys]]\nkind = \"hmac\"\nsecret_env = \"X\"\n[drain]\n{drain}\n"
        );
        Config::parse(&text)?.check_drain()
    }

    #[test]
    fn timings_must_nest_and_errors_name_the_key() {
        assert!(with_drain("").is_ok());
        let d = DrainConfig::default();
        assert_eq!(d.close_after(), Duration::from_secs(12));
        let e = with_drain("reconnect_spread = \"5s\"\nclose_after = \"1s\"").unwrap_err();
        assert!(e.to_string().starts_with("drain.close_after:"), "{e}");
        let e = with_drain("reconnect_spread = \"30s\"").unwrap_err();
        assert!(e.to_string().starts_with("drain.timeout:"), "{e}");
        let e = with_drain("spread = \"1s\"").unwrap_err();
        assert!(e.to_string().contains("spread"), "{e}");
    }
}
