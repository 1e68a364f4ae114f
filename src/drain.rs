//! Graceful drain (SIGTERM, SIGINT, `POST /drain`): the listening sockets
//! close at once, `/readyz` turns unready, every live connection gets the
//! `reconnect` hint and, after `drain.close_after`, 1001 `going away`; the
//! process exits when the last connection is gone or at `drain.timeout`.
//!
//! [`Signal`] is what the workers and connections see (in the
//! [`crate::process::Process`]); [`Drain`] runs the drain on the control
//! thread, never on a worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::admin::Health;
use crate::config::DrainConfig;
use crate::process::Process;
use crate::registry::Command;
use crate::rescue::CloseCause;

/// How often the drain looks whether the last connection is gone.
const POLL: Duration = Duration::from_millis(10);

/// After `drain.timeout`, how long what is left has for its close frames.
const LAST_CLOSE: Duration = Duration::from_secs(1);

/// A drain's timings, as each connection applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// The hint's `after_ms` is drawn uniformly over this.
    pub spread: Duration,
    /// The connection is closed this long after it got the drain.
    pub close_after: Duration,
}

/// The drain as the workers and connections see it.
#[derive(Debug)]
pub struct Signal {
    /// The timings, set once when the drain begins (a connection that
    /// opens its upstream later applies them then).
    times: OnceLock<Times>,
    /// Becomes true when the drain begins (the accept loops and the plain
    /// HTTP connections wait for it).
    started: watch::Sender<bool>,
    /// Connections from accept to the end of their task (HTTP or WebSocket).
    live: AtomicUsize,
}

impl Default for Signal {
    fn default() -> Signal {
        Signal {
            times: OnceLock::new(),
            started: watch::Sender::new(false),
            live: AtomicUsize::new(0),
        }
    }
}

impl Signal {
    /// Begins the drain with `times`; false if it had begun already.
    pub fn begin(&self, times: Times) -> bool {
        if self.times.set(times).is_err() {
            return false;
        }
        self.started.send_replace(true);
        true
    }

    /// The drain's timings, once it has begun (one atomic load).
    pub fn times(&self) -> Option<Times> {
        self.times.get().copied()
    }

    /// Completes when the drain begins.
    pub async fn started(&self) {
        let mut started = self.started.subscribe();
        let _ = started.wait_for(|s| *s).await;
    }

    /// Connections alive now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// One connection counted as live until it is dropped.
#[derive(Debug)]
pub struct Live(
    /// The process whose count it is in.
    Arc<Process>,
);

impl Live {
    /// Counts a connection of `process` until the guard is dropped.
    pub fn new(process: Arc<Process>) -> Live {
        process.drain.live.fetch_add(1, Ordering::Relaxed);
        Live(process)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.drain.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs the drain (on the control thread).
#[derive(Debug)]
pub struct Drain {
    /// The process: its registry, its [`Signal`].
    process: Arc<Process>,
    /// `/readyz`'s checks (`draining`).
    health: Arc<Health>,
    /// `[drain]`.
    config: DrainConfig,
    /// Becomes true when the drain is over (the process may exit).
    done: watch::Sender<bool>,
    /// `GET /drain?wait=true` answers not yet written.
    waiting: AtomicUsize,
}

/// A `GET /drain?wait=true` whose answer is not written yet: the process
/// waits for it (up to a second) before it exits.
#[derive(Debug)]
pub struct Waiting(
    /// The drain it waits for.
    Arc<Drain>,
);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drain {
    /// The drain of `process` with `[drain]` settings `config`.
    pub fn new(process: Arc<Process>, health: Arc<Health>, config: DrainConfig) -> Arc<Drain> {
        Arc::new(Drain {
            process,
            health,
            config,
            done: watch::Sender::new(false),
            waiting: AtomicUsize::new(0),
        })
    }

    /// Begins the drain unless it has begun; must be called on the control
    /// thread's runtime (the drain runs there).
    pub fn start(self: &Arc<Self>, why: &'static str) {
        let times = Times {
            spread: self.config.reconnect_spread,
            close_after: self.config.close_after(),
        };
        if !self.process.drain.begin(times) {
            return;
        }
        self.health.set_draining(true);
        tracing::info!(
            why,
            connections = self.process.drain.live(),
            "draining: no new connections"
        );
        tokio::spawn(self.clone().run());
    }

    /// Connections alive now.
    pub fn live(&self) -> usize {
        self.process.drain.live()
    }

    /// Whether the drain has begun.
    pub fn started(&self) -> bool {
        self.process.drain.times().is_some()
    }

    /// Completes when the drain is over.
    pub async fn finished(&self) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Whether the drain is over.
    pub fn is_finished(&self) -> bool {
        *self.done.borrow()
    }

    /// Counts a `GET /drain?wait=true` until its answer is written.
    pub fn waiting(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self.clone())
    }

    /// Completes when every `GET /drain?wait=true` is answered, or after a second.
    pub async fn answered(&self) {
        let all = async {
            while self.waiting.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(POLL).await;
            }
        };
        let _ = tokio::time::timeout(LAST_CLOSE, all).await;
    }

    /// The drain: the hint to every registered connection, then waiting for
    /// the last one (or `drain.timeout`, closing what is left).
    async fn run(self: Arc<Self>) {
        let registry = &self.process.registry;
        let told = registry.send_where(|_| true, Command::Drain);
        tracing::debug!(told, "reconnect hints sent");
        let last = tokio::time::timeout(self.config.timeout, self.emptied()).await;
        if last.is_err() {
            let left = registry.send_where(|_| true, Command::Close(CloseCause::Draining));
            tracing::warn!(
                left,
                timeout = ?self.config.timeout,
                "drain.timeout reached: closing what is left"
            );
            let _ = tokio::time::timeout(LAST_CLOSE, self.emptied()).await;
        }
        tracing::info!(left = self.process.drain.live(), "drained: exiting");
        self.done.send_replace(true);
    }

    /// Completes when no connection is live.
    async fn emptied(&self) {
        while self.process.drain.live() > 0 {
            tokio::time::sleep(POLL).await;
        }
    }
}
