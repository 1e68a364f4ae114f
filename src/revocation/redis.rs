//! The cross-replica link (`revocation.redis_url`), on the control thread:
//! every revocation made here is written to Redis as a key that expires
//! when the revocation does (`SET key value EX secs`) and announced on a
//! pub/sub channel; every replica subscribes, and on each (re)connect
//! loads every key still there, so that a replica started later, or cut
//! off for a while, misses nothing still in force.
//!
//! While Redis is unreachable, local revocation keeps working; changes
//! made meanwhile wait in a bounded queue and are written once the link is
//! back. One warning per outage; retries back off from 100 ms, doubling up
//! to `revocation.redis_retry_max`. `wsguard_redis_up` shows the link.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

use super::{Change, Revocation, Revocations};
use crate::auth::unix_now;
use crate::config::RevocationConfig;
use crate::registry::Registry;

/// The first wait after a failure.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait for a connection or a command.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How often the link is checked while quiet.
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// What the link needs.
pub struct Link {
    /// The Redis client (its URL is never logged).
    client: redis::Client,
    /// The channel.
    channel: String,
    /// The key prefix.
    prefix: String,
    /// The longest retry wait.
    retry_max: Duration,
    /// This process's id in announcements (its own are skipped).
    origin: String,
    /// The store.
    revocations: Arc<Revocations>,
    /// Where live connections are found.
    registry: Arc<Registry>,
}

/// An announcement on the channel.
#[derive(serde::Serialize, serde::Deserialize)]
struct Announcement {
    /// Who made it.
    origin: String,
    /// What changed.
    #[serde(flatten)]
    change: Change,
}

/// Why the link dropped.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// Redis answered with an error or the connection failed.
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the timeout.
    #[error("no answer within 5s")]
    Timeout,
    /// The subscription ended (the connection closed).
    #[error("the subscription ended")]
    Closed,
}

/// `future` within [`TIMEOUT`].
async fn timed<T>(
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(TIMEOUT, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::Timeout),
    }
}

/// A glob pattern matching every key under `prefix`.
fn pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('*');
    p
}

impl Link {
    /// The link for `[revocation]` with `url` (checked by the configuration).
    pub fn new(
        url: &str,
        config: &RevocationConfig,
        revocations: Arc<Revocations>,
        registry: Arc<Registry>,
    ) -> redis::RedisResult<Link> {
        Ok(Link {
            client: redis::Client::open(url)?,
            channel: config.redis_channel.clone(),
            prefix: config.redis_key_prefix.clone(),
            retry_max: config.redis_retry_max,
            origin: format!("{:016x}", rand::random::<u64>()),
            revocations,
            registry,
        })
    }

    /// Attaches the queue (`queue` changes at most) and runs the link
    /// forever (spawn it on the control thread).
    pub fn start(self, queue: usize, on: &tokio::runtime::Handle) {
        let (outbox, inbox) = mpsc::channel(queue.max(1));
        self.revocations.attach(outbox);
        crate::metrics::redis_up(false);
        on.spawn(self.run(inbox));
    }

