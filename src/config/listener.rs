//! `[listener]`: where the proxy listens and whom it trusts.

use super::*;

/// Default bind address of the proxy.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Default time allowed for a client to send its HTTP request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default limit on a request head's size (request line and headers).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

/// Default limit on the number of headers in a request (hyper's own).
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// `[listener]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Address to bind, for example `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// Peers whose `X-Forwarded-For` is appended to and whose
    /// `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Request-Id` are kept.
    pub trusted_proxies: Vec<IpNet>,
    /// Time a client has to send its request head.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Number of workers: independent single-threaded event loops
    /// (nginx-style) that all accept from the listening socket; a connection
    /// stays on the worker that accepted it. Absent = one per CPU the process
    /// may use.
    pub worker_threads: Option<usize>,
    /// TLS on the listening socket; absent = plain TCP.
    pub tls: Option<ListenerTls>,
    /// Largest request head (request line and headers); over it: 431.
    pub max_header_bytes: usize,
    /// Most headers in a request; over it: 431.
    pub max_headers: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            worker_threads: None,
            tls: None,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

impl Config {
    /// `[listener]`.
    pub(super) fn check_listener(&self) -> Result<(), ConfigError> {
        require(
            !matches!(self.listener.worker_threads, Some(0) | Some(1025..)),
            "listener.worker_threads",
            "must be between 1 and 1024",
        )?;
        require(
            (1024..=1 << 20).contains(&self.listener.max_header_bytes),
            "listener.max_header_bytes",
            "must be between 1024 and 1048576",
        )?;
        require(
            (1..=10_000).contains(&self.listener.max_headers),
            "listener.max_headers",
            "must be between 1 and 10000",
        )
    }
}
