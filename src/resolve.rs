//! The upstream's addresses: `upstream.url`'s host resolved once at start
//! (`wsguard run` fails with a clear error when it does not resolve) and
//! again every `upstream.resolve_interval` on the control thread; connects
//! use the last good addresses, rotating among them, and skip for
//! [`REFUSED_SKIP`] an address that refused a connection. No lookup per
//! connection: a worker reads the list (an `ArcSwap`) and one atomic.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

/// How long an address that refused a connection is skipped.
pub const REFUSED_SKIP: Duration = Duration::from_secs(10);

/// A resolver answer for `host:port`: a test's own (see
/// [`Addresses::set_resolver`]); the configuration cannot choose one.
pub type Resolver = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// One resolved address.
#[derive(Debug)]
struct Known {
    /// The address.
    addr: SocketAddr,
    /// Skipped until then (milliseconds since [`Addresses::epoch`]; 0: not).
    refused_until: AtomicU64,
}

/// The upstream's resolved addresses, shared by every worker.
pub struct Addresses {
    /// `host:port` of `upstream.url`.
    authority: String,
    /// The last good answer; empty until the first.
    known: ArcSwap<Vec<Known>>,
    /// The next address to try (rotates).
    next: AtomicUsize,
    /// A test's resolver instead of the system's.
    resolver: ArcSwap<Option<Resolver>>,
    /// The origin of `refused_until`.
    epoch: Instant,
}

impl std::fmt::Debug for Addresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Addresses")
            .field("authority", &self.authority)
            .field("known", &self.known.load().len())
            .finish_non_exhaustive()
    }
}

impl Addresses {
    /// Nothing resolved yet for `authority` (`host:port`).
    pub fn new(authority: &str) -> Addresses {
        Addresses {
            authority: authority.to_owned(),
            known: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            resolver: ArcSwap::from_pointee(None),
            epoch: Instant::now(),
        }
    }

    /// Test hook: resolve through `resolver` instead of the system (no
    /// configuration key reaches this).
    #[doc(hidden)]
    pub fn set_resolver(&self, resolver: Resolver) {
        self.resolver.store(Arc::new(Some(resolver)));
    }

    /// Resolves now; on success the answer replaces the known addresses
    /// (the previous ones are kept on failure or an empty answer).
    pub async fn resolve(&self) -> io::Result<usize> {
        let hook = self.resolver.load_full();
        let found: Vec<SocketAddr> = match hook.as_ref() {
            Some(resolve) => resolve(&self.authority)?,
            None => tokio::net::lookup_host(self.authority.as_str())
                .await?
                .collect(),
        };
        if found.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
        }
        let n = found.len();
        let known = found
            .into_iter()
            .map(|addr| Known {
                addr,
                refused_until: AtomicU64::new(0),
            })
            .collect();
        self.known.store(Arc::new(known));
        Ok(n)
    }

    /// Resolves now (the error is the lookup's), then, unless the host is
    /// an IP literal or `interval` is zero, re-resolves every `interval` in
    /// a task on the current runtime (the control thread's).
    pub async fn start(self: &Arc<Addresses>, interval: Duration) -> io::Result<()> {
        self.resolve().await?;
        let literal = self.authority.parse::<SocketAddr>().is_ok();
        if !literal && !interval.is_zero() {
            tokio::spawn(self.clone().refresh_every(interval));
        }
        Ok(())
    }

    /// Re-resolves every `interval` (on the control thread) until nothing
    /// else holds these addresses (a reload to another upstream host
    /// dropped the proxy that used them) or the runtime ends.
    pub async fn refresh_every(self: Arc<Addresses>, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            if Arc::strong_count(&self) == 1 {
                return;
            }
            if let Err(e) = self.resolve().await {
                tracing::warn!(host = ?self.authority, error = %e, "upstream.url: re-resolving failed; the last addresses stay in use");
            }
        }
    }

    /// Whether an answer is known (else connects resolve `host:port` themselves).
    pub fn is_resolved(&self) -> bool {
        !self.known.load().is_empty()
    }

    /// Connects to the known addresses in turn from the next one, skipping
    /// those that refused recently (unless all did); the first that accepts wins.
    pub async fn connect(&self) -> io::Result<tokio::net::TcpStream> {
        let known = self.known.load_full();
        if known.is_empty() {
            return tokio::net::TcpStream::connect(self.authority.as_str()).await;
        }
        let now = self.millis(Instant::now());
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let order = (0..known.len()).map(|i| &known[(start + i) % known.len()]);
        let fresh: Vec<&Known> = order
            .clone()
            .filter(|k| k.refused_until.load(Ordering::Relaxed) <= now)
            .collect();
        let candidates = if fresh.is_empty() {
            order.collect()
        } else {
            fresh
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
        for k in candidates {
            match tokio::net::TcpStream::connect(k.addr).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => {
                    let until = self.millis(Instant::now() + REFUSED_SKIP);
                    k.refused_until.store(until, Ordering::Relaxed);
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}