    /// Connects, serves, and reconnects with backoff after every failure.
    async fn run(self, mut inbox: mpsc::Receiver<Change>) {
        let mut wait = RETRY_MIN.min(self.retry_max);
        let mut was_up = None::<bool>;
        let mut pending = None::<Change>;
        loop {
            let error = self.serve(&mut inbox, &mut pending, &mut was_up).await;
            // Once per outage: the first failure after being up (or at start).
            if was_up != Some(false) {
                tracing::warn!(error = %error, "redis link down: revocations stay local until it is back (retrying)");
                crate::metrics::redis_up(false);
                wait = RETRY_MIN.min(self.retry_max);
            }
            was_up = Some(false);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.retry_max);
        }
    }

    /// One connection's life: subscribe, load the keys, write what waits,
    /// then relay both ways until something fails.
    async fn serve(
        &self,
        inbox: &mut mpsc::Receiver<Change>,
        pending: &mut Option<Change>,
        was_up: &mut Option<bool>,
    ) -> LinkError {
        match self.serve_inner(inbox, pending, was_up).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn serve_inner(
        &self,
        inbox: &mut mpsc::Receiver<Change>,
        pending: &mut Option<Change>,
        was_up: &mut Option<bool>,
    ) -> Result<std::convert::Infallible, LinkError> {
        let mut pubsub = timed(self.client.get_async_pubsub()).await?;
        timed(pubsub.subscribe(&self.channel)).await?;
        let mut conn = timed(self.client.get_multiplexed_async_connection()).await?;
        let loaded = self.load(&mut conn).await?;
        tracing::info!(loaded, "redis link up: revocations are shared");
        crate::metrics::redis_up(true);
        *was_up = Some(true);
        let mut messages = pubsub.on_message();
        let mut ping = tokio::time::interval(PING_INTERVAL);
        // The store keeps the sender for the process's life; never spin if not.
        let mut open = true;
        loop {
            if let Some(change) = pending.take() {
                // Kept until written: a failure here retries it after the reconnect.
                *pending = Some(change.clone());
                self.write(&mut conn, &change).await?;
                *pending = None;
            }
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => self.received(message.get_payload_bytes()),
                    None => return Err(LinkError::Closed),
                },
                change = inbox.recv(), if open => match change {
                    Some(change) => *pending = Some(change),
                    None => open = false,
                },
                _ = ping.tick() => {
                    timed(redis::cmd("PING").query_async::<()>(&mut conn)).await?;
                }
            }
        }
    }

    /// Loads every revocation stored under the prefix, then closes the
    /// live connections the new ones match (one pass); returns how many
    /// were loaded.
    async fn load(&self, conn: &mut MultiplexedConnection) -> Result<usize, LinkError> {
        let pattern = pattern(&self.prefix);
        let mut cursor = 0u64;
        let mut loaded = 0;
        let mut changed = false;
        loop {
            let (next, keys): (u64, Vec<String>) = timed(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(conn),
            )
            .await?;
            if !keys.is_empty() {
                let values: Vec<Option<Vec<u8>>> =
                    timed(redis::cmd("MGET").arg(&keys).query_async(conn)).await?;
                for value in values.into_iter().flatten() {
                    match serde_json::from_slice::<Revocation>(&value) {
                        Ok(r) if r.plausible(unix_now()) => {
                            changed |= self.revocations.store(r).1;
                            loaded += 1;
                        }
                        Ok(_) => {}
                        Err(_) => {
                            tracing::warn!("a revocation in redis is not valid JSON; ignored")
                        }
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        if changed {
            let closed = self.revocations.close_refused(&self.registry);
            self.closed(closed, "redis_load");
        }
        Ok(loaded)
    }

    /// A revocation announced by another replica: stored here, matching connections closed.
    fn apply(&self, revocation: Revocation) {
        if !revocation.plausible(unix_now()) {
            return;
        }
        let (_, closed) = self.revocations.revoke(revocation, &self.registry, false);
        self.closed(closed, "redis");
    }

    /// Counts and logs connections closed by revocations from Redis.
    fn closed(&self, closed: usize, source: &'static str) {
        crate::metrics::revoked_closes(closed);
        if closed > 0 {
            tracing::info!(target: crate::session::AUDIT, event = "revoked", closed, source, "token revoked");
        }
    }

    /// An announcement from the channel (our own are skipped).
    fn received(&self, payload: &[u8]) {
        let Ok(announcement) = serde_json::from_slice::<Announcement>(payload) else {
            tracing::warn!("an announcement on the revocation channel is not valid; ignored");
            return;
        };
        if announcement.origin == self.origin {
            return;
        }
        match announcement.change {
            Change::Revoke { revocation } => self.apply(revocation),
            Change::Lift { target } => {
                self.revocations.lift(&target, false);
            }
        }
    }

    /// Writes a change to Redis and announces it.
    async fn write(
        &self,
        conn: &mut MultiplexedConnection,
        change: &Change,
    ) -> Result<(), LinkError> {
        let now = unix_now();
        match change {
            Change::Revoke { revocation } => {
                if revocation.until <= now {
                    return Ok(());
                }
                let key = format!("{}{}", self.prefix, revocation.target.key());
                let value = serde_json::to_string(revocation).unwrap_or_default();
                timed(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(value)
                        .arg("EX")
                        .arg(revocation.until - now)
                        .query_async::<()>(conn),
                )
                .await?;
            }
            Change::Lift { target } => {
                let key = format!("{}{}", self.prefix, target.key());
                timed(redis::cmd("DEL").arg(&key).query_async::<()>(conn)).await?;
            }
        }
        let announcement = Announcement {
            origin: self.origin.clone(),
            change: change.clone(),
        };
        let text = serde_json::to_string(&announcement).unwrap_or_default();
        timed(
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(text)
                .query_async::<()>(conn),
        )
        .await
    }
}
