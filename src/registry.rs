//! The registry of live connections: what other parts of the process (key
//! removal, revocation, the admin listing, drain, per-subject caps) must
//! find a connection by, and a cheap handle to send it a command.
//!
//! One [`Shard`] per worker. A connection registers in its worker's shard
//! when it authenticates and leaves when its task ends (the [`Registration`]
//! is dropped). The shard's lock is taken only then, on an accepted REAUTH,
//! and by whoever looks connections up (the control thread, the admin API):
//! never on the relay path. A command is left in the connection's
//! [`Mailbox`] and its task woken; the task checks the mailbox with one
//! atomic swap per wake-up. The registry is owned by the process, outside
//! anything a configuration reload replaces.
//!
//! Per connection: the mailbox (an `Arc` of about 64 bytes), an entry in
//! the shard's map (a shared `Arc<Identity>`, the id, the mailbox), and the
//! registration held by the session.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Context;
use std::time::{Duration, SystemTime};

use futures_util::task::AtomicWaker;

use crate::auth::Identity;
use crate::rescue::CloseCause;

/// What a connection can be told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Re-authenticate: `auth_required` now (within `session.reauth_jitter`),
    /// and the token counts as expiring at most `within` from now; if no
    /// REAUTH comes, the expiry path ends with `cause`.
    Reauth {
        /// Longest time left before the connection is suspended.
        within: Duration,
        /// The close reason if it is not re-authenticated.
        cause: CloseCause,
    },
    /// Close both legs now.
    Close(CloseCause),
    /// The proxy drains: the `reconnect` hint now, 1001 `going away` after
    /// `drain.close_after` (the timings are in the process's
    /// [`crate::drain::Signal`], so that a command stays small).
    Drain,
}

impl Command {
    /// When two commands wait, the stronger is kept: a close wins over a
    /// re-auth, a re-auth over a drain (the session that takes a re-auth
    /// also drains if the drain has begun, so neither is lost), a shorter
    /// re-auth over a longer one.
    fn stronger(self, other: Command) -> Command {
        match (self, other) {
            (Command::Close(_), _) => self,
            (_, Command::Close(_)) => other,
            (Command::Drain, _) => other,
            (_, Command::Drain) => self,
            (Command::Reauth { within: a, .. }, Command::Reauth { within: b, .. }) => {
                if a <= b {
                    self
                } else {
                    other
                }
            }
        }
    }
}

/// A connection's inbox: at most one command waits (the stronger one).
#[derive(Debug, Default)]
pub struct Mailbox {
    /// A command waits (checked without the lock).
    pending: AtomicBool,
    /// A close was sent: the connection is about to end (never cleared).
    closing: AtomicBool,
    /// The waiting command.
    command: Mutex<Option<Command>>,
    /// The connection's task.
    waker: AtomicWaker,
}

impl Mailbox {
    /// Leaves `command` and wakes the connection.
    pub fn send(&self, command: Command) {
        if matches!(command, Command::Close(_)) {
            self.closing.store(true, Ordering::Release);
        }
        {
            let mut slot = lock(&self.command);
            *slot = Some(slot.map_or(command, |old| old.stronger(command)));
        }
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether a close was sent to the connection (it is about to end).
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The waiting command, if any; registers the task to be woken for the next.
    pub fn poll(&self, cx: &Context<'_>) -> Option<Command> {
        self.waker.register(cx.waker());
        if !self.pending.swap(false, Ordering::Acquire) {
            return None;
        }
        lock(&self.command).take()
    }
}

/// What the registry knows of one connection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The connection id (`X-Request-Id`).
    pub id: Arc<str>,
    /// The identity of its current token.
    pub identity: Arc<Identity>,
    /// Its inbox.
    pub mailbox: Arc<Mailbox>,
    /// The client's address.
    pub peer: SocketAddr,
    /// When the connection was accepted.
    pub started: SystemTime,
    /// The index of the worker it runs on.
    pub worker: usize,
    /// Its state (`metrics::State` as a number), written by the session on
    /// phase changes only.
    pub state: Arc<AtomicU8>,
}

/// What a connection tells the registry besides its identity.
#[derive(Debug, Clone)]
pub struct About {
    /// The client's address.
    pub peer: SocketAddr,
    /// When the connection was accepted.
    pub started: SystemTime,
    /// Its state cell, shared with the session.
    pub state: Arc<AtomicU8>,
}

/// One worker's live connections.
#[derive(Debug, Default)]
pub struct Shard {
    /// By registration number. A B-tree, not a hash table: a hash table
    /// (or a slab) is one large allocation regrown during the handshake
    /// burst, and the allocator kept far more of it resident than the
    /// entries need (measured: 9.1 vs 7.5 KiB per idle connection, see
    /// `docs/benchmarks.md`); a B-tree grows in small nodes.
    entries: Mutex<BTreeMap<u64, Entry>>,
    /// The next registration number.
    next: AtomicU64,
    /// The worker's index.
    worker: usize,
}

impl Shard {
    /// Registers a connection; it stays until the registration is dropped.
    pub fn register(
        self: &Arc<Self>,
        id: Arc<str>,
        identity: Arc<Identity>,
        about: About,
    ) -> Registration {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Mailbox::default());
        let entry = Entry {
            id,
            identity,
            mailbox: mailbox.clone(),
            peer: about.peer,
            started: about.started,
            worker: self.worker,
            state: about.state,
        };
        lock(&self.entries).insert(key, entry);
        Registration {
            shard: self.clone(),
            key,
            mailbox,
        }
    }

    /// Live connections in this shard.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// No live connection in this shard.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `command` to every connection for which `select` holds; returns how many.
    pub fn send_where(&self, select: impl Fn(&Entry) -> bool, command: Command) -> usize {
        let entries = lock(&self.entries);
        let mut sent = 0;
        for entry in entries.values().filter(|e| select(e)) {
            entry.mailbox.send(command);
            sent += 1;
        }
        sent
    }

    /// A copy of every entry for which `select` holds.
    pub fn find(&self, select: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        lock(&self.entries)
            .values()
            .filter(|e| select(e))
            .cloned()
            .collect()
    }
}

