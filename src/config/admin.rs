//! `[admin]`: the admin listener (metrics, health, readiness, connections).

use super::*;

/// Default address of the admin listener.
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:9901";

/// Default interval of the upstream probe behind `/readyz`.
pub const DEFAULT_UPSTREAM_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Shortest `admin.upstream_check_interval`.
const MIN_UPSTREAM_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener; `""` switches it off; port 0 picks one (logged).
    pub bind: String,
    /// Environment variable holding the bearer token every endpoint but the
    /// probes requires.
    pub token_env: Option<String>,
    /// `GET /drain?wait=true` without the token (for `preStop` hooks).
    pub drain_without_token: bool,
    /// `/readyz` needs the upstream to have accepted a TCP connection within this.
    #[serde(with = "humantime_serde")]
    pub upstream_check_interval: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            bind: DEFAULT_ADMIN_BIND.to_owned(),
            token_env: None,
            drain_without_token: false,
            upstream_check_interval: DEFAULT_UPSTREAM_CHECK_INTERVAL,
        }
    }
}

impl AdminConfig {
    /// The address to bind, or `None` when the admin listener is off.
    pub fn address(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.bind.is_empty() {
            return Ok(None);
        }
        self.bind.parse().map(Some).map_err(|_| {
            ConfigError::invalid(
                "admin.bind",
                format!(
                    "{:?} is not an address like 127.0.0.1:9901 (\"\" switches it off)",
                    self.bind
                ),
            )
        })
    }

    /// The bearer token, read from `admin.token_env`, if one is configured.
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        let Some(var) = &self.token_env else {
            return Ok(None);
        };
        let token = std::env::var(var).map_err(|_| {
            ConfigError::invalid(
                "admin.token_env",
                format!("environment variable {var} is not set"),
            )
        })?;
        if token.len() < MIN_ADMIN_TOKEN_BYTES {
            return Err(ConfigError::invalid(
                "admin.token_env",
                format!("the token in {var} must be at least {MIN_ADMIN_TOKEN_BYTES} bytes"),
            ));
        }
        Ok(Some(token))
    }
}

impl Config {
    /// `[admin]`.
    pub(super) fn check_admin(&self) -> Result<(), ConfigError> {
        let a = &self.admin;
        require(
            a.upstream_check_interval >= MIN_UPSTREAM_CHECK_INTERVAL
                && a.upstream_check_interval <= MAX_DURATION,
            "admin.upstream_check_interval",
            "must be between 10ms and ten years",
        )?;
        let token = a.token()?;
        let Some(addr) = a.address()? else {
            return Ok(());
        };
        require(
            addr != self.listener.bind || addr.port() == 0,
            "admin.bind",
            "must differ from listener.bind",
        )?;
        require(
            addr.ip().is_loopback() || token.is_some(),
            "admin.bind",
            "a non-loopback admin address needs admin.token_env (a bearer token)",
        )
    }
}
