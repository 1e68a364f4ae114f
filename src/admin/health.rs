//! Liveness and readiness, answered from memory: the checks' state is
//! written by background work (the upstream probe on the control thread,
//! the key sets, drain) and only read by `/readyz`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The readiness checks' state.
#[derive(Debug)]
pub struct Health {
    /// How recent the upstream's last accepted TCP connection must be.
    interval: Duration,
    /// The origin of `upstream_ok_at`.
    epoch: Instant,
    /// Milliseconds after `epoch` plus one when the upstream last accepted
    /// a TCP connection; 0 for never.
    upstream_ok_at: AtomicU64,
    /// Every provider has a key set.
    keys: AtomicBool,
    /// The proxy is draining (set by drain).
    draining: AtomicBool,
}

impl Health {
    /// Checks with the upstream's freshness `interval`; keys count as
    /// loaded (local keys are loaded before the proxy starts).
    pub fn new(interval: Duration) -> Arc<Health> {
        Arc::new(Health {
            interval,
            epoch: Instant::now(),
            upstream_ok_at: AtomicU64::new(0),
            keys: AtomicBool::new(true),
            draining: AtomicBool::new(false),
        })
    }

    /// Whether every provider has loaded a key set.
    pub fn set_keys_loaded(&self, loaded: bool) {
        self.keys.store(loaded, Ordering::Relaxed);
    }

    /// Whether the proxy is draining.
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// The upstream accepted a TCP connection now.
    pub fn upstream_accepted(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.upstream_ok_at.store(ms + 1, Ordering::Relaxed);
    }

    /// The upstream accepted a connection within the interval.
    fn upstream_ok(&self) -> bool {
        match self.upstream_ok_at.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let age = self
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1));
                age <= self.interval
            }
        }
    }

    /// The names of the failing checks (`keys`, `upstream`, `draining`);
    /// empty when ready.
    pub fn failing(&self) -> Vec<&'static str> {
        let mut failing = Vec::new();
        if !self.keys.load(Ordering::Relaxed) {
            failing.push("keys");
        }
        if !self.upstream_ok() {
            failing.push("upstream");
        }
        if self.draining.load(Ordering::Relaxed) {
            failing.push("draining");
        }
        failing
    }

    /// Probes the upstream (`host:port`) forever, twice per interval (so a
    /// live upstream's last success is always fresher than the interval),
    /// each attempt bounded by half the interval. Runs on the control thread.
    pub async fn probe_upstream(self: Arc<Self>, authority: String) {
        let half = self.interval / 2;
        let mut ticks = tokio::time::interval(half);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let attempt = tokio::net::TcpStream::connect(authority.as_str());
            match tokio::time::timeout(half, attempt).await {
                Ok(Ok(_)) => self.upstream_accepted(),
                Ok(Err(e)) => tracing::debug!(error = %e, "upstream probe failed"),
                Err(_) => tracing::debug!("upstream probe timed out"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_a_fresh_upstream_and_not_draining() {
        let health = Health::new(Duration::from_secs(60));
        assert_eq!(health.failing(), ["upstream"]);
        health.upstream_accepted();
        assert!(health.failing().is_empty());
        health.set_draining(true);
        health.set_keys_loaded(false);
        assert_eq!(health.failing(), ["keys", "draining"]);
        let stale = Health::new(Duration::ZERO);
        stale.upstream_accepted();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(stale.failing(), ["upstream"]);
    }
}