/// A connection's place in its shard; dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    /// The shard it is in.
    shard: Arc<Shard>,
    /// Its number there.
    key: u64,
    /// Its inbox (also in the entry).
    mailbox: Arc<Mailbox>,
}

impl Registration {
    /// The connection's inbox.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// The connection now runs on a new token (an accepted REAUTH).
    pub fn update(&self, identity: Arc<Identity>) {
        if let Some(entry) = lock(&self.shard.entries).get_mut(&self.key) {
            entry.identity = identity;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.shard.entries).remove(&self.key);
    }
}

/// Every worker's shard.
#[derive(Debug)]
pub struct Registry {
    /// One per worker, by worker index.
    shards: Vec<Arc<Shard>>,
}

impl Registry {
    /// A registry for `workers` workers (at least one shard).
    pub fn new(workers: usize) -> Registry {
        Registry {
            shards: (0..workers.max(1))
                .map(|worker| {
                    Arc::new(Shard {
                        worker,
                        ..Shard::default()
                    })
                })
                .collect(),
        }
    }

    /// The shard of worker `index` (wrapping, so any index has one).
    pub fn shard(&self, index: usize) -> Arc<Shard> {
        self.shards[index % self.shards.len()].clone()
    }

    /// Live connections in all shards.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// No live connection at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends `command` to every connection for which `select` holds, in every shard.
    pub fn send_where(&self, select: impl Fn(&Entry) -> bool, command: Command) -> usize {
        self.shards
            .iter()
            .map(|s| s.send_where(&select, command))
            .sum()
    }

    /// A copy of every entry for which `select` holds, in every shard.
    pub fn find(&self, select: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        self.shards.iter().flat_map(|s| s.find(&select)).collect()
    }
}

impl Default for Registry {
    /// One shard.
    fn default() -> Registry {
        Registry::new(1)
    }
}

/// A lock that a panic elsewhere does not poison for everyone.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_small() {
        // In every registered connection's mailbox.
        assert!(
            std::mem::size_of::<Command>() <= 24,
            "{}",
            std::mem::size_of::<Command>()
        );
    }

    fn identity(sub: &str) -> Arc<Identity> {
        Arc::new(Identity {
            sub: sub.into(),
            iss: None,
            exp: 0,
            claims_b64: String::new(),
            provider: "p".into(),
            issuer_pinned: false,
            kid: None,
        })
    }

    fn about() -> About {
        About {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            started: SystemTime::now(),
            state: Arc::default(),
        }
    }

    #[test]
    fn entries_leave_with_their_registration() {
        let registry = Registry::new(2);
        let a = registry
            .shard(0)
            .register("a".into(), identity("alice"), about());
        let b = registry
            .shard(1)
            .register("b".into(), identity("bob"), about());
        assert_eq!(registry.len(), 2);
        drop(a);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.find(|_| true)[0].id.as_ref(), "b");
        assert_eq!(registry.find(|_| true)[0].worker, 1, "the shard's worker");
        b.update(identity("bobby"));
        assert_eq!(registry.find(|_| true)[0].identity.sub, "bobby");
        drop(b);
        assert!(registry.is_empty());
    }

    #[test]
    fn commands_reach_the_selected_connections_and_the_stronger_wins() {
        let registry = Registry::new(1);
        let a = registry
            .shard(0)
            .register("a".into(), identity("alice"), about());
        let b = registry
            .shard(0)
            .register("b".into(), identity("bob"), about());
        let cx = Context::from_waker(std::task::Waker::noop());
        let reauth = |secs| Command::Reauth {
            within: Duration::from_secs(secs),
            cause: CloseCause::TokenExpired,
        };
        assert_eq!(
            registry.send_where(|e| e.identity.sub == "alice", reauth(10)),
            1
        );
        registry.send_where(|e| e.identity.sub == "alice", reauth(5));
        registry.send_where(|e| e.identity.sub == "alice", reauth(20));
        assert_eq!(a.mailbox().poll(&cx), Some(reauth(5)));
        assert_eq!(a.mailbox().poll(&cx), None);
        assert_eq!(b.mailbox().poll(&cx), None);
        registry.send_where(|_| true, Command::Close(CloseCause::MaxLifetime));
        registry.send_where(|_| true, reauth(1));
        assert_eq!(
            b.mailbox().poll(&cx),
            Some(Command::Close(CloseCause::MaxLifetime))
        );
        let drain = Command::Drain;
        a.mailbox().poll(&cx);
        registry.send_where(|_| true, reauth(1));
        registry.send_where(|_| true, drain);
        assert_eq!(a.mailbox().poll(&cx), Some(reauth(1)));
        registry.send_where(|_| true, drain);
        registry.send_where(|_| true, reauth(2));
        assert_eq!(a.mailbox().poll(&cx), Some(reauth(2)));
        registry.send_where(|_| true, drain);
        assert_eq!(a.mailbox().poll(&cx), Some(drain));
        registry.send_where(|_| true, drain);
        registry.send_where(|_| true, Command::Close(CloseCause::Draining));
        assert_eq!(
            a.mailbox().poll(&cx),
            Some(Command::Close(CloseCause::Draining))
        );
    }
}
